"""Generated C under AddressSanitizer and UndefinedBehaviorSanitizer.

A sanitized shared object loads only when libasan comes first, so each check runs in a
fresh interpreter with LD_PRELOAD set; any sanitizer report aborts it with a nonzero exit.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from support.helpers import require_sanitizer_environment

# Each check starts a fresh interpreter and builds its kernels again, sanitized.
pytestmark = [pytest.mark.sanitize, pytest.mark.slow]

# A guarded split matmul (split factors that do not divide the sizes) built with
# sanitize=True and checked against numpy for several shapes, primes and 1 included.
_GUARDED_MATMUL = textwrap.dedent("""
    import numpy as np
    import quiltc as qc
    M, N, K = qc.var("M", 1, 64), qc.var("N", 1, 64), qc.var("K", 1, 64)
    A = qc.placeholder((M, K), "float32", "A")
    B = qc.placeholder((K, N), "float32", "B")
    k = qc.reduce_axis(K, "k")
    C = qc.compute((M, N), lambda i, j: qc.sum(A[i, k] * B[k, j], axis=k), "C")
    D = qc.compute((M, N), lambda i, j: qc.maximum(C[i, j], 0.0), "D")
    sch = qc.Schedule(D, name="guarded_matmul")
    i, j, _ = sch.loops(C)
    sch.split(i, 4)
    sch.split(j, 3)
    fn = qc.build(sch, target="c", sanitize=True)
    rng = np.random.default_rng(0)
    for m, n, kk in [(1, 1, 1), (5, 7, 3), (13, 2, 11), (8, 9, 4)]:
        a = rng.standard_normal((m, kk)).astype(np.float32)
        b = rng.standard_normal((kk, n)).astype(np.float32)
        np.testing.assert_allclose(fn(A=a, B=b), np.maximum(a @ b, np.float32(0)),
                                   rtol=1e-5, atol=1e-5)
    print("sanitized run clean")
""")

# Ragged attention (scores over len x len rows, a row softmax, then P @ V) on batches with
# empty, single and full-length rows, against numpy per sequence.
_RAGGED_ATTENTION = textwrap.dedent("""
    import numpy as np
    import quiltc as qc
    B = qc.var("B", 1, 16)
    L = qc.ragged_dim("L", B, 12)
    Q, K, V = (qc.placeholder((B, L, 8), "float32", name) for name in "QKV")
    h = qc.reduce_axis(8, "h")
    S = qc.compute((B, L, L), lambda b, i, j: qc.sum(Q[b, i, h] * K[b, j, h], axis=h), "S")
    j = qc.reduce_axis(L, "j")
    M = qc.compute((B, L), lambda b, i: qc.max(S[b, i, j], axis=j), "M")
    E = qc.compute((B, L, L), lambda b, i, j: qc.exp(S[b, i, j] - M[b, i]), "E")
    j2 = qc.reduce_axis(L, "j2")
    Z = qc.compute((B, L), lambda b, i: qc.sum(E[b, i, j2], axis=j2), "Z")
    j3 = qc.reduce_axis(L, "j3")
    O = qc.compute((B, L, 8), lambda b, i, d: qc.sum(E[b, i, j3] * V[b, j3, d], axis=j3), "O")
    N = qc.compute((B, L, 8), lambda b, i, d: O[b, i, d] / Z[b, i], "N")
    fn = qc.build(qc.Schedule(N, name="ragged_attention"), target="c", sanitize=True)
    rng = np.random.default_rng(0)
    for lengths in ([0], [1], [12], [3, 0, 12, 1, 7], list(rng.integers(0, 13, size=16))):
        qs, ks, vs = ([rng.standard_normal((n, 8)).astype(np.float32) for n in lengths]
                      for _ in range(3))
        out = fn(**{name: qc.RaggedArray.from_list(rows, inner_shape=(8,))
                    for name, rows in zip("QKV", (qs, ks, vs))})
        for got, q, k, v in zip(out, qs, ks, vs):
            scores = q @ k.T
            e = np.exp(scores - scores.max(axis=1, keepdims=True, initial=-np.inf))
            expected = (e / e.sum(axis=1, keepdims=True)) @ v
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    print("sanitized run clean")
""")

# quiltc.attention's kernel (register-blocked scores over key blocks padded past each
# row's end, with AVX2's block sizes and the host's) on lengths on both sides of a key
# block, against numpy per sequence.
_PADDED_ATTENTION = textwrap.dedent("""
    import functools
    import numpy as np
    import quiltc as qc
    from quiltc import attention
    attention.build = functools.partial(attention.build, sanitize=True)
    rng = np.random.default_rng(0)
    for lanes, causal in ((8, False), (8, True), (None, False)):
        kernel = attention._attention_kernel.__wrapped__(2, 64, 40, causal, lanes)
        for lengths in ([0], [1], [40], [15, 0, 17, 33, 6], list(rng.integers(0, 41, 8))):
            rows = [rng.standard_normal((n, 384)).astype(np.float32) for n in lengths]
            qkv = qc.RaggedArray.from_list(rows, inner_shape=(384,))
            got = kernel(QKV=qkv)
            for values, want in zip(got, attention.reference_attention(rows, 2, 64, causal)):
                np.testing.assert_allclose(values.reshape(-1, 128), want, rtol=1e-4, atol=1e-5)
    print("sanitized run clean")
