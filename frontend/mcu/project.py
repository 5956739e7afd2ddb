"""Self-contained Cortex-M projects for quantized models: `emit_project` writes a folder
that builds with arm-none-eabi-gcc alone (`make`) and runs on QEMU's emulated board
(`make run`), printing one predicted class per embedded test input, then `done`.

    pm = qc.weightpool.compress(model, calib=x_train, pool_size=64)
    qc.mcu.emit_project(pm, "digits_m4", board="mps2-an386", act_bits=4, test_inputs=x_test[:20])
    # make -C digits_m4 run
"""

import os
import pathlib
import re
import tempfile
from dataclasses import dataclass

import numpy as np

from ..ir.errors import QuiltError, ShapeError
from ..ir.interop import to_numpy
from ..nn.bitserial import check_act_bits
from ..progress import progress_bar
from ..runtime_c import mcu_toolchain
from ..runtime_c.mcu_boards import BOARDS, check_fits, find_board
from ..runtime_c.unicorn_run import call_function
from .model import model_sources

DEFAULT_BOARD = "mps2-an386"
PROJECT_MARKER = ".quiltc-project"
_C_SIZES = {"int8_t": 1, "uint8_t": 1, "q7_t": 1, "int16_t": 2, "uint16_t": 2, "q15_t": 2,
            "int32_t": 4, "uint32_t": 4, "q31_t": 4}
_ARRAY = re.compile(r"^(?:static\s+)?(const\s+)?(\w+)\s+\w+((?:\[\s*\d+\s*\])+)"
                    r"\s*(?:__attribute__\(\(.*?\)\))?\s*[=;]", re.MULTILINE)


def declared_bytes(sources):
    """(flash bytes, RAM bytes) of the file-scope arrays that C `sources` ({name: text})
    declare with literal sizes: const tables live in flash, the other arrays in RAM. Code
    is not counted; the linker script catches what this estimate misses."""
    flash = ram = 0
    for name, text in sources.items():
        if not name.endswith(".c"):
            continue
        for const, ctype, dims in _ARRAY.findall(text):
            if ctype not in _C_SIZES:
                continue
            size = _C_SIZES[ctype] * int(np.prod([int(d) for d in re.findall(r"\d+", dims)]))
            if const:
                flash += size
            else:
                ram += size
    return flash, ram


def int8_conv_for(board):
    """The int8 conv kernel a board runs best: dual MACs (SMLAD) where the core has the
    DSP extension, CMSIS-NN's plain loop on a Cortex-M3."""
    return "smlad" if board.dsp else "plain"


def quantized_inputs(model, inputs):
    """`inputs` as the int8 rows the model's C reads: int8 arrays pass as they are, float
    images (NHWC, batch first) are quantized with the model's input scale."""
    inputs = to_numpy("inputs", inputs)
    if inputs.dtype == np.int8:
        return inputs
    if inputs.dtype.kind != "f":
        raise ShapeError(f"inputs have dtype {inputs.dtype}; pass float NHWC images or the "
                         "int8 rows of model.quantize_input(images)")
    if not hasattr(model, "quantize_input"):
        raise QuiltError(f"model is a {type(model).__name__}; pass a QuantModel or a pooled "
                         "model (weightpool.compress)")
    return np.asarray(model.quantize_input(inputs), np.int8)


def _input_rows(model, inputs, input_size, name):
    """`inputs` (argument `name`) quantized as (n, input_size) int8 rows, one a model input."""
    inputs = np.atleast_1d(to_numpy(name, inputs))
    if len(inputs) and inputs.size // len(inputs) != input_size:
        raise ShapeError(f"{name.replace('_', ' ')} hold {inputs.size // len(inputs)} values "
                         f"each but the model takes {input_size}: pass images of the shape the "
                         "model was trained on")
    return quantized_inputs(model, inputs).reshape(len(inputs), input_size)


def readme(board, act_bits, test_count, flash_bytes, ram_bytes):
    """The README.txt of an emitted project: how to build and run it, and the C API."""
    return f"""This folder was written by quiltc.mcu.emit_project for {board.machine} \
({board.cpu}), activations of {act_bits} bits.

Build and run (needs arm-none-eabi-gcc, newlib and qemu-system-arm):
    make        builds model.elf with arm-none-eabi-gcc and prints its size
    make run    runs the {test_count} embedded test inputs on the emulated board under
                qemu-system-arm -M {board.machine}; it prints one predicted class per
                input, one per line, then `done`

Tables and buffers: about {flash_bytes} bytes of flash and {ram_bytes} bytes of RAM (code
and stack come on top; `make` prints the exact sizes).

C API (model.h):
    #define QUILTC_INPUT_SIZE   int8 values of one input, NHWC order
    #define QUILTC_OUTPUT_SIZE  int8 scores, one per class
    int quiltc_model_run(const int8_t *in, int8_t *out);
        Runs the quantized network on one input. `in` holds QUILTC_INPUT_SIZE int8
        values quantized with the model's input scale (symmetric, zero point 0);
        `out` receives QUILTC_OUTPUT_SIZE int8 scores whose largest entry is the
        predicted class. Returns 0. It uses static buffers only (no malloc, not
        reentrant) and its weight, index and lookup tables are const, in flash.

Files: model.c/model.h (the network), main.c (runs test_inputs.c), startup.c (vector
table and reset handler), semihost.c (output through semihosting), board.ld (memory map).
"""


