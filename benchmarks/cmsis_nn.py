"""Arm's CMSIS-NN as the Cortex-M benchmark's int8 baseline: builds one of its layer
functions beside a small C harness holding one of the benchmark's layers, calls the
harness once under unicorn, checks the output bit-exact against quiltc's numpy integer
reference, and reports the instructions and the estimated cycles of that call.

Three layers, each built from quiltc's LayerSource.parameters (the same weights, bias
and per-channel multiplier and shift as quiltc's kernel of that layer):

    conv_layer(shape)        arm_convolve_wrapper_s8               (conv_layer_source)
    depthwise_layer(shape)   arm_depthwise_conv_wrapper_s8         (depthwise_layer_source)
    dense_layer(cin, cout)   arm_fully_connected_per_channel_s8    (dense_layer_source)

All three are per-channel requantized, as quiltc's kernels are (for the fully connected
layer that is the per-channel entry; arm_fully_connected_s8 takes one multiplier for the
whole tensor), and all three take the same arguments, so one harness calls any of them.

The library comes from the folder CMSIS_NN_DIR names, else ../shared/third_party/cmsis-nn
beside the repository; without either the benchmark says so and leaves the column out.
It is measured, never copied: its sources compile from where they are, as their
PROVENANCE.md says: -O3, never -ffreestanding (its memcpy-based word reads would turn into
calls), newlib's memcpy and memset linked.

quiltc's int8 layers read and write unsigned activations 0..255 with zero point 0;
CMSIS-NN's are int8. The harness therefore takes x - 128 with input_offset 128 (a padded
tap then adds (-128 + 128) * w = 0, like quiltc's zero padding) and writes with
output_offset -128 and the range [-128, 127]: its output + 128 is quiltc's.
"""

import os
import pathlib
from dataclasses import dataclass

import numpy as np

from quiltc.ir.errors import QuiltError
from quiltc.mcu.model import (
    c_array,
    conv_layer_source,
    dense_layer_source,
    depthwise_layer_source,
)
from quiltc.runtime_c import mcu_toolchain
from quiltc.runtime_c.mcu_boards import board_for_core
from quiltc.runtime_c.mcu_cycles import call_with_cycles
from quiltc.runtime_c.unicorn_run import call_function

ENVIRONMENT_VARIABLE = "CMSIS_NN_DIR"
SHARED_COPY = pathlib.Path(__file__).resolve().parents[2] / "shared/third_party/cmsis-nn"
# The folders holding the s8 layer functions and the support functions they call; the
# float variants need headers of their own and are never called here.
SOURCE_FOLDERS = ("Source/ConvolutionFunctions", "Source/FullyConnectedFunctions",
                  "Source/NNSupportFunctions")
FLOAT_SUFFIXES = ("_f16.c", "_f32.c", "_flt.c")
CFLAGS = ("-O3", "-ffunction-sections", "-fdata-sections")
LIBRARIES = ("-lc", "-lgcc")
FUNCTION = "cmsis_layer"
BUFFER_SIZE_FUNCTION = "cmsis_buffer_bytes"
ZERO_POINT_SHIFT = 128
# Every layer's zero points and output range (see the module docstring).
OFFSETS = (f".input_offset = {ZERO_POINT_SHIFT}, .output_offset = {-ZERO_POINT_SHIFT},\n"
           "    .activation = {-128, 127}")
DIMS = ("input", "filter", "bias", "output")


@dataclass(frozen=True)
class LibraryLayer:
    """One layer as one CMSIS-NN call. `function` is the library's entry, called as
    function(&context, &layer_params, &quant, &input_dims, in, &filter_dims, filter,
    &bias_dims, bias, &output_dims, out) with per-channel `quant`; `params_type` and
    `params` are the type and the designated initializer of its layer parameters; `dims`
    maps input, filter, bias and output to their cmsis_nn_dims (n, h, w, c); `tables`
    holds filter (int8, in the library's layout), bias, multiplier and shift;
    `buffer_size` is the C call asking the library for its scratch bytes, and
    `scratch_bytes` what the harness reserves (checked against that answer before the
    measured call); `output_size` counts the outputs of one call."""

    function: str
    params_type: str
    params: str
    dims: dict
    tables: dict
    buffer_size: str
    scratch_bytes: int
    output_size: int


