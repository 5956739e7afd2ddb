"""The compiled callable: argument checks (by type and message), array protocols,
non-contiguous inputs, outputs allocated or written in place."""

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir.errors import ShapeError

from support import programs
from support.helpers import ArrayInterfaceOnly, DLPackOnly, random_array, require_cc


@pytest.fixture(autouse=True)
def _compiler():
    require_cc()


def _matmul():
    C = programs.matmul(qc.var("M", 1, 512), 4, qc.var("N", 1, 512))
    return qc.build(qc.lower(C, name="small_matmul"))


@pytest.fixture(scope="module")
def matmul():
    require_cc()
    return _matmul()


def _arrays(m=3, n=5, seed=0):
    rng = np.random.default_rng(seed)
    return random_array(rng, (m, 4)), random_array(rng, (4, n))


@given(m=st.sampled_from([1, 2, 3, 7, 31]), n=st.sampled_from([1, 5, 13]), seed=st.integers(0, 99))
def test_single_output_is_returned_as_an_array(matmul, m, n, seed):
    a, b = _arrays(m, n, seed)
    c = matmul(A=a, B=b)
    assert isinstance(c, np.ndarray) and c.dtype == np.float32 and c.shape == (m, n)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)


def test_attributes_name_the_source_kernel_and_library(matmul):
    assert "void small_matmul(float* restrict A" in matmul.source
    assert matmul.kernel.name == "small_matmul"
    assert os.path.isfile(matmul.library_path) and matmul.library_path.endswith(".so")
    assert matmul.inputs == ("A", "B") and matmul.outputs == ("C",)


def test_non_contiguous_inputs_are_made_contiguous(matmul):
    a, b = _arrays(6, 10)
    wide_a = np.asfortranarray(a)
    strided_b = np.repeat(b, 2, axis=1)[:, ::2]
    assert not strided_b.flags.c_contiguous and not wide_a.flags.c_contiguous
    np.testing.assert_allclose(matmul(A=wide_a, B=strided_b), a @ b, rtol=1e-5, atol=1e-5)


def test_dlpack_and_array_protocol_inputs(matmul):
    a, b = _arrays()
    got = matmul(A=DLPackOnly(a), B=ArrayInterfaceOnly(b))
    np.testing.assert_allclose(got, a @ b, rtol=1e-5, atol=1e-5)


def test_out_writes_in_place_and_returns_the_same_array(matmul):
    a, b = _arrays()
    c = np.full((3, 5), np.nan, np.float32)
    result = matmul(A=a, B=b, out={"C": c})
    assert result is c
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arguments, message", [
    (lambda a, b: {"A": a.astype(np.float64), "B": b},
     r"argument 'A' has dtype float64, expected float32; convert it with \.astype"),
    (lambda a, b: {"A": a.reshape(-1), "B": b},
     r"argument 'A' has rank 1 \(shape \(12,\)\), expected rank 2 \(\(M, 4\)\)"),
    (lambda a, b: {"A": a, "B": np.zeros((5, 5), np.float32)},
     r"argument 'B' has shape \(5, 5\), expected \(4, 5\)"),
    (lambda a, b: {"A": np.zeros((600, 4), np.float32), "B": b},
     r"size M = 600 is outside its declared range \[1, 512\]"),
    (lambda a, b: {"A": a},
     r"missing arguments B; expected inputs A, B"),
    (lambda a, b: {"A": a, "B": b, "Z": b},
     r"unknown arguments Z; expected inputs A, B"),
    (lambda a, b: {"A": a, "B": b, "C": np.zeros((3, 5), np.float32)},
     r"unknown arguments C; expected inputs A, B; pass outputs through out=\{'C': array\}"),
    (lambda a, b: {"A": "not an array", "B": b},
     r"argument 'A' is a str; pass a numpy array or an object with __dlpack__ or __array__"),
])
def test_bad_arguments_raise_shape_errors_naming_them(matmul, arguments, message):
    a, b = _arrays()
    with pytest.raises(ShapeError, match=message):
        matmul(**arguments(a, b))


