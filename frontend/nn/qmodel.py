"""Integer-only networks: a trained `quiltc.nn.Sequential` quantized the way TensorFlow
Lite Micro and CMSIS-NN run it, and its bit-exact numpy execution (the oracle of the
generated C).

    qm = qc.qmodel.quantize(model, calib=x_train, act_bits=8)
    qm.predict(x_test)                        # float images in, class indices out
    qm.forward_int(qm.quantize_input(x))      # int8 logits

Each conv/dense is fused with the ReLU after it; arithmetic follows `quiltc.quantize`.
"""

from dataclasses import dataclass

import numpy as np

from ..ir.errors import QuiltError, ShapeError
from ..ir.interop import to_numpy
from . import layers as nn
from . import quantize as q
from .bitserial import VECTOR_LEN, bitserial_conv2d_int, build_lut, check_act_bits

INT8_RANGE = (-128, 127)


@dataclass(eq=False)
class QuantLayer:
    """One integer layer, everything a code generator needs to emit it.

    kind: "conv2d", "bitserial_conv2d" (a conv over a weight pool), "depthwise_conv2d",
        "dense", "max_pool", "avg_pool" or "flatten".
    name: the float layer it came from, with its position, e.g. "layer 2 Conv2d(16, ...)".
    in_shape, out_shape: per-example shapes, (h, w, c) or (features,).
    in_dtype, out_dtype: numpy integer dtypes of input and output activations (uint8
        after a ReLU, int8 otherwise).
    weight: int8, conv (kh, kw, cin, cout) HWIO, depthwise (kh, kw, c), dense (cin, cout);
        for "bitserial_conv2d" the expanded pool[indices] (what the LUT arithmetic equals).
    bias: int32 (cout,). multiplier: int32 (cout,) Q31. shift: int32 (cout,); together
        the per-channel factor multiplier * 2**(shift - 31) of `quantize.requantize`.
    kernel: conv kernel size, or the pool window (= its stride); 0 for dense/flatten.
    stride, padding: convs (padding zeros on each side); 0 elsewhere.
    out_min, out_max: output clamp, [0, 2**act_bits - 1] after a ReLU, else [-128, 127].
    relu: whether a ReLU is fused in (a capped one, ReLU(ceiling=c), caps out_scale *
        out_max at c: the calibrated range never passes the cap).
    in_scale, out_scale: real value of one input / output unit.
    weight_scale: float64 (cout,), real value of one weight unit per output channel.
    act_bits: bits of the unsigned input activations ("bitserial_conv2d"; else 8).
    indices: uint8 (kh, kw, cin/8, cout) pool indices ("bitserial_conv2d" only).
    pool: int8 (pool_size, 8) the network's weight pool ("bitserial_conv2d" only).
    lut: (256, pool_size) int8/int16, `bitserial.build_lut(pool)` ("bitserial_conv2d").
    """

    kind: str
    name: str
    in_shape: tuple
    out_shape: tuple
    in_dtype: type
    out_dtype: type
    in_scale: float
    out_scale: float
    weight: np.ndarray = None
    bias: np.ndarray = None
    multiplier: np.ndarray = None
    shift: np.ndarray = None
    weight_scale: np.ndarray = None
    kernel: int = 0
    stride: int = 0
    padding: int = 0
    out_min: int = -128
    out_max: int = 127
    relu: bool = False
    act_bits: int = 8
    indices: np.ndarray = None
    pool: np.ndarray = None
    lut: np.ndarray = None

    def run(self, x, bitserial=True):
        """This layer on a batch of integer activations (batch first). `bitserial=False`
        runs a pooled conv as the plain integer conv of its expanded weights."""
        requant = (self.bias, self.multiplier, self.shift)
        if self.kind == "bitserial_conv2d" and bitserial:
            return bitserial_conv2d_int(x, self.indices, self.lut, *requant, self.act_bits,
                                        self.stride, self.padding, self.out_min, self.out_max)
        if self.kind in ("conv2d", "bitserial_conv2d"):
            return q.conv2d_int(x, self.weight, *requant, self.stride, self.padding,
                                self.out_min, self.out_max)
        if self.kind == "depthwise_conv2d":
            return q.depthwise_conv2d_int(x, self.weight, *requant, self.stride, self.padding,
                                          self.out_min, self.out_max)
        if self.kind == "dense":
            return q.dense_int(x, self.weight, *requant, self.out_min, self.out_max)
        if self.kind == "max_pool":
            return q.max_pool_int(x, self.kernel)
        if self.kind == "avg_pool":
            return q.avg_pool_int(x, self.kernel)
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))


