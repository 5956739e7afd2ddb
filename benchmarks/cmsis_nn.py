"""Arm's CMSIS-NN as the Cortex-M benchmark's int8 baseline: builds its
`arm_convolve_wrapper_s8` beside a small C harness holding the benchmark's conv layer,
calls the harness once under unicorn, checks the output bit-exact against quiltc's numpy
integer reference, and reports the instructions and the estimated cycles of that call.

The library comes from the folder CMSIS_NN_DIR names, else ../shared/third_party/cmsis-nn
beside the repository; without either the benchmark says so and leaves the column out.
It is measured, never copied: its sources compile from where they are, as their
PROVENANCE.md says: -O3, never -ffreestanding (its memcpy-based word reads would turn into
calls), newlib's memcpy and memset linked.

The layer is quiltc.mcu.model.conv_layer_source's int8 layer: the same weights, bias and
per-channel multiplier and shift (its LayerSource.parameters). quiltc's int8 layers read
and write unsigned activations 0..255 with zero point 0; CMSIS-NN's are int8. The
harness therefore takes x - 128 with input_offset 128 (a padded tap then adds
(-128 + 128) * w = 0, like quiltc's zero padding) and writes with output_offset -128
and the range [-128, 127]: its output + 128 is quiltc's.
"""

import os
import pathlib

import numpy as np

from quiltc.ir.errors import QuiltError
from quiltc.mcu.model import c_array, conv_layer_source
from quiltc.runtime_c import mcu_toolchain
from quiltc.runtime_c.mcu_boards import board_for_core
from quiltc.runtime_c.mcu_cycles import call_with_cycles
from quiltc.runtime_c.unicorn_run import call_function

ENVIRONMENT_VARIABLE = "CMSIS_NN_DIR"
SHARED_COPY = pathlib.Path(__file__).resolve().parents[2] / "shared/third_party/cmsis-nn"
# The folders holding the s8 convolutions and the support functions they call; the
# float variants need headers of their own and are never called here.
SOURCE_FOLDERS = ("Source/ConvolutionFunctions", "Source/NNSupportFunctions")
FLOAT_SUFFIXES = ("_f16.c", "_f32.c", "_flt.c")
CFLAGS = ("-O3", "-ffunction-sections", "-fdata-sections")
LIBRARIES = ("-lc", "-lgcc")
FUNCTION = "cmsis_conv_layer"
BUFFER_SIZE_FUNCTION = "cmsis_conv_buffer_bytes"
ZERO_POINT_SHIFT = 128


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
    """The C files of CMSIS-NN's s8 convolutions and support functions in `folder`."""
    sources = sorted(path for name in SOURCE_FOLDERS for path in (folder / name).glob("*.c")
                     if not path.name.endswith(FLOAT_SUFFIXES))
    if not sources:
        raise QuiltError(f"{folder} has no C files under {' or '.join(SOURCE_FOLDERS)}; "
                         f"point {ENVIRONMENT_VARIABLE} at a CMSIS-NN checkout")
    return sources


