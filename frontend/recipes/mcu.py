"""Integer layer kernels for microcontrollers, written in the tensor language and scheduled
for instruction count on Cortex-M.

Every kernel works on one NHWC image (no batch axis) with zero points of 0, as
frontend/quantize.py's references do, and ends like CMSIS-NN: int32 accumulator plus
bias, `requantize` per output channel, clamp to [out_min, out_max]. Weights are
placeholders in the layout each loop order reads contiguously; `mcu_model.py` lays the
numpy arrays out to match.

    conv_int8(shape, "uint8", (0, 255))               plain C, like CMSIS-NN's reference path
    conv_int8(shape, "uint8", (0, 255), "smlad")      im2col into int16 pairs + dual MACs
    bitserial_conv(shape, act_bits=4, pool_size=64, out_range=(0, 15))

Padding is a stage of its own (the image in a zeroed frame). The int8 kernels store it,
as their inner loops read each pixel many times; the bit-serial kernel folds it into its
bit-plane pass, which reads each pixel once (measured on both: each way is the cheaper
one for its kernel).
"""

from dataclasses import dataclass

import numpy as np
import sympy

from ..driver.schedule import Schedule
from ..ir.errors import QuiltError
from ..lang import tensor as qc
from ..nn.im2col import output_size

VECTOR_LEN = 8
# Output channels a bit-serial step writes out one after another (measured on Cortex-M3
# and M4 under unicorn on a 32-channel layer, b = 1..8: all 32 beat 16 and 8 overall).
_CHANNEL_UNROLL = 32


@dataclass(frozen=True)
class ConvShape:
    """The geometry of one convolution: input h x w x cin, kh x kw window, cout filters."""

    h: int
    w: int
    cin: int
    cout: int
    kh: int
    kw: int
    stride: int = 1
    padding: int = 0

    @property
    def oh(self):
        return output_size(self.h, self.kh, self.stride, self.padding)

    @property
    def ow(self):
        return output_size(self.w, self.kw, self.stride, self.padding)


def out_dtype(out_range):
    """uint8 for unsigned activations (after a ReLU), int8 for signed ones."""
    return "uint8" if out_range[0] >= 0 else "int8"


def _padded(x, padding, name):
    """`x` (h, w, c) inside a frame of `padding` zeros, or `x` itself without padding."""
    if padding == 0:
        return x
    h, w, c = (int(extent) for extent in x.shape)

    def element(y, x_, ch):
        inside = sympy.And(y >= padding, y < h + padding, x_ >= padding, x_ < w + padding)
        row = sympy.Min(sympy.Max(y - padding, 0), h - 1)
        column = sympy.Min(sympy.Max(x_ - padding, 0), w - 1)
        return qc.where(inside, x[row, column, ch], qc.cast(0, x.dtype))

    return qc.compute((h + 2 * padding, w + 2 * padding, c), element, f"{name}_padded")


def _requantized(acc, out_range, name):
    """The layer's output: acc + bias, requantized per channel, clamped, narrowed."""
    channels = int(acc.shape[-1])
    bias = qc.placeholder((channels,), "int32", "bias")
    multiplier = qc.placeholder((channels,), "int32", "multiplier")
    shift = qc.placeholder((channels,), "int32", "shift")
    low, high = out_range

    def element(*axes):
        co = axes[-1]
        scaled = qc.requantize(acc[axes] + bias[co], multiplier[co], shift[co])
        return qc.cast(qc.minimum(qc.maximum(scaled, low), high), out_dtype(out_range))

    # compute() names the loops after the lambda's parameters, so spell them out.
    if acc.ndim == 1:
        return qc.compute(acc.shape, lambda co: element(co), name)
    return qc.compute(acc.shape, lambda oy, ox, co: element(oy, ox, co), name)


def _check_range(out_range):
    low, high = out_range
    if not (-128 <= low <= high <= 255):
        raise QuiltError(f"output range {out_range} does not fit 8-bit activations; "
                         "use (0, 2**act_bits - 1) after a ReLU or (-128, 127)")


