"""The CUDA kernels compiled by nvcc (sm_80, sm_90) and run on the CPU under the emulation
header, against numpy: the shared-tile matmul, the tree-reduction softmax, a ragged
elementwise kernel (by rows, longest first, and over the flat token table) and the ragged
masked attention; and the proof that the emulation interleaves threads at barriers."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc import recipes_cuda
from quiltc.codegen.cuda import cuda_signature, render_cuda
from quiltc.ir import interp
from quiltc.ir import nodes as ir
from quiltc.ir.walk import rewrite
from quiltc.runtime_c.cache import DEFAULT_CACHE
from quiltc.runtime_c.cuda_call import CudaKernel, emulation_toolchain
from quiltc.schedule.passes import insert_barriers

from support import cuda_kernels, helpers, ragged_programs
from support.tiers import examples

# Every test builds with nvcc and runs the same source under the g++ emulation.
pytestmark = pytest.mark.toolchain

SIZES = st.integers(1, 40)


@pytest.mark.slow
@settings(max_examples=examples(6))
@given(rows=SIZES, inner=SIZES, columns=SIZES, symbolic=st.booleans(),
       seed=st.integers(0, 2**16))
def test_shared_tile_matmul_matches_numpy(rows, inner, columns, symbolic, seed):
    sch = cuda_kernels.matmul(symbolic, (rows, inner, columns))
    fn = cuda_kernels.build_both(sch)
    # A tile is 16 x 16 unless the matrix is thinner.
    tile = 16 * 16 if symbolic else min(rows, 16) * min(inner, 16)
    assert f"__shared__ float A_shared[{tile}];" in fn.source
    assert fn.source.count("__syncthreads();") == 4
    arrays, expected = cuda_kernels.matmul_arrays(seed, rows, inner, columns)
    np.testing.assert_allclose(fn(**arrays), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@settings(max_examples=examples(6))
@given(rows=st.integers(1, 6), columns=st.integers(1, 300), threads=st.sampled_from([8, 32, 128]),
       seed=st.integers(0, 2**16))
def test_tree_reduction_softmax_matches_numpy(rows, columns, threads, seed):
    fn = cuda_kernels.build_both(cuda_kernels.softmax(threads))
    x = helpers.random_array(np.random.default_rng(seed), (rows, columns)) * np.float32(8.0)
    np.testing.assert_allclose(fn(X=x), recipes_cuda.reference_softmax(x), rtol=1e-5, atol=1e-6)


@settings(max_examples=examples(8))
@given(lengths=cuda_kernels.lengths_strategy, flat=st.booleans(),
       threads=st.sampled_from([1, 4, 32]), seed=st.integers(0, 2**16))
def test_ragged_elementwise_matches_numpy(lengths, flat, threads, seed):
    sch, y = cuda_kernels.ragged_scale()
    recipes_cuda.schedule_ragged_cuda(sch, y, threads=threads, flat=flat)
    fn = cuda_kernels.build_both(sch)
    rows, x = ragged_programs.ragged_batch(lengths, seed, (cuda_kernels.FEATURES,))
    result = fn(X=x)
    assert isinstance(result, qc.RaggedArray) and list(result.lengths) == lengths
    for got, row in zip(result, rows):
        np.testing.assert_allclose(got, row * np.float32(2.0) + np.float32(1.0), rtol=1e-6)


@pytest.mark.slow
@settings(max_examples=examples(6))
@given(lengths=cuda_kernels.lengths_strategy, causal=st.booleans(), seed=st.integers(0, 2**16))
def test_ragged_masked_attention_matches_numpy(lengths, causal, seed):
    fn = cuda_kernels.build_both(cuda_kernels.attention(causal))
    width = 3 * cuda_kernels.HEADS * cuda_kernels.HEAD_SIZE
    rows, qkv = ragged_programs.ragged_batch(lengths, seed, (width,))
    result = fn(QKV=qkv)
    for got, want in zip(result, cuda_kernels.attention_reference(rows, causal)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_longest_rows_launch_first():
    sch, y = cuda_kernels.ragged_scale()
    recipes_cuda.schedule_ragged_cuda(sch, y, threads=4)
    fn = cuda_kernels.build_both(sch)
    # The grid's rows are the sequences longest first; its second axis the longest
    # row's blocks of 4 tokens, found by a host loop over the lengths.
    assert "L_order_desc[quiltc_next++] = quiltc_row;" in fn.source
    assert "quiltc_grid_y = quiltc_max_index(quiltc_grid_y, (3 + L_len[L_order_desc[b]]) / 4);" \
        in fn.source
    rows, x = ragged_programs.ragged_batch([2, 9, 0, 5], 7, (cuda_kernels.FEATURES,))
    for got, row in zip(fn(X=x), rows):
        np.testing.assert_allclose(got, row * np.float32(2.0) + np.float32(1.0), rtol=1e-6)


def _without_copy_barriers(kernel):
    """`kernel` minus the barrier after each shared copy: tiles are read unsynchronised."""

    def is_copy(stmt):
        return isinstance(stmt, ir.For) and stmt.var.name.endswith("_shared_0")

    def drop(node):
        if not isinstance(node, ir.Seq):
            return node
        kept = [stmt for n, stmt in enumerate(node.stmts)
                if not (isinstance(stmt, ir.Barrier) and n > 0 and is_copy(node.stmts[n - 1]))]
        return ir.seq(*kept)

    return dataclasses.replace(kernel, body=rewrite(kernel.body, drop))


@pytest.mark.slow
def test_a_missing_barrier_changes_the_answer_under_the_emulation_only():
    cuda_kernels.require_cuda_tools()
    sch = cuda_kernels.matmul()
    wrong = _without_copy_barriers(sch.kernel)
    assert repr(wrong).count("barrier()") == repr(sch.kernel).count("barrier()") - 2
    arrays, expected = cuda_kernels.matmul_arrays(3, 37, 40, 29)
    # In the interpreter the threads of a block run one after another, so every copy
    # finishes before any read: the race stays hidden and the answer is right.
    np.testing.assert_allclose(interp.run(wrong, **arrays)["C"], expected, rtol=1e-4, atol=1e-4)
    # Under the emulation each thread runs until its next barrier: thread 0 multiplies
    # tiles the other threads have not copied yet, and the answer is wrong.
    # Built by hand: qc.build verifies first and would refuse it.
    source = render_cuda(wrong)
    library = DEFAULT_CACHE.load(source, cuda_signature(wrong), emulation_toolchain())
    emulated = CudaKernel(wrong, source, library)(**arrays)
    assert np.abs(emulated - expected).max() > 1.0
    with pytest.raises(qc.ScheduleError, match=r"shared buffer [AB]_shared is written by other "
                       r"threads and read here with no barrier between"):
        qc.build(wrong, target="cuda-emu")
    repaired = insert_barriers(wrong)
    assert repr(repaired).count("barrier()") == repr(wrong).count("barrier()") + 1
    np.testing.assert_allclose(cuda_kernels.build_both(repaired)(**arrays), expected,
                               rtol=1e-4, atol=1e-4)


def test_emulated_kernels_take_the_c_targets_arguments():
    cuda_kernels.require_cuda_tools()
    fn = qc.build(cuda_kernels.matmul(), target="cuda-emu")
    arrays, expected = cuda_kernels.matmul_arrays(5, 20, 17, 33)
    out = np.full((20, 33), np.float32(7.0))
    fn(**arrays, out={"C": out})
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(qc.ShapeError, match=r"missing arguments B"):
        fn(A=arrays["A"])
    with pytest.raises(qc.ShapeError, match=r"size M = 65 is outside its declared range \[1, 64\]"):
        fn(A=np.zeros((65, 17), np.float32), B=arrays["B"])