def scratch_bytes(shape):
    """The scratch buffer the harness reserves: two int16 im2col columns of the window,
    rounded up to whole words (arm_convolve_s8's need); checked against the library's own
    arm_convolve_wrapper_s8_get_buffer_size before the measured call."""
    depth = shape.kh * shape.kw * shape.cin
    return 2 * 2 * (-(-depth // 4) * 4)


def harness_source(shape, seed=0):
    """C defining `int32_t cmsis_conv_layer(const int8_t *in, int8_t *out)` (one
    arm_convolve_wrapper_s8 call on the layer, its tables const in flash) and
    `int32_t cmsis_conv_buffer_bytes(void)` (the scratch the library asks for)."""
    drawn = conv_layer_source("int8_plain", shape, seed=seed).parameters
    weight, bias, multiplier, shift = (drawn[name] for name in
                                       ("weight", "bias", "multiplier", "shift"))
    tables = [c_array("cmsis_filter", weight.transpose(3, 0, 1, 2)),  # OHWI
              c_array("cmsis_bias", bias), c_array("cmsis_multiplier", multiplier),
              c_array("cmsis_shift", shift)]
    return "\n\n".join([
        "/* The benchmark's conv layer through CMSIS-NN's arm_convolve_wrapper_s8. */",
        "#include <stdint.h>\n#include \"arm_nnfunctions.h\"",
        *("static " + table for table in tables),
        f"static int16_t cmsis_scratch[{scratch_bytes(shape) // 2}];",
        "static const cmsis_nn_conv_params conv_params = {\n"
        f"    .input_offset = {ZERO_POINT_SHIFT}, .output_offset = {-ZERO_POINT_SHIFT},\n"
        f"    .stride = {{{shape.stride}, {shape.stride}}},\n"
        f"    .padding = {{{shape.padding}, {shape.padding}}},\n"
        "    .dilation = {1, 1}, .activation = {-128, 127}};",
        f"static const cmsis_nn_dims input_dims = {{1, {shape.h}, {shape.w}, {shape.cin}}};\n"
        f"static const cmsis_nn_dims filter_dims = {{{shape.cout}, {shape.kh}, {shape.kw}, "
        f"{shape.cin}}};\n"
        f"static const cmsis_nn_dims bias_dims = {{1, 1, 1, {shape.cout}}};\n"
        f"static const cmsis_nn_dims output_dims = {{1, {shape.oh}, {shape.ow}, {shape.cout}}};",
        f"int32_t {BUFFER_SIZE_FUNCTION}(void)\n{{\n"
        "    return arm_convolve_wrapper_s8_get_buffer_size(&conv_params, &input_dims,\n"
        "                                                   &filter_dims, &output_dims);\n}",
        f"int32_t {FUNCTION}(const int8_t *in, int8_t *out)\n{{\n"
        "    const cmsis_nn_context context = {cmsis_scratch, sizeof cmsis_scratch};\n"
        "    const cmsis_nn_per_channel_quant_params quant = {(int32_t *)cmsis_multiplier,\n"
        "                                                     (int32_t *)cmsis_shift};\n"
        "    return arm_convolve_wrapper_s8(&context, &conv_params, &quant, &input_dims, in,\n"
        "                                   &filter_dims, cmsis_filter, &bias_dims, cmsis_bias,\n"
        "                                   &output_dims, out);\n}",
    ]) + "\n"


def build(library, shape, core, folder):
    """The ELF of the harness and CMSIS-NN (from the folder `library`) for `core`."""
    return mcu_toolchain.compile_elf(
        {"cmsis_harness.c": harness_source(shape)}, board_for_core(core).machine, folder,
        [FUNCTION, BUFFER_SIZE_FUNCTION], library_sources=library_sources(library),
        include_dirs=[library / "Include"], cflags=CFLAGS, libraries=LIBRARIES)


def measure(library, shape, core, x, reference, folder):
    """{"instructions", "cycles_estimate", "cycles_by_class"} of one call of CMSIS-NN's
    convolution of the uint8 input `x` (h, w, cin) on `core`, whose output + 128 must
    equal `reference` (quiltc's numpy integer output, uint8)."""
    elf = build(library, shape, core, folder)
    needed = call_function(elf, BUFFER_SIZE_FUNCTION, [], core=core).result
    if needed > scratch_bytes(shape):
        raise QuiltError(f"CMSIS-NN in {library} asks for {needed} bytes of scratch, the "
                         f"harness reserves {scratch_bytes(shape)}; raise scratch_bytes")
    shifted = (x.astype(np.int16) - ZERO_POINT_SHIFT).astype(np.int8)
    output = np.zeros(shape.oh * shape.ow * shape.cout, np.int8)
    call, estimate = call_with_cycles(elf, FUNCTION, [shifted, output], core)
    if call.result != 0:
        raise QuiltError(f"arm_convolve_wrapper_s8 returned status {call.result} on the "
                         f"{core}; check the layer's dims and the scratch buffer")
    unsigned = call.arrays[1].astype(np.int16) + ZERO_POINT_SHIFT
    if not np.array_equal(unsigned, np.asarray(reference).reshape(-1)):
        raise QuiltError(f"CMSIS-NN's output on the {core} differs from quiltc's numpy "
                         "reference: the harness passes the layer's tables or offsets "
                         "differently from how the library reads them")
    return {"instructions": call.instructions, "cycles_estimate": estimate.cycles,
            "cycles_by_class": estimate.by_class}
