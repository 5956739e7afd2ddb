"""Linear layers over a ragged batch's flat tokens: `a @ weight` for (tokens, in) rows,
in register blocks of `row_block` tokens x one column panel of the weight.

A weight is used for every call of a layer, so it is packed once (`pack_weight`): its
columns cut into panels of `panel_columns` and each panel stored (in, panel) contiguous,
which is the order the block reads it in. Unpacked, each step down the reduction jumps a
whole weight row and the block's loads of it miss; packed, they stream. On this project's
AVX-512 host (2 threads, 4096 tokens) packing took the layers of a BERT-base-like
encoder from 25-79 to 112-141 GFLOP/s, against numpy's (OpenBLAS) 138-163.

    from quiltc.ops import dense
    packed = dense.pack_weight(weight)                  # (in, out) -> panels, once
    y = dense.linear(tokens, packed)                    # as tokens @ weight
"""

import functools

import numpy as np

from ..driver.build import build
from ..driver.schedule import Schedule
from ..lang import tensor as qc
from ..runtime_c.host import isa_for
from . import arguments
from .ragged import MAX_TOKENS

# Rows per call of the linear kernel, about: its A block (1024 x features) stays in L2
# while every column panel of the weight passes over it.
ROWS_PER_CALL = 1024


def row_block(lanes=None):
    """Token rows per block of a linear layer's input, and of its register block (the
    flat layout, `padded_rows`, follows it): the rows of the ISA's matmul block, 8 with
    AVX-512, 6 with AVX2, whose 16 registers then hold 6 x 2 accumulator vectors with the
    2 weight vectors and a broadcast beside them. 8 rows spilled 3 accumulators: 99-108
    GFLOP/s against 153-170 with 6 (11,200 tokens, BERT-like layers, 2 threads, on a
    2-core AVX2 host where numpy made 182-187)."""
    return isa_for(lanes).matmul_block()[0]


def panel_columns(lanes=None):
    """Columns per panel of a packed weight: four SIMD vectors with AVX-512's 32
    registers (8 x 64 floats measured 1.1-2.8x the 8 x 32 block), two with AVX2's 16
    (see `_unpacked_kernel`)."""
    isa = isa_for(lanes)
    return isa.float32_lanes * (4 if isa.float32_lanes >= 16 else 2)


class PackedWeight:
    """An (in, out) weight and its panels (out / columns, in, columns), for `linear`."""

    def __init__(self, matrix, columns):
        self.matrix = matrix
        self.columns = columns
        rows, outputs = matrix.shape
        self.panels = np.ascontiguousarray(
            matrix.reshape(rows, outputs // columns, columns).transpose(1, 0, 2))

    @property
    def shape(self):
        """(in_features, out_features) of the weight."""
        return self.matrix.shape


def pack_weight(weight, lanes=None):
    """`weight` (in, out) float32 packed for `linear`, or returned as it is where its
    columns do not split into whole panels."""
    if isinstance(weight, PackedWeight):
        return weight
    weight = arguments.dense("weight", weight, ("in_features", "out_features"))
    columns = panel_columns(lanes)
    return PackedWeight(weight, columns) if weight.shape[1] % columns == 0 else weight


def _schedule(c, columns, lanes):
    """Parallel column panels; for each block of `row_block` tokens a `row_block` x
    `columns` block of C sums in registers over the whole reduction, rows and vectors
    unrolled."""
    isa = isa_for(lanes)
    sch = Schedule(c, name="linear")
    block, row, col, reduction = sch.loops(c)
    panel, col_inner = sch.split(col, columns)
    sch.reorder(panel, block, reduction, row, col_inner)
    local = sch.cache_write(c, "local", at=block)
    sch.decompose(local, reduction)
    vectors, vector = sch.split(col_inner, isa.float32_lanes)
    sch.unroll(row)
    sch.unroll(vectors)
    sch.vectorize(vector)
    sch.parallel(panel)
    return build(sch)


@functools.cache
def _packed_kernel(in_features, out_features, lanes=None):
    """C[t, r, j] = sum_k A[t, r, k] * W[j // columns, k, j % columns], W packed."""
    columns, rows = panel_columns(lanes), row_block(lanes)
    blocks = qc.var("T_blocks", 0, MAX_TOKENS // rows)
    a = qc.placeholder((blocks, rows, in_features), "float32", "A")
    w = qc.placeholder((out_features // columns, in_features, columns), "float32", "W")
    k = qc.reduce_axis(in_features, "k")
    c = qc.compute((blocks, rows, out_features), lambda t, r, j: qc.sum(
        a[t, r, k] * w[j // columns, k, j % columns], axis=k), "C")
    return _schedule(c, columns, lanes)


@functools.cache
def _unpacked_kernel(in_features, out_features, lanes=None):
    """C[t, r, :] = A[t, r, :] @ W over blocks of `row_block` tokens, for weights whose
    columns do not split into packed panels: the ISA's matmul block, panels of two
    `lanes`-wide vectors (with one vector a row every FMA needs its own broadcast of A,
    and the loads become the bottleneck)."""
    rows, columns = isa_for(lanes).matmul_block()
    blocks = qc.var("T_blocks", 0, MAX_TOKENS // rows)
    a = qc.placeholder((blocks, rows, in_features), "float32", "A")
    w = qc.placeholder((in_features, out_features), "float32", "W")
    k = qc.reduce_axis(in_features, "k")
    c = qc.compute((blocks, rows, out_features),
                   lambda t, r, j: qc.sum(a[t, r, k] * w[k, j], axis=k), "C")
    return _schedule(c, columns, lanes)


def padded_rows(tokens):
    """Rows to allocate for `tokens` rows of a linear layer's input: a multiple of
    `row_block`."""
    rows = row_block()
    return -(-tokens // rows) * rows


def linear(a, weight, out=None):
    """`a @ weight` for a flat (tokens, in) float32 array and an (in, out) weight, plain
    or packed by `pack_weight` (a plain one is packed on each call: pack it once).

    `a` may have rows beyond the real tokens up to a multiple of `row_block` (see
    `padded_rows`), which spares a copy; `out`, when given, has as many rows as `a` (any
    memory order, and it may share memory with `a`)."""
    a = arguments.dense("a", a, ("tokens", "in_features"))
    packed = pack_weight(weight)
    matrix = packed.matrix if isinstance(packed, PackedWeight) else packed
    arguments.dense("weight", matrix, (a.shape[1], "out_features"))
    tokens, in_features = a.shape
    out_features = matrix.shape[1]
    out = arguments.out(out, (tokens, out_features))
    rows = row_block()
    if tokens % rows:
        grown = np.zeros((padded_rows(tokens), in_features), np.float32)
        grown[:tokens] = a
        return arguments.write(out, linear(grown, packed)[:tokens])
    # The kernel runs ROWS_PER_CALL rows a call: an out that overlaps `a` or the weight
    # would overwrite rows a later call still reads.
    result = arguments.direct(out, a, matrix)
    result = np.empty((tokens, out_features), np.float32) if result is None else result
    if isinstance(packed, PackedWeight):
        kernel, stored = _packed_kernel(in_features, out_features), packed.panels
    else:
        kernel, stored = _unpacked_kernel(in_features, out_features), matrix
    rows_per_call = ROWS_PER_CALL // rows * rows
    for start in range(0, tokens, rows_per_call):
        stop = min(tokens, start + rows_per_call)
        kernel(A=a[start:stop].reshape(-1, rows, in_features), W=stored,
               out={"C": result[start:stop].reshape(-1, rows, out_features)})
    return arguments.write(out, result)
