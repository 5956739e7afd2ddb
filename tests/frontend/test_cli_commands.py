"""Each `quiltc` subcommand run as a user runs it, through the installed console script
in a subprocess: build, run, compress, emit-mcu --pooled, bench, cache; a bad argument
to any of them ends with one line on standard error and status 2."""

import os
import pathlib
import subprocess
import sys

import cffi
import numpy as np
import pytest

from support.helpers import require_cc, require_mcu_toolchain

QUILTC = str(pathlib.Path(sys.executable).with_name("quiltc"))

MATMUL = """
import quiltc as qc
M, N, K = qc.var("M", 1, 512), qc.var("N", 1, 512), qc.var("K", 1, 512)
A = qc.placeholder((M, K), "float32", "A")
B = qc.placeholder((K, N), "float32", "B")
k = qc.reduce_axis(K, "k")
C = qc.compute((M, N), lambda i, j: qc.sum(A[i, k] * B[k, j], axis=k), "C")
sch = qc.Schedule(C, name="matmul")
i, j, _ = sch.loops(C)
sch.parallel(i)
"""

ROW_SUMS = """
import quiltc as qc
B = qc.var("B", 1, 64)
L = qc.ragged_dim("L", B, 32)
X = qc.placeholder((B, L), "float32", "X")
l = qc.reduce_axis(L, "l")
S = qc.compute((B,), lambda b: qc.sum(X[b, l], axis=l), "S")
"""

SCALED = """
import quiltc as qc
X = qc.placeholder((16, 8), "int32", "X")
Y = qc.compute((16, 8), lambda i, j: X[i, j] * 3 + 1, "Y")
"""


def quiltc(*arguments, cwd, **environment):
    return subprocess.run([QUILTC, *map(str, arguments)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **environment}, timeout=600)


@pytest.fixture
def programs(tmp_path):
    for name, text in (("matmul", MATMUL), ("row_sums", ROW_SUMS), ("scaled", SCALED)):
        (tmp_path / f"{name}.py").write_text(text)
    return tmp_path


def test_build_writes_source_header_and_a_library_with_the_files_schedule(programs):
    require_cc()
    result = quiltc("build", "matmul.py:C", "--target", "c", "-o", "out", cwd=programs)
    assert result.returncode == 0, result.stderr
    out = programs / "out"
    assert {path.name for path in out.iterdir()} == {"matmul.c", "matmul.h", "libmatmul.so"}
    assert "#pragma omp parallel for" in (out / "matmul.c").read_text()
    header = (out / "matmul.h").read_text()
    ffi = cffi.FFI()
    ffi.cdef(header[header.index("void matmul"):header.index(";") + 1])
    library = ffi.dlopen(str(out / "libmatmul.so"))
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 7)).astype(np.float32)
    b = rng.standard_normal((7, 3)).astype(np.float32)
    c = np.zeros((5, 3), np.float32)
    pointer = ffi.from_buffer
    library.matmul(pointer("float[]", a), pointer("float[]", b), pointer("float[]", c), 5, 7, 3)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5)


@pytest.mark.toolchain
def test_build_for_a_cortex_m_writes_an_arm_object(programs):
    require_mcu_toolchain()
    result = quiltc("build", "scaled.py:Y", "--target", "mcu", "--board", "mps2-an385",
                    "-o", "out", cwd=programs)
    assert result.returncode == 0, result.stderr
    raw = (programs / "out" / "Y.o").read_bytes()
    assert raw[:4] == b"\x7fELF" and int.from_bytes(raw[18:20], "little") == 40  # EM_ARM
    assert "int32_t" in (programs / "out" / "Y.c").read_text()


def test_run_reads_inputs_from_files_and_saves_the_outputs(programs):
    require_cc()
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 4)).astype(np.float32)
    b = rng.standard_normal((4, 9)).astype(np.float32)
    np.save(programs / "a.npy", a)
    np.save(programs / "b.npy", b)
    lengths = np.array([3, 0, 5], np.int32)
    values = rng.standard_normal(8).astype(np.float32)
    np.savez(programs / "x.npz", values=values, lengths=lengths)
    dense = quiltc("run", "matmul.py:C", "--input", "A=a.npy", "--input", "B=b.npy",
                   "-o", "c.npz", cwd=programs)
    ragged = quiltc("run", "row_sums.py:S", "--input", "X=x.npz", "-o", "s.npz", cwd=programs)
    assert dense.returncode == 0, dense.stderr
    assert "C: shape (6, 9), float32" in dense.stdout
    with np.load(programs / "c.npz") as saved:
        np.testing.assert_allclose(saved["C"], a @ b, rtol=1e-5)
    assert ragged.returncode == 0, ragged.stderr
    with np.load(programs / "s.npz") as saved:
        np.testing.assert_allclose(saved["S"], [values[:3].sum(), np.float32(0),
                                                values[3:].sum()], rtol=1e-5)


