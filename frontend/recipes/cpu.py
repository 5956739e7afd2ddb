"""Dense operators with hand-written schedules: the programs the demo and the benchmarks
build, and a worked example of using the schedule primitives for speed.

Each `*_program` returns the tensors of the algorithm; each `schedule_*` applies a
schedule to a `Schedule` of that program and returns it.
"""

from ..driver.schedule import Schedule
from ..lang import tensor as qc
from ..runtime_c.host import isa_for


def matmul_program(m, n, k, dtype="float32"):
    """C[i, j] = sum_k A[i, k] * B[k, j]; sizes are ints or qc.var symbols."""
    a = qc.placeholder((m, k), dtype, "A")
    b = qc.placeholder((k, n), dtype, "B")
    reduction = qc.reduce_axis(k, "k")
    c = qc.compute((m, n), lambda i, j: qc.sum(a[i, reduction] * b[reduction, j], axis=reduction),
                   "C")
    return a, b, c


def schedule_matmul(c, rows=None, cols=None, vector=None, parallel=True):
    """A register-blocked, vectorized, parallel matmul schedule.

    Each thread owns column panels of `cols` columns (B's panel stays in cache while
    every row block passes over it); a `rows` x `cols` block of C accumulates in a local
    array across the whole k loop. Both loops over that block are unrolled down to
    `vector`-wide SIMD statements, so gcc keeps the block in vector registers and issues
    one FMA per loaded vector of B.

    `vector` defaults to the host's float32 lanes (16 with AVX-512, 8 with AVX2) and the
    block to the register block of the ISA with that width (`VectorIsa.matmul_block`:
    8 x 32 floats in 16 of AVX-512's 32 zmm, 6 x 16 in 12 of AVX2's 16 ymm), so an
    explicit `vector=16` gives the AVX-512 schedule on any host.

        for j_o in range(N / cols):                    # parallel
            for i_o in range(M / rows):
                C_local = 0
                for k in range(K):
                    for i_i in range(rows):            # unrolled
                        for j_i_o in range(cols / vector):   # unrolled
                            for j_i_i in range(vector):      # simd
                                C_local[i_i, j_i] += A[i, k] * B[k, j]
                C[block] = C_local
    """
    if None in (rows, cols, vector):
        isa = isa_for(vector)
        block_rows, block_cols = isa.matmul_block()
        rows = block_rows if rows is None else rows
        cols = block_cols if cols is None else cols
        vector = isa.float32_lanes
    sch = Schedule(c, name="matmul")
    i, j, k = sch.loops(c)
    i_outer, i_inner = sch.split(i, rows)
    j_outer, j_inner = sch.split(j, cols)
    sch.reorder(j_outer, i_outer, k, i_inner, j_inner)
    local = sch.cache_write(c, "local", at=i_outer)
    sch.decompose(local, k)
    vectors, lanes = sch.split(j_inner, vector)
    sch.unroll(i_inner)
    sch.unroll(vectors)
    sch.vectorize(lanes)
    if parallel:
        sch.parallel(j_outer)
    return sch


def softmax_program(rows, cols, dtype="float32"):
    """out[i, :] = softmax(X[i, :]), computed stably (subtract the row max; a NaN the
    max passes over still makes its row NaN, through its exp)."""
    x = qc.placeholder((rows, cols), dtype, "X")
    j_max = qc.reduce_axis(cols, "j")
    row_max = qc.compute((rows,), lambda i: qc.nanmax(x[i, j_max], axis=j_max), "row_max")
    exps = qc.compute((rows, cols), lambda i, j: qc.exp_nonpositive(x[i, j] - row_max[i]),
                      "exps")
    j_sum = qc.reduce_axis(cols, "j")
    row_sum = qc.compute((rows,), lambda i: qc.sum(exps[i, j_sum], axis=j_sum), "row_sum")
    out = qc.compute((rows, cols), lambda i, j: exps[i, j] / row_sum[i], "softmax")
    return x, (row_max, exps, row_sum), out


def schedule_softmax(stages, out, parallel=True):
    """Every stage computed inside the row loop of the output, the exponentials kept in
    the output's row (share_storage: the row is scaled in place), reductions initialised
    before their loops, rows on parallel threads, the elementwise loops SIMD."""
    row_max, exps, row_sum = stages
    sch = Schedule(out, name="softmax")
    row = sch.loops(out)[0]
    # Consumers first: each stage moves in beside the readers already inside the row loop.
    for stage in (row_sum, exps, row_max):
        sch.compute_at(stage, row)
    for reduction in (row_max, row_sum):
        sch.decompose(reduction, sch.loops(reduction)[-1])
    sch.vectorize(sch.loops(exps)[-1])
    sch.vectorize(sch.loops(out)[-1])
    sch.share_storage(exps, out)
    if parallel:
        sch.parallel(row)
    return sch
