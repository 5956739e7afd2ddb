"""hfuse: two independent nests (ragged and dense) in one parallel loop, against
per-sequence numpy references in the interpreter and compiled C, and its refusals."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import quiltc as qc

from support import helpers, ragged_programs
from support.ragged_programs import MAX_LENGTH, lengths_strategy


def _side_by_side(dense_first):
    """Y = 2*X over a ragged batch and Z = W + 1 over a dense (N, 2) array: two nests
    that share no buffer, in the order `dense_first` asks."""
    batch = qc.var("B", 1, 8)
    length = qc.ragged_dim("L", batch, MAX_LENGTH)
    x = qc.placeholder((batch, length, 3), "float32", "X")
    rows = qc.var("N", 1, 16)
    w = qc.placeholder((rows, 2), "float32", "W")
    doubled = qc.compute((batch, length, 3), lambda b, l, h: x[b, l, h] * np.float32(2.0), "Y")
    shifted = qc.compute((rows, 2), lambda i, j: w[i, j] + np.float32(1.0), "Z")
    return [shifted, doubled] if dense_first else [doubled, shifted]


@given(lengths=lengths_strategy, rows=st.sampled_from([1, 2, 3, 7, 11]),
       dense_first=st.booleans(), seed=st.integers(0, 2**16))
def test_fused_nests_match_each_sequence(lengths, rows, dense_first, seed):
    sch = qc.Schedule(_side_by_side(dense_first))
    first, second = ("Z", "Y") if dense_first else ("Y", "Z")
    fused = sch.hfuse(sch.loops(first)[0], sch.loops(second)[0])
    assert sch.loops("Y")[0] == fused == sch.loops("Z")[0]
    assert "  # parallel" in repr(sch)
    sequences, batch = ragged_programs.ragged_batch(lengths, seed)
    w = helpers.random_array(np.random.default_rng(seed), (rows, 2))
    reference = {"Y": [r * np.float32(2.0) for r in sequences], "Z": w + np.float32(1.0)}
    fn = ragged_programs.check_ragged(sch, {"X": batch, "W": w}, reference)
    assert "#pragma omp parallel for" in fn.source


def test_the_fused_loop_runs_both_extents():
    sch = qc.Schedule(_side_by_side(False))
    fused = sch.hfuse("b", "i")
    text = repr(sch)
    assert f"for {fused} in range(B + N):  # parallel" in text
    assert f"if {fused} < B:" in text
    assert f"if B + N - {fused} - 1 < N:" in text
    assert "sch.hfuse('b', 'i')" in str(sch.trace)


def _dependent():
    a = qc.placeholder((4, 3), "float32", "A")
    b = qc.compute((4, 3), lambda i, j: a[i, j] + np.float32(1.0), "B")
    return qc.compute((4, 3), lambda i, j: b[i, j] * np.float32(2.0), "C")


def test_nests_that_share_a_written_buffer_are_refused():
    sch = qc.Schedule(_dependent())
    with pytest.raises(qc.ScheduleError, match=r"hfuse: .*both nests touch B, which one of them "
                                               r"writes"):
        sch.hfuse(sch.loops("B")[0], sch.loops("C")[0])


def test_nests_that_are_not_consecutive_are_refused():
    sch = qc.Schedule(_side_by_side(False))
    with pytest.raises(qc.ScheduleError, match=r"does not directly follow the first"):
        sch.hfuse("i", "b")
    with pytest.raises(qc.ScheduleError, match=r"does not directly follow the first"):
        sch.hfuse("b", "l")


def test_a_nest_whose_outer_loop_carries_a_reduction_is_refused():
    a = qc.placeholder((4, 5), "float32", "A")
    k = qc.reduce_axis(5, "k")
    sums = qc.compute((4,), lambda i: qc.sum(a[i, k], axis=k), "S")
    w = qc.placeholder((3,), "float32", "W")
    copy = qc.compute((3,), lambda m: w[m] * np.float32(1.0), "V")
    sch = qc.Schedule([sums, copy])
    sch.decompose("S", sch.loops("S")[0])
    sch.reorder(*reversed(sch.loops("S")))
    with pytest.raises(qc.ScheduleError, match=r"hfuse: .*carries a reduction"):
        sch.hfuse(sch.loops("S")[0], sch.loops("V")[0])


def test_nests_with_annotated_inner_loops_are_refused():
    sch = qc.Schedule(_side_by_side(False))
    sch.vectorize("h")
    with pytest.raises(qc.ScheduleError, match=r"loop h is marked vector"):
        sch.hfuse("b", "i")
