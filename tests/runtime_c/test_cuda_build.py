"""Building CUDA: nvcc's PTX and cubin cached like the C target's objects, the errors a
missing or failing compiler gives, and running on a real GPU where one exists."""

import re

import numpy as np
import pytest

import quiltc as qc
from quiltc.codegen.cuda import cuda_signature, render_cuda
from quiltc.runtime_c import nvcc
from quiltc.runtime_c.cache import LibraryCache
from quiltc.runtime_c.cuda_call import CudaKernel, gpu_unavailable_reason

from support import cuda_kernels, ragged_programs


def test_a_missing_nvcc_names_the_install(monkeypatch):
    monkeypatch.setenv("NVCC", "nvcc-not-installed")
    with pytest.raises(qc.ToolchainMissing, match=r"nvcc-not-installed was not found on PATH\. "
                       r"Install it with: install the CUDA toolkit"):
        qc.build(cuda_kernels.matmul(), target="cuda")


def test_a_missing_cxx_names_the_install(monkeypatch):
    monkeypatch.setenv("CXX", "g++-not-installed")
    with pytest.raises(qc.ToolchainMissing, match=r"g\+\+-not-installed was not found on PATH\. "
                       r"Install it with: apt-get install -y g\+\+"):
        qc.build(cuda_kernels.matmul(), target="cuda-emu")


@pytest.mark.toolchain
def test_nvcc_errors_come_back_with_its_first_lines(tmp_path):
    cuda_kernels.require_cuda_tools()
    with pytest.raises(qc.BuildError, match=r"(?s)nvcc failed on .*\.cu:\n.*error.*"
                       r"undefined_function.*kept at"):
        nvcc.compile_cuda('extern "C" __global__ void k() { undefined_function(); }\n', tmp_path)


@pytest.mark.slow
@pytest.mark.toolchain
def test_builds_are_cached_and_a_corrupt_entry_is_rebuilt(tmp_path, monkeypatch):
    cuda_kernels.require_cuda_tools()
    source = qc.build(cuda_kernels.softmax(32), target="cuda").source
    first = nvcc.compile_cuda(source, tmp_path)
    with monkeypatch.context() as patched:
        def refuse(*arguments, **options):
            raise AssertionError("nvcc ran although the cache holds the result")

        patched.setattr(nvcc.subprocess, "Popen", refuse)
        assert nvcc.compile_cuda(source, tmp_path) == first
    (ptx,) = tmp_path.glob("*/*.sm_90.ptx")
    ptx.write_text("corrupt")
    assert nvcc.compile_cuda(source, tmp_path) == first
    assert ptx.read_text() == first.ptx["sm_90"]


@pytest.mark.toolchain
def test_without_a_gpu_the_kernel_says_why_it_cannot_run():
    cuda_kernels.require_cuda_tools()
    reason = gpu_unavailable_reason()
    if not reason:
        pytest.skip("a GPU is present: test_runs_on_the_gpu covers it")
    fn = qc.build(cuda_kernels.matmul(), target="cuda")
    assert fn.ptx["sm_80"].startswith("//") and fn.cubin["sm_90"][:4] == b"\x7fELF"
    arrays, _ = cuda_kernels.matmul_arrays(0, 4, 5, 6)
    expected = r"compiled for the GPU.*cannot run here: " + re.escape(reason)
    with pytest.raises(qc.QuiltError, match=expected + r"; build with target='cuda-emu'"):
        fn(**arrays)


@pytest.mark.slow
@pytest.mark.toolchain
def test_the_gpu_build_links_and_reports_cuda_errors(tmp_path):
    cuda_kernels.require_cuda_tools()
    if not gpu_unavailable_reason():
        pytest.skip("a GPU is present: test_runs_on_the_gpu runs this build")
    # What target="cuda" builds where a GPU exists: the launcher against the real CUDA
    # runtime. Without a driver its first cudaMalloc fails, and the call says so.
    kernel = cuda_kernels.matmul().kernel
    source = render_cuda(kernel)
    library = LibraryCache(tmp_path).load(source, cuda_signature(kernel), nvcc.shared_toolchain())
    fn = CudaKernel(kernel, source, library, target="cuda")
    arrays, _ = cuda_kernels.matmul_arrays(0, 4, 5, 6)
    with pytest.raises(qc.QuiltError, match=r"kernel matmul_cuda failed on the cuda target: "
                       r"cudaMalloc: "):
        fn(**arrays)


@pytest.mark.toolchain
def test_runs_on_the_gpu():
    cuda_kernels.require_cuda_tools()
    reason = gpu_unavailable_reason()
    if reason:
        pytest.skip(f"no GPU to run on: {reason}")
    fn = qc.build(cuda_kernels.matmul(), target="cuda")
    arrays, expected = cuda_kernels.matmul_arrays(1, 50, 33, 17)
    np.testing.assert_allclose(fn(**arrays), expected, rtol=1e-4, atol=1e-4)
    rows, qkv = ragged_programs.ragged_batch([3, 0, 9], 2, (3 * cuda_kernels.HEADS *
                                                            cuda_kernels.HEAD_SIZE,))
    attention = qc.build(cuda_kernels.attention(causal=True), target="cuda")
    for got, want in zip(attention(QKV=qkv), cuda_kernels.attention_reference(rows, True)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_sanitize_is_refused_for_the_gpu_target():
    with pytest.raises(qc.QuiltError, match=r"sanitize=True builds for the CPU only; build "
                       r"target 'cuda' without it, or the same schedule for "
                       r"target='cuda-emu'"):
        qc.build(cuda_kernels.matmul(), target="cuda", sanitize=True)
