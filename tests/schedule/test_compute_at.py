"""compute_at: property tests against the interpreter, compiled C and numpy, the shape of
the moved nest, and its errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.schedule.primitives.compute_at import compute_at

from support import helpers, programs, ragged_programs
from support.tiers import examples

EXTENTS = st.sampled_from([1, 2, 3, 5, 7, 8])
FACTORS = st.sampled_from([1, 2, 3, 4, 5])
SPLITS = st.tuples(st.none() | FACTORS, st.none() | FACTORS)


def _split_some(sch, loops, factors):
    """Split each of `loops` whose factor is not None."""
    for loop, factor in zip(loops, factors):
        if factor is not None:
            sch.split(loop, factor)


def anchored_program(rows, columns, symbolic):
    """P = 2*A + 1 (elementwise), C[i, j] = (P[i, j] - P[i, 0]) * w[j]: the region of P
    that a block of columns reads starts at column 0 and grows with the block's position."""
    N, M = programs.size("N", rows, symbolic), programs.size("M", columns, symbolic)
    A = qc.placeholder((N, M), "float32", "A")
    w = qc.placeholder((M,), "float32", "w")
    P = qc.compute((N, M), lambda i, j: A[i, j] * 2.0 + 1.0, "P")
    return qc.compute((N, M), lambda i, j: (P[i, j] - P[i, 0]) * w[j], "C")


def anchored_reference(A, w):
    P = A * np.float32(2.0) + np.float32(1.0)
    return (P - P[:, :1]) * w


