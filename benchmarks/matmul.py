"""Question: how close does a quiltc-scheduled float32 matmul come to numpy (OpenBLAS)?

Runs both side by side in one process with 2 threads on the same inputs, prints GFLOP/s
and the ratio per shape, and writes benchmarks/results/matmul.json and matmul.png. Also
times a cold build (empty cache) and a cached rebuild of the 512^3 kernel.
"""

import sys
import tempfile
import time

import common  # noqa: F401 (fixes thread counts before numpy loads)
import numpy as np

import quiltc as qc
from quiltc.recipes import matmul_program, schedule_matmul
from quiltc.timing import measure

SHAPES = [(512, 512, 512), (128, 768, 768), (37, 768, 3072)]  # (m, k, n)


def build_times():
    """(cold seconds, cached seconds) for building the 512^3 matmul."""
    import os

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


def main():
    print(f"threads: {common.THREADS}; numpy uses {common.blas_description()}")
    rows = []
    rng = np.random.default_rng(0)
    for m, k, n in SHAPES:
        _, _, c = matmul_program(m, n, k)
        fn = qc.build(schedule_matmul(c), target="c")
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        out = np.empty((m, n), np.float32)
        np.testing.assert_allclose(fn(A=a, B=b), a @ b, rtol=1e-3, atol=1e-3)
        quiltc_s = measure(lambda: fn(A=a, B=b, out={"C": out}), repeats=9)
        numpy_s = measure(lambda: np.matmul(a, b, out=out), repeats=9)
        flops = 2.0 * m * n * k
        rows.append({
            "m": m, "k": k, "n": n,
            "quiltc_gflops": round(flops / quiltc_s / 1e9, 2),
            "numpy_gflops": round(flops / numpy_s / 1e9, 2),
            "ratio": round(numpy_s / quiltc_s, 3),
        })
    cold, cached = build_times()
    print(f"\n{'m':>5} {'k':>5} {'n':>5} {'quiltc GFLOP/s':>15} {'numpy GFLOP/s':>14} {'ratio':>7}")
    for row in rows:
        print(f"{row['m']:>5} {row['k']:>5} {row['n']:>5} {row['quiltc_gflops']:>15.1f} "
              f"{row['numpy_gflops']:>14.1f} {row['ratio']:>7.2f}")
    print(f"\nbuild of the 512^3 kernel: cold {cold:.2f} s, cached {cached * 1e3:.1f} ms")
    path = common.write_json("matmul", {
        "threads": common.THREADS,
        "blas": common.blas_description(),
        "shapes": rows,
        "build": {"cold_s": round(cold, 3), "cached_ms": round(cached * 1e3, 2)},
    })
    print(f"wrote {path}")
    plt = common.pyplot()
    if plt is not None:
        labels = [f"{r['m']}x{r['k']}x{r['n']}" for r in rows]
        x = np.arange(len(rows))
        figure, axes = plt.subplots(figsize=(7, 4))
        axes.bar(x - 0.2, [r["numpy_gflops"] for r in rows], 0.4, label="numpy (OpenBLAS)")
        axes.bar(x + 0.2, [r["quiltc_gflops"] for r in rows], 0.4, label="quiltc")
        axes.set_xticks(x, labels)
        axes.set_ylabel("GFLOP/s (2 threads)")
        axes.set_title("float32 matmul")
        axes.legend()
        figure.tight_layout()
        figure.savefig(common.RESULTS / "matmul.png", dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
