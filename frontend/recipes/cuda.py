"""GPU schedules: the programs of recipes.py and ops.py bound to CUDA blocks and threads.

    sch = schedule_matmul_cuda(c)            # 16 x 16 shared tiles, a barrier per k-tile
    sch = schedule_softmax_cuda(rows, cols)  # one block per row, tree reductions in shared
    sch = schedule_ragged_cuda(sch, y)       # a ragged elementwise nest over blocks/threads
    sch = schedule_attention_cuda(heads, head_size, max_length, causal)

Each returns a schedule to pass to `qc.build(..., target="cuda")` or
`target="cuda-emu"`.
"""

import numpy as np

from ..driver.schedule import Schedule
from ..ops.attention import attention_program
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


def schedule_softmax_cuda(rows, cols, threads=128, name="softmax_cuda"):
    """`recipes.softmax_program` on the GPU, one block of `threads` threads (a power of
    two up to 1024) per row: the exponentials inlined into their two readers, both
    reductions computed in the row's block, each shared out among the threads (thread t
    takes columns t, t + threads, ...) and combined by a tree in shared memory, one
    barrier per level (cross_thread_reduce); the output's columns strided the same way.

        for i in range(rows):                                # blockIdx.x
            row_max[i] = tree max over threads t of max(X[i, t::threads])
            row_sum[i] = tree sum over threads t of sum(exp(X[i, t::threads] - row_max[i]))
            for j_o in range(ceil(cols / threads)):
                for j_i in range(threads):                   # threadIdx.x
                    softmax[i, j] = exp(X[i, j] - row_max[i]) / row_sum[i]

    Returns the schedule; its trace replays it."""
    _, (row_max, exps, row_sum), out = softmax_program(rows, cols)
    sch = Schedule(out, name=name)
    row = sch.loops(out)[0]
    sch.compute_inline(exps)
    for stage in (row_sum, row_max):
        sch.compute_at(stage, row)
    sch.bind(row, "blockIdx.x")
    for reduction in (row_max, row_sum):
        sch.cross_thread_reduce(reduction, sch.loops(reduction)[-1], threads)
    _, lanes = sch.split(sch.loops(out)[-1], threads)
    sch.bind(lanes, "threadIdx.x")
    return sch


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
