"""Integer layer kernels for microcontrollers, written in the tensor language and scheduled
for instruction count on Cortex-M.

Every kernel works on one NHWC image (no batch axis) with zero points of 0, as
frontend/quantize.py's references do, and ends like CMSIS-NN: int32 accumulator plus
bias, `requantize` per output channel, clamp to [out_min, out_max]. Weights are
placeholders in the layout each loop order reads contiguously; `mcu_model.py` lays the
numpy arrays out to match.

    conv_int8(shape, "uint8", (0, 255))               one MAC a step, for cores without DSP
    conv_int8(shape, "uint8", (0, 255), "smlad")      im2col into int16 pairs + dual MACs
    depthwise_int8, dense_int8, max_pool, avg_pool

The int8 kernels compute their outputs in register blocks (REGISTER_BLOCKS). The
bit-serial weight-pool conv is in mcu_bitserial.py and shares this module's padding,
requantization and shapes. Padding is a stage of its own (the image in a zeroed frame);
the int8 kernels store it, as their inner loops read each pixel many times.
"""

from dataclasses import dataclass

import numpy as np
import sympy

from ..driver.schedule import Schedule
from ..ir.errors import QuiltError
from ..lang import tensor as qc
from ..nn.im2col import output_size

# Output pixels along a row x output channels whose accumulators stay in registers
# through the whole reduction, per kernel, chosen by mcu.schedule_search under unicorn on
# a 32 -> 32, 3x3, 16x16 conv (window rows written out): "plain" 2 x 2 ran 6.58M
# instructions on the Cortex-M3 against 12.9M unblocked and 6.90M at 4 x 1; "smlad"
# 4 x 2 ran 3.04M on the M4 (the M7 alike) against 7.29M unblocked, 3.71M at 2 x 2 and
# 3.45M at 8 x 1. Larger blocks run out of the core's 13 registers and spill. A
# 32-channel 3x3 depthwise conv: 0.59M at 4 x 1 against 1.04M unblocked; a 256 -> 64
# dense layer: 41K at 8 channels against 84K one at a time (both cores alike).
REGISTER_BLOCKS = {"plain": (2, 2), "smlad": (4, 2), "depthwise": (4, 1), "dense": (8,)}


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


def padded(x, padding, name):
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


def requantized(acc, out_range, name):
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


def _check_variant(variant, what):
    if variant not in ("plain", "smlad"):
        raise QuiltError(f"{what} variant {variant!r} is unknown; use 'plain' or 'smlad'")


def check_range(out_range):
    """Refuse an output range that 8-bit activations cannot hold."""
    low, high = out_range
    if not (-128 <= low <= high <= 255):
        raise QuiltError(f"output range {out_range} does not fit 8-bit activations; "
                         "use (0, 2**act_bits - 1) after a ReLU or (-128, 127)")


def conv_int8(shape, in_dtype, out_range, variant="plain", name="conv", block=None,
              unrolled_rows=True):
    """An int8-weight convolution: `variant` "plain" (one multiply-accumulate a step, for
    cores without DSP instructions) or "smlad" (im2col into packed int16 pairs, two a
    step through `smlad`, for the Cortex-M4 and M7). `block` = (output pixels along a
    row, output channels) computed together with their accumulators in registers
    (default: REGISTER_BLOCKS[variant], lowered to divide the output); `unrolled_rows`
    writes out the loop over the window's rows (a few percent fewer instructions).
    Placeholders: x (h, w, cin) of `in_dtype`, weight (cout, kh, kw, cin) int8
    ("plain") or (cout, pairs) int32 holding two int16 weights per word ("smlad", see
    `pack_pairs`), then bias, multiplier, shift."""
    check_range(out_range)
    _check_variant(variant, "conv")
    block = _block_for(block, variant, (shape.ow, shape.cout), "an int8 conv")
    x = qc.placeholder((shape.h, shape.w, shape.cin), in_dtype, "x")
    xp = padded(x, shape.padding, name)
    s = shape.stride
    if variant == "plain":
        weight = qc.placeholder((shape.cout, shape.kh, shape.kw, shape.cin), "int8", "weight")
        ky, kx, ci = (qc.reduce_axis(e, n) for e, n in
                      ((shape.kh, "ky"), (shape.kw, "kx"), (shape.cin, "ci")))
        acc = qc.compute((shape.oh, shape.ow, shape.cout), lambda oy, ox, co: qc.sum(
            qc.cast(xp[oy * s + ky, ox * s + kx, ci], "int32")
            * qc.cast(weight[co, ky, kx, ci], "int32"), axis=(ky, kx, ci)), f"{name}_acc")
    else:
        acc, columns = _smlad_sum(shape, xp, name)
    out = requantized(acc, out_range, name)
    sch = Schedule(out, name)
    pixels = _register_block(sch, acc, out, block, unrolled_rows)
    if variant == "smlad":
        # Each pixel's window is packed once and read by every output channel.
        sch.compute_at(columns, pixels)
        sch.fold_storage(columns, pixels)
    return sch


