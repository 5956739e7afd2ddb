"""Whole networks and single layers as microcontroller C.

`model_sources(model, act_bits)` turns a quantized network (a `QuantModel`, or a pooled
model from `weightpool.compress`) into the files of its C implementation:

    model.h     QUILTC_INPUT_SIZE, QUILTC_OUTPUT_SIZE and
                int quiltc_model_run(const int8_t *in, int8_t *out)   (returns 0)
    model.c     one static function per layer (kernels from recipes/mcu.py and
                mcu_bitserial.py, lowered and rendered by codegen/mcu.py), two
                ping-pong activation buffers sized to
                the largest layer output, and quiltc_model_run calling the layers
    weights.c   the const weight, pool-index, lookup and requantization tables (flash)

`conv_layer_source(kind, shape, ...)`, `depthwise_layer_source(shape, ...)` and
`dense_layer_source(cin, cout, ...)` give one layer as a callable C function with its
tables and its numpy reference, for instruction counts; `host_model` and `host_layer`
build a model or a layer with the host compiler for tests.
"""

import dataclasses
import re
from dataclasses import dataclass

import numpy as np

from ..driver.build import load_library, render
from ..ir.array_checks import is_integer_in
from ..ir.errors import QuiltError
from ..nn import quantize as q
from ..nn.bitserial import bitserial_conv2d_int, build_lut, check_act_bits
from ..nn.qmodel import QuantModel
from ..recipes import mcu as kernels
from ..recipes import mcu_bitserial

RUN_SIGNATURE = "int quiltc_model_run(const int8_t *in, int8_t *out);"
CONV_KINDS = ("int8_plain", "int8_smlad", "bitserial")
_ITEMS_PER_LINE = 16
_PING_PONG = ("quiltc_ping", "quiltc_pong")
_C_TYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t"}


def layer_kernel(layer, int8_conv="smlad"):
    """(schedule, {placeholder name: numpy table}) of one `QuantLayer`, or None for a
    flatten (NHWC storage is already flat). `int8_conv` picks the int8 conv and dense
    kernels ("plain" or "smlad")."""
    out_range = (int(layer.out_min), int(layer.out_max))
    in_dtype = np.dtype(layer.in_dtype).name
    requant = {"bias": layer.bias, "multiplier": layer.multiplier, "shift": layer.shift}
    if layer.kind in ("conv2d", "bitserial_conv2d", "depthwise_conv2d"):
        h, w, cin = layer.in_shape
        cout = layer.out_shape[-1]
        shape = kernels.ConvShape(h, w, cin, cout, layer.kernel, layer.kernel, layer.stride,
                                  layer.padding)
    if layer.kind == "conv2d":
        sch = kernels.conv_int8(shape, in_dtype, out_range, int8_conv)
        return sch, {"weight": _int8_conv_weight(layer.weight, int8_conv), **requant}
    if layer.kind == "bitserial_conv2d":
        lut = layer.lut if layer.lut is not None else build_lut(layer.pool)
        # The kernel's index placeholder promises values below the pool size (that is
        # what spares it a mask per table read): hold the tables to that promise here.
        if layer.indices.size and int(layer.indices.max()) >= lut.shape[1]:
            raise QuiltError(f"layer {layer.name} has pool index {int(layer.indices.max())}, "
                             f"but its table has only {lut.shape[1]} entries; compress the "
                             "model again with qc.weightpool.compress")
        sch = mcu_bitserial.bitserial_conv(shape, layer.act_bits, lut.shape[1], out_range,
                                     lut_dtype=np.dtype(lut.dtype).name)
        return sch, {"index": layer.indices, "lut": lut, **requant}
    if layer.kind == "depthwise_conv2d":
        sch = kernels.depthwise_int8(shape, in_dtype, out_range)
        return sch, {"weight": layer.weight.transpose(2, 0, 1), **requant}
    if layer.kind == "dense":
        cin, cout = layer.weight.shape
        sch = kernels.dense_int8(cin, cout, in_dtype, out_range, variant=int8_conv)
        return sch, {"weight": _int8_dense_weight(layer.weight, int8_conv), **requant}
    if layer.kind in ("max_pool", "avg_pool"):
        pool = kernels.max_pool if layer.kind == "max_pool" else kernels.avg_pool
        return pool(*layer.in_shape, layer.kernel, in_dtype), {}
    if layer.kind == "flatten":
        return None
    raise QuiltError(f"layer kind {layer.kind!r} of {layer.name} has no microcontroller "
                     "kernel; use conv2d, depthwise_conv2d, dense, pools and flatten")


