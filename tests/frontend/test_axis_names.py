"""Names in the tensor language: each reduce axis and compute index keeps its own extent
whatever it is called, and each size its own range; one size name with two ranges in one
program is refused where the two meet."""

import numpy as np
import pytest

import quiltc as qc
from quiltc.ir import interp

from support.helpers import check_schedule


def _arange(n):
    return np.arange(n, dtype=np.float32)


def test_two_reduce_axes_with_one_name_keep_their_own_extents():
    A = qc.placeholder((8,), "float32", "A")
    k1 = qc.reduce_axis(4, "k")
    qc.reduce_axis(8, "k")  # the same name with another extent, declared after k1
    S1 = qc.compute((1,), lambda i: qc.sum(A[k1], axis=k1), "S1")
    check_schedule(qc.Schedule(S1), {"A": _arange(8)}, {"S1": np.array([6.0], np.float32)})


def test_one_program_reducing_over_both_axes_computes_both():
    A = qc.placeholder((8,), "float32", "A")
    k1, k2 = qc.reduce_axis(4, "k"), qc.reduce_axis(8, "k")
    S1 = qc.compute((1,), lambda i: qc.sum(A[k1], axis=k1), "S1")
    S2 = qc.compute((1,), lambda i: qc.sum(A[k2], axis=k2), "S2")
    both = qc.compute((1,), lambda i: S1[i] * 100 + S2[i], "both")
    reference = {"both": np.array([6.0 * 100 + 28.0], np.float32)}
    check_schedule(qc.Schedule(both), {"A": _arange(8)}, reference)
    out = interp.run(qc.lower([S1, S2]), A=_arange(8))
    assert out["S1"].tolist() == [6.0] and out["S2"].tolist() == [28.0]


def test_a_reduce_axis_named_like_the_compute_index_is_its_own_variable():
    X = qc.placeholder((3, 5), "float32", "X")
    column = qc.reduce_axis(5, "k")
    sums = qc.compute((3,), lambda k: qc.sum(X[k, column], axis=column), "sums")
    values = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    check_schedule(qc.Schedule(sums), {"X": values}, {"sums": values.sum(axis=1)})


def test_a_reduce_axis_named_like_a_size_or_a_tensor_computes_right():
    n = qc.var("N", 1, 8)
    X = qc.placeholder((4, n), "float32", "X")
    over_n = qc.reduce_axis(n, "N")
    sums = qc.compute((4,), lambda i: qc.sum(X[i, over_n], axis=over_n), "sums")
    over_x = qc.reduce_axis(4, "X")
    total = qc.compute((1,), lambda i: qc.sum(sums[over_x], axis=over_x), "total")
    values = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    check_schedule(qc.Schedule(total), {"X": values},
                   {"total": np.array([values.sum()], np.float32)})


def test_two_vars_with_one_name_and_one_range_are_one_size():
    x = qc.placeholder((qc.var("N", 1, 8),), "float32", "x")
    y = qc.placeholder((qc.var("N", 1, 8),), "float32", "y")
    z = qc.compute((qc.var("N", 1, 8),), lambda i: x[i] + y[i], "z")
    out = interp.run(qc.lower(z), x=_arange(5), y=_arange(5))
    np.testing.assert_array_equal(out["z"], 2 * _arange(5))


def test_a_size_keeps_the_range_it_was_declared_with():
    small = qc.var("N", 1, 4)
    qc.var("N", 1, 100)  # declared later under the same name, never used with x
    x = qc.placeholder((small,), "float32", "x")
    y = qc.compute((small,), lambda i: x[i] * 2, "y")
    kernel = qc.lower(y)
    assert [(str(v.symbol), v.lo, v.hi) for v in kernel.shape_vars] == [("N", 1, 4)]
    with pytest.raises(qc.ShapeError, match=r"size N = 5 is outside its declared range \[1, 4\]"):
        interp.run(kernel, x=_arange(5))


def test_one_size_name_with_two_ranges_in_one_tensor_is_refused():
    wide, narrow = qc.var("N", 1, 64), qc.var("N", 1, 32)
    with pytest.raises(qc.LanguageError, match=r"size N is declared with ranges \[1, 64\] and "
                                               r"\[1, 32\] in one program; declare each"):
        qc.placeholder((wide, narrow), "float32", "x")


def test_one_size_name_with_two_ranges_in_one_compute_is_refused():
    wide, narrow = qc.var("N", 1, 64), qc.var("N", 1, 32)
    x = qc.placeholder((wide,), "float32", "x")
    y = qc.placeholder((narrow,), "float32", "y")
    with pytest.raises(qc.LanguageError, match=r"size N is declared with ranges \[1, 64\] and "
                                               r"\[1, 32\]"):
        qc.compute((wide,), lambda i: x[i] + y[i], "z")


def test_one_size_name_with_two_ranges_across_the_program_is_refused_at_lowering():
    wide, narrow = qc.var("N", 1, 64), qc.var("N", 1, 32)
    x = qc.placeholder((wide,), "float32", "x")
    y = qc.compute((wide,), lambda i: x[narrow - 1 - i], "y")
    with pytest.raises(qc.LanguageError, match=r"size N is declared with ranges \[1, 64\] and "
                                               r"\[1, 32\]"):
        qc.Schedule(y)


def test_a_reduce_axis_used_outside_its_reduction_is_refused():
    A = qc.placeholder((4,), "float32", "A")
    k = qc.reduce_axis(4, "k")
    y = qc.compute((4,), lambda i: A[k] + 1, "y")
    with pytest.raises(qc.LanguageError, match=r"y uses index k, which is neither one of its "
                                               r"own axes nor an axis it reduces over"):
        qc.lower(y)


def test_a_compute_index_is_not_a_reduce_axis():
    A = qc.placeholder((4,), "float32", "A")
    with pytest.raises(qc.LanguageError, match=r"i is not a reduce axis; make it with "
                                               r"qc.reduce_axis"):
        qc.compute((4,), lambda i: qc.sum(A[i], axis=i), "y")