class QuantModel:
    """An integer-only network. `layers` lists its `QuantLayer`s in order; `input_scale`
    is the real value of one unit of the int8 input; `act_bits` the width of every
    activation after a ReLU."""

    def __init__(self, layers, input_scale, act_bits):
        self.layers = layers
        self.input_scale = input_scale
        self.act_bits = act_bits

    def __repr__(self):
        kinds = ", ".join(layer.kind for layer in self.layers)
        return f"QuantModel(act_bits={self.act_bits}, [{kinds}])"

    def quantize_input(self, x):
        """Float NHWC images as the int8 input: round(x / input_scale), clamped."""
        x = to_numpy("x", x)
        if x.dtype.kind != "f" or x.ndim != 4:
            raise ShapeError(f"quantize_input takes float NHWC images (rank 4), got {x.dtype} "
                             f"of shape {x.shape}")
        scaled = np.rint(x.astype(np.float64) / self.input_scale)
        return np.clip(scaled, *INT8_RANGE).astype(np.int8)

    def forward_int(self, x_int8, bitserial=True):
        """The int8 logits for an int8 input batch, integer arithmetic only. With
        `bitserial=False` pooled convs run as plain integer convs (same result)."""
        out = np.asarray(x_int8)
        if out.dtype != np.int8:
            raise QuiltError(f"forward_int takes the int8 input of quantize_input(), got "
                             f"{out.dtype}; quantize float images with model.quantize_input(x)")
        for layer in self.layers:
            out = layer.run(out, bitserial)
        return out

    def predict(self, x):
        """Class indices for float NHWC images: the first largest int8 logit."""
        return self.forward_int(self.quantize_input(x)).argmax(axis=1)

    def accuracy(self, x, y):
        """Fraction of float images `x` whose predicted class equals `y`."""
        predicted, y = self.predict(x), to_numpy("y", y)
        if y.shape != predicted.shape:
            raise ShapeError(f"y must hold one label per image of x ({len(predicted)}), got "
                             f"shape {y.shape}")
        return float(np.mean(predicted == y))

    def storage_bytes(self):
        """Bytes of the parameters as stored: int8 weights (pooled convs: one index byte
        per vector of 8, plus the shared pool once) and int32 biases. Requantization
        parameters and lookup tables are not counted."""
        total = 0
        pools = {}
        for layer in self.layers:
            if layer.kind == "bitserial_conv2d":
                total += layer.indices.size
                pools[id(layer.pool)] = layer.pool.size
            elif layer.weight is not None:
                total += layer.weight.size
            if layer.bias is not None:
                total += 4 * layer.bias.size
        return total + sum(pools.values())


CLIP_FRACTIONS = np.linspace(0.2, 1.0, 33)
CLIP_SAMPLES = 100_000