def _int8_dense_weight(weight, variant):
    """(cin, cout) int8 dense weights in the layout the dense variant reads."""
    return weight.T if variant == "plain" else kernels.pack_pairs(weight)


def _int8_conv_weight(weight, variant):
    """HWIO int8 weights in the layout the conv variant reads."""
    return weight.transpose(3, 0, 1, 2) if variant == "plain" else kernels.pack_pairs(weight)


def c_array(name, array, const=True):
    """A file-scope C array definition holding `array` (flattened, row-major)."""
    array = np.ascontiguousarray(array)
    values = [str(int(v)) for v in array.reshape(-1)]
    lines = [", ".join(values[i:i + _ITEMS_PER_LINE]) for i in range(0, len(values),
                                                                      _ITEMS_PER_LINE)]
    body = ",\n    ".join(lines)
    qualifier = "const " if const else ""
    return f"{qualifier}{_c_type(array)} {name}[{max(array.size, 1)}] = {{\n    {body}\n}};"


def _quant_model(model, act_bits):
    """The QuantModel to emit: `model` itself, or a pooled model's at `act_bits`."""
    if isinstance(model, QuantModel):
        if model.act_bits != act_bits:
            raise QuiltError(f"this QuantModel was quantized for act_bits={model.act_bits}, "
                             f"not {act_bits}; quantize it again with act_bits={act_bits}")
        return model
    if hasattr(model, "quantized"):
        return model.quantized(act_bits)
    raise QuiltError(f"model_sources takes a QuantModel or a pooled model (weightpool."
                     f"compress), got {type(model).__name__}; quantize the network first")


def _table_name(tables, name, array):
    """The name a layer passes for `array`: an identical table already in `tables` (the
    network-wide pool's LUT, which every pooled layer reads), else `name`, added."""
    for existing, stored in tables:
        if stored.dtype == array.dtype and stored.shape == array.shape and (
                np.array_equal(stored, array)):
            return existing
    tables.append((name, array))
    return name


def model_sources(model, act_bits, int8_conv="smlad"):
    """{file name: C text} of `model` (a QuantModel or a pooled model) at `act_bits`:
    model.h, model.c and weights.c, as the module docstring describes."""
    quant = _quant_model(model, act_bits)
    layers = [(i, layer) for i, layer in enumerate(quant.layers) if layer.kind != "flatten"]
    if not layers:
        raise QuiltError("the model has no layers to emit")
    input_size = int(np.prod(quant.layers[0].in_shape))
    output_size = int(np.prod(quant.layers[-1].out_shape))
    kernels_out, tables, calls = [], [], []
    # Every activation but the last (written to `out`) lives in one of two buffers.
    largest = max([int(np.prod(layer.out_shape)) for _, layer in layers[:-1]] + [1])
    for step, (position, layer) in enumerate(layers):
        name = f"quiltc_layer{position}"
        sch, arrays = layer_kernel(layer, int8_conv)
        kernel = dataclasses.replace(sch.kernel, name=name)
        kernels_out.append((kernel, f"{layer.name}\n{sch.trace}"))
        source = "in" if step == 0 else _PING_PONG[(step - 1) % 2]
        target = "out" if step == len(layers) - 1 else _PING_PONG[step % 2]
        arguments = []
        for buffer in sch.kernel.params:
            if buffer.name == "x":
                arguments.append(f"(const {buffer.dtype.c} *){source}")
            elif buffer.name in sch.kernel.outputs:
                arguments.append(f"({buffer.dtype.c} *){target}")
            else:
                array = np.asarray(arrays[buffer.name]).astype(buffer.dtype.numpy)
                arguments.append(_table_name(tables, f"{name}_{buffer.name}", array))
        calls.append(f"    {name}({', '.join(arguments)});")
    header = _header(input_size, output_size)
    weights = "\n\n".join(["/* quiltc model tables: const, so they stay in flash */",
                           "#include <stdint.h>"] + [c_array(n, a) for n, a in tables]) + "\n"
    externs = "\n".join(f"extern const {_c_type(a)} {n}[{max(a.size, 1)}];" for n, a in tables)
    unit = render(kernels_out, "mcu", f"quiltc model at act_bits={act_bits} (target mcu)",
                  static=True).source
    run = "\n".join([
        "/* Activations ping-pong between two buffers sized to the largest layer output. */",
        f"static uint8_t quiltc_ping[{largest}];",
        f"static uint8_t quiltc_pong[{largest}];",
        "",
        "int quiltc_model_run(const int8_t *in, int8_t *out)",
        "{", *calls, "    return 0;", "}"])
    model_c = "\n\n".join(['#include "model.h"', externs, unit.rstrip(), run]) + "\n"
    return {"model.h": header, "model.c": model_c, "weights.c": weights}


