"""The CUDA renderer's output: kernels, launch bounds, shared arrays, barriers, block and
thread indices with guards only where needed, the host launcher's grid from symbolic and
ragged extents, what nvcc makes of it, and the nests it refuses."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc import recipes_cuda
from quiltc.codegen.c import c_signature
from quiltc.codegen.cuda import render_cuda
from quiltc.ir import nodes as ir

from support import cuda_kernels, programs
from support.tiers import examples


def test_tiled_matmul_source_reads_like_cuda():
    sch = cuda_kernels.matmul()
    source = render_cuda(sch.kernel, str(sch.trace))
    assert 'extern "C" __global__ void __launch_bounds__(256) matmul_cuda_launch0(' in source
    assert "__shared__ float A_shared[256];" in source
    assert "__shared__ float B_shared[256];" in source
    # A barrier after each copy and after the products: a k-tile is never overwritten early.
    assert source.count("__syncthreads();") == 4
    for line in ("const int64_t i_o = (int64_t)blockIdx.y;",
                 "const int64_t j_o = (int64_t)blockIdx.x;",
                 "const int64_t i_i = (int64_t)threadIdx.y;",
                 "const int64_t j_i = (int64_t)threadIdx.x;",
                 "quiltc_grid_x = quiltc_max_index(quiltc_grid_x, (15 + N) / 16);",
                 "int64_t quiltc_block_x = 16;"):
        assert line in source
    # The launcher takes the C target's arguments, so callers cannot tell them apart.
    parameters = c_signature(sch.kernel).split("(")[1].rstrip(");").split(", ")
    assert 'extern "C" void matmul_cuda(\n    ' + ",\n    ".join(parameters).replace(
        "float*", "float* __restrict__") + ")\n{" in source
    assert "A_shared = sch.cache_read('A', 'shared', at='k_o')" in source


def test_threads_are_guarded_only_where_the_extent_may_fall_short():
    sch = qc.Schedule(programs.scale(64, 32))
    sch.bind("i", "blockIdx.x")
    sch.bind("j", "threadIdx.x")
    exact = render_cuda(sch.kernel)
    assert "const int64_t j = (int64_t)threadIdx.x;" in exact and "if (j < 32)" not in exact
    ragged, y = cuda_kernels.ragged_scale()
    batch, length, features = ragged.loops(y)
    ragged.bind(batch, "blockIdx.x")
    ragged.bind(length, "threadIdx.x")
    source = render_cuda(ragged.kernel)
    assert "if (l < L_len[b]) {" in source
    # The block is as wide as the longest row: a host loop over the lengths finds it.
    assert ("for (int64_t b = 0; b < B; ++b) {\n"
            "            quiltc_block_x = quiltc_max_index(quiltc_block_x, L_len[b]);") in source
    assert "__launch_bounds__(9)" in source


def test_the_flat_ragged_loop_launches_over_the_prelude_tables():
    sch, y = cuda_kernels.ragged_scale()
    recipes_cuda.schedule_ragged_cuda(sch, y, threads=32, flat=True)
    source = render_cuda(sch.kernel)
    assert "quiltc_grid_x = quiltc_max_index(quiltc_grid_x, (31 + L_off1[B]) / 32);" in source
    for table in ("L_off1", "L_row", "L_pos"):
        assert f"quiltc_to_device({table}, sizeof(int64_t)" in source
        assert f"    const int64_t* __restrict__ {table}" in source


@pytest.mark.toolchain
@settings(max_examples=examples(4))
@given(rows=st.integers(1, 16), columns=st.integers(1, 16), seed=st.integers(0, 2**16))
def test_an_unbound_nest_runs_as_one_thread(rows, columns, seed):
    sch = qc.Schedule(programs.scale(rows, columns, symbolic=True))
    fn = cuda_kernels.build_both(sch)
    device_code = fn.source.split("__global__")[1].split('extern "C" void')[0]
    assert "int64_t quiltc_block_x = 1;" in fn.source and "Idx" not in device_code
    arrays, reference = programs.scale_arrays(seed, rows, columns)
    np.testing.assert_allclose(fn(**arrays), reference["B"], rtol=1e-6)


@pytest.mark.slow
@pytest.mark.toolchain
def test_nvcc_output_holds_each_launch_for_each_architecture():
    cuda_kernels.require_cuda_tools()
    attention = qc.build(cuda_kernels.attention(causal=True), target="cuda")
    # One launch per stage: keys, scores, mask, max, exps, values, context, sum, output.
    assert attention.source.count('extern "C" __global__') == 9
    softmax = qc.build(cuda_kernels.softmax(64), target="cuda")
    for arch in ("sm_80", "sm_90"):
        assert attention.ptx[arch].count(".entry ragged_attention_cuda_launch") == 9
        ptx = softmax.ptx[arch]
        assert f".target {arch}" in ptx and ".maxntid 64, 1, 1" in ptx
        assert ".shared .align 4 .b8 _ZZ20softmax_cuda_launch0E15row_max_partial[256];" in ptx
        # The tree's barriers: two after the partial reductions, one per level (6 + 6).
        assert ptx.count("bar.sync") == 14


def test_a_block_loop_inside_a_serial_loop_is_refused():
    sch = qc.Schedule(programs.scale(4, 6))
    sch.bind("j", "blockIdx.x")
    with pytest.raises(qc.QuiltError, match=r"loop j is bound to blockIdx\.x but lies inside loop "
                       r"i \(serial\).*blockIdx loops must be the outermost loops of their nest"):
        render_cuda(sch.kernel)


def test_a_global_buffer_inside_a_nest_is_refused():
    sch = qc.Schedule(programs.scale(4, 6))
    sch.bind("i", "blockIdx.x")
    loop = sch.kernel.body
    scratch = ir.Buffer("scratch", qc.float32, (6,))
    kernel = dataclasses.replace(sch.kernel, body=dataclasses.replace(
        loop, body=ir.Alloc(scratch, "global", loop.body)))
    with pytest.raises(qc.QuiltError, match=r"buffer scratch is allocated in global memory inside "
                       r"a loop nest.*cache it in 'local' or 'shared' scope"):
        render_cuda(kernel)
