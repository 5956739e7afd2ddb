"""The bit-serial weight-pool convolution for microcontrollers: activations split into
bit planes, each plane's 8-channel pattern the row of a lookup table of pool-vector dot
products, one table load and one shifted add per plane and output channel.

    bitserial_conv(shape, act_bits=4, pool_size=64, out_range=(0, 15))

It shares mcu.py's shapes, padding and requantization. Unlike the int8 kernels it folds
the padding into its bit-plane pass, which reads each pixel once (measured on both:
each way is the cheaper one for its kernel).
"""

from ..driver.schedule import Schedule
from ..ir.errors import QuiltError
from ..lang import tensor as qc
from .mcu import check_range, padded, requantized

VECTOR_LEN = 8
# Output channels a bit-serial step writes out one after another (measured on Cortex-M3
# and M4 under unicorn on a 32-channel layer, b = 1..8: all 32 beat 16 and 8 overall).
_CHANNEL_UNROLL = 32


def default_groups_per_step(groups, act_bits):
    """How many groups of 8 input channels a bit-serial channel step adds together: as
    many as keep their act_bits table-row pointers each within 8 registers (measured
    under unicorn on the 32 -> 32 layer: 4 groups at b = 1 and 2, 2 at b = 3 and 4, one
    from b = 5, where two spill; b = 2 ran 2.31M instructions on the M3 against 2.52M
    one group a step, b = 4 3.69M against 3.90M)."""
    return next(n for n in (4, 2, 1) if groups % n == 0 and (n * act_bits <= 8 or n == 1))


def bitserial_conv(shape, act_bits, pool_size, out_range, name="conv", lut_dtype="int16",
                   groups_per_step=None, window_unrolled=False, channel_block=None,
                   row_pointers=False):
    """A weight-pool convolution run bit-plane by bit-plane through a lookup table.

    Placeholders: x (h, w, cin) uint8 holding act_bits-bit activations; index (kh, kw,
    cin / 8, cout) uint8 pool indices, each below pool_size (the placeholder declares it,
    and the caller must keep it); lut (256, pool_size) of `lut_dtype` (int8 where
    the pool's sums fit, else int16) with lut[p, w] the dot
    product of pool vector w with the bits of p; then bias, multiplier, shift. For each
    window tap, group g of 8 input channels and plane k (most significant first) the
    plane's bits form p, and every output channel adds lut[p, index] << plane.
    Each channel step sums `groups_per_step` groups (default: `default_groups_per_step`;
    mcu.schedule_search measures the choices). With `window_unrolled` the window's taps,
    groups and channels are written out, so every index read has a constant offset:
    rendered with the index table as a constant (render(..., constants={"index": ...})),
    each table entry becomes an immediate offset from its row pointer and the index
    loads vanish, for code a few times the table's size (the requantization's per-channel
    tables likewise: render with bias, multiplier and shift as constants too).
    With `channel_block` (a divisor of cout) the order turns around: blocks of that many
    output channels outermost, each block's accumulators kept in registers across the
    whole window instead of loaded and stored every group step (see
    `_channel_block_outermost`); groups_per_step does not apply then. With
    `row_pointers` the planes buffer holds the addresses of the table rows its bytes pick
    (`store_row_pointers`): each row pointer one load instead of a load and a shifted add,
    for four bytes of RAM per plane byte."""
    check_range(out_range)
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
    xp = padded(x, shape.padding, name)

    def plane(y, x_, g, k):
        pattern = (xp[y, x_, g * VECTOR_LEN] >> (top - k)) & 1
        for j in range(1, VECTOR_LEN):
            pattern = pattern | (((xp[y, x_, g * VECTOR_LEN + j] >> (top - k)) & 1) << j)
        return pattern

    height, width = (int(e) for e in xp.shape[:2])
    planes = qc.compute((height, width, groups, act_bits), plane, f"{name}_planes")
    ky, kx, g = (qc.reduce_axis(e, n) for e, n in
                 ((shape.kh, "ky"), (shape.kw, "kx"), (groups, "g")))

    def accumulate(oy, ox, co):
        def entry(k):
            return qc.cast(lut[planes[oy * s + ky, ox * s + kx, g, k], index[ky, kx, g, co]],
                           "int32")

        # Most significant plane first, doubled before each next one is added: one
        # shifted add per plane (Horner's rule).
        planes_sum = entry(0)
        for k in range(1, act_bits):
            planes_sum = (planes_sum << 1) + entry(k)
        return qc.sum(planes_sum, axis=(ky, kx, g))

    acc = qc.compute((shape.oh, shape.ow, shape.cout), accumulate, f"{name}_acc")
    out = requantized(acc, out_range, name)
    sch = Schedule(out, name)
    if channel_block is not None:
        if groups_per_step is not None or shape.cout % channel_block:
            raise QuiltError(f"channel_block={channel_block} needs a divisor of the layer's "
                             f"{shape.cout} output channels and no groups_per_step (got "
                             f"{groups_per_step}): its groups are written out one by one")
        _channel_block_outermost(sch, acc, out, channel_block, window_unrolled)
    else:
        if groups_per_step is None:
            groups_per_step = default_groups_per_step(groups, act_bits)
        _channel_loop_innermost(sch, acc, out, shape.cout, groups_per_step, window_unrolled)
    # Written out plane by plane, each shift is a constant (a bit-field extract) and the
    # eight activations are read once for all planes.
    sch.unroll(sch.loops(planes)[-1])
    if row_pointers:
        sch.store_row_pointers(planes, lut)
    if xp is not x:
        # The planes pass reads each activation once, so testing the frame there costs
        # less than copying the image into a zeroed frame first, and keeps no frame in RAM.
        sch.compute_inline(xp)
    return sch