def _c_type(array):
    return _C_TYPES[array.dtype.name]


def _header(input_size, output_size):
    return f"""#ifndef QUILTC_MODEL_H
#define QUILTC_MODEL_H

#include <stdint.h>

/* int8 values of one input (NHWC) and int8 scores of one output (one per class). */
#define QUILTC_INPUT_SIZE {input_size}
#define QUILTC_OUTPUT_SIZE {output_size}

/* Runs the network on one input quantized with the model's input scale; writes the
   scores to `out` and returns 0. Static buffers only: not reentrant. */
int quiltc_model_run(const int8_t *in, int8_t *out);

#endif
"""


def single_unit(sources):
    """One C translation unit of `sources` ({name: text}): the .c files in order with
    each `#include "name"` of a file in `sources` replaced by its text (for builds that
    compile one file, as the host build cache does)."""
    def inline(text):
        return re.sub(r'^#include "([^"]+)"$', lambda m: sources.get(m.group(1), m.group(0)),
                      text, flags=re.MULTILINE)

    return "\n".join(inline(sources[name]) for name in sorted(sources) if name.endswith(".c"))


def host_model(sources):
    """quiltc_model_run of `sources` built with the host compiler: a function taking an
    int8 input batch (n, ...) and returning the int8 scores (n, QUILTC_OUTPUT_SIZE)."""
    library = load_library(single_unit(sources), RUN_SIGNATURE, "mcu")
    output_size = int(re.search(r"QUILTC_OUTPUT_SIZE (\d+)", sources["model.h"]).group(1))
    ffi = library.ffi

    def run(batch):
        batch = np.ascontiguousarray(batch, np.int8).reshape(len(batch), -1)
        scores = np.zeros((len(batch), output_size), np.int8)
        for row, out in zip(batch, scores):
            status = library.handle.quiltc_model_run(ffi.cast("int8_t *", row.ctypes.data),
                                                     ffi.cast("int8_t *", out.ctypes.data))
            if status != 0:
                raise QuiltError(f"quiltc_model_run returned {status}")
        return scores

    return run


@dataclass(frozen=True)
class LayerSource:
    """One layer as C: `source` defines `void {function}(const uint8_t *in, uint8_t
    *out)` with its tables (const, in flash); `in` holds input_size activations ((h, w,
    cin) for the convs, (cin,) for a dense layer), `out` receives output_size ((oh, ow,
    cout), or (cout,)). `reference(x)` computes the same output in numpy (the integer
    oracle). `parameters` holds the layer's numpy tables as drawn, in the layout of the
    numpy reference, for building the same layer elsewhere: weight, then bias,
    multiplier and shift; weight is (kh, kw, cin, cout) for the int8 convs, (kh, kw, c)
    for "int8_depthwise" and (cin, cout) for "int8_dense"; "bitserial" holds index and
    lut in its place."""

    kind: str
    source: str
    function: str
    input_size: int
    output_size: int
    reference: object
    parameters: dict