@pytest.mark.slow
@pytest.mark.toolchain
def test_compress_then_emit_mcu_runs_the_saved_pooled_model(tmp_path, weights_file):
    require_mcu_toolchain()
    compressed = quiltc("compress", weights_file, "--pool-size", "16", "--act-bits", "4",
                        "--epochs", "0", "-o", "pooled.npz", cwd=tmp_path)
    assert compressed.returncode == 0, compressed.stderr
    assert "pool of 16 (not fine-tuned): parameters" in compressed.stdout
    assert "accuracy at act_bits=4" in compressed.stdout
    emitted = quiltc("emit-mcu", "project", "--pooled", "pooled.npz", "--act-bits", "4",
                     "--test-inputs", "5", "--board", "mps2-an385", "--run", cwd=tmp_path)
    assert emitted.returncode == 0, emitted.stderr
    assert "pool of 16: parameters" in emitted.stdout
    assert "predictions equal the numpy reference" in emitted.stdout


@pytest.mark.slow
def test_bench_runs_a_quick_benchmark_without_touching_the_results(tmp_path):
    require_cc()
    result = quiltc("bench", "matmul", "--quick", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "quiltc GFLOP/s" in result.stdout and "quiltc-bench-" in result.stdout


def test_cache_info_counts_entries_and_clear_removes_only_quiltcs(programs, tmp_path):
    require_cc()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "notes.txt").write_text("the user's own file")
    np.save(programs / "x.npy", np.arange(128, dtype=np.int32).reshape(16, 8))
    built = quiltc("run", "scaled.py:Y", "--input", "X=x.npy", cwd=programs,
                   QUILTC_CACHE_DIR=str(cache))
    assert built.returncode == 0, built.stderr
    info = quiltc("cache", "info", cwd=tmp_path, QUILTC_CACHE_DIR=str(cache))
    assert info.returncode == 0, info.stderr
    assert f"cache: {cache} (present" in info.stdout
    assert "compiled kernels: 1" in info.stdout
    cleared = quiltc("cache", "clear", cwd=tmp_path, QUILTC_CACHE_DIR=str(cache))
    assert cleared.returncode == 0 and "freed" in cleared.stdout
    assert [path.name for path in cache.iterdir()] == ["notes.txt"]
    after = quiltc("cache", "info", cwd=tmp_path, QUILTC_CACHE_DIR=str(cache))
    assert "compiled kernels: 0" in after.stdout and "size: 0 bytes" in after.stdout


BAD_INVOCATIONS = [
    (["build", "matmul.py:C", "--target", "tpu", "-o", "out"], "invalid choice: 'tpu'"),
    (["build", "matmul.py:D", "-o", "out"], "matmul.py defines no 'D'; its tensors and "
                                            "schedules are A, B, C, sch"),
    (["build", "missing.py:C", "-o", "out"], "missing.py: no such program file"),
    (["run", "matmul.py:C", "--input", "A=nowhere.npy"], "--input A: cannot read nowhere.npy"),
    (["run", "matmul.py:C", "--input", "A"], "write NAME=FILE.npy"),
    (["tune", "matmul.py:C", "--shape", "M=x", "--db", "t.db"], "write SIZE=V1,V2,..."),
    (["fuse", "missing.onnx", "-o", "out"], "cannot read an ONNX model from missing.onnx"),
    (["compress", "weights.npz", "--pool-size", "300", "-o", "p.npz"],
     "pool_size=300 is not supported"),
    (["emit-mcu", "out", "--act-bits", "9"], "act_bits=9 is not supported"),
    (["emit-mcu", "out", "--pooled", "nothing.npz", "--weights", "w.npz"],
     "cannot read a pooled model from nothing.npz"),
    (["bench", "gemm"], "no benchmark 'gemm'; choose from matmul, ragged, mcu, fusion"),
    (["cache", "purge"], "invalid choice: 'purge'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]


def test_bad_arguments_end_with_one_line_and_status_2(programs, weights_file):
    """All at once, each in its own process: a failure costs a process start, not a
    build."""
    (programs / "weights.npz").write_bytes(weights_file.read_bytes())
    (programs / "w.npz").write_bytes(weights_file.read_bytes())
    running = [(subprocess.Popen([QUILTC, *arguments], cwd=programs, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True), arguments, message)
               for arguments, message in BAD_INVOCATIONS]
    for process, arguments, message in running:
        output, error = process.communicate(timeout=300)
        assert process.returncode == 2, (arguments, error)
        assert message in error, (arguments, error)
        assert error.count("\n") == 1 and "Traceback" not in error, (arguments, error)


def test_debug_shows_the_traceback_instead(programs):
    result = quiltc("build", "missing.py:C", "-o", "out", "--debug", cwd=programs)
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert "missing.py: no such program file" in result.stderr


def test_every_subcommand_has_help_with_an_example():
    listed = subprocess.run([QUILTC, "--help"], capture_output=True, text=True)
    assert listed.returncode == 0
    from quiltc.cli import parser

    commands = parser()._subparsers._group_actions[0].choices
    assert set(commands) == {"build", "run", "tune", "fuse", "compress", "emit-mcu", "bench",
                             "cache"}
    for name, command in commands.items():
        assert name in listed.stdout
        assert "example: quiltc " + name in command.format_help().replace("\n", " ")