def check_project_folder(path, overwrite):
    """Refuse to write into a folder that holds files quiltc did not put there: emitting
    must never overwrite a user's Makefile or main.c."""
    if path.exists() and not path.is_dir():
        raise QuiltError(f"{path} is a file, not a folder; pass the path of a new or empty "
                         "folder to emit the project into")
    if overwrite or not path.is_dir() or (path / PROJECT_MARKER).is_file():
        return
    present = sorted(child.name for child in path.iterdir())
    if present:
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        raise QuiltError(f"folder {path} already holds files quiltc did not write ({shown}); "
                         "emit into a new or empty folder, or pass overwrite=True to replace "
                         "the project's own files there (other files are left as they are)")


def emit_project(model, path, board=DEFAULT_BOARD, act_bits=8, test_inputs=None,
                 overwrite=False):
    """Write a Cortex-M project for the quantized `model` (e.g. from weightpool.compress)
    into the folder `path`: model sources, board start-up and linker script, a Makefile,
    and a main running `test_inputs` (float images, quantized here, or int8 rows).
    A folder that already holds files is refused unless quiltc wrote it (its
    `.quiltc-project` marker) or `overwrite=True`; files that are not the project's are
    never touched. Raises QuiltError for an unknown board, act_bits outside 1..8, or a
    model whose tables do not fit the board. Returns the folder's path."""
    if not isinstance(path, (str, os.PathLike)):
        raise QuiltError(f"path is a {type(path).__name__}; pass the folder to write as a str "
                         "or pathlib.Path")
    path = pathlib.Path(path)
    check_project_folder(path, overwrite)
    spec = find_board(board) if isinstance(board, str) else None
    if spec is None:
        raise QuiltError(f"board must be a board name such as {DEFAULT_BOARD!r}, one of "
                         + ", ".join(BOARDS) + f"; got {board!r}")
    act_bits = check_act_bits(act_bits)
    sources = model_sources(model, act_bits, int8_conv_for(spec))
    input_size = int(re.search(r"QUILTC_INPUT_SIZE (\d+)", sources["model.h"]).group(1))
    inputs = (np.zeros((0, input_size), np.int8) if test_inputs is None
              else _input_rows(model, test_inputs, input_size, "test_inputs"))
    inputs_files = mcu_toolchain.test_input_files(inputs)
    flash_bytes, ram_bytes = declared_bytes({**sources, **inputs_files})
    check_fits(spec, flash_bytes, ram_bytes,
               what=f"the model at act_bits={act_bits} with {len(inputs)} test inputs")
    files = {**mcu_toolchain.board_files(spec.machine), **sources, **inputs_files,
             "README.txt": readme(spec, act_bits, len(inputs), flash_bytes, ram_bytes),
             PROJECT_MARKER: "written by quiltc.mcu.emit_project; emitting again replaces "
                             "the project's own files here\n"}
    return mcu_toolchain.write_files(path, files)


@dataclass(frozen=True)
class EmulatedRun:
    """Scores of `quiltc_model_run` for each input, run under unicorn on one board's core,
    and the instructions each run executed."""

    board: str
    act_bits: int
    scores: np.ndarray
    instructions: tuple


def emulated_run(model, inputs, act_bits=8, board=DEFAULT_BOARD, folder=None):
    """Build `model`'s C for the board (the int8 conv kernel chosen as emit_project does)
    and run quiltc_model_run on each input under unicorn, counting instructions: the
    repeatable cost measure. `folder` keeps the build (default: a temporary folder)."""
    spec = find_board(board)
    sources = model_sources(model, check_act_bits(act_bits), int8_conv_for(spec))
    input_size = int(re.search(r"QUILTC_INPUT_SIZE (\d+)", sources["model.h"]).group(1))
    rows = _input_rows(model, inputs, input_size, "inputs")
    output_size = int(re.search(r"QUILTC_OUTPUT_SIZE (\d+)", sources["model.h"]).group(1))
    with tempfile.TemporaryDirectory() as scratch:
        elf = mcu_toolchain.compile_elf(sources, spec.machine, folder or scratch,
                                        ["quiltc_model_run"])
        calls = [call_function(elf, "quiltc_model_run", [row, np.zeros(output_size, np.int8)],
                               core=spec.core)
                 for row in progress_bar(rows, description=f"emulating {spec.machine}",
                                         unit="input")]
    return EmulatedRun(spec.machine, act_bits,
                       np.array([call.arrays[1] for call in calls], np.int8).reshape(
                           len(rows), output_size),
                       tuple(call.instructions for call in calls))