def conv_layer_source(kind, shape, act_bits=8, pool_size=64, seed=0,
                      function="quiltc_conv_layer", schedule=None):
    """A conv layer of `shape` (mcu_kernels.ConvShape) with reproducible random weights,
    as a callable C function for instruction counts: `kind` "int8_plain" (one MAC a
    step, for cores without DSP instructions), "int8_smlad" (im2col + dual MACs) or
    "bitserial" (a pool of `pool_size` vectors, activations of `act_bits` bits; the int8
    kinds take 8-bit ones). `schedule` holds keyword arguments for the kernel's recipe
    (recipes.mcu.conv_int8's block and unrolled_rows, mcu_bitserial.bitserial_conv's
    groups_per_step). Returns a LayerSource."""
    if kind not in CONV_KINDS:
        raise QuiltError(f"conv kind {kind!r} is unknown; use one of {', '.join(CONV_KINDS)}")
    _check_conv_shape(shape)
    if not is_integer_in(pool_size, 1, 256):
        raise QuiltError(f"pool_size={pool_size!r} is not supported: indices are one byte, so "
                         "pass a pool_size in 1..256")
    bits = check_act_bits(act_bits) if kind == "bitserial" else 8
    rng = np.random.default_rng(seed)
    out_range = (0, (1 << bits) - 1)
    requant = _drawn_requantization(rng, shape.cout, shape.kh * shape.kw * shape.cin, bits)
    stride, padding = shape.stride, shape.padding
    if kind == "bitserial":
        vector = mcu_bitserial.VECTOR_LEN
        pool = rng.integers(-127, 128, (pool_size, vector)).astype(np.int8)
        indices = rng.integers(0, pool_size, (shape.kh, shape.kw, shape.cin // vector,
                                              shape.cout)).astype(np.uint8)
        lut = build_lut(pool)
        sch = mcu_bitserial.bitserial_conv(shape, bits, pool_size, out_range,
                                     lut_dtype=np.dtype(lut.dtype).name, **(schedule or {}))
        tables = parameters = {"index": indices, "lut": lut, **requant}

        def reference(x):
            return bitserial_conv2d_int(np.asarray(x)[None], indices, lut, **requant,
                                        act_bits=bits, stride=stride, padding=padding,
                                        out_min=out_range[0], out_max=out_range[1])[0]
    else:
        variant = kind.split("_")[1]
        weight = rng.integers(-127, 128, (shape.kh, shape.kw, shape.cin, shape.cout))
        weight = weight.astype(np.int8)
        sch = kernels.conv_int8(shape, "uint8", out_range, variant, **(schedule or {}))
        tables = {"weight": _int8_conv_weight(weight, variant), **requant}
        parameters = {"weight": weight, **requant}

        def reference(x):
            return q.conv2d_int(np.asarray(x)[None], weight, **requant, stride=stride,
                                padding=padding, out_min=out_range[0],
                                out_max=out_range[1])[0]
    # A bit-serial window written out reads the pool indices, and its requantization the
    # per-channel tables, at constant offsets: they go into the code as immediates.
    in_code = (("index", "bias", "multiplier", "shift")
               if (schedule or {}).get("window_unrolled") else ())
    return _layer_source(kind, f"{kind} conv", bits, sch, tables, function,
                         (shape.h * shape.w * shape.cin, shape.oh * shape.ow * shape.cout),
                         reference, parameters, in_code)


def depthwise_layer_source(shape, seed=0, function="quiltc_depthwise_layer", schedule=None):
    """A depthwise conv layer of `shape` (a ConvShape with cout == cin: channel
    multiplier 1) with reproducible random int8 weights, 8-bit activations in and out,
    as a callable C function (kind "int8_depthwise"); `schedule` holds keyword
    arguments for recipes.mcu.depthwise_int8 (its block). Returns a LayerSource."""
    _check_conv_shape(shape)
    if shape.cout != shape.cin:
        raise QuiltError(f"a depthwise layer keeps its channels, but shape has cin="
                         f"{shape.cin} and cout={shape.cout}; pass cout={shape.cin}")
    rng = np.random.default_rng(seed)
    requant = _drawn_requantization(rng, shape.cin, shape.kh * shape.kw, 8)
    weight = rng.integers(-127, 128, (shape.kh, shape.kw, shape.cin)).astype(np.int8)
    sch = kernels.depthwise_int8(shape, "uint8", (0, 255), **(schedule or {}))
    tables = {"weight": weight.transpose(2, 0, 1), **requant}

    def reference(x):
        return q.depthwise_conv2d_int(np.asarray(x)[None], weight, **requant,
                                      stride=shape.stride, padding=shape.padding,
                                      out_min=0, out_max=255)[0]

    return _layer_source("int8_depthwise", "int8 depthwise conv", 8, sch, tables, function,
                         (shape.h * shape.w * shape.cin, shape.oh * shape.ow * shape.cin),
                         reference, {"weight": weight, **requant})


