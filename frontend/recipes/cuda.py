"""GPU schedules: the programs of recipes.py and ops.py bound to CUDA blocks and threads.

    sch = schedule_matmul_cuda(c)            # 16 x 16 shared tiles, a barrier per k-tile
    kernel = softmax_cuda_kernel(rows, cols) # one block per row, tree reductions in shared
    sch = schedule_ragged_cuda(sch, y)       # a ragged elementwise nest over blocks/threads
    sch = schedule_attention_cuda(heads, head_size, max_length, causal)

Each returns a schedule (or a kernel) to pass to `qc.build(..., target="cuda")` or
`target="cuda-emu"`.
"""

import dataclasses

import numpy as np

from ..ir import nodes as ir
from ..ir.dtypes import identity
from ..ir.errors import ScheduleError
from ..ir.index import floordiv, symbol
from ..lang.lower import lower
from ..ops.attention import attention_program
from ..driver.schedule import Schedule
from .cpu import softmax_program


def schedule_matmul_cuda(c, tile=16, name="matmul_cuda"):
    """C = A @ B in `tile` x `tile` blocks of C, one thread per element: each k-tile of A
    and B is copied into shared memory by the block's threads together (one element
    each), a barrier, the tile's products, a barrier before the next copy.

        for i_o, j_o:                # blockIdx.y, blockIdx.x
            for k_o:
                A_shared[t_y, t_x] = A[...]; B_shared[t_y, t_x] = B[...]   # threadIdx.y, .x
                barrier()
                C[i, j] += sum over k_i of A_shared[t_y, k_i] * B_shared[k_i, t_x]
                barrier()
    """
    sch = Schedule(c, name=name)
    i, j, k = sch.loops(c)
    i_outer, i_inner = sch.split(i, tile)
    j_outer, j_inner = sch.split(j, tile)
    k_outer, k_inner = sch.split(k, tile)
    sch.reorder(i_outer, j_outer, k_outer, i_inner, j_inner, k_inner)
    caches = [sch.cache_read(operand, "shared", at=k_outer) for operand in ("A", "B")]
    sch.bind(i_outer, "blockIdx.y")
    sch.bind(j_outer, "blockIdx.x")
    sch.bind(i_inner, "threadIdx.y")
    sch.bind(j_inner, "threadIdx.x")
    for cache in caches:
        # A copy loop of extent 1 (a matrix thinner than the tile) is gone after tidying.
        copy_loops = sch.loops(cache)[3:]
        for loop, axis in zip(reversed(copy_loops), ("threadIdx.x", "threadIdx.y")):
            sch.bind(loop, axis)
    return sch


def _tree(partial, combiner, threads, fresh):
    """Halve `partial` (a shared array of `threads` values) into partial[0], one barrier
    after each level: at width w, thread t < w combines t and t + w."""
    levels = []
    width = threads // 2
    while width >= 1:
        t = fresh()
        mine, theirs = ir.Load(partial, (t,)), ir.Load(partial, (t + width,))
        levels += [ir.For(t, width, ir.Store(partial, (t,), ir.Bin(combiner, mine, theirs)),
                          "threadIdx.x"), ir.Barrier()]
        width //= 2
    return levels


