"""Bit-serial convolution over a weight pool: the integer arithmetic the microcontroller
kernel performs, written out in numpy as its oracle.

A pooled conv stores, for every output channel and every 8 consecutive input channels
of a kernel tap, a one-byte index into a pool of int8 vectors of length 8 shared by the
whole network. Its input activations are unsigned with `act_bits` bits. The kernel never
multiplies: for each group of 8 input channels and each bit-plane k (most significant
first), the k-th bits of the 8 activations form a byte p, and every output channel adds
`lut[p, index] << k` to its int32 accumulator, where `lut[p, w]` is the dot product of
pool vector w with the bits of p. That sum is the plain integer convolution with weights
`pool[indices]`, bit for bit.
"""

import numpy as np

from ..ir.array_checks import is_integer_in
from ..ir.errors import QuiltError, ShapeError
from .im2col import windows
from .quantize import requantize_to_range

VECTOR_LEN = 8
PATTERNS = 1 << VECTOR_LEN
# bit j of every byte p: row p of this table is the 0/1 pattern that p encodes
PATTERN_BITS = ((np.arange(PATTERNS)[:, None] >> np.arange(VECTOR_LEN)) & 1).astype(np.int64)


def check_act_bits(act_bits):
    """Raise QuiltError unless `act_bits` is an integer in 1..8."""
    if not is_integer_in(act_bits, 1, 8):
        raise QuiltError(f"act_bits={act_bits!r} is not supported: activations are unsigned "
                         "with 1 to 8 bits; pass act_bits in 1..8")
    return int(act_bits)


def _check_pool(pool):
    pool = np.asarray(pool)
    if pool.ndim != 2 or pool.shape[1] != VECTOR_LEN or not 1 <= pool.shape[0] <= PATTERNS:
        raise ShapeError(f"weight pool must be (pool_size, {VECTOR_LEN}) with pool_size in "
                         f"1..{PATTERNS}, got shape {pool.shape}")
    if not np.issubdtype(pool.dtype, np.integer) or pool.min() < -128 or pool.max() > 127:
        raise ShapeError(f"weight pool must hold int8 values, got {pool.dtype} in "
                         f"[{pool.min()}, {pool.max()}]; quantize the pool to int8 first")
    return pool


def build_lut(pool):
    """The bit-serial lookup table of an int8 `pool` (pool_size, 8):
    lut[p, w] = sum_j bit_j(p) * pool[w, j], shape (256, pool_size); int8 when every
    entry fits, else int16 (sums of 8 int8 values always fit int16)."""
    pool = _check_pool(pool)
    lut = PATTERN_BITS @ pool.astype(np.int64).T
    fits_int8 = lut.min() >= -128 and lut.max() <= 127
    return lut.astype(np.int8 if fits_int8 else np.int16)


def _as_lut(pool_or_lut):
    """A (256, pool_size) table is a LUT, anything else a pool. A LUT must be linear in
    the bits of its row index, which a raw pool of 256 entries is not: such a pool is
    rejected instead of silently misread."""
    table = np.asarray(pool_or_lut)
    if table.ndim != 2 or table.shape[0] != PATTERNS:
        return build_lut(table)
    unit_rows = table[1 << np.arange(VECTOR_LEN)].astype(np.int64)
    if not np.array_equal(PATTERN_BITS @ unit_rows, table):
        raise ShapeError(f"a (256, {table.shape[1]}) array was passed as the lookup table, "
                         "but its rows are not sums of its single-bit rows; for a pool of "
                         "256 vectors pass build_lut(pool) instead of the pool")
    return table


def bitserial_conv2d_int(x_unsigned, indices, pool_or_lut, bias, multiplier, shift, act_bits,
                         stride, padding, out_min, out_max):
    """Pooled integer convolution computed bit-plane by bit-plane through the LUT.

    x_unsigned (n, h, w, cin) with values in [0, 2**act_bits - 1]; indices
    (kh, kw, cin/8, cout) uint8 pool indices (input channels g*8 .. g*8+7 of tap (i, j)
    and output channel c use pool vector indices[i, j, g, c]); pool_or_lut the int8 pool
    (pool_size, 8) or `build_lut(pool)`; bias (cout,) int32 or None; multiplier, shift
    (cout,) per output channel; `padding` zeros on each side. Returns (n, oh, ow, cout)
    clamped to [out_min, out_max], equal to `conv2d_int` with weight pool[indices]."""
    act_bits = check_act_bits(act_bits)
    x = np.asarray(x_unsigned)
    indices = np.asarray(indices)
    lut = _as_lut(pool_or_lut)
    if indices.ndim != 4:
        raise ShapeError(f"indices must be (kh, kw, cin/{VECTOR_LEN}, cout), "
                         f"got shape {indices.shape}")
    kh, kw, groups, cout = indices.shape
    if x.ndim != 4 or x.shape[3] != groups * VECTOR_LEN:
        raise ShapeError(f"bitserial_conv2d_int: input must be (n, h, w, {groups * VECTOR_LEN}) "
                         f"for indices of shape {indices.shape}, got shape {x.shape}")
    if x.size and (x.min() < 0 or x.max() >= 1 << act_bits):
        raise QuiltError(f"bitserial_conv2d_int: input values in [{x.min()}, {x.max()}] do not "
                         f"fit {act_bits} unsigned bits; requantize the input to "
                         f"[0, {(1 << act_bits) - 1}]")
    if indices.size and indices.max() >= lut.shape[1]:
        raise ShapeError(f"pool index {indices.max()} is out of range for a pool of "
                         f"{lut.shape[1]} vectors")
    patches = windows(x.astype(np.uint8), kh, kw, stride, padding)
    n, oh, ow = patches.shape[:3]
    # (pixels, taps, 8): the 8 input channels of one group at one kernel tap
    groups_of_8 = patches.reshape(n * oh * ow, kh * kw * groups, VECTOR_LEN)
    # tables[t] = lut[:, indices of tap t]: row p holds every output channel's entry
    tables = lut.astype(np.int64)[:, indices.reshape(kh * kw * groups, cout)].transpose(1, 0, 2)
    acc = np.zeros((n * oh * ow, cout), np.int64)
    weights = np.left_shift(1, np.arange(VECTOR_LEN), dtype=np.int64)
    for k in range(act_bits - 1, -1, -1):
        # recomputed from scratch for every plane and group: the row index of this plane
        rows = ((groups_of_8 >> k) & 1) @ weights
        for tap, table in enumerate(tables):
            acc += np.take(table, rows[:, tap], axis=0) << k
    acc = acc.reshape(n, oh, ow, cout)
    return requantize_to_range(acc, bias, multiplier, shift, out_min, out_max)