def test_checked_sizes_are_kept_per_signature_and_never_mixed_up():
    # Names, dtypes and shapes decide the sizes and the checks: calls that alternate
    # between signatures get each one's own sizes, and a new signature is checked anew.
    kernel = _matmul()
    for m, n in [(3, 5), (7, 1), (3, 5), (7, 1)]:
        a, b = _arrays(m, n, seed=m)
        c = kernel(A=a, B=b)
        assert c.shape == (m, n)
        np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)
    with pytest.raises(ShapeError, match=r"argument 'C' has shape \(3, 6\), expected \(3, 5\)"):
        kernel(A=a[:3].copy(), B=_arrays(3, 5)[1], out={"C": np.zeros((3, 6), np.float32)})
    with pytest.raises(ShapeError, match=r"size M = 600 is outside its declared range"):
        kernel(A=np.zeros((600, 4), np.float32), B=b)


@pytest.mark.parametrize("out, message", [
    (np.zeros((5, 3), np.float32).T, r"out\['C'\] must be a writeable C-contiguous array"),
    (np.zeros((3, 5), np.float64), r"argument 'C' has dtype float64, expected float32"),
    (np.zeros((3, 6), np.float32), r"argument 'C' has shape \(3, 6\), expected \(3, 5\)"),
])
def test_bad_out_arrays_raise_shape_errors(matmul, out, message):
    a, b = _arrays()
    with pytest.raises(ShapeError, match=message):
        matmul(A=a, B=b, out={"C": out})


def test_read_only_out_arrays_and_unknown_out_names_are_refused(matmul):
    a, b = _arrays()
    frozen = np.zeros((3, 5), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ShapeError, match=r"out\['C'\] must be a writeable C-contiguous"):
        matmul(A=a, B=b, out={"C": frozen})
    with pytest.raises(ShapeError, match=r"out= names D, which are not outputs; the outputs are C"):
        matmul(A=a, B=b, out={"D": frozen})
    with pytest.raises(ShapeError, match=r"out= takes a dict of output name -> array"):
        matmul(A=a, B=b, out=np.zeros((3, 5), np.float32))


def test_sizes_fixed_only_by_an_output_come_from_out():
    n = qc.var("n", 1, 64)
    ramp = qc.compute((n,), lambda i: qc.cast(i, "float32") * 0.5, "ramp")
    fn = qc.build(qc.lower(ramp, name="ramp"))
    with pytest.raises(ShapeError, match=r"sizes n are not fixed by any input; pass the outputs"):
        fn()
    out = np.empty(7, np.float32)
    fn(out={"ramp": out})
    np.testing.assert_array_equal(out, np.arange(7, dtype=np.float32) * np.float32(0.5))


def test_multiple_outputs_come_back_as_a_dict():
    n = qc.var("n", 1, 64)
    x = qc.placeholder((n,), "float32", "x")
    double = qc.compute((n,), lambda i: x[i] * 2.0, "double")
    count = qc.compute((n,), lambda i: qc.cast(x[i] > 0.0, "int32"), "positive")
    fn = qc.build(qc.lower([double, count], name="two_outputs"))
    x_value = np.array([-1.5, 0.0, 2.0], np.float32)
    given_double = np.empty(3, np.float32)
    got = fn(x=x_value, out={"double": given_double})
    assert set(got) == {"double", "positive"} and got["double"] is given_double
    np.testing.assert_array_equal(got["double"], x_value * 2)
    np.testing.assert_array_equal(got["positive"], np.array([0, 0, 1], np.int32))


def test_a_size_times_a_constant_is_read_from_the_array():
    tokens = qc.var("T", 1, 32)
    x = qc.placeholder((4 * tokens, 3), "float32", "X")
    doubled = qc.compute((4 * tokens, 3), lambda i, j: x[i, j] + x[i, j], "Y")
    fn = qc.build(qc.lower(doubled, name="doubled"))
    values = np.arange(24, dtype=np.float32).reshape(8, 3)
    np.testing.assert_array_equal(fn(X=values), values + values)
    with pytest.raises(ShapeError, match=r"argument 'X' has 6 along a dimension of 4\*T, "
                                         r"which is not a multiple of 4"):
        fn(X=np.zeros((6, 3), np.float32))
