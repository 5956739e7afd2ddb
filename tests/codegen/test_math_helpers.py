"""The C math helpers against numpy and math: accuracy, special values, and SIMD."""

import functools
import math
import platform
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.codegen.cuda import render_cuda
from quiltc.codegen.mcu import render_mcu

from support.helpers import require_cc
from support.tiers import examples

FUNCTIONS = {"exp": qc.exp, "exp_nonpositive": qc.exp_nonpositive, "tanh": qc.tanh,
             "erf": qc.erf}
REFERENCES = {"tanh": math.tanh, "erf": math.erf}
# The promise to users: quiltc_tanhf and quiltc_erff are this close to tanh and erf,
# relatively, wherever |erf(x)| >= 1e-30.
RTOL = 2e-6
# What they achieve: every non-negative float32 (negatives mirror them bit for bit)
# measured against libm's double tanh and erf gave 1.82e-7 and 1.68e-7. A tighter check
# than RTOL, so a mistyped coefficient fails even where it stays inside the promise.
MEASURED = 2.5e-7
# Below this erf loses relative accuracy to subnormal rounding of its result.
ERF_FLOOR = 1e-30


@functools.cache
def _kernel(function, dtype="float32"):
    n = qc.var("n", 1, 1 << 24)
    x = qc.placeholder((n,), dtype, "x")
    y = qc.compute((n,), lambda i: FUNCTIONS[function](x[i]), "y")
    sch = qc.Schedule(y)
    sch.vectorize(sch.loops(y)[0])
    return qc.build(sch, target="c")


def _reference(function, values):
    """`function` of float32 `values` in float64, by the math module."""
    return np.array([REFERENCES[function](v) for v in values.astype(np.float64).tolist()])


def _relative_error(function, values):
    got = _kernel(function)(x=values).astype(np.float64)
    exact = _reference(function, values)
    kept = np.abs(exact) >= (ERF_FLOOR if function == "erf" else 0.0)
    kept &= exact != 0
    return np.abs(got[kept] - exact[kept]) / np.abs(exact[kept])


def _sweep():
    """Both signs of a fine linear grid over where tanh and erf bend, and of magnitudes
    spread evenly in exponent over every normal and subnormal float32."""
    linear = np.linspace(-6.0, 6.0, 1_000_001, dtype=np.float32)
    magnitudes = np.logspace(-45.0, 38.5, 500_000).astype(np.float32)
    return np.concatenate([linear, magnitudes, -magnitudes])


def test_expf_is_within_two_ulp_of_the_correctly_rounded_result():
    require_cc()
    values = np.linspace(-103.9, 88.7, 2_000_001, dtype=np.float32)
    got = _kernel("exp")(x=values).astype(np.float64)
    exact = np.exp(values.astype(np.float64))
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got - exact) / ulp) <= 2.0


def test_expf_special_values_match_numpy():
    require_cc()
    special = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 88.73, 89.0, -104.0, -87.5, -100.0],
                       dtype=np.float32)
    with np.errstate(over="ignore", under="ignore"):
        expected = np.exp(special)
    np.testing.assert_allclose(_kernel("exp")(x=special), expected, rtol=3e-7, atol=0)


def test_exp_of_a_nonpositive_argument_gives_the_bits_of_exp_up_to_44():
    # Its one exponent field and fixed 2^-64 round subnormal results as exp's two do.
    require_cc()
    values = np.concatenate([np.linspace(-110.0, 44.0, 2_000_001, dtype=np.float32),
                             np.array([np.nan, -np.inf, -0.0, 0.0, -87.4, -103.97, 44.0],
                                      dtype=np.float32)])
    got, want = _kernel("exp_nonpositive")(x=values), _kernel("exp")(x=values)
    number = ~np.isnan(want)
    assert np.isnan(got[~number]).all()
    np.testing.assert_array_equal(got[number].view(np.uint32), want[number].view(np.uint32))


@pytest.mark.parametrize("function", ["tanh", "erf"])
def test_helper_is_relatively_accurate_over_a_dense_sweep(function):
    require_cc()
    assert np.max(_relative_error(function, _sweep())) <= MEASURED


@pytest.mark.parametrize("function", ["tanh", "erf"])
def test_helper_special_values(function):
    require_cc()
    values = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 4.0, 9.5, 44.5, 88.8,
                       1e10, 3.4028235e38, -3.4028235e38, -20.0], dtype=np.float32)
    expected = np.array([np.nan, np.nan, 1, -1, 0.0, -0.0, 1.0 if function == "erf" else
                         np.float32(math.tanh(4.0)), 1, 1, 1, 1, 1, -1, -1], dtype=np.float32)
    got = _kernel(function)(x=values)
    np.testing.assert_array_equal(got, expected)
    # Saturation is exactly +-1, not the float below it (compared exactly above), and
    # zeros keep their sign, which equality cannot see.
    np.testing.assert_array_equal(np.signbit(got[4:6]), [False, True])