def _smlad_sum(shape, xp, name):
    """The smlad accumulator and the columns it reads: each output pixel's window packed
    into int16 pairs. With an even channel count a pair never straddles two taps, so the
    columns keep the window's (ky, kx) structure and packing a pair costs two loads;
    otherwise the window is one flat run of pairs, the last padded with a zero."""
    s, depth = shape.stride, shape.kh * shape.kw * shape.cin

    def pixel(oy, ox, ky, kx, ci):
        return qc.cast(xp[oy * s + ky, ox * s + kx, ci], "int32")

    if shape.cin % 2 == 0:
        window = (shape.kh, shape.kw, shape.cin // 2)
        columns = qc.compute((shape.oh, shape.ow, *window), lambda oy, ox, ky, kx, cp: (
            _pair(pixel(oy, ox, ky, kx, 2 * cp), pixel(oy, ox, ky, kx, 2 * cp + 1))),
            f"{name}_columns")
    else:
        window = ((depth + 1) // 2,)

        def tap(oy, ox, f):
            # Element f of the window in (ky, kx, ci) order; f == depth pads an odd window.
            f = sympy.Min(f, depth - 1)
            return pixel(oy, ox, f // (shape.kw * shape.cin), (f // shape.cin) % shape.kw,
                         f % shape.cin)

        def packed(oy, ox, t):
            high = qc.where(2 * t + 1 < depth, tap(oy, ox, 2 * t + 1), 0)
            return _pair(tap(oy, ox, 2 * t), high)

        columns = qc.compute((shape.oh, shape.ow, *window), packed, f"{name}_columns")
    weight = qc.placeholder((shape.cout, (depth + 1) // 2), "int32", "weight")
    taps = [qc.reduce_axis(extent, f"t{position}") for position, extent in enumerate(window)]
    # The pair's position in the packed window: row-major over `window`.
    pair = sum(tap * int(np.prod(window[position + 1:]))
               for position, tap in enumerate(taps))
    acc = qc.compute((shape.oh, shape.ow, shape.cout), lambda oy, ox, co: qc.sum(
        qc.smlad(columns[(oy, ox, *taps)], weight[co, pair], 0), axis=tuple(taps)),
        f"{name}_acc")
    return acc, columns


def _pair(low, high):
    """Two int32 values as the int16 pair in one word that smlad reads: `low` in the low
    half, `high` in the high half."""
    return (low & 0xFFFF) | (high << 16)


def _register_block(sch, acc, out, block, unrolled_rows=False):
    """Block the last len(block) output loops (pixels along a row, then channels; a dense
    layer has channels only) by `block`, and compute each block's accumulators across
    the whole reduction before requantizing them, its outermost reduction loop (the
    window's rows) written out if `unrolled_rows`. Returns the loop over blocks that
    holds the rest (where a pixel block's im2col columns are packed)."""
    axes = sch.loops(out)[-len(block):]
    outers, inners = zip(*(sch.split(axis, extent) for axis, extent in zip(axes, block)))
    sch.reorder(*outers, *inners)
    sch.compute_at(acc, outers[-1])
    loops = sch.loops(acc)
    # compute_at leaves no loop for a block extent of 1.
    first = loops.index(outers[-1]) + 1
    block_loops = loops[first:first + sum(1 for extent in block if extent > 1)]
    sch.decompose(acc, loops[first])
    reduction = loops[first + len(block_loops):]
    sch.reorder(*reduction, *block_loops)
    if unrolled_rows and len(reduction) > 1:
        sch.unroll(reduction[0])
    # Written out, the block's accumulators sit at constant indices and gcc keeps them
    # in registers; a loop over them anywhere (the requantization too) puts them on
    # the stack, stored on every step of the reduction.
    for loop in (*block_loops, *inners):
        sch.unroll(loop)
    sch.fold_storage(acc, outers[-1])
    return outers[0]


def fitted_block(block, extents):
    """`block` with each extent lowered to the largest that divides its loop's extent
    (`extents`), so no block runs past the end and needs a guard."""
    return tuple(next(size for size in range(want, 0, -1) if extent % size == 0)
                 for want, extent in zip(block, extents))


def _block_for(block, kernel, extents, what):
    """The register block a kernel runs: the caller's `block`, checked, or the kernel's
    REGISTER_BLOCKS entry fitted to the output `extents`."""
    if block is None:
        return fitted_block(REGISTER_BLOCKS[kernel], extents)
    block = tuple(block) if isinstance(block, list) else block
    if (not isinstance(block, tuple) or len(block) != len(extents)
            or not all(isinstance(size, int) and size >= 1 for size in block)):
        raise QuiltError(f"block={block!r} for {what} is not {len(extents)} positive "
                         f"integers; pass a tuple such as {REGISTER_BLOCKS[kernel]}")
    return block


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


def depthwise_int8(shape, in_dtype, out_range, name="depthwise", block=None):
    """A depthwise convolution (channel multiplier 1; shape.cout == shape.cin), blocked
    as `conv_int8` is (default REGISTER_BLOCKS["depthwise"]). Placeholders: x (h, w, c),
    weight (c, kh, kw) int8, bias, multiplier, shift."""
    check_range(out_range)
    block = _block_for(block, "depthwise", (shape.ow, shape.cin), "a depthwise conv")
    x = qc.placeholder((shape.h, shape.w, shape.cin), in_dtype, "x")
    xp = padded(x, shape.padding, name)
    weight = qc.placeholder((shape.cin, shape.kh, shape.kw), "int8", "weight")
    ky, kx, s = qc.reduce_axis(shape.kh, "ky"), qc.reduce_axis(shape.kw, "kx"), shape.stride
    acc = qc.compute((shape.oh, shape.ow, shape.cin), lambda oy, ox, c: qc.sum(
        qc.cast(xp[oy * s + ky, ox * s + kx, c], "int32") * qc.cast(weight[c, ky, kx], "int32"),
        axis=(ky, kx)), f"{name}_acc")
    out = requantized(acc, out_range, name)
    sch = Schedule(out, name)
    _register_block(sch, acc, out, block)
    return sch


def dense_int8(cin, cout, in_dtype, out_range, name="dense", block=None, variant="plain"):
    """A fully connected layer, `block` = (output channels,) sharing each input load
    (default REGISTER_BLOCKS["dense"]); `variant` "plain" or "smlad" as for `conv_int8`
    (the input packed once into int16 pairs). Placeholders: x (cin,), weight (cout, cin)
    int8 ("plain") or (cout, pairs) int32 (`pack_pairs` of the (cin, cout) weights),
    then bias, multiplier, shift."""
    check_range(out_range)
    _check_variant(variant, "dense")
    block = _block_for(block, "dense", (cout,), "a dense layer")
    x = qc.placeholder((cin,), in_dtype, "x")
    if variant == "plain":
        weight = qc.placeholder((cout, cin), "int8", "weight")
        ci = qc.reduce_axis(cin, "ci")
        acc = qc.compute((cout,), lambda co: qc.sum(
            qc.cast(x[ci], "int32") * qc.cast(weight[co, ci], "int32"), axis=ci),
            f"{name}_acc")
    else:
        pairs = (cin + 1) // 2

        def packed(t):
            high = qc.where(2 * t + 1 < cin, qc.cast(x[sympy.Min(2 * t + 1, cin - 1)], "int32"),
                            0)
            return _pair(qc.cast(x[2 * t], "int32"), high)

        columns = qc.compute((pairs,), packed, f"{name}_columns")
        weight = qc.placeholder((cout, pairs), "int32", "weight")
        t = qc.reduce_axis(pairs, "t")
        acc = qc.compute((cout,), lambda co: qc.sum(
            qc.smlad(columns[t], weight[co, t], 0), axis=t), f"{name}_acc")
    out = requantized(acc, out_range, name)
    sch = Schedule(out, name)
    _register_block(sch, acc, out, block)
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
