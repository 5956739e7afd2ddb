"""What a build would refuse is refused earlier, where the cause is: a ragged dim whose
lengths no argument carries at lowering, a fold into a local buffer of symbolic size in
fold_storage. And what is accepted there builds and computes right."""

import numpy as np
import pytest

import quiltc as qc
from quiltc.ir import interp

from support.helpers import check_schedule


def _batch_and_lengths():
    B = qc.var("B", 1, 8)
    return B, qc.ragged_dim("L", B, 9)


def test_a_reduction_over_a_ragged_dim_no_argument_carries_is_refused_at_lowering():
    B, L = _batch_and_lengths()
    X = qc.placeholder((B, 4), "float32", "X")
    S = qc.compute((B,), lambda b: qc.sum(X[b, 0] * 1, axis=qc.reduce_axis(L, "j")), "S")
    with pytest.raises(qc.LanguageError, match=r"ragged dim L sets an extent of S, but no input "
                                               r"or output of the kernel is ragged over L, so "
                                               r"the caller has no way to pass its lengths"):
        qc.Schedule(S)


def test_an_intermediate_ragged_over_a_dim_no_argument_carries_is_refused_at_lowering():
    B, L = _batch_and_lengths()
    X = qc.placeholder((B, 3), "float32", "X")
    Z = qc.compute((B, L, 3), lambda b, l, c: X[b, c] + 1, "Z")
    j = qc.reduce_axis(L, "j")
    S = qc.compute((B,), lambda b: qc.sum(Z[b, j, 0], axis=j), "S")
    with pytest.raises(qc.LanguageError, match=r"ragged dim L sets an extent of Z.*read an input "
                                               r"ragged over it \(qc.placeholder\(\(B, L, "):
        qc.lower(S)


def test_a_reduction_over_a_ragged_dim_an_input_carries_computes_row_sums():
    B, L = _batch_and_lengths()
    X = qc.placeholder((B, L), "float32", "X")
    j = qc.reduce_axis(L, "j")
    S = qc.compute((B,), lambda b: qc.sum(X[b, j], axis=j), "S")
    rows = [np.arange(n, dtype=np.float32) for n in (3, 0, 9)]
    out = interp.run(qc.lower(S), X=qc.RaggedArray.from_list(rows))
    np.testing.assert_array_equal(out["S"], [row.sum() for row in rows])


def test_an_output_ragged_over_a_dim_of_its_own_takes_its_rows_from_out():
    B, L = _batch_and_lengths()
    X = qc.placeholder((B, 3), "float32", "X")
    Y = qc.compute((B, L, 3), lambda b, l, c: X[b, c] + 1, "Y")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = qc.RaggedArray.from_list([np.zeros((2, 3), np.float32), np.zeros((4, 3), np.float32)])
    result = interp.run(qc.lower(Y), X=x, Y=out)["Y"]
    np.testing.assert_array_equal(result.values, np.repeat(x + 1, [2, 4], axis=0))


def _two_stages(size):
    A = qc.placeholder((size, size), "float32", "A")
    P = qc.compute((size, size), lambda i, j: A[i, j] * 2, "P")
    C = qc.compute((size, size), lambda i, j: P[i, j] + 1, "C")
    return A, P, C


def test_a_fold_into_a_slice_of_symbolic_size_is_refused_by_fold_storage():
    # At its largest N would make a slice of a million elements, too long for local storage.
    _, P, C = _two_stages(qc.var("N", 1, 1 << 20))
    sch = qc.Schedule(C)
    row = sch.loops(C)[0]
    sch.compute_at(P, row)
    with pytest.raises(qc.ScheduleError, match=r"one iteration of loop i_1 uses a slice of P "
                                               r"that is N long in dim 1, which is not a "
                                               r"constant") as refused:
        sch.fold_storage(P, row)
    assert "Split the loops that run over dim 1 of P by a constant factor" in str(refused.value)


@pytest.mark.parametrize("size", [1, 5, 64])
def test_a_fold_into_a_row_of_a_size_holds_the_longest_row_and_computes_right(size):
    _, P, C = _two_stages(qc.var("N", 1, 64))
    sch = qc.Schedule(C)
    row = sch.loops(C)[0]
    sch.compute_at(P, row)
    sch.fold_storage(P, row)
    assert "P = alloc[1, 64] float32  # local" in repr(sch.kernel)
    values = np.random.default_rng(size).standard_normal((size, size)).astype(np.float32)
    check_schedule(sch, {"A": values}, {"C": values * 2 + 1})


@pytest.mark.parametrize("size", [1, 5, 8])
def test_a_fold_after_a_constant_split_builds_and_computes_right(size):
    _, P, C = _two_stages(qc.var("N", 1, 64))
    sch = qc.Schedule(C)
    row, column = sch.loops(C)
    outer, _ = sch.split(column, 4)
    sch.compute_at(P, outer)
    sch.fold_storage(P, outer)
    assert "P = alloc[1, 4] float32  # local" in repr(sch.kernel)
    values = np.random.default_rng(size).standard_normal((size, size)).astype(np.float32)
    check_schedule(sch, {"A": values}, {"C": values * 2 + 1})


def test_a_slice_of_one_row_of_a_size_at_least_one_folds_to_one_row():
    _, P, C = _two_stages(qc.var("N", 1, 64))
    sch = qc.Schedule(C)
    row, column = sch.loops(C)
    sch.compute_at(P, column)
    sch.fold_storage(P, column)
    assert "P = alloc[1, 1] float32  # local" in repr(sch.kernel)
    values = np.random.default_rng(3).standard_normal((3, 3)).astype(np.float32)
    check_schedule(sch, {"A": values}, {"C": values * 2 + 1})


def test_a_size_no_argument_shows_is_refused_when_the_program_is_lowered():
    """Only an intermediate has size N: no call could bind it (it used to fail at call
    time, asking for an out= that no output could carry)."""
    size = qc.var("N", 1, 8)
    x = qc.placeholder((4,), "float32", "x")
    scratch = qc.compute((size,), lambda i: x[0] * np.float32(2.0), "t")
    y = qc.compute((4,), lambda i: x[i] + scratch[0], "y")
    with pytest.raises(qc.LanguageError, match=r"size N is used by the program but no input "
                                               r"or output has a dimension of size N"):
        qc.Schedule(y)
