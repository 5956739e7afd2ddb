"""The C toolchain driver: finds the compiler, compiles generated C into a shared object,
and turns a missing compiler or a compiler error into a quiltc error a user can act on.

`CC` picks the compiler (default `cc`). Its `--version` text is read once per process:
it is part of every cache key, so a compiler upgrade never reuses stale objects.
"""

import functools
import logging
import os
import platform
import shlex
import shutil
import subprocess
from dataclasses import dataclass

from ..ir.errors import BuildError, QuiltError, ToolchainMissing

INSTALL_HINT = "apt-get install -y gcc"
log = logging.getLogger(__name__)
# -std=c99 turns off gcc's default contraction of a * b + c into fused multiply-adds,
# which costs a matmul half its throughput: -ffp-contract=fast brings it back.
# gcc's partial redundancy elimination turns the selects of an inlined math helper into
# branches when an earlier loop computed its argument (softmax's row max before its exp),
# and the branches stop the vectorizer: -fno-tree-pre keeps those loops SIMD.
# -fno-trapping-math is left out on purpose: it lets gcc 12's loop if-conversion compute
# both arms of a select, and at -O3 that miscompiles a select between a value and a
# minimum (`x > c ? t : min(y, t)` gave 0 for 0.137). quiltc_expf blends its special
# cases through bit masks instead of selects, so exp loops stay SIMD on AVX2 without it.
# gcc's tuning for Intel's AVX-512 cores prefers 256-bit vectors, which would split every
# 16-lane vector of a schedule sized for AVX-512 in two: the schedules size their vectors to
# the ISA's widest registers (runtime_c/host.py), so the compiler must use them too.
_VECTOR_WIDTH_FLAGS = (("-mprefer-vector-width=512",)
                       if platform.machine() in ("x86_64", "AMD64", "i686") else ())
SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                  "-fno-sanitize-recover=all")
LIBRARIES = ("-lm",)
# How many lines of compiler output a BuildError quotes.
_ERROR_LINES = 12


def build_flags(march="native"):
    """The flags every kernel is built with, for the architecture `march` names (gcc's
    `-march=` values: "native" for this machine, "haswell", "skylake-avx512", ...)."""
    return ("-O3", f"-march={march}", "-fopenmp", "-fPIC", "-shared", "-std=c99",
            "-ffp-contract=fast", "-fno-tree-pre", *_VECTOR_WIDTH_FLAGS)


@dataclass(frozen=True)
class Toolchain:
    """A compiler command and the flags every kernel is built with."""

    command: tuple
    flags: tuple

    @property
    def name(self):
        """The compiler command as the user would type it."""
        return " ".join(self.command)

    def identity(self):
        """Text that changes whenever the objects this toolchain makes could change."""
        return "\n".join([" ".join(self.flags + LIBRARIES), compiler_version(self.command),
                          host_description()])

    def check_loadable(self):
        """Refuse before loading an object this process cannot load.

        A sanitized object needs the AddressSanitizer runtime loaded first; without it,
        loading aborts the whole process instead of raising.
        """
        if "-fsanitize=address,undefined" in self.flags and not sanitizer_runtime_loaded():
            raise QuiltError(
                "a sanitize=True build loads only into a process that preloaded the "
                "AddressSanitizer runtime: run python with LD_PRELOAD=$(gcc "
                "-print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0"
            )

    def compile(self, source_path, output_path):
        """Compile `source_path` into the shared object `output_path`."""
        arguments = [*self.command, *self.flags, "-o", str(output_path), str(source_path),
                     *LIBRARIES]
        log.info("%s", shlex.join(arguments))
        try:
            result = subprocess.run(arguments, capture_output=True, text=True)
        except FileNotFoundError:
            raise ToolchainMissing(self.command[0], INSTALL_HINT) from None
        if result.returncode != 0:
            raise BuildError(self.name, first_error_lines(result.stderr or result.stdout),
                             str(source_path))


def find_toolchain(sanitize=False, march="native"):
    """The toolchain `CC` names (default `cc`) building for the architecture `march`
    (default: this machine), with the sanitizer flags when asked."""
    command = tuple(shlex.split(os.environ.get("CC") or "cc"))
    if not command or shutil.which(command[0]) is None:
        raise ToolchainMissing(command[0] if command else "cc", INSTALL_HINT)
    return Toolchain(command, build_flags(march) + (SANITIZE_FLAGS if sanitize else ()))


@functools.cache
def compiler_version(command):
    """The compiler's `--version` text (read once per process and compiler)."""
    try:
        result = subprocess.run([*command, "--version"], capture_output=True, text=True)
    except FileNotFoundError:
        raise ToolchainMissing(command[0], INSTALL_HINT) from None
    if result.returncode != 0:
        raise BuildError(" ".join(command), first_error_lines(result.stderr),
                         "(no source: the compiler failed on --version)")
    return result.stdout.strip()


@functools.cache
def host_description():
    """The machine and CPU model: `-march=native` objects only run where they were built."""
    lines = [platform.machine()]
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(("model name", "flags")) and line not in lines:
                    lines.append(line.strip())
                if len(lines) == 3:
                    break
    except OSError:
        lines.append(platform.processor())
    return "\n".join(lines)


def sanitizer_runtime_loaded():
    """Whether libasan is mapped into this process (or preloaded, where maps are unreadable)."""
    try:
        with open("/proc/self/maps") as maps:
            return "libasan" in maps.read()
    except OSError:
        return "libasan" in os.environ.get("LD_PRELOAD", "")


def first_error_lines(output):
    """The compiler's output from its first error on, cut to a few lines."""
    lines = output.strip().splitlines()
    start = next((n for n, line in enumerate(lines) if "error" in line), 0)
    return "\n".join(lines[start:start + _ERROR_LINES])