@given(rows=EXTENTS, columns=EXTENTS, symbolic=st.booleans(), factors=SPLITS,
       choice=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_compute_at_of_a_stencil_producer_at_any_consumer_loop(rows, columns, symbolic, factors,
                                                               choice, seed):
    sch = qc.Schedule(programs.stencil(rows, columns, symbolic))
    _split_some(sch, sch.loops("C"), factors)
    loops = sch.loops("C")
    at = loops[choice % len(loops)]
    sch.compute_at("P", at)
    assert sch.loops("P")[: loops.index(at) + 1] == loops[: loops.index(at) + 1]
    helpers.check_schedule(sch, *programs.stencil_arrays(seed, rows, columns))


@settings(max_examples=examples(25))
@given(rows=EXTENTS, columns=EXTENTS, symbolic=st.booleans(), factors=SPLITS,
       choice=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_compute_at_elementwise_producer_after_splits_at_any_loop(rows, columns, symbolic,
                                                                  factors, choice, seed):
    sch = qc.Schedule(anchored_program(rows, columns, symbolic))
    _split_some(sch, sch.loops("C"), factors)
    loops = sch.loops("C")
    at = loops[choice % len(loops)]
    sch.compute_at("P", at)
    assert sch.loops("P")[: loops.index(at) + 1] == loops[: loops.index(at) + 1]
    rng = np.random.default_rng(seed)
    A = helpers.random_array(rng, (rows, columns))
    w = helpers.random_array(rng, (columns,))
    helpers.check_schedule(sch, {"A": A, "w": w}, {"C": anchored_reference(A, w)})


@settings(max_examples=examples(30))
@given(rows=EXTENTS, columns=EXTENTS, symbolic=st.booleans(), factors=SPLITS,
       choice=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_compute_at_row_max_of_a_softmax_at_any_loop(rows, columns, symbolic, factors, choice,
                                                     seed):
    sch = qc.Schedule(programs.row_softmax(rows, columns, symbolic))
    _split_some(sch, sch.loops("exps"), factors)
    loops = sch.loops("exps")
    at = loops[choice % len(loops)]
    sch.compute_at("row_max", at)
    # The reduction loop travels with the moved nest, innermost.
    assert sch.loops("row_max")[-1] == qc.ir.symbol("j")
    helpers.check_schedule(sch, *programs.row_softmax_arrays(seed, rows, columns))


def test_compute_at_restricts_the_producer_to_the_region_read():
    sch = qc.Schedule(programs.stencil(7, 4, symbolic=True))
    i_outer, _ = sch.split("i_1", 3)
    sch.compute_at("P", i_outer)
    text = repr(sch)
    # One iteration of i_1_o reads rows 3*i_1_o .. 3*i_1_o + 2 of P, guarded at its N rows.
    assert "for P_i in range(3):\n            for P_j in range(M + 1):\n" in text
    assert "if P_i + 3*i_1_o < N:\n                    P[P_i + 3*i_1_o, P_j] = " in text
    assert "for i in range" not in text


def test_compute_at_of_a_single_element_region_adds_no_loop():
    sch = qc.Schedule(programs.row_softmax(3, 5))
    sch.compute_at("row_max", "j_1")
    assert sch.loops("row_max") == [qc.ir.symbol(name) for name in ("i_1", "j_1", "j")]
    assert "row_max[i_1] nanmax= X[i_1, j]  # init when j == 0" in repr(sch)
    helpers.check_schedule(sch, *programs.row_softmax_arrays(1, 3, 5))


def chain_program(columns):
    """P = A + 1, Q = 2*P, R[j] = Q[j] + Q[j + 1]: a chain of two elementwise producers."""
    A = qc.placeholder((columns + 1,), "float32", "A")
    P = qc.compute((columns + 1,), lambda j: A[j] + 1.0, "P")
    Q = qc.compute((columns + 1,), lambda j: P[j] * 2.0, "Q")
    return qc.compute((columns,), lambda j: Q[j] + Q[j + 1], "R")


@pytest.mark.parametrize("factor", [2, 3])
@pytest.mark.parametrize("order", [("P", "Q"), ("Q", "P")])
def test_compute_at_chains_producers_in_either_order(order, factor):
    # 2 divides R's 8 columns (no guard); 3 does not, so the split adds one.
    sch = qc.Schedule(chain_program(8))
    j_outer, _ = sch.split("j_2", factor)
    if order == ("P", "Q"):
        sch.compute_at("P", "j_1")
        sch.compute_at("Q", j_outer)
    else:
        sch.compute_at("Q", j_outer)
        sch.compute_at("P", "Q_j_1")
    A = helpers.random_array(np.random.default_rng(2), (9,))
    Q = (A + np.float32(1.0)) * np.float32(2.0)
    helpers.check_schedule(sch, {"A": A}, {"R": Q[:-1] + Q[1:]})


def test_compute_at_replays_from_its_trace():
    sch = qc.Schedule(programs.row_softmax(3, 5))
    sch.split("j_1", 2)
    sch.compute_at("row_max", "j_1_o")
    replayed = sch.trace.replay(qc.Schedule(programs.row_softmax(3, 5)))
    assert replayed.kernel == sch.kernel


@pytest.mark.parametrize("before, producer, loop, message", [
    pytest.param((), "row_max", "i_2",
                 r"compute_at: .*loop i_2 does not enclose any read of row_max: compute_at into "
                 r"a non-enclosing loop; row_max is read inside loops \(i_1, j_1\)",
                 id="non-enclosing-loop"),
    pytest.param((), "softmax", "i_3", r"compute_at: .*softmax is an output of the kernel",
                 id="output"),
    pytest.param((), "exps", "i_3",
                 r"exps is also read by the statement writing row_sum inside loops \(i_2, j_2\), "
                 r"outside loop i_3",
                 id="reader-outside-the-loop"),
    pytest.param((), "X", "i_1", r"no statement writes X \(it is an input", id="input"),
    pytest.param((("compute_at", "row_max", "i_1"),), "row_max", "j_1",
                 r"loop j_1 is not in a loop nest that runs after the one computing row_max",
                 id="into-its-own-nest"),
    pytest.param((("decompose", "row_max", "j"),), "row_max", "i_1",
                 r"row_max is written by 2 statements, and compute_at moves one loop nest "
                 r"holding one store, or a reduction's initialisation nest and its own",
                 id="decomposed-inside-its-nest"),
])
def test_compute_at_in_a_softmax_refuses_what_cannot_move(before, producer, loop, message):
    sch = programs.schedule(programs.row_softmax(3, 5), before)
    with pytest.raises(qc.ScheduleError, match=message):
        sch.compute_at(producer, loop)


def test_a_reduction_decomposed_into_a_nest_of_its_own_moves_with_its_initialisation():
    sch = programs.schedule(programs.row_softmax(3, 5), (("decompose", "row_max", "i"),))
    sch.compute_at("row_max", "i_1")
    text = qc.ir.render(sch.kernel)
    assert text.index("row_max[i_1] = -inf") < text.index("row_max[i_1] nanmax=") < text.index(
        "exps[i_1, j_1] =")
    X = helpers.random_array(np.random.default_rng(3), (3, 5))
    exps = np.exp(X - X.max(axis=1, keepdims=True))
    helpers.check_schedule(sch, {"X": X}, {"softmax": exps / exps.sum(axis=1, keepdims=True)})


def _ragged_softmax():
    """P = softmax over the keys of each (B, L, L) row: stages M (row max), E, Z, P."""
    batch = qc.var("B", 1, 8)
    length = qc.ragged_dim("L", batch, 9)
    x = qc.placeholder((batch, length, length), "float32", "X")
    j = qc.reduce_axis(length, "j")
    top = qc.compute((batch, length), lambda b, i: qc.max(x[b, i, j], axis=j), "M")
    exps = qc.compute((batch, length, length), lambda b, i, k: qc.exp(x[b, i, k] - top[b, i]),
                      "E")
    j2 = qc.reduce_axis(length, "j2")
    total = qc.compute((batch, length), lambda b, i: qc.sum(exps[b, i, j2], axis=j2), "Z")
    probs = qc.compute((batch, length, length), lambda b, i, k: exps[b, i, k] / total[b, i], "P")
    return top, exps, total, probs


def _check_ragged_softmax(sch):
    rows = [helpers.random_array(np.random.default_rng(n), (n, n)) for n in (3, 0, 9, 1, 4)]
    expected = []
    for r in rows:
        e = np.exp(r - r.max(axis=1, keepdims=True, initial=-np.inf))
        expected.append(e / e.sum(axis=1, keepdims=True))
    ragged_programs.check_ragged(sch, {"X": qc.RaggedArray.from_list(rows)}, {"P": expected})


def test_a_ragged_softmax_computes_and_folds_each_row_inside_its_consumer():
    """Each row's max, exponentials and sum computed at the row loop of the output, the
    exponentials folded to one row sized by the ragged dim's maximum."""
    top, exps, total, probs = _ragged_softmax()
    sch = qc.Schedule(probs)
    row = sch.loops(probs)[1]
    sch.decompose(total, sch.loops(total)[0])
    for producer in (total, exps, top):
        sch.compute_at(producer, row)
    sch.fold_storage(exps, row)
    assert "E = alloc[1, 1, 9] float32  # local" in qc.ir.render(sch.kernel)
    _check_ragged_softmax(sch)


def test_a_block_of_ragged_rows_guards_the_rows_past_the_sequence():
    """Computed per block of 3 rows of the output (a split with a guard), each stage's
    region may pass the end of a row shorter than the longest: the region's limit is that
    row's length L_len(b), so the moved nests are guarded (the longest row's 9 would let
    rows 3..5 of a 4-long sequence through, and the verifier refused the schedule)."""
    top, exps, total, probs = _ragged_softmax()
    sch = qc.Schedule(probs)
    block, _ = sch.split(sch.loops(probs)[1], 3)
    sch.decompose(total, sch.loops(total)[0])
    for producer in (total, exps, top):
        sch.compute_at(producer, block)
    sch.fold_storage(exps, block)
    text = qc.ir.render(sch.kernel)
    assert "E = alloc[1, 3, 9] float32  # local" in text
    assert text.count("< L_len(b") >= 4
    _check_ragged_softmax(sch)


def test_compute_at_after_splitting_the_producer_is_refused():
    sch = qc.Schedule(programs.stencil(4, 7))
    sch.split("j", 2)
    with pytest.raises(qc.ScheduleError, match=r"P is written at \[i, j_i \+ 2\*j_o\], not at one "
                       r"whole loop .*Apply compute_at before splitting"):
        sch.compute_at("P", "j_1")


def test_compute_at_of_an_unknown_loop_lists_the_loops():
    sch = qc.Schedule(programs.stencil(4, 7))
    with pytest.raises(qc.ScheduleError, match=r"no loop called 'x'"):
        sch.compute_at("P", "x")


def test_compute_at_refuses_to_move_a_nest_that_also_computes_another_tensor():
    A, P, Q, R = (ir.Buffer(name, qc.float32, (4,)) for name in "APQR")
    i, j = qc.ir.symbol("i"), qc.ir.symbol("j")
    both = ir.For(i, 4, ir.seq(ir.Store(P, (i,), ir.Load(A, (i,))),
                               ir.Store(Q, (i,), ir.Load(A, (i,)) * 2.0)))
    use = ir.For(j, 4, ir.Store(R, (j,), ir.Load(P, (j,)) + ir.Load(Q, (j,))))
    body = ir.Alloc(P, "global", ir.Alloc(Q, "global", ir.seq(both, use)))
    kernel = ir.Kernel("kernel", (A, R), body, ("R",))
    with pytest.raises(qc.ScheduleError, match=r"P is computed in one loop nest together with Q, "
                       r"and Q is read outside that nest"):
        compute_at(kernel, "P", "j")