""")

# A kernel that reads one element past its input: rendered and loaded directly, since
# qc.build's verifier would refuse it. The sanitizer must catch the read.
_OUT_OF_BOUNDS = textwrap.dedent("""
    import numpy as np
    import quiltc as qc
    from quiltc.codegen import c_signature, render_c
    from quiltc.ir import nodes as ir
    from quiltc.ir.index import symbol
    from quiltc.runtime_c.cache import LibraryCache
    from quiltc.runtime_c.toolchain import find_toolchain
    n, i = symbol("n"), symbol("i")
    x, y = ir.Buffer("x", qc.float32, (n,)), ir.Buffer("y", qc.float32, (n,))
    body = ir.For(i, n, ir.Store(y, (i,), ir.Load(x, (i + 1,))))
    kernel = ir.Kernel("reads_past_the_end", (x, y), body, ("y",), (ir.ShapeVar(n, 1, 64),))
    library = LibraryCache().load(render_c(kernel), c_signature(kernel), find_toolchain(True))
    values, out = np.ones(5, np.float32), np.empty(5, np.float32)
    cast = library.ffi.cast
    library.handle.reads_past_the_end(cast("float *", values.ctypes.data),
                                      cast("float *", out.ctypes.data), 5)
""")


def _run_sanitized(script):
    return subprocess.run([sys.executable, "-c", script], env=require_sanitizer_environment(),
                          capture_output=True, text=True, timeout=300)


def test_ragged_property_tests_run_clean_under_asan_and_ubsan():
    """The random ragged schedules, ragged fusion, bulk padding and several-ragged-dims
    tests once more, every kernel they compile (C and cuda-emu) built with the sanitizers:
    no kernel reads or writes past a row."""
    environment = dict(require_sanitizer_environment(), QUILTC_TEST_SANITIZE="1")
    tests = [os.path.join(os.path.dirname(__file__), "..", "schedule", name)
             for name in ("test_ragged_sequences.py", "test_ragged_fuse.py",
                         "test_ragged_guards.py", "test_pad_bulk.py")]
    tests.append(os.path.join(os.path.dirname(__file__), "..", "frontend",
                              "test_ragged_nested.py"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
        env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert " passed" in result.stdout


def test_fused_graphs_run_clean_under_asan_and_ubsan():
    """The fusion tests once more (random graphs, the small BERT layer at several sizes,
    every level), each module built with the sanitizers: no partition kernel reads or
    writes outside its buffers or the workspace plan."""
    environment = dict(require_sanitizer_environment(), QUILTC_TEST_SANITIZE="1")
    test = os.path.join(os.path.dirname(__file__), "..", "frontend", "test_fusion.py")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", test, "-k",
         "random_graphs or small_bert or every_level or every_row_count or level_3"],
        env=environment, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert " passed" in result.stdout


def test_ragged_attention_runs_clean_under_asan_and_ubsan():
    result = _run_sanitized(_RAGGED_ATTENTION)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "sanitized run clean" in result.stdout


def test_padded_attention_kernel_runs_clean_under_asan_and_ubsan():
    result = _run_sanitized(_PADDED_ATTENTION)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "sanitized run clean" in result.stdout


def test_guarded_split_matmul_runs_clean_under_asan_and_ubsan():
    result = _run_sanitized(_GUARDED_MATMUL)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "sanitized run clean" in result.stdout


def test_the_sanitizer_catches_an_out_of_bounds_read():
    result = _run_sanitized(_OUT_OF_BOUNDS)
    assert result.returncode != 0
    assert "heap-buffer-overflow" in result.stderr and "reads_past_the_end" in result.stderr