def library_folder():
    """The CMSIS-NN folder to build (CMSIS_NN_DIR, else the shared copy), or None when
    CMSIS_NN_DIR is unset and the shared copy is absent."""
    named = os.environ.get(ENVIRONMENT_VARIABLE)
    folder = pathlib.Path(named) if named else SHARED_COPY
    if not (folder / "Include" / "arm_nnfunctions.h").is_file():
        if named:
            raise QuiltError(f"{ENVIRONMENT_VARIABLE}={named} holds no Include/arm_nnfunctions.h; "
                             "point it at a CMSIS-NN checkout (github.com/ARM-software/"
                             "CMSIS-NN) or unset it")
        return None
    return folder


def library_sources(folder):
    """The C files of CMSIS-NN's s8 layer functions and support functions in `folder`."""
    sources = sorted(path for name in SOURCE_FOLDERS for path in (folder / name).glob("*.c")
                     if not path.name.endswith(FLOAT_SUFFIXES))
    if not sources:
        raise QuiltError(f"{folder} has no C files under {' or '.join(SOURCE_FOLDERS)}; "
                         f"point {ENVIRONMENT_VARIABLE} at a CMSIS-NN checkout")
    return sources


def _requantization(parameters):
    return {name: parameters[name] for name in ("bias", "multiplier", "shift")}


def _window_params(shape):
    return (f"{OFFSETS},\n    .stride = {{{shape.stride}, {shape.stride}}},\n"
            f"    .padding = {{{shape.padding}, {shape.padding}}}, .dilation = {{1, 1}}")


def _window_buffer_size(function):
    return f"{function}_get_buffer_size(&layer_params, &input_dims, &filter_dims, &output_dims)"