def softmax_cuda_kernel(rows, cols, threads=128, name="softmax_cuda"):
    """Row softmax with one block of `threads` threads (a power of two) per row: each
    thread reduces a strided slice of the row, then a tree in shared memory combines the
    partial maxima (and later the partial sums), one barrier per level.

    The tree is written as loop nests directly (no primitive derives it from the
    program): the returned kernel computes `recipes.softmax_program`'s output."""
    if threads < 1 or threads & (threads - 1) or threads > 1024:
        raise ScheduleError("softmax_cuda_kernel", f"reduce each row with {threads} threads",
                            "a tree reduction halves the threads at each level",
                            "Pass a power of two up to 1024.")
    x_tensor, _, out_tensor = softmax_program(rows, cols)
    base = lower(out_tensor, name)
    x, out = base.param(x_tensor.name), base.param(out_tensor.name)
    dtype = x.dtype
    names = iter(range(1 << 20))

    def fresh(prefix="t"):
        return symbol(f"{prefix}{next(names)}")

    row = fresh("row")
    maxes = ir.Buffer("row_maxes", dtype, (threads,))
    sums = ir.Buffer("row_sums", dtype, (threads,))
    strides = floordiv(cols + threads - 1, threads)

    def strided(reducer):
        """A threadIdx loop: each thread t visits columns o * threads + t of the row."""
        t, o = fresh(), fresh("o")
        return ir.For(t, threads, reducer(t, o * threads + t, o), "threadIdx.x")

    def partial_max(t, column, o):
        value = ir.Load(x, (row, column))
        start = ir.Store(maxes, (t,), ir.Const(identity("max", dtype), dtype))
        step = ir.Reduce(maxes, (t,), "max", value)
        return ir.seq(start, ir.For(o, strides, ir.If(column < cols, step)))

    def partial_sum(t, column, o):
        shifted = ir.Call("exp", (ir.Load(x, (row, column)) - ir.Load(maxes, (0,)),))
        start = ir.Store(sums, (t,), ir.Const(0.0, dtype))
        body = ir.seq(ir.Store(out, (row, column), shifted),
                      ir.Reduce(sums, (t,), "sum", ir.Load(out, (row, column))))
        return ir.seq(start, ir.For(o, strides, ir.If(column < cols, body)))

    def normalise(t, column, o):
        scaled = ir.Load(out, (row, column)) / ir.Load(sums, (0,))
        return ir.For(o, strides, ir.If(column < cols, ir.Store(out, (row, column), scaled)))

    body = ir.seq(
        strided(partial_max), ir.Barrier(), *_tree(maxes, "max", threads, fresh),
        strided(partial_sum), ir.Barrier(), *_tree(sums, "+", threads, fresh),
        strided(normalise),
    )
    block = ir.For(row, x.shape[0], ir.Alloc(maxes, "shared", ir.Alloc(sums, "shared", body)),
                   "blockIdx.x")
    return dataclasses.replace(base, body=block)


def schedule_ragged_cuda(sch, tensor, threads=32, flat=False, longest_first=True):
    """An elementwise nest over (batch, ragged length, features) on the GPU.

    By rows (`flat=False`): a block row per sequence (longest first with
    `longest_first`), blocks of `threads` tokens along the row, a thread per token and
    feature; the grid's second axis is the longest row's block count, from the lengths.
    Flat: batch and length fused into one loop over all tokens (its extent is the
    prelude's offset table), split into blocks of `threads` tokens."""
    batch, length, features = sch.loops(tensor)
    if flat:
        tokens = sch.fuse(batch, length)
        blocks, lanes = sch.split(tokens, threads)
        sch.bind(blocks, "blockIdx.x")
        sch.bind(lanes, "threadIdx.x")
    else:
        blocks, lanes = sch.split(length, threads)
        sch.bind(batch, "blockIdx.x")
        sch.bind(blocks, "blockIdx.y")
        sch.bind(lanes, "threadIdx.x")
        if longest_first:
            sch.remap(batch)
    sch.bind(features, "threadIdx.y")
    return sch


def schedule_attention_cuda(heads, head_size, max_length, causal=True,
                            name="ragged_attention_cuda"):
    """`attention.attention`'s program on the GPU: every stage one launch, a block per
    (sequence, head) and a thread per query row (per token for the gathers); the score
    stage visits sequences longest first. Returns the schedule."""
    stages, out = attention_program(heads, head_size, max_length, causal)
    sch = Schedule(out, name=name)
    for stage in stages.values():
        batch, head, rows = sch.loops(stage)[:3]
        sch.bind(batch, "blockIdx.x")
        sch.bind(head, "blockIdx.y")
        sch.bind(rows, "threadIdx.x")
    sch.remap(sch.loops(stages["scores"])[0])
    batch, rows, head = sch.loops(out)[:3]
    sch.bind(batch, "blockIdx.x")
    sch.bind(rows, "threadIdx.x")
    sch.bind(head, "threadIdx.y")
    return sch


def reference_softmax(x):
    """numpy row softmax in float32."""
    shifted = np.exp(x - x.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
