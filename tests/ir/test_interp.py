"""The reference interpreter against numpy, and its guards against silent errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import interp
from quiltc.ir import nodes as ir
from quiltc.ir.errors import VerifyError
from quiltc.ir.index import symbol

from support import programs
from support.tiers import examples


@settings(max_examples=examples(25))
@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 7), st.integers(0, 2**31))
def test_matmul_matches_numpy(m, n, k, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    out = interp.run(qc.lower(programs.matmul(m, k, n, symbolic=True)), A=a, B=b)["C"]
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)
    assert out.dtype == np.float32


def test_float32_arithmetic_rounds_as_float32():
    n = qc.var("n", 1, 8)
    x = qc.placeholder((n,), "float32", "x")
    y = qc.compute((n,), lambda i: x[i] * np.float32(3.0) + np.float32(1e-8), "y")
    values = np.array([0.1, 1 / 3, 7.7], dtype=np.float32)
    out = interp.run(qc.lower(y), x=values)["y"]
    np.testing.assert_array_equal(out, values * np.float32(3.0) + np.float32(1e-8))


def test_int8_arithmetic_wraps_and_casts_truncate():
    n = qc.var("n", 1, 8)
    x = qc.placeholder((n,), "float32", "x")
    y = qc.compute((n,), lambda i: qc.cast(x[i], "int8") * qc.cast(x[i], "int8"), "y")
    values = np.array([-2.7, 3.9, 20.0], dtype=np.float32)
    out = interp.run(qc.lower(y), x=values)["y"]
    expected = (np.trunc(values).astype(np.int8).astype(np.int32) ** 2).astype(np.int8)
    np.testing.assert_array_equal(out, expected)


def test_out_of_bounds_access_is_reported_not_wrapped():
    i = symbol("i")
    a = ir.Buffer("a", qc.float32, (4,))
    out = ir.Buffer("out", qc.float32, (4,))
    body = ir.For(i, 4, ir.Store(out, (i,), ir.Load(a, (i - 1,))))
    kernel = ir.Kernel("shift", (a, out), body, ("out",))
    with pytest.raises(VerifyError, match="outside its 4 elements"):
        interp.run(kernel, a=np.zeros(4, np.float32))


def test_unwritten_output_elements_show_as_nan():
    i = symbol("i")
    a = ir.Buffer("a", qc.float32, (4,))
    out = ir.Buffer("out", qc.float32, (4,))
    body = ir.For(i, 3, ir.Store(out, (i,), ir.Load(a, (i,))))
    kernel = ir.Kernel("partial", (a, out), body, ("out",))
    result = interp.run(kernel, a=np.ones(4, np.float32))["out"]
    assert np.isnan(result[3]) and np.all(result[:3] == 1)
