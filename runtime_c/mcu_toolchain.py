"""The Cortex-M toolchain driver: writes a board's start-up, linker script and Makefile
beside model sources, builds them with arm-none-eabi-gcc, runs the result on QEMU's
emulated board, and reads flash and RAM use back from arm-none-eabi-size.

A missing tool raises ToolchainMissing with the apt-get command that installs all three
(scripts/install-mcu-toolchain.sh runs it).
"""

import importlib.resources
import logging
import pathlib
import shlex
import shutil
import subprocess

import numpy as np

from ..ir.errors import BuildError, QuiltError, ToolchainMissing
from .mcu_boards import find_board

MCU_INSTALL_HINT = ("apt-get update && apt-get install -y --no-install-recommends "
                    "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")
COMPILER = "arm-none-eabi-gcc"
SIZE_TOOL = "arm-none-eabi-size"
EMULATOR = "qemu-system-arm"
# gcc turns copy and zero loops into memcpy/memset calls, which do not exist without a C
# library: -fno-tree-loop-distribute-patterns keeps them loops. gcc's first scheduling
# pass hoists loads ahead of their use and, with Cortex-M's few registers, spills them:
# -fno-schedule-insns saves instructions in every kernel, the int8 baselines included.
# (Kernels that read table rows turn two more passes off for themselves: see
# codegen/mcu.py TABLE_KERNEL_ATTRIBUTE.)
CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-ffreestanding", "-ffunction-sections",
          "-fdata-sections", "-fno-tree-loop-distribute-patterns", "-fno-schedule-insns")
LDFLAGS = ("-nostdlib", "-T", "board.ld", "-Wl,--gc-sections")
LIBRARIES = ("-lgcc",)
# The board files every project carries; main.c also needs model.h and test_inputs.h.
PROJECT_FILES = ("startup.c", "semihost.c", "semihost.h", "main.c")
ELF_NAME = "model.elf"
log = logging.getLogger(__name__)


def require(tool):
    """The path of `tool`, or ToolchainMissing naming the install command."""
    path = shutil.which(tool)
    if path is None:
        raise ToolchainMissing(tool, MCU_INSTALL_HINT)
    return path


def _template(name):
    return importlib.resources.files(__package__).joinpath("mcu", name).read_text()


def _fill(text, values):
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    return text


def linker_script(board):
    """The linker script for `board`: flash at 0x0, RAM at 0x20000000, a stack reserve."""
    return _fill(_template("board.ld.in"), {
        "BOARD": board.machine, "CPU": board.cpu, "FLASH_BYTES": board.flash_bytes,
        "RAM_BYTES": board.ram_bytes, "STACK_BYTES": board.stack_bytes})


def makefile(board):
    """The project Makefile for `board`: `all` builds model.elf, `run` runs it in QEMU."""
    return _fill(_template("Makefile.in"), {
        "BOARD": board.machine, "CPU": board.cpu, "MACHINE": board.machine,
        "CPUFLAGS": " ".join(board.compile_flags), "CFLAGS": " ".join(CFLAGS),
        "LDFLAGS": " ".join(LDFLAGS + LIBRARIES)})


def board_files(board_name):
    """{filename: text} of everything but the model a project for the board needs:
    start-up, semihosting, main.c, the linker script and the Makefile."""
    board = find_board(board_name)
    files = {name: _template(name) for name in PROJECT_FILES}
    files["board.ld"] = linker_script(board)
    files["Makefile"] = makefile(board)
    return files


def write_files(path, files):
    """Write {filename: text} into the folder `path` (created if needed); returns the path."""
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def _first_problem_lines(output, count=12):
    """The tool's output from its first complaint on: compiler errors, and the linker's
    overflowed regions and undefined references, which do not say "error" themselves."""
    lines = output.strip().splitlines()
    marks = ("error", "overflowed", "undefined reference")
    start = next((n for n, line in enumerate(lines) if any(m in line for m in marks)), 0)
    return "\n".join(lines[start:start + count])


def _check_run(arguments, what, source_path, cwd=None):
    log.info("%s%s", f"(in {cwd}) " if cwd else "", shlex.join(map(str, arguments)))
    try:
        result = subprocess.run(arguments, capture_output=True, text=True, cwd=cwd)
    except FileNotFoundError:
        raise ToolchainMissing(arguments[0], MCU_INSTALL_HINT) from None
    if result.returncode != 0:
        raise BuildError(what, _first_problem_lines(result.stderr or result.stdout),
                         source_path)
    return result.stdout


def build_project(path):
    """Run `make` in a project folder; returns the path of its model.elf."""
    require(COMPILER)
    require(SIZE_TOOL)
    path = pathlib.Path(path)
    _check_run(["make", "-s", "--no-print-directory", "-C", str(path), ELF_NAME],
               f"make ({COMPILER})", str(path))
    return path / ELF_NAME