def _activation_peak(values, relu, levels):
    """The calibrated range of a tensor, 1 when it is all zero (a dead layer keeps a
    finite scale). Signed tensors: their largest magnitude. Unsigned ones (after a
    ReLU): the clip bound, among fractions of the largest value, whose `levels`-step
    quantization of the positive values has the least squared error; at few bits
    clipping rare large values buys resolution for the common ones."""
    peak = float(np.max(values)) if relu else float(np.max(np.abs(values)))
    if peak <= 0:
        return 1.0
    if not relu:
        return peak
    positive = values[values > 0].astype(np.float64)
    positive = positive[::positive.size // CLIP_SAMPLES + 1]
    bounds = peak * CLIP_FRACTIONS
    steps = bounds / levels
    levels_used = np.clip(np.rint(positive[None, :] / steps[:, None]), 0, levels)
    errors = ((levels_used * steps[:, None] - positive[None, :]) ** 2).mean(axis=1)
    return float(bounds[errors.argmin()])


def _fused_groups(model):
    """(position, layer, relu) for every layer of `model`, a ReLU folded into the
    conv/dense before it: `relu` is that ReLU layer, or None."""
    groups = []
    for position, layer in enumerate(model.layers):
        if isinstance(layer, nn.ReLU):
            previous = groups[-1][1] if groups else None
            fusable = isinstance(previous, (nn.Conv2d, nn.DepthwiseConv2d, nn.Dense))
            if not fusable or groups[-1][2] is not None:
                raise QuiltError(f"layer {position} {layer!r} follows {previous!r}: quantized "
                                 "models fuse each ReLU into the conv or dense layer before it; "
                                 "put the ReLU directly after a Conv2d, DepthwiseConv2d or Dense")
            groups[-1] = (groups[-1][0], previous, layer)
        else:
            groups.append((position, layer, None))
    return groups


def expand_pooled_weight(indices, pool):
    """The int8 HWIO weight (kh, kw, cin, cout) whose input channels g*8+j of output
    channel c are pool[indices[.., g, c], j]."""
    kh, kw, groups, cout = indices.shape
    return pool[indices].transpose(0, 1, 2, 4, 3).reshape(kh, kw, groups * VECTOR_LEN, cout)


def quantize(model, calib, act_bits=8, pooled=None):
    """Quantize the float `model` (a `quiltc.nn.Sequential`) to a `QuantModel`.

    Weights become int8 per output channel, the input int8 per tensor, the output of
    every conv/dense with a ReLU unsigned with `act_bits` bits, the others int8; all
    activation scales are calibrated on what the float model produces on `calib` (NHWC
    float images): the largest magnitude for int8 tensors, the least-error clip bound
    for unsigned ones. `pooled` maps layer positions to (indices, pool, weight_scale):
    those convs run bit-serially over the int8 pool with the given per-channel scales
    (`quiltc.weightpool` builds it)."""
    act_bits = check_act_bits(act_bits)
    pooled = pooled or {}
    levels = (1 << act_bits) - 1
    x = np.asarray(calib, np.float32)
    if x.ndim != 4 or len(x) == 0:
        raise QuiltError(f"calib must be a non-empty NHWC batch of float images, got shape "
                         f"{x.shape}; pass some training images")
    in_scale = _activation_peak(x, False, q.INT8_MAX) / q.INT8_MAX
    input_scale, shape, dtype = in_scale, x.shape[1:], np.int8
    layers = []
    for position, layer, relu_layer in _fused_groups(model):
        relu = relu_layer is not None
        out = layer.forward(x)
        if relu:
            out = relu_layer.forward(out)
        name = f"layer {position} {layer!r}"
        common = {"name": name, "in_shape": tuple(shape), "out_shape": tuple(out.shape[1:]),
                  "in_dtype": dtype, "in_scale": in_scale}
        if isinstance(layer, (nn.Conv2d, nn.DepthwiseConv2d, nn.Dense)):
            top = levels if relu else q.INT8_MAX
            out_scale = _activation_peak(out, relu, top) / top
            out_min, out_max = (0, levels) if relu else INT8_RANGE
            fields = _parameter_fields(layer, position, pooled, in_scale, out_scale, dtype,
                                       act_bits)
            built = QuantLayer(**common, **fields, out_dtype=q.range_dtype(out_min, out_max),
                               out_scale=out_scale, out_min=out_min, out_max=out_max, relu=relu)
        else:
            kind = {nn.MaxPool2d: "max_pool", nn.AvgPool2d: "avg_pool", nn.Flatten: "flatten"}
            built = QuantLayer(kind=kind[type(layer)], **common, out_dtype=dtype,
                               out_scale=in_scale, kernel=getattr(layer, "k", 0),
                               out_min=layers[-1].out_min if layers else -128,
                               out_max=layers[-1].out_max if layers else 127)
        layers.append(built)
        x, shape, dtype, in_scale = out, out.shape[1:], built.out_dtype, built.out_scale
    return QuantModel(layers, input_scale, act_bits)


def _parameter_fields(layer, position, pooled, in_scale, out_scale, in_dtype, act_bits):
    """The QuantLayer fields of a conv or dense: integer weights, bias, requantization."""
    fields = {"kind": {nn.Conv2d: "conv2d", nn.DepthwiseConv2d: "depthwise_conv2d",
                       nn.Dense: "dense"}[type(layer)]}
    if position in pooled:
        if in_dtype != np.uint8:
            raise QuiltError(f"layer {position} {layer!r} is pooled but its input is signed; "
                             "a bit-serial conv needs a ReLU before it, or keep the layer int8")
        indices, pool, weight_scale = pooled[position]
        weight = expand_pooled_weight(indices, pool)
        fields.update(kind="bitserial_conv2d", indices=indices, pool=pool, lut=build_lut(pool),
                      act_bits=act_bits)
    else:
        weight_scale = q.weight_scales(layer.weight)
        weight = q.quantize_weight(layer.weight, weight_scale)
    weight_scale = np.asarray(weight_scale, np.float64)
    bias = np.rint(layer.bias.astype(np.float64) / (in_scale * weight_scale))
    # saturates only for a channel whose weights are all (nearly) zero
    bias = np.clip(bias, np.iinfo(np.int32).min, np.iinfo(np.int32).max)
    multiplier, shift = q.quantize_multiplier(in_scale * weight_scale / out_scale)
    fields.update(weight=weight, weight_scale=weight_scale, bias=bias.astype(np.int32),
                  multiplier=multiplier, shift=shift)
    if not isinstance(layer, nn.Dense):
        fields.update(kernel=layer.kernel, stride=layer.stride, padding=layer.padding)
    return fields
