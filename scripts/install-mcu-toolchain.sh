#!/bin/sh
# Installs what the Cortex-M tests and demo need: arm-none-eabi-gcc, newlib and
# qemu-system-arm. Does nothing when all three are present, so make can call it every time.
# Without root (and without sudo) it prints the command and exits 0: the tests then skip
# with the same hint, or fail under QUILTC_REQUIRE_TOOLCHAINS=1.
set -eu

PACKAGES="gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
INSTALL="apt-get update && apt-get install -y --no-install-recommends $PACKAGES"

has_newlib() {
    # gcc prints the bare name back when it cannot find the file on its search path.
    for file in libc.a nano.specs; do
        found=$(arm-none-eabi-gcc -print-file-name="$file" 2>/dev/null) || return 1
        [ "$found" != "$file" ] && [ -f "$found" ] || return 1
    done
}

if command -v arm-none-eabi-gcc >/dev/null 2>&1 && has_newlib \
        && command -v qemu-system-arm >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" = 0 ]; then
    echo "installing the Cortex-M toolchain: $PACKAGES"
    sh -c "$INSTALL"
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    echo "installing the Cortex-M toolchain with sudo: $PACKAGES"
    sudo sh -c "$INSTALL"
else
    echo "The Cortex-M toolchain is missing and this user cannot install packages."
    echo "Install it as root with: $INSTALL"
fi