def conv_int8(shape, in_dtype, out_range, variant="plain", name="conv"):
    """An int8-weight convolution: `variant` "plain" (one MAC a step, CMSIS-NN's
    reference loop) or "smlad" (im2col into packed int16 pairs, two MACs a step through
    `smlad`, CMSIS-NN's Cortex-M4 path). Placeholders: x (h, w, cin) of `in_dtype`,
    weight (cout, kh, kw, cin) int8 ("plain") or (cout, pairs) int32 holding two int16
    weights per word ("smlad", see `pack_pairs`), then bias, multiplier, shift."""
    _check_range(out_range)
    if variant not in ("plain", "smlad"):
        raise QuiltError(f"conv variant {variant!r} is unknown; use 'plain' or 'smlad'")
    x = qc.placeholder((shape.h, shape.w, shape.cin), in_dtype, "x")
    xp = _padded(x, shape.padding, name)
    s = shape.stride
    if variant == "plain":
        weight = qc.placeholder((shape.cout, shape.kh, shape.kw, shape.cin), "int8", "weight")
        ky, kx, ci = (qc.reduce_axis(e, n) for e, n in
                      ((shape.kh, "ky"), (shape.kw, "kx"), (shape.cin, "ci")))
        acc = qc.compute((shape.oh, shape.ow, shape.cout), lambda oy, ox, co: qc.sum(
            qc.cast(xp[oy * s + ky, ox * s + kx, ci], "int32")
            * qc.cast(weight[co, ky, kx, ci], "int32"), axis=(ky, kx, ci)), f"{name}_acc")
    else:
        depth = shape.kh * shape.kw * shape.cin
        pairs = (depth + 1) // 2
        weight = qc.placeholder((shape.cout, pairs), "int32", "weight")

        def tap(oy, ox, f):
            # Element f of the window in (ky, kx, ci) order; f == depth pads an odd window.
            f = sympy.Min(f, depth - 1)
            ky, kx, ci = f // (shape.kw * shape.cin), (f // shape.cin) % shape.kw, f % shape.cin
            return qc.cast(xp[oy * s + ky, ox * s + kx, ci], "int32")

        def packed(oy, ox, t):
            high = qc.where(2 * t + 1 < depth, tap(oy, ox, 2 * t + 1), 0)
            return (tap(oy, ox, 2 * t) & 0xFFFF) | (high << 16)

        columns = qc.compute((shape.oh, shape.ow, pairs), packed, f"{name}_columns")
        t = qc.reduce_axis(pairs, "t")
        acc = qc.compute((shape.oh, shape.ow, shape.cout), lambda oy, ox, co: qc.sum(
            qc.smlad(columns[oy, ox, t], weight[co, t], 0), axis=t), f"{name}_acc")
    out = _requantized(acc, out_range, name)
    sch = Schedule(out, name)
    _accumulate_in_register(sch, acc, sch.loops(out)[-1])
    if variant == "smlad":
        # Each pixel's window is packed once and read by every output channel.
        pixel = sch.loops(out)[1]
        sch.compute_at(columns, pixel)
        sch.fold_storage(columns, pixel)
    return sch


def _accumulate_in_register(sch, acc, element_loop):
    """Compute each accumulator where its output element is requantized (inside
    `element_loop`), summing in a local scalar (a register) set to 0 before the sum."""
    sch.compute_at(acc, element_loop)
    loops = sch.loops(acc)
    sch.decompose(acc, loops[loops.index(element_loop) + 1])
    sch.fold_storage(acc, element_loop)


def pack_pairs(weight):
    """Conv weights (kh, kw, cin, cout) int8 as the (cout, pairs) int32 words the smlad
    kernel reads: window elements 2t and 2t + 1 in the low and high int16 halves."""
    cout = weight.shape[-1]
    rows = np.asarray(weight, np.int64).reshape(-1, cout).T
    if rows.shape[1] % 2:
        rows = np.concatenate([rows, np.zeros((cout, 1), np.int64)], axis=1)
    words = (rows[:, 0::2] & 0xFFFF) | ((rows[:, 1::2] & 0xFFFF) << 16)
    return words.astype(np.uint32).view(np.int32)