def _channel_loop_innermost(sch, acc, out, channels, groups_per_step, window_unrolled):
    """Loop order for the lookup-table conv: per pixel, the window taps and groups
    outside, then every output channel, then `groups_per_step` groups written out, each
    with its planes. The planes' table rows are fixed across the channel loop (the
    renderer reads them through row pointers held in registers), one index byte serves
    every plane, each plane costs one load and one shifted add, and the groups' sum
    reaches the channel's accumulator with one load and one store. The channel loop is
    written out (up to _CHANNEL_UNROLL channels a step), so accumulators and indices sit
    at constant offsets and the loop's own overhead is paid once per group step."""
    pixel = sch.loops(out)[1]
    sch.compute_at(acc, pixel)
    loops = sch.loops(acc)
    inner = loops[loops.index(pixel) + 1:]
    # A single output channel leaves no channel loop (compute_at drops extent-1 regions).
    channel, (ky, kx, g) = (inner[0] if len(inner) == 4 else None), inner[-3:]
    sch.reorder(*(loop for loop in (ky, kx, g, channel) if loop is not None))
    sch.decompose(acc, ky)
    sch.fold_storage(acc, pixel)
    g_outer = g
    if groups_per_step > 1:
        g_outer, g_inner = sch.split(g, groups_per_step)
        sch.reorder(*(loop for loop in (g_outer, channel, g_inner) if loop is not None))
        sch.unroll(g_inner)
    unroll = next(u for u in (_CHANNEL_UNROLL, 16, 8, 4, 2, 1) if channels % u == 0)
    channel_outer = channel
    if channel is not None and unroll > 1:
        # Split even where one step covers every channel: indexed by the outer loop, the
        # accumulators stay an array at constant offsets from one base; indexed by
        # constants alone, gcc makes each a scalar and spills them at greater cost.
        channel_outer, channel_inner = sch.split(channel, unroll)
        sch.unroll(channel_inner)
    if window_unrolled:
        for loop in (ky, kx, g_outer, channel_outer):
            if loop is not None and loop in sch.loops(acc):
                sch.unroll(loop)
        if channel is not None:
            sch.unroll(sch.loops(out)[-1])


def _channel_block_outermost(sch, acc, out, block, window_unrolled):
    """Loop order for the lookup-table conv with accumulators in registers: blocks of
    `block` output channels outermost, then the pixels, then the window taps and groups,
    then the block's channels written out. Each group's table-row pointers are read once
    per block and pixel (act_bits of them live at a time), and each channel costs its
    planes' loads and adds and nothing else: no accumulator load or store. The blocks
    stay outside the pixels, so no row pointer or table read is shared from one block's
    code to the next's (measured under unicorn with the window written out, blocks of 8
    against the same blocks inside the pixel loop: 1.62M against 1.69M instructions on
    the M4 at b = 2, 3.16M against 3.14M on the M3 at b = 4)."""
    oy, ox, channel = sch.loops(out)
    channel_outer, channel_inner = sch.split(channel, block)
    sch.reorder(channel_outer, oy, ox, channel_inner)
    sch.compute_at(acc, ox)
    loops = sch.loops(acc)
    inner = loops[loops.index(ox) + 1:]
    # A one-channel block leaves no channel loop (compute_at drops extent-1 regions).
    block_loop, (ky, kx, g) = (inner[0] if len(inner) == 4 else None), inner[-3:]
    sch.reorder(*(loop for loop in (ky, kx, g, block_loop) if loop is not None))
    sch.decompose(acc, ky)
    sch.fold_storage(acc, ox)
    if block_loop is not None:
        sch.unroll(block_loop)
    if window_unrolled:
        for loop in (ky, kx, g, channel_outer):
            sch.unroll(loop)
        if block > 1:
            sch.unroll(channel_inner)