def compile_elf(files, board_name, path, functions, library_sources=(), include_dirs=(),
                cflags=CFLAGS, libraries=LIBRARIES):
    """Compile {filename: text} C sources for the board into `path`/kernel.elf with no
    start-up code, keeping the named `functions` (for calling them under emulation).

    To build a C library beside them (a baseline to measure against), pass the paths of
    its `library_sources` and `include_dirs`, and the `cflags` and `libraries` it is meant
    to be built with (the defaults are quiltc's own: freestanding, no C library)."""
    require(COMPILER)
    board = find_board(board_name)
    folder = write_files(path, {**files, "board.ld": linker_script(board)})
    sources = [name for name in files if name.endswith(".c")]
    sources += [str(pathlib.Path(source).resolve()) for source in library_sources]
    includes = [f"-I{pathlib.Path(directory).resolve()}" for directory in include_dirs]
    roots = [f"-Wl,--undefined={name}" for name in functions]
    output = folder / "kernel.elf"
    _check_run([COMPILER, *board.compile_flags, *cflags, *includes, *sources, *LDFLAGS,
                *roots, f"-Wl,--entry={functions[0]}", *libraries, "-o", output.name],
               COMPILER, str(folder), cwd=folder)
    return output


def compile_object(source_path, board_name, output_path):
    """Compile one Cortex-M C source for the board's core into the object `output_path`
    (the flags a project's Makefile uses), for a user's own embedded build to link."""
    board = find_board(board_name)
    _check_run([require(COMPILER), *board.compile_flags, *CFLAGS, "-c", str(source_path),
                "-o", str(output_path)], COMPILER, str(source_path))
    return pathlib.Path(output_path)


def elf_size(elf_path):
    """(flash bytes, RAM bytes) of an ELF: flash = text + data, RAM = data + bss (the stack
    reserve included), as arm-none-eabi-size reports them."""
    output = _check_run([require(SIZE_TOOL), str(elf_path)], SIZE_TOOL, str(elf_path))
    text, data, bss = (int(field) for field in output.splitlines()[1].split()[:3])
    return text + data, data + bss


def run_project(path, timeout=60):
    """Run a built project under QEMU (`make run`) and return what it printed."""
    require(EMULATOR)
    path = pathlib.Path(path)
    arguments = ["make", "-s", "--no-print-directory", "-C", str(path), "run",
                 f"RUN_TIMEOUT={timeout}"]
    log.info("%s", shlex.join(arguments))
    result = subprocess.run(arguments, capture_output=True, text=True)
    if result.returncode != 0:
        reason = (f"it ran past its timeout of {timeout} s" if result.returncode == 124
                  else f"it exited with status {result.returncode}")
        raise QuiltError(f"the project in {path} failed under {EMULATOR}: {reason}:\n"
                         + (result.stdout + result.stderr)[-2000:])
    return result.stdout


def run_predictions(path, timeout=60):
    """Build and run a project and return the predicted classes its main printed."""
    build_project(path)
    lines = run_project(path, timeout).split()
    if not lines or lines[-1] != "done":
        raise QuiltError(f"the project in {path} did not finish: its output ended with "
                         f"{lines[-3:]!r} instead of 'done'")
    return [int(line) for line in lines[:-1]]


def test_input_files(inputs):
    """test_inputs.h and test_inputs.c embedding int8 `inputs` (one row per test input,
    flattened) as a const table in flash, in the form main.c reads."""
    rows = np.asarray(inputs)
    if rows.dtype != np.int8:
        raise QuiltError(f"test inputs must be int8 once quantized, got {rows.dtype}")
    rows = rows.reshape(rows.shape[0], int(np.prod(rows.shape[1:])))
    header = ("/* The test inputs main.c runs, int8, quantized like the model's input. */\n"
              "#ifndef QUILTC_TEST_INPUTS_H\n#define QUILTC_TEST_INPUTS_H\n"
              "#include <stdint.h>\n#include \"model.h\"\n\n"
              f"#define QUILTC_TEST_COUNT {len(rows)}\n")
    if len(rows):
        header += ("extern const int8_t quiltc_test_inputs[QUILTC_TEST_COUNT]"
                   "[QUILTC_INPUT_SIZE];\n")
    header += "\n#endif\n"
    body = '#include "test_inputs.h"\n'
    if len(rows):
        lines = ",\n".join("    {" + ", ".join(str(int(v)) for v in row) + "}" for row in rows)
        body += ("\nconst int8_t quiltc_test_inputs[QUILTC_TEST_COUNT][QUILTC_INPUT_SIZE] = {\n"
                 + lines + "\n};\n")
    return {"test_inputs.h": header, "test_inputs.c": body}
