"""`python -m quiltc.demo` (or `make demo`): declare, schedule, print, build, run and time
a matmul and a row softmax, checked against numpy."""

import os
import textwrap

# Set before the first kernel loads OpenMP: spinning OpenMP threads would slow the numpy
# runs timed beside them. A caller's own settings win.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np  # noqa: E402 (after the OpenMP settings above)

from . import build  # noqa: E402
from .recipes import matmul_program, schedule_matmul, schedule_softmax, softmax_program  # noqa: E402
from .timing import measure  # noqa: E402


def _banner(title):
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))


def _show(sch, fn, source_lines=40):
    print("schedule trace (replayable Python):")
    print(textwrap.indent(str(sch.trace), "    "))
    print("\nscheduled IR:")
    print(textwrap.indent(repr(sch.kernel), "    "))
    lines = fn.source.splitlines()
    print(f"\ngenerated C (first {min(source_lines, len(lines))} of {len(lines)} lines):")
    print(textwrap.indent("\n".join(lines[:source_lines]), "    "))


def demo_matmul(size=512):
    _banner(f"matmul {size}x{size}x{size}, float32")
    _, _, c = matmul_program(size, size, size)
    sch = schedule_matmul(c)
    fn = build(sch, target="c")
    _show(sch, fn)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(np.float32)
    b = rng.standard_normal((size, size)).astype(np.float32)
    out = fn(A=a, B=b)
    error = float(np.max(np.abs(out - a @ b)))
    flops = 2.0 * size**3
    quiltc_s = measure(lambda: fn(A=a, B=b))
    numpy_s = measure(lambda: a @ b)
    print(f"\nmax |quiltc - numpy| = {error:.2e}  ({'correct' if error < 1e-2 else 'WRONG'})")
    print(f"quiltc {quiltc_s * 1e3:8.2f} ms  {flops / quiltc_s / 1e9:7.1f} GFLOP/s")
    print(f"numpy  {numpy_s * 1e3:8.2f} ms  {flops / numpy_s / 1e9:7.1f} GFLOP/s")
    print(f"ratio quiltc/numpy (throughput): {numpy_s / quiltc_s:.2f}x")
    return error < 1e-2


def demo_softmax(rows=4096, cols=1024):
    _banner(f"row softmax {rows}x{cols}, float32")
    x_tensor, stages, out_tensor = softmax_program(rows, cols)
    sch = schedule_softmax(stages, out_tensor)
    fn = build(sch, target="c")
    _show(sch, fn, source_lines=30)
    x = np.random.default_rng(1).standard_normal((rows, cols)).astype(np.float32)

    def numpy_softmax():
        shifted = np.exp(x - x.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    error = float(np.max(np.abs(fn(X=x) - numpy_softmax())))
    quiltc_s = measure(lambda: fn(X=x))
    numpy_s = measure(numpy_softmax)
    print(f"\nmax |quiltc - numpy| = {error:.2e}  ({'correct' if error < 1e-5 else 'WRONG'})")
    print(f"quiltc {quiltc_s * 1e3:8.2f} ms")
    print(f"numpy  {numpy_s * 1e3:8.2f} ms")
    print(f"speed-up over numpy: {numpy_s / quiltc_s:.2f}x")
    return error < 1e-5


def main():
    threads = os.environ.get("OMP_NUM_THREADS", "all cores")
    print(f"quiltc demo (OpenMP threads: {threads})")
    results = [demo_matmul(), demo_softmax()]
    _banner("summary")
    print("all results match numpy" if all(results) else "SOME RESULTS DIFFER FROM NUMPY")
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
