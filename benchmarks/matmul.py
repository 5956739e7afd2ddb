"""Question: how close does a quiltc-scheduled float32 matmul come to numpy (OpenBLAS)?

Runs both in one process with 2 threads on the same inputs, each timed in its own block
after a quiet gap, with OpenBLAS free to pick this CPU's kernel (OPENBLAS_CORETYPE
unset). Prints GFLOP/s, the ratio and each one's share of the FMA peak measured in the
run, and writes benchmarks/results/matmul.json (with the host, the kernels the libraries
ran and the measured limits) and matmul.png. Also times a cold build (empty cache) and a
cached rebuild of the 512^3 kernel.

    python benchmarks/matmul.py [--quick]
"""

import argparse
import os
import sys
import tempfile
import time

import common
import limits

common.unpin_openblas()  # OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE go before numpy loads

import numpy as np  # noqa: E402

import quiltc as qc  # noqa: E402
from quiltc.driver.timing import measure_after_quiet  # noqa: E402
from quiltc.progress import progress_bar  # noqa: E402
from quiltc.recipes import matmul_program, schedule_matmul  # noqa: E402

SHAPES = [(512, 512, 512), (128, 768, 768), (37, 768, 3072)]  # (m, k, n)
QUICK_SHAPES = [(64, 256, 256)]


def build_times():
    """(cold seconds, cached seconds) for building the 512^3 matmul."""
    previous = os.environ.get("QUILTC_CACHE_DIR")
    with tempfile.TemporaryDirectory() as fresh:
        os.environ["QUILTC_CACHE_DIR"] = fresh
        try:
            _, _, c = matmul_program(512, 512, 512)
            start = time.perf_counter()
            qc.build(schedule_matmul(c), target="c")
            cold = time.perf_counter() - start
            start = time.perf_counter()
            qc.build(schedule_matmul(c), target="c")
            cached = time.perf_counter() - start
        finally:
            if previous is None:
                os.environ.pop("QUILTC_CACHE_DIR", None)
            else:
                os.environ["QUILTC_CACHE_DIR"] = previous
    return cold, cached


def time_shapes(shapes, repeats, peak):
    """One row per (m, k, n): each library's GFLOP/s and share of `peak`, and the ratio."""
    rows = []
    rng = np.random.default_rng(0)
    for m, k, n in progress_bar(shapes, description="matmul shapes", unit="shape"):
        _, _, c = matmul_program(m, n, k)
        fn = qc.build(schedule_matmul(c), target="c")
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        out = np.empty((m, n), np.float32)
        np.testing.assert_allclose(fn(A=a, B=b), a @ b, rtol=1e-3, atol=1e-3)
        quiltc_s = measure_after_quiet(lambda: fn(A=a, B=b, out={"C": out}), repeats=repeats)
        numpy_s = measure_after_quiet(lambda: np.matmul(a, b, out=out), repeats=repeats)
        gflop = 2.0 * m * n * k / 1e9
        rows.append({
            "m": m, "k": k, "n": n,
            "quiltc_gflops": round(gflop / quiltc_s, 2),
            "numpy_gflops": round(gflop / numpy_s, 2),
            "ratio": round(numpy_s / quiltc_s, 3),
            "quiltc_peak_share": round(gflop / quiltc_s / peak, 3),
            "numpy_peak_share": round(gflop / numpy_s / peak, 3),
        })
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one small shape, 3 repeats, results to a temporary folder")
    arguments = parser.parse_args()
    folder = common.output_folder(arguments.quick)
    measured = limits.measure_limits(repeats=2 if arguments.quick else 5)
    common.limit_threads()
    print(f"threads: {common.THREADS}; measured limits: FMA peak {measured['peak_gflops']} "
          f"GFLOP/s, DRAM {measured['bandwidth_gbs']} GB/s")
    rows = time_shapes(QUICK_SHAPES if arguments.quick else SHAPES,
                       3 if arguments.quick else 9, measured["peak_gflops"])
    cold, cached = build_times()
    print(f"numpy uses {common.blas_description()}")
    print(f"\n{'m':>5} {'k':>5} {'n':>5} {'quiltc GFLOP/s':>15} {'numpy GFLOP/s':>14} {'ratio':>7} "
          f"{'quiltc/peak':>12} {'numpy/peak':>11}")
    for row in rows:
        print(f"{row['m']:>5} {row['k']:>5} {row['n']:>5} {row['quiltc_gflops']:>15.1f} "
              f"{row['numpy_gflops']:>14.1f} {row['ratio']:>7.2f} "
              f"{row['quiltc_peak_share']:>12.1%} {row['numpy_peak_share']:>11.1%}")
    print(f"\nbuild of the 512^3 kernel: cold {cold:.2f} s, cached {cached * 1e3:.1f} ms")
    path = common.write_json("matmul", {
        "threads": common.THREADS,
        "blas": common.blas_description(),
        "shapes": rows,
        "build": {"cold_s": round(cold, 3), "cached_ms": round(cached * 1e3, 2)},
        "limits": measured,
        "host": common.host_report(),
    }, folder)
    print(f"wrote {path}")
    plt = common.pyplot()
    if plt is not None:
        labels = [f"{r['m']}x{r['k']}x{r['n']}" for r in rows]
        x = np.arange(len(rows))
        figure, axes = plt.subplots(figsize=(7, 4))
        axes.bar(x - 0.2, [r["numpy_gflops"] for r in rows], 0.4, label="numpy (OpenBLAS)")
        axes.bar(x + 0.2, [r["quiltc_gflops"] for r in rows], 0.4, label="quiltc")
        axes.axhline(measured["peak_gflops"], color="black", linestyle="--",
                     label="FMA peak, measured")
        axes.set_xticks(x, labels)
        axes.set_ylabel("GFLOP/s (2 threads)")
        axes.set_title("float32 matmul")
        axes.legend()
        figure.tight_layout()
        figure.savefig(folder / "matmul.png", dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
