"""bind: property tests against the interpreter and numpy (bound loops run serially there;
the C target refuses GPU axes), and its errors."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc

from support import helpers, programs
from support.tiers import examples

EXTENTS = st.sampled_from([1, 2, 3, 5, 7, 8, 13])


@settings(max_examples=examples(25))
@given(rows=EXTENTS, columns=EXTENTS, symbolic=st.booleans(), factor=st.integers(1, 32),
       thread_y=st.booleans(), axis=st.sampled_from("xyz"), seed=st.integers(0, 2**16))
def test_bound_elementwise_kernel_matches_numpy(rows, columns, symbolic, factor, thread_y, axis,
                                                seed):
    sch = qc.Schedule(programs.scale(rows, columns, symbolic))
    outer, inner = sch.split("i", factor)
    sch.bind(outer, f"blockIdx.{axis}")
    sch.bind(inner, f"threadIdx.{axis}")
    if thread_y and axis != "y":
        sch.bind("j", "threadIdx.y")
    assert "# blockIdx" in repr(sch) and "# threadIdx" in repr(sch)
    helpers.check_schedule(sch, *programs.scale_arrays(seed, rows, columns), compile_c=False)


@given(rows=EXTENTS, inner=EXTENTS, columns=EXTENTS,
       factors=st.tuples(st.integers(1, 8), st.integers(1, 8)), seed=st.integers(0, 2**16))
def test_bound_matmul_tiles_match_numpy(rows, inner, columns, factors, seed):
    sch = qc.Schedule(programs.matmul(rows, inner, columns))
    i_outer, j_outer, i_inner, j_inner = sch.tile("i", "j", *factors)
    sch.bind(i_outer, "blockIdx.y")
    sch.bind(j_outer, "blockIdx.x")
    sch.bind(i_inner, "threadIdx.y")
    sch.bind(j_inner, "threadIdx.x")
    helpers.check_schedule(sch, *programs.matmul_arrays(seed, rows, inner, columns),
                           compile_c=False)


def test_the_c_target_refuses_a_bound_loop():
    helpers.require_cc()
    sch = qc.Schedule(programs.scale(4, 6))
    sch.bind("i", "blockIdx.x")
    with pytest.raises(qc.QuiltError, match=r"loop i is bound to blockIdx\.x.*target='cuda'"):
        qc.build(sch, target="c")


def test_loops_of_separate_nests_may_bind_the_same_axis():
    sch = qc.Schedule(programs.two_stages(4, 3))
    sch.bind("i", "blockIdx.x")
    sch.bind("i_1", "blockIdx.x")
    helpers.check_schedule(sch, *programs.two_stages_arrays(3, 4, 3), compile_c=False)


@pytest.mark.parametrize("before, loop, axis, message", [
    pytest.param((("i", "threadIdx.x"),), "j", "threadIdx.x",
                 r"bind: .*loop i of the same nest is already bound to threadIdx\.x, so loops i "
                 r"and j would both be threadIdx\.x", id="one-axis-twice-in-a-nest"),
    pytest.param((("i", "threadIdx.x"),), "j", "blockIdx.x",
                 r"bind: .*loop j is nested inside loop i, bound to threadIdx\.x, and a blockIdx "
                 r"loop cannot run inside a threadIdx loop", id="block-inside-thread"),
    pytest.param((("j", "blockIdx.x"),), "i", "threadIdx.x",
                 r"bind: .*loop j inside it is bound to blockIdx\.x", id="thread-around-block"),
    pytest.param((("i", "blockIdx.x"),), "i", "blockIdx.y",
                 r"bind: .*loop i is already bound to blockIdx\.x", id="bound-again"),
    pytest.param((("j", "threadIdx.x"),), "i", "threadIdx.y",
                 r"bind: .*the block would hold 2048 threads, over CUDA's limit of 1024 threads "
                 r"per block", id="block-of-2048-threads"),
    pytest.param((), "i", "warp.x", r"'warp\.x' is not a GPU axis\. Use one of blockIdx\.x",
                 id="unknown-axis"),
])
def test_bind_refuses_a_binding_that_cannot_run(before, loop, axis, message):
    # 64 x 32 elements: binding both loops to thread axes asks for 2048 threads per block.
    sch = qc.Schedule(programs.scale(64, 32))
    for bound_loop, bound_axis in before:
        sch.bind(bound_loop, bound_axis)
    with pytest.raises(qc.ScheduleError, match=message):
        sch.bind(loop, axis)


def test_a_thread_loop_outside_the_block_loops_is_allowed():
    sch = qc.Schedule(programs.scale(4, 6))
    sch.bind("j", "threadIdx.x")
    sch.bind("i", "blockIdx.x")
    with pytest.raises(qc.ScheduleError, match=r"reorder: .*loop i \(bound to blockIdx\.x\) would "
                       r"move inside loop j \(bound to threadIdx\.x\)"):
        sch.reorder("j", "i")


def test_binding_a_reduction_loop_to_threads_is_refused():
    sch = qc.Schedule(programs.matmul(4, 5, 3))
    with pytest.raises(qc.ScheduleError, match=r"bind: .*loop k carries a reduction.*threads of a "
                       r"reduction loop would race"):
        sch.bind("k", "threadIdx.x")