def conv_layer(shape, seed=0):
    """quiltc's int8 conv layer of ConvShape `shape` (conv_layer_source) through
    arm_convolve_wrapper_s8. Its scratch: two int16 im2col columns of the window, rounded
    up to whole words (arm_convolve_s8's need)."""
    drawn = conv_layer_source("int8_plain", shape, seed=seed).parameters
    depth = shape.kh * shape.kw * shape.cin
    return LibraryLayer(
        "arm_convolve_wrapper_s8", "cmsis_nn_conv_params", _window_params(shape),
        {"input": (1, shape.h, shape.w, shape.cin),
         "filter": (shape.cout, shape.kh, shape.kw, shape.cin), "bias": (1, 1, 1, shape.cout),
         "output": (1, shape.oh, shape.ow, shape.cout)},
        {"filter": drawn["weight"].transpose(3, 0, 1, 2), **_requantization(drawn)},  # OHWI
        _window_buffer_size("arm_convolve_wrapper_s8"), 2 * 2 * (-(-depth // 4) * 4),
        shape.oh * shape.ow * shape.cout)


def depthwise_layer(shape, seed=0):
    """quiltc's int8 depthwise layer of `shape` (depthwise_layer_source) through
    arm_depthwise_conv_wrapper_s8. Its scratch: one int16 column of every channel's
    window, the most its paths on the Cortex-M3 and M4 ask for (arm_depthwise_conv_s8_opt;
    the 3x3 path with padding <= 1 needs none)."""
    drawn = depthwise_layer_source(shape, seed=seed).parameters
    return LibraryLayer(
        "arm_depthwise_conv_wrapper_s8", "cmsis_nn_dw_conv_params",
        f"{_window_params(shape)}, .ch_mult = 1",
        {"input": (1, shape.h, shape.w, shape.cin), "filter": (1, shape.kh, shape.kw, shape.cin),
         "bias": (1, 1, 1, shape.cin), "output": (1, shape.oh, shape.ow, shape.cin)},
        {"filter": drawn["weight"], **_requantization(drawn)},  # (kh, kw, c) as numpy's
        _window_buffer_size("arm_depthwise_conv_wrapper_s8"),
        2 * shape.kh * shape.kw * shape.cin, shape.oh * shape.ow * shape.cin)


def dense_layer(cin, cout, seed=0):
    """quiltc's int8 dense layer `cin` -> `cout` (dense_layer_source) through
    arm_fully_connected_per_channel_s8, which needs no scratch on cores without Helium
    (filter_dims.n is the accumulation depth, .c the outputs)."""
    drawn = dense_layer_source(cin, cout, seed=seed).parameters
    return LibraryLayer(
        "arm_fully_connected_per_channel_s8", "cmsis_nn_fc_params",
        f"{OFFSETS}, .filter_offset = 0",
        {"input": (1, 1, 1, cin), "filter": (cin, 1, 1, cout), "bias": (1, 1, 1, cout),
         "output": (1, 1, 1, cout)},
        {"filter": drawn["weight"].T, **_requantization(drawn)},  # (cout, cin) rows
        "arm_fully_connected_s8_get_buffer_size(&filter_dims)", 0, cout)


def harness_source(layer):
    """C defining `int32_t cmsis_layer(const int8_t *in, int8_t *out)` (one call of
    the LibraryLayer `layer`, its tables const in flash) and `int32_t
    cmsis_buffer_bytes(void)` (the scratch the library asks for)."""
    tables = [f"static {c_array(f'cmsis_{name}', array)}" for name, array in layer.tables.items()]
    dims = "\n".join(f"static const cmsis_nn_dims {name}_dims = {{"
                     + ", ".join(map(str, layer.dims[name])) + "};" for name in DIMS)
    # C has no empty arrays: a layer needing no scratch still gets one element.
    scratch_elements = max(1, -(-layer.scratch_bytes // 2))
    return "\n\n".join([
        f"/* One layer of the benchmark through CMSIS-NN's {layer.function}. */",
        "#include <stdint.h>\n#include \"arm_nnfunctions.h\"",
        *tables,
        f"static int16_t cmsis_scratch[{scratch_elements}];",
        f"static const {layer.params_type} layer_params = {{\n    {layer.params}}};",
        dims,
        f"int32_t {BUFFER_SIZE_FUNCTION}(void)\n{{\n    return {layer.buffer_size};\n}}",
        f"int32_t {FUNCTION}(const int8_t *in, int8_t *out)\n{{\n"
        "    const cmsis_nn_context context = {cmsis_scratch, sizeof cmsis_scratch};\n"
        "    const cmsis_nn_per_channel_quant_params quant = {(int32_t *)cmsis_multiplier,\n"
        "                                                     (int32_t *)cmsis_shift};\n"
        f"    return {layer.function}(&context, &layer_params, &quant, &input_dims, in,\n"
        "        &filter_dims, cmsis_filter, &bias_dims, cmsis_bias, &output_dims, out);\n}",
    ]) + "\n"


def build(library, layer, core, folder):
    """The ELF of the harness of the LibraryLayer `layer` and CMSIS-NN (from the folder
    `library`) for `core`."""
    return mcu_toolchain.compile_elf(
        {"cmsis_harness.c": harness_source(layer)}, board_for_core(core).machine, folder,
        [FUNCTION, BUFFER_SIZE_FUNCTION], library_sources=library_sources(library),
        include_dirs=[library / "Include"], cflags=CFLAGS, libraries=LIBRARIES)


def measure(library, layer, core, x, reference, folder):
    """{"instructions", "cycles_estimate", "cycles_by_class"} of one call of the
    LibraryLayer `layer` on the uint8 input `x` on `core`, whose output + 128 must equal
    `reference` (quiltc's numpy integer output, uint8)."""
    elf = build(library, layer, core, folder)
    needed = call_function(elf, BUFFER_SIZE_FUNCTION, [], core=core).result
    if needed > layer.scratch_bytes:
        raise QuiltError(f"{layer.function} in {library} asks for {needed} bytes of scratch, "
                         f"the harness reserves {layer.scratch_bytes}; raise the layer's "
                         "scratch_bytes")
    shifted = (x.astype(np.int16) - ZERO_POINT_SHIFT).astype(np.int8)
    output = np.zeros(layer.output_size, np.int8)
    call, estimate = call_with_cycles(elf, FUNCTION, [shifted, output], core)
    if call.result != 0:
        raise QuiltError(f"{layer.function} returned status {call.result} on the {core}; "
                         "check the layer's dims and the scratch buffer")
    unsigned = call.arrays[1].astype(np.int16) + ZERO_POINT_SHIFT
    if not np.array_equal(unsigned, np.asarray(reference).reshape(-1)):
        raise QuiltError(f"{layer.function}'s output on the {core} differs from quiltc's "
                         "numpy reference: the harness passes the layer's tables or offsets "
                         "differently from how the library reads them")
    return {"instructions": call.instructions, "cycles_estimate": estimate.cycles,
            "cycles_by_class": estimate.by_class}
