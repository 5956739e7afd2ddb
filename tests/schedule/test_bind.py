"""bind: property tests against the interpreter and numpy (bound loops run serially there;
the C target refuses GPU axes), and its errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import helpers
import quiltc as qc

EXTENTS = st.sampled_from([1, 2, 3, 5, 7, 8, 13])


def _size(name, extent, symbolic):
    return qc.var(name, 1, 16) if symbolic else extent


def scale_program(rows, columns, symbolic):
    """B = 2*A + 1 over a (rows, columns) array, sizes static or qc.var."""
    M, N = _size("M", rows, symbolic), _size("N", columns, symbolic)
    A = qc.placeholder((M, N), "float32", "A")
    return qc.compute((M, N), lambda i, j: A[i, j] * 2.0 + 1.0, "B")


def matmul_program(rows, inner, columns):
    A = qc.placeholder((rows, inner), "float32", "A")
    B = qc.placeholder((inner, columns), "float32", "B")
    k = qc.reduce_axis(inner, "k")
    return qc.compute((rows, columns), lambda i, j: qc.sum(A[i, k] * B[k, j], axis=k), "C")


@settings(max_examples=25, deadline=None)
@given(rows=EXTENTS, columns=EXTENTS, symbolic=st.booleans(), factor=st.integers(1, 32),
       thread_y=st.booleans(), axis=st.sampled_from("xyz"), seed=st.integers(0, 2**16))
def test_bound_elementwise_kernel_matches_numpy(rows, columns, symbolic, factor, thread_y, axis,
                                                seed):
    sch = qc.Schedule(scale_program(rows, columns, symbolic))
    outer, inner = sch.split("i", factor)
    sch.bind(outer, f"blockIdx.{axis}")
    sch.bind(inner, f"threadIdx.{axis}")
    if thread_y and axis != "y":
        sch.bind("j", "threadIdx.y")
    assert "# blockIdx" in repr(sch) and "# threadIdx" in repr(sch)
    A = helpers.random_array(np.random.default_rng(seed), (rows, columns))
    helpers.check_schedule(sch, {"A": A}, {"B": A * np.float32(2.0) + np.float32(1.0)},
                           compile_c=False)


@settings(max_examples=20, deadline=None)
@given(rows=EXTENTS, inner=EXTENTS, columns=EXTENTS,
       factors=st.tuples(st.integers(1, 8), st.integers(1, 8)), seed=st.integers(0, 2**16))
def test_bound_matmul_tiles_match_numpy(rows, inner, columns, factors, seed):
    sch = qc.Schedule(matmul_program(rows, inner, columns))
    i_outer, j_outer, i_inner, j_inner = sch.tile("i", "j", *factors)
    sch.bind(i_outer, "blockIdx.y")
    sch.bind(j_outer, "blockIdx.x")
    sch.bind(i_inner, "threadIdx.y")
    sch.bind(j_inner, "threadIdx.x")
    rng = np.random.default_rng(seed)
    A, B = helpers.random_array(rng, (rows, inner)), helpers.random_array(rng, (inner, columns))
    helpers.check_schedule(sch, {"A": A, "B": B}, {"C": A @ B}, compile_c=False)


def test_the_c_target_refuses_a_bound_loop():
    helpers.require_cc()
    sch = qc.Schedule(scale_program(4, 6, symbolic=False))
    sch.bind("i", "blockIdx.x")
    with pytest.raises(qc.QuiltError, match=r"loop i is bound to blockIdx\.x.*target='cuda'"):
        qc.build(sch, target="c")


def test_binding_two_loops_of_a_nest_to_one_axis_is_refused():
    sch = qc.Schedule(scale_program(4, 6, symbolic=False))
    sch.bind("i", "threadIdx.x")
    with pytest.raises(qc.ScheduleError, match=r"bind: .*loop i of the same nest is already "
                       r"bound to "
                       r"threadIdx\.x, so loops i and j would both be threadIdx\.x"):
        sch.bind("j", "threadIdx.x")


def test_loops_of_separate_nests_may_bind_the_same_axis():
    A = qc.placeholder((4, 3), "float32", "A")
    B = qc.compute((4, 3), lambda i, j: A[i, j] + 1.0, "B")
    C = qc.compute((4, 3), lambda i, j: B[i, j] * 2.0, "C")
    sch = qc.Schedule(C)
    sch.bind("i", "blockIdx.x")
    sch.bind("i_1", "blockIdx.x")
    A_value = helpers.random_array(np.random.default_rng(3), (4, 3))
    reference = (A_value + np.float32(1.0)) * np.float32(2.0)
    helpers.check_schedule(sch, {"A": A_value}, {"C": reference}, compile_c=False)


def test_a_block_of_2048_threads_is_refused():
    sch = qc.Schedule(scale_program(64, 32, symbolic=False))
    sch.bind("j", "threadIdx.x")
    with pytest.raises(qc.ScheduleError, match=r"bind: .*the block would hold 2048 threads, over "
                       r"CUDA's limit of 1024 threads per block"):
        sch.bind("i", "threadIdx.y")


def test_a_block_loop_inside_a_thread_loop_is_refused():
    sch = qc.Schedule(scale_program(4, 6, symbolic=False))
    sch.bind("i", "threadIdx.x")
    with pytest.raises(qc.ScheduleError, match=r"bind: .*loop j is nested inside loop i, bound to "
                       r"threadIdx\.x, and a blockIdx loop cannot run inside a threadIdx loop"):
        sch.bind("j", "blockIdx.x")
    sch = qc.Schedule(scale_program(4, 6, symbolic=False))
    sch.bind("j", "blockIdx.x")
    with pytest.raises(qc.ScheduleError, match=r"loop j inside it is bound to blockIdx\.x"):
        sch.bind("i", "threadIdx.x")


def test_a_thread_loop_outside_the_block_loops_is_allowed():
    sch = qc.Schedule(scale_program(4, 6, symbolic=False))
    sch.bind("j", "threadIdx.x")
    sch.bind("i", "blockIdx.x")
    with pytest.raises(qc.ScheduleError, match=r"reorder: .*loop i \(bound to blockIdx\.x\) would "
                       r"move inside loop j \(bound to threadIdx\.x\)"):
        sch.reorder("j", "i")


def test_binding_to_an_unknown_axis_is_refused():
    sch = qc.Schedule(scale_program(4, 6, symbolic=False))
    with pytest.raises(
        qc.ScheduleError, match=r"'warp\.x' is not a GPU axis\. Use one of blockIdx\.x"
    ):
        sch.bind("i", "warp.x")


def test_binding_a_bound_loop_again_is_refused():
    sch = qc.Schedule(scale_program(4, 6, symbolic=False))
    sch.bind("i", "blockIdx.x")
    with pytest.raises(qc.ScheduleError, match=r"loop i is already bound to blockIdx\.x"):
        sch.bind("i", "blockIdx.y")


def test_binding_a_reduction_loop_to_threads_is_refused():
    sch = qc.Schedule(matmul_program(4, 5, 3))
    with pytest.raises(qc.ScheduleError, match=r"bind: .*loop k carries a reduction.*threads of a "
                       r"reduction loop would race"):
        sch.bind("k", "threadIdx.x")