def test_tanh_of_tiny_and_subnormal_values_is_the_value_itself():
    require_cc()
    tiny = np.array([1e-45, -1e-45, 1e-40, -3e-39, 1.1754944e-38, 1e-30, -2e-20, 1e-7],
                    dtype=np.float32)
    np.testing.assert_array_equal(_kernel("tanh")(x=tiny), tiny)


def test_erf_of_tiny_values_is_two_over_root_pi_times_them():
    require_cc()
    tiny = np.array([1e-45, -1e-45, 1e-40, -3e-39, 1.1754944e-38, 1e-30, -2e-20, 1e-7],
                    dtype=np.float32)
    got = _kernel("erf")(x=tiny).astype(np.float64)
    exact = 2 / math.sqrt(math.pi) * tiny.astype(np.float64)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(exact))
    # Subnormal results round to a multiple of the smallest subnormal.
    np.testing.assert_allclose(got, exact, rtol=RTOL, atol=1.5e-45)


@pytest.mark.parametrize("function", ["tanh", "erf"])
@settings(max_examples=examples(25))
@given(values=st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=64))
def test_helper_matches_math_on_drawn_float32(function, values):
    require_cc()
    values = np.array(values, dtype=np.float32)
    got = _kernel(function)(x=values).astype(np.float64)
    np.testing.assert_allclose(got, _reference(function, values), rtol=RTOL, atol=ERF_FLOOR)


@pytest.mark.parametrize("function", ["exp", "tanh", "erf"])
def test_helper_in_a_simd_loop_is_vectorized(function, tmp_path):
    require_cc()
    source = tmp_path / f"{function}.c"
    source.write_text(_kernel(function).source)
    # AVX2 as well as this machine's widest ISA: selects that AVX-512's mask registers
    # take in their stride become branches on AVX2.
    isas = ["native"] + (["x86-64-v3"] if platform.machine() == "x86_64" else [])
    for isa in isas:
        report = subprocess.run(
            ["cc", "-O3", f"-march={isa}", "-fopenmp", "-std=c99", "-ffp-contract=fast",
             "-fno-tree-pre", "-c", str(source), "-o", str(tmp_path / f"{function}.o"),
             "-fopt-info-vec-optimized"],
            capture_output=True, text=True, check=True,
        )
        assert "loop vectorized" in report.stderr, isa


def test_float64_and_other_targets_keep_their_own_tanh_and_erf():
    require_cc()
    for function in ("tanh", "erf"):
        source = _kernel(function, "float64").source
        assert f"{function}(x[i])" in source and "quiltc_" not in source
        x = qc.placeholder((16,), "float32", "x")
        kernel = qc.lower(qc.compute((16,), lambda i: FUNCTIONS[function](x[i]), "y"))
        # CUDA's tanhf and erff are fast on the GPU; a Cortex-M has no SIMD to gain.
        assert f"{function}f(x[i])" in render_cuda(kernel)
        assert f"{function}f(x[i])" in render_mcu(kernel)


@functools.cache
def _sigmoid_module():
    """quiltc_sigmoidf over a vector, through the graph (the tensor language has no
    sigmoid; graphs lower theirs to the C helper)."""
    graph = qc.graph.Graph()
    x = graph.input("x", (qc.var("n", 1, 1 << 24),))
    graph.output(graph.sigmoid(x))
    return qc.graph.compile(graph, cache=False, record=False)


def test_sigmoid_is_within_measured_accuracy_and_keeps_special_values():
    """t / (1 + t) below 0, 1 / (1 + t) above, t = exp(-|x|): as accurate as the helpers
    above wherever the result is a normal float32, 0 or 1 at the far ends, NaN for NaN."""
    require_cc()
    values = np.concatenate([np.linspace(-100.0, 100.0, 2_000_001, dtype=np.float32),
                             -np.logspace(-45.0, 1.9, 100_000).astype(np.float32)])
    got = _sigmoid_module()(x=values).astype(np.float64)
    exact = 1.0 / (1.0 + np.exp(-values.astype(np.float64)))
    normal = exact >= np.finfo(np.float32).tiny
    assert np.max(np.abs(got[normal] - exact[normal]) / exact[normal]) <= MEASURED
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 200.0, -200.0], np.float32)
    np.testing.assert_array_equal(_sigmoid_module()(x=special),
                                  np.array([np.nan, 1.0, 0.0, 0.5, 0.5, 1.0, 0.0], np.float32))
