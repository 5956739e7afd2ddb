"""`qc.build`: schedules and kernels in, a checked callable out; unsupported targets,
bad names and ill-formed kernels are refused before any compiler runs."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.ir.errors import QuiltError, VerifyError
from quiltc.ir.index import symbol

from support import programs
from support.helpers import check_schedule, random_array, require_cc


def _matmul_tensor(size=None):
    """`programs.matmul` with every size `size`, or sizes M, K, N over [1, 64]."""
    M, K, N = (size or qc.var(name, 1, 64) for name in "MKN")
    return programs.matmul(M, K, N)


def test_build_takes_a_schedule_and_heads_the_source_with_its_trace():
    require_cc()
    C = _matmul_tensor()
    sch = qc.Schedule(C, name="traced")
    sch.split(sch.loops(C)[0], 4)
    fn = qc.build(sch, target="c")
    assert " * schedule:\n *     i_o, i_i = sch.split('i', 4)\n" in fn.source
    assert fn.kernel == sch.kernel


@given(m=st.sampled_from([1, 3, 4, 7, 13]), n=st.sampled_from([1, 2, 5, 8]),
       k=st.sampled_from([1, 3, 11]), factor=st.sampled_from([1, 2, 3, 4, 8]),
       seed=st.integers(0, 2**16))
def test_split_schedules_compile_to_what_numpy_computes(m, n, k, factor, seed):
    C = _matmul_tensor()
    sch = qc.Schedule(C, name=f"split_by_{factor}")
    i, j, _ = sch.loops(C)
    sch.split(i, factor)
    sch.split(j, 3)
    check_schedule(sch, *programs.matmul_arrays(seed, m, k, n))


def test_build_takes_a_kernel_and_a_new_name():
    require_cc()
    fn = qc.build(qc.lower(_matmul_tensor()), name="renamed_matmul")
    assert "void renamed_matmul(\n    float* restrict A,\n" in fn.source
    a = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(fn(A=a, B=a.T.copy()), np.full((2, 2), 3, np.float32))


def test_unsupported_targets_are_named_with_the_supported_ones():
    with pytest.raises(QuiltError, match=r"target 'metal' is not supported; the supported "
                                         r"targets are 'c', 'cuda', 'cuda-emu'"):
        qc.build(qc.lower(_matmul_tensor()), target="metal")


def test_names_that_are_not_c_identifiers_are_refused():
    with pytest.raises(QuiltError, match=r"kernel name 'my-kernel' is not a usable C function"):
        qc.build(qc.lower(_matmul_tensor()), name="my-kernel")


def test_only_schedules_and_kernels_are_built():
    with pytest.raises(QuiltError, match=r"build\(\) takes a qc.Schedule or an ir.Kernel, not "
                                         r"a Tensor"):
        qc.build(_matmul_tensor())


def test_ill_formed_kernels_are_refused_by_the_verifier():
    n, i = symbol("n"), symbol("i")
    x, y = ir.Buffer("x", qc.float32, (n,)), ir.Buffer("y", qc.float32, (n,))
    body = ir.For(i, n, ir.Store(y, (i,), ir.Load(x, (i + 1,))))
    kernel = ir.Kernel("shift", (x, y), body, ("y",), (ir.ShapeVar(n, 1, 8),))
    with pytest.raises(VerifyError, match=r"index i \+ 1 of x \(dim 0, extent n\) may leave"):
        qc.build(kernel)


def test_a_cold_build_compiles_once_into_the_cache_folder(tmp_path, monkeypatch, c_compiles):
    require_cc()
    monkeypatch.setenv("QUILTC_CACHE_DIR", str(tmp_path))
    C = _matmul_tensor(128)
    sch = qc.Schedule(C, name="cold_matmul")
    i, j, k = sch.loops(C)
    i_outer, i_inner = sch.split(i, 4)
    j_outer, j_inner = sch.split(j, 32)
    sch.reorder(j_outer, i_outer, k, i_inner, j_inner)
    fn = qc.build(sch)
    library = Path(fn.library_path)
    assert c_compiles == [library.with_suffix(".c")]
    assert library.parent.parent == tmp_path
    assert qc.build(sch).library_path == fn.library_path
    assert len(c_compiles) == 1, "building the same schedule again compiled it again"
    a = random_array(np.random.default_rng(1), (128, 128))
    np.testing.assert_allclose(fn(A=a, B=a), a @ a, rtol=1e-4, atol=1e-4)