def bitserial_conv(shape, act_bits, pool_size, out_range, name="conv", lut_dtype="int16"):
    """A weight-pool convolution run bit-plane by bit-plane through a lookup table.

    Placeholders: x (h, w, cin) uint8 holding act_bits-bit activations; index (kh, kw,
    cin / 8, cout) uint8 pool indices, each below pool_size (the placeholder declares it,
    and the caller must keep it); lut (256, pool_size) of `lut_dtype` (int8 where
    the pool's sums fit, else int16) with lut[p, w] the dot
    product of pool vector w with the bits of p; then bias, multiplier, shift. For each
    window tap, group g of 8 input channels and plane k (most significant first) the
    plane's bits form p, and every output channel adds lut[p, index] << plane."""
    _check_range(out_range)
    if not 1 <= act_bits <= 8:
        raise QuiltError(f"act_bits={act_bits} is outside 1..8; pick 1 to 8 bits")
    if shape.cin % VECTOR_LEN:
        raise QuiltError(f"a pooled conv needs input channels in multiples of {VECTOR_LEN}, "
                         f"got {shape.cin}; keep this layer int8 or pad its channels")
    groups, s, top = shape.cin // VECTOR_LEN, shape.stride, act_bits - 1
    x = qc.placeholder((shape.h, shape.w, shape.cin), "uint8", "x")
    # The pool indices are below pool_size by construction: declaring it lets the table
    # read go without a mask or clamp on every output channel.
    index = qc.placeholder((shape.kh, shape.kw, groups, shape.cout), "uint8", "index",
                           value_range=(0, pool_size - 1))
    lut = qc.placeholder((256, pool_size), lut_dtype, "lut")
    xp = _padded(x, shape.padding, name)

    def plane(y, x_, g, k):
        pattern = (xp[y, x_, g * VECTOR_LEN] >> (top - k)) & 1
        for j in range(1, VECTOR_LEN):
            pattern = pattern | (((xp[y, x_, g * VECTOR_LEN + j] >> (top - k)) & 1) << j)
        return pattern

    height, width = (int(e) for e in xp.shape[:2])
    planes = qc.compute((height, width, groups, act_bits), plane, f"{name}_planes")
    ky, kx, g, k = (qc.reduce_axis(e, n) for e, n in
                    ((shape.kh, "ky"), (shape.kw, "kx"), (groups, "g"), (act_bits, "k")))

    def accumulate(oy, ox, co):
        row = planes[oy * s + ky, ox * s + kx, g, k]
        entry = lut[row, index[ky, kx, g, co]]
        return qc.sum(qc.cast(entry, "int32") << (top - k), axis=(ky, kx, g, k))

    acc = qc.compute((shape.oh, shape.ow, shape.cout), accumulate, f"{name}_acc")
    out = _requantized(acc, out_range, name)
    sch = Schedule(out, name)
    _channel_loop_innermost(sch, acc, out, shape.cout)
    # Written out plane by plane, each shift is a constant (a bit-field extract) and the
    # eight activations are read once for all planes.
    sch.unroll(sch.loops(planes)[-1])
    if xp is not x:
        # The planes pass reads each activation once, so testing the frame there costs
        # less than copying the image into a zeroed frame first, and keeps no frame in RAM.
        sch.compute_inline(xp)
    return sch


def _channel_loop_innermost(sch, acc, out, channels):
    """Loop order for the lookup-table conv: per pixel, the window taps and groups
    outside, then every output channel, then the unrolled planes. The planes' table rows
    are fixed across the channel loop (the renderer reads them through row pointers held
    in registers), one index byte serves every plane, and each channel adds its planes'
    entries with one load and one shifted add apiece. The channel loop is written out
    (up to _CHANNEL_UNROLL channels a step), so accumulators and indices sit at
    constant offsets and the loop's own overhead is paid once per group."""
    pixel = sch.loops(out)[1]
    sch.compute_at(acc, pixel)
    loops = sch.loops(acc)
    inner = loops[loops.index(pixel) + 1:]
    # A single output channel leaves no channel loop (compute_at drops extent-1 regions).
    channel, (ky, kx, g, k) = (inner[0] if len(inner) == 5 else None), inner[-4:]
    sch.reorder(*(loop for loop in (ky, kx, g, channel, k) if loop is not None))
    sch.decompose(acc, ky)
    sch.fold_storage(acc, pixel)
    sch.unroll(k)
    unroll = next(u for u in (_CHANNEL_UNROLL, 16, 8, 4, 2, 1) if channels % u == 0)
    if channel is not None and unroll > 1:
        # Split even where one step covers every channel: indexed by the outer loop, the
        # accumulators stay an array at constant offsets from one base; indexed by
        # constants alone, gcc makes each a scalar and spills them at greater cost.
        sch.unroll(sch.split(channel, unroll)[1])


