"""What no GPU can run is refused before any source is written: the verifier's checks of
bound loops and barriers (ir/verify_gpu.py) and the GPU targets' limits on block size and
shared memory (driver/targets.py), each a ScheduleError naming the loop or buffer and the
limit, through bind, build, and on kernels built by hand where no primitive checked them."""

import dataclasses

import pytest

import quiltc as qc
from quiltc import recipes, recipes_cuda
from quiltc.ir import nodes as ir
from quiltc.ir.verify import verify
from quiltc.ir.walk import rewrite

from support import cuda_kernels, programs
from support.helpers import with_loop_kinds


@pytest.mark.parametrize("kinds, message", [
    pytest.param({"i": "threadIdx.x", "j": "threadIdx.x"},
                 r"loops i and j of one nest are both bound to threadIdx\.x", id="axis-twice"),
    pytest.param({"i": "threadIdx.x", "j": "blockIdx.x"},
                 r"loop j, bound to blockIdx\.x, is nested inside loop i, bound to threadIdx\.x",
                 id="block-inside-thread"),
])
def test_the_verifier_refuses_bindings_no_gpu_runs(kinds, message):
    kernel = with_loop_kinds(qc.Schedule(programs.scale(64, 32)).kernel, kinds)
    with pytest.raises(qc.ScheduleError, match=r"verify: asked to run kernel kernel on a GPU, "
                       r"but " + message):
        verify(kernel)


def test_the_gpu_targets_refuse_blocks_over_1024_threads():
    kernel = with_loop_kinds(qc.Schedule(programs.scale(64, 32)).kernel,
                             {"i": "threadIdx.y", "j": "threadIdx.x"})
    verify(kernel)
    with pytest.raises(qc.ScheduleError, match=r"build: asked to build kernel kernel for target "
                       r"'cuda-emu', but the block of loop j would hold up to 2048 threads, over "
                       r"CUDA's limit of 1024 threads per block"):
        qc.build(kernel, target="cuda-emu")


def test_bind_names_the_loops_and_the_thread_limit():
    sch = qc.Schedule(programs.scale(64, 32))
    sch.bind("i", "threadIdx.x")
    with pytest.raises(qc.ScheduleError, match=r"loops i and j would both be threadIdx\.x"):
        sch.bind("j", "threadIdx.x")
    with pytest.raises(qc.ScheduleError, match=r"the block would hold 2048 threads, over CUDA's "
                       r"limit of 1024 threads per block"):
        sch.bind("j", "threadIdx.y")


def test_a_symbolic_block_is_checked_at_its_largest():
    sch = qc.Schedule(programs.scale(qc.var("M", 1, 4096), 8))
    sch.bind("i", "threadIdx.x")
    with pytest.raises(qc.ScheduleError, match=r"the block of loop i would hold up to 4096 "
                       r"threads, over CUDA's limit of 1024"):
        qc.build(sch, target="cuda-emu")


def _tiles_of_64_kib():
    """A matmul ready to cache 128 x 128 float tiles of A at its loop k_o (returned)."""
    _, _, c = recipes.matmul_program(256, 256, 256)
    sch = qc.Schedule(c)
    i, j, k = sch.loops(c)
    i_outer, i_inner = sch.split(i, 128)
    k_outer, k_inner = sch.split(k, 128)
    sch.reorder(i_outer, k_outer, i_inner, j, k_inner)
    return sch, k_outer


@pytest.mark.toolchain
def test_shared_memory_over_the_limit_names_the_buffer_and_the_limit(monkeypatch):
    sch, k_outer = _tiles_of_64_kib()
    sch.cache_read("A", "shared", at=k_outer)
    sch.bind("i_o", "blockIdx.x")
    with pytest.raises(qc.ScheduleError, match=r"the block of loop i_o needs 65536 bytes of shared "
                       r"memory for A_shared \(65536 bytes\), over the limit of 49152 bytes"):
        qc.build(sch, target="cuda-emu")
    monkeypatch.setenv("QUILTC_SHARED_MEMORY_LIMIT", str(96 * 1024))
    qc.build(sch, target="cuda-emu")
    with pytest.raises(qc.ScheduleError, match=r"65536 bytes of shared memory for A_shared "
                       r"\(65536 bytes\), over the limit of 32768 bytes"):
        qc.build(sch, target="cuda-emu", shared_memory_limit=32 * 1024)


def test_a_barrier_only_some_threads_reach_is_refused():
    sch = qc.Schedule(programs.scale(4, 6))
    sch.bind("i", "blockIdx.x")
    sch.bind("j", "threadIdx.x")
    loop = sch.kernel.body
    inner = dataclasses.replace(loop.body, body=ir.seq(loop.body.body, ir.Barrier()))
    kernel = dataclasses.replace(sch.kernel, body=dataclasses.replace(loop, body=inner))
    with pytest.raises(qc.ScheduleError, match=r"a barrier stands inside loop j, bound to "
                       r"threadIdx\.x, where threads past a guard would never reach it"):
        verify(kernel)


def test_a_tile_overwritten_before_all_threads_read_it_is_refused():
    sch = cuda_kernels.matmul()

    def drop_trailing_barriers(node):
        if isinstance(node, ir.Seq) and isinstance(node.stmts[-1], ir.Barrier):
            return ir.seq(*node.stmts[:-1])
        return node

    kernel = sch.kernel
    while repr(kernel).count("barrier()") > 2:
        kernel = dataclasses.replace(kernel, body=rewrite(kernel.body, drop_trailing_barriers))
    with pytest.raises(qc.ScheduleError, match=r"shared buffer [AB]_shared is read by other "
                       r"threads and overwritten here with no barrier between"):
        verify(kernel)


def test_a_tree_needs_a_power_of_two_threads():
    with pytest.raises(qc.ScheduleError, match=r"cross_thread_reduce: asked to reduce row_max "
                       r"over loop j across 48 threads.*Pass a power of two up to 1024"):
        recipes_cuda.schedule_softmax_cuda(4, 10, threads=48)
