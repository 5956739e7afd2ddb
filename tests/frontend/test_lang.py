"""The tensor language: what it lowers to, and the errors it gives for misuse."""

import numpy as np
import pytest

import quiltc as qc
from quiltc.ir import interp


def test_loop_names_come_from_the_lambda():
    n = qc.var("n", 1, 8)
    x = qc.placeholder((n, 3), "float32", "x")
    y = qc.compute((n, 3), lambda row, col: x[row, col] * 2, "y")
    sch = qc.Schedule(y)
    assert [loop.name for loop in sch.loops(y)] == ["row", "col"]


def test_repeated_axis_names_are_made_unique_per_stage():
    x = qc.placeholder((4,), "float32", "x")
    y = qc.compute((4,), lambda i: x[i] + 1, "y")
    z = qc.compute((4,), lambda i: y[i] * 2, "z")
    sch = qc.Schedule(z)
    assert [loop.name for loop in sch.loops(y)] == ["i"]
    assert [loop.name for loop in sch.loops(z)] == ["i_1"]


def test_index_conditions_and_casts_compute_like_numpy():
    n = qc.var("n", 1, 16)
    x = qc.placeholder((n, n), "float32", "x")
    lower = qc.compute((n, n), lambda i, j: qc.where(j <= i, x[i, j], 0.0), "lower")
    counted = qc.compute((n,), lambda i: qc.cast(i, "float32") + lower[i, i], "counted")
    values = np.random.default_rng(0).standard_normal((5, 5)).astype(np.float32)
    out = interp.run(qc.lower([lower, counted]), x=values)
    np.testing.assert_array_equal(out["lower"], np.tril(values))
    np.testing.assert_allclose(out["counted"], np.arange(5, dtype=np.float32) + np.diag(values))


def test_a_size_without_a_range_is_refused():
    import sympy

    with pytest.raises(qc.LanguageError, match=r"size Q has no range; declare it with qc.var\('Q'"):
        qc.placeholder((sympy.Symbol("Q", integer=True, nonnegative=True),), "float32", "x")


def test_mixed_dtypes_need_a_cast():
    x = qc.placeholder((4,), "float32", "x")
    y = qc.placeholder((4,), "int32", "y")
    with pytest.raises(qc.LanguageError, match=r"dtypes float32 and int32; cast one"):
        qc.compute((4,), lambda i: x[i] + y[i], "z")


def test_compute_needs_one_index_per_dimension():
    x = qc.placeholder((4, 4), "float32", "x")
    with pytest.raises(qc.LanguageError, match="needs a function of 2 indices"):
        qc.compute((4, 4), lambda i: x[i, i], "z")


def test_wrong_number_of_indices():
    x = qc.placeholder((4, 4), "float32", "x")
    with pytest.raises(qc.LanguageError, match="x has rank 2 but was indexed with 1"):
        qc.compute((4,), lambda i: x[i], "z")


def test_reductions_cannot_nest_inside_expressions():
    x = qc.placeholder((4, 4), "float32", "x")
    k = qc.reduce_axis(4, "k")
    with pytest.raises(qc.LanguageError, match="whole body of a compute"):
        qc.compute((4,), lambda i: qc.where(i > 0, qc.sum(x[i, k], axis=k), 0.0), "z")


def test_unsupported_dtype():
    with pytest.raises(qc.LanguageError, match="dtype 'complex64' is not supported"):
        qc.placeholder((4,), "complex64", "x")


def test_two_tensors_with_one_name():
    x = qc.placeholder((4,), "float32", "x")
    y = qc.compute((4,), lambda i: x[i] + 1, "x")
    with pytest.raises(qc.LanguageError, match="both named 'x'"):
        qc.lower(y)


def test_a_placeholder_is_not_an_output():
    x = qc.placeholder((4,), "float32", "x")
    with pytest.raises(qc.LanguageError, match="output x is a placeholder"):
        qc.lower(x)
