"""The C math helpers against numpy: accuracy in ulps, special values, and SIMD."""

import subprocess

import numpy as np

import quiltc as qc

from support.helpers import require_cc


def _exp_kernel():
    n = qc.var("n", 1, 1 << 24)
    x = qc.placeholder((n,), "float32", "x")
    y = qc.compute((n,), lambda i: qc.exp(x[i]), "y")
    sch = qc.Schedule(y)
    sch.vectorize(sch.loops(y)[0])
    return qc.build(sch, target="c")


def test_expf_is_within_two_ulp_of_the_correctly_rounded_result():
    require_cc()
    values = np.linspace(-103.9, 88.7, 2_000_001, dtype=np.float32)
    got = _exp_kernel()(x=values).astype(np.float64)
    exact = np.exp(values.astype(np.float64))
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got - exact) / ulp) <= 2.0


def test_expf_special_values_match_numpy():
    require_cc()
    special = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 88.73, 89.0, -104.0, -87.5, -100.0],
                       dtype=np.float32)
    with np.errstate(over="ignore", under="ignore"):
        expected = np.exp(special)
    np.testing.assert_allclose(_exp_kernel()(x=special), expected, rtol=3e-7, atol=0)


def test_expf_in_a_simd_loop_is_vectorized(tmp_path):
    require_cc()
    source = tmp_path / "exp.c"
    source.write_text(_exp_kernel().source)
    report = subprocess.run(
        ["cc", "-O3", "-march=native", "-fopenmp", "-std=c99", "-ffp-contract=fast",
         "-fno-tree-pre", "-c", str(source), "-o", str(tmp_path / "exp.o"),
         "-fopt-info-vec-optimized"],
        capture_output=True, text=True, check=True,
    )
    assert "loop vectorized" in report.stderr