def dense_layer_source(cin, cout, seed=0, function="quiltc_dense_layer", schedule=None):
    """A fully connected layer `cin` -> `cout` with reproducible random int8 weights,
    8-bit activations in and out, as a callable C function (kind "int8_dense");
    `schedule` holds keyword arguments for recipes.mcu.dense_int8 (its block and
    variant). Returns a LayerSource."""
    if not (is_integer_in(cin, 1, 1 << 16) and is_integer_in(cout, 1, 1 << 16)):
        raise QuiltError(f"a dense layer {cin!r} -> {cout!r} needs whole numbers of features "
                         "in 1..65536 on each side")
    rng = np.random.default_rng(seed)
    requant = _drawn_requantization(rng, cout, cin, 8)
    weight = rng.integers(-127, 128, (cin, cout)).astype(np.int8)
    sch = kernels.dense_int8(cin, cout, "uint8", (0, 255), **(schedule or {}))

    def reference(x):
        return q.dense_int(np.asarray(x)[None], weight, **requant, out_min=0, out_max=255)[0]

    table = _int8_dense_weight(weight, (schedule or {}).get("variant", "plain"))
    return _layer_source("int8_dense", "int8 dense", 8, sch, {"weight": table, **requant},
                         function, (cin, cout), reference, {"weight": weight, **requant})


def _check_conv_shape(shape):
    if not isinstance(shape, kernels.ConvShape):
        raise QuiltError(f"shape is a {type(shape).__name__}; pass a quiltc.recipes.mcu."
                         "ConvShape(h, w, cin, cout, kh, kw, stride, padding)")


def _drawn_requantization(rng, channels, depth, bits):
    """{"bias", "multiplier", "shift"} drawn from `rng` for a layer of `channels`
    outputs, each summing `depth` products of `bits`-bit activations and int8 weights."""
    out_max = (1 << bits) - 1
    bias = rng.integers(-depth * 64, depth * 64, channels).astype(np.int32)
    # Scale a typical accumulator (depth products of about half the range) onto the output.
    scale = out_max / (depth * out_max * 16.0)
    multiplier, shift = q.quantize_multiplier(np.full(channels, scale))
    return {"bias": bias, "multiplier": multiplier, "shift": shift}


def _layer_source(kind, label, bits, sch, tables, function, sizes, reference, parameters,
                  in_code=()):
    """The LayerSource of the schedule `sch`: its kernel rendered static beside its
    `tables` ({placeholder name: numpy array}, const) and the entry `function` passing
    them; `label` names the layer in the C comments, `sizes` = (input, output) counts.
    The tables named in `in_code` are also folded into the code wherever read at a
    constant offset (see codegen.mcu)."""
    kernel = dataclasses.replace(sch.kernel, name=f"{function}_kernel")
    constants = {name: tables[name] for name in in_code}
    arguments, definitions = [], []
    for buffer in kernel.params:
        if buffer.name == "x":
            arguments.append("in")
        elif buffer.name in kernel.outputs:
            arguments.append("out")
        else:
            table = f"{function}_{buffer.name}"
            definitions.append("static " + c_array(table, tables[buffer.name].astype(
                buffer.dtype.numpy)))
            arguments.append(table)
    unit = render([(kernel, f"{label}, act_bits={bits}\n{sch.trace}")], "mcu",
                  f"quiltc {label} layer (target mcu)", static=True,
                  constants=constants).source
    entry = (f"void {function}(const uint8_t *in, uint8_t *out)\n{{\n"
             f"    {kernel.name}({', '.join(arguments)});\n}}\n")
    source = "\n\n".join([unit.rstrip(), *definitions, entry])
    return LayerSource(kind, source, function, *sizes, reference, parameters)


def host_layer(layer):
    """The LayerSource's function built with the host compiler: uint8 (h, w, cin) in,
    uint8 (oh * ow * cout,) out."""
    signature = f"void {layer.function}(const uint8_t *in, uint8_t *out);"
    library = load_library(layer.source, signature, "mcu")
    ffi, function = library.ffi, getattr(library.handle, layer.function)

    def run(x):
        x = np.ascontiguousarray(x, np.uint8).reshape(-1)
        if x.size != layer.input_size:
            raise QuiltError(f"{layer.function} takes {layer.input_size} activations, got {x.size}")
        out = np.zeros(layer.output_size, np.uint8)
        function(ffi.cast("uint8_t *", x.ctypes.data), ffi.cast("uint8_t *", out.ctypes.data))
        return out

    return run