def depthwise_int8(shape, in_dtype, out_range, name="depthwise"):
    """A depthwise convolution (channel multiplier 1; shape.cout == shape.cin).
    Placeholders: x (h, w, c), weight (c, kh, kw) int8, bias, multiplier, shift."""
    _check_range(out_range)
    x = qc.placeholder((shape.h, shape.w, shape.cin), in_dtype, "x")
    xp = _padded(x, shape.padding, name)
    weight = qc.placeholder((shape.cin, shape.kh, shape.kw), "int8", "weight")
    ky, kx, s = qc.reduce_axis(shape.kh, "ky"), qc.reduce_axis(shape.kw, "kx"), shape.stride
    acc = qc.compute((shape.oh, shape.ow, shape.cin), lambda oy, ox, c: qc.sum(
        qc.cast(xp[oy * s + ky, ox * s + kx, c], "int32") * qc.cast(weight[c, ky, kx], "int32"),
        axis=(ky, kx)), f"{name}_acc")
    out = _requantized(acc, out_range, name)
    sch = Schedule(out, name)
    _accumulate_in_register(sch, acc, sch.loops(out)[-1])
    return sch


def dense_int8(cin, cout, in_dtype, out_range, name="dense"):
    """A fully connected layer. Placeholders: x (cin,), weight (cout, cin) int8, bias,
    multiplier, shift."""
    _check_range(out_range)
    x = qc.placeholder((cin,), in_dtype, "x")
    weight = qc.placeholder((cout, cin), "int8", "weight")
    ci = qc.reduce_axis(cin, "ci")
    acc = qc.compute((cout,), lambda co: qc.sum(
        qc.cast(x[ci], "int32") * qc.cast(weight[co, ci], "int32"), axis=ci), f"{name}_acc")
    out = _requantized(acc, out_range, name)
    sch = Schedule(out, name)
    _accumulate_in_register(sch, acc, sch.loops(out)[-1])
    return sch


def max_pool(h, w, c, k, dtype, name="max_pool"):
    """k x k max pooling, stride k, trailing rows and columns dropped: x (h, w, c)."""
    x = qc.placeholder((h, w, c), dtype, "x")
    ky, kx = qc.reduce_axis(k, "ky"), qc.reduce_axis(k, "kx")
    out = qc.compute((h // k, w // k, c), lambda oy, ox, ch: qc.max(
        x[oy * k + ky, ox * k + kx, ch], axis=(ky, kx)), name)
    sch = Schedule(out, name)
    local = sch.cache_write(out, "local", at=sch.loops(out)[2])
    sch.decompose(local, sch.loops(local)[3])
    return sch


def avg_pool(h, w, c, k, dtype, name="avg_pool"):
    """k x k average pooling, stride k, rounding half away from zero as CMSIS-NN."""
    x = qc.placeholder((h, w, c), dtype, "x")
    ky, kx, count = qc.reduce_axis(k, "ky"), qc.reduce_axis(k, "kx"), k * k
    total = qc.compute((h // k, w // k, c), lambda oy, ox, ch: qc.sum(
        qc.cast(x[oy * k + ky, ox * k + kx, ch], "int32"), axis=(ky, kx)), f"{name}_sum")

    def rounded(oy, ox, ch):
        value = total[oy, ox, ch]
        mean = qc.where(value >= 0, (value + count // 2) / count, (value - count // 2) / count)
        return qc.cast(mean, dtype)

    out = qc.compute(total.shape, rounded, name)
    sch = Schedule(out, name)
    _accumulate_in_register(sch, total, sch.loops(out)[-1])
    return sch
