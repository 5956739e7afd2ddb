"""unroll, vectorize, parallel: property tests against the interpreter, compiled C and
numpy, the carried-dependence checks, and their errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import helpers
import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.ir.index import symbol
from quiltc.schedule.nest import walk_paths
from quiltc.schedule.schedule import Schedule

EXTENTS = st.sampled_from([1, 2, 3, 5, 7, 8])


def _size(name, extent, symbolic):
    return qc.var(name, 1, 16) if symbolic else extent


def scale_program(rows, columns, symbolic):
    """B = 2*A + 1 over a (rows, columns) array, sizes static or qc.var."""
    M, N = _size("M", rows, symbolic), _size("N", columns, symbolic)
    A = qc.placeholder((M, N), "float32", "A")
    return qc.compute((M, N), lambda i, j: A[i, j] * 2.0 + 1.0, "B")


def matmul_program(rows, inner, columns, symbolic):
    M, K = _size("M", rows, symbolic), _size("K", inner, symbolic)
    A = qc.placeholder((M, K), "float32", "A")
    B = qc.placeholder((K, columns), "float32", "B")
    k = qc.reduce_axis(K, "k")
    return qc.compute((M, columns), lambda i, j: qc.sum(A[i, k] * B[k, j], axis=k), "C")


def _matmul_arrays(seed, rows, inner, columns):
    rng = np.random.default_rng(seed)
    return helpers.random_array(rng, (rows, inner)), helpers.random_array(rng, (inner, columns))


@settings(max_examples=25, deadline=None)
@given(rows=EXTENTS, columns=EXTENTS, symbolic=st.booleans(), factor=st.integers(1, 5),
       split_loop=st.sampled_from(["i", "j"]), seed=st.integers(0, 2**16))
def test_annotations_on_an_elementwise_kernel_match_numpy(rows, columns, symbolic, factor,
                                                          split_loop, seed):
    sch = qc.Schedule(scale_program(rows, columns, symbolic))
    outer, inner = sch.split(split_loop, factor)
    other = "j" if split_loop == "i" else "i"
    sch.unroll(inner)
    sch.parallel(outer if split_loop == "i" else other)
    sch.vectorize(other if split_loop == "i" else outer)
    kinds = {loop.var.name: loop.kind for loop in _loops(sch)}
    assert kinds[inner.name] == "unroll"
    assert sorted(kinds.values()) == ["parallel", "unroll", "vector"]
    A = helpers.random_array(np.random.default_rng(seed), (rows, columns))
    helpers.check_schedule(sch, {"A": A}, {"B": A * np.float32(2.0) + np.float32(1.0)})


@settings(max_examples=25, deadline=None)
@given(rows=EXTENTS, inner=EXTENTS, columns=EXTENTS, symbolic=st.booleans(),
       order=st.permutations(["i", "j", "k"]), unroll_k=st.booleans(), seed=st.integers(0, 2**16))
def test_annotations_on_matmul_spatial_loops_match_numpy(rows, inner, columns, symbolic, order,
                                                         unroll_k, seed):
    sch = qc.Schedule(matmul_program(rows, inner, columns, symbolic=symbolic))
    sch.reorder(*order)
    sch.parallel("i")
    if order.index("j") > order.index("i"):
        sch.vectorize("j")
    if unroll_k and not symbolic:
        sch.unroll("k")
    A, B = _matmul_arrays(seed, rows, inner, columns)
    helpers.check_schedule(sch, {"A": A, "B": B}, {"C": A @ B})


def _loops(sch):
    return [stmt for _, stmt in walk_paths(sch.kernel.body) if isinstance(stmt, ir.For)]


def test_vectorize_of_a_reduction_loop_is_refused():
    sch = qc.Schedule(matmul_program(4, 5, 3, symbolic=False))
    with pytest.raises(qc.ScheduleError, match=r"vectorize: .*loop k carries a reduction: every "
                       r"iteration accumulates into C\[i, j\], which does not depend on k\..*"
                       r"Vectorize a spatial loop.*cache_write or decompose"):
        sch.vectorize("k")


def test_parallel_of_a_reduction_loop_is_refused():
    sch = qc.Schedule(matmul_program(4, 5, 3, symbolic=True))
    with pytest.raises(qc.ScheduleError, match=r"parallel: .*loop k carries a reduction.*race"):
        sch.parallel("k")


def test_vectorize_of_a_loop_fusing_spatial_and_reduction_iterations_is_refused():
    sch = qc.Schedule(matmul_program(4, 5, 3, symbolic=False))
    fused = sch.fuse("j", "k")
    with pytest.raises(qc.ScheduleError, match=r"loop j_k carries a reduction: every iteration "
                       r"accumulates into C\[i, floor\(j_k/5\)\], which may be the same element"):
        sch.vectorize(fused)


def test_decompose_leaves_the_reduction_loop_still_carrying_the_reduction():
    sch = qc.Schedule(matmul_program(4, 5, 3, symbolic=False))
    sch.decompose("C", "i")
    with pytest.raises(qc.ScheduleError, match=r"loop k carries a reduction"):
        sch.parallel("k")


def test_each_stage_of_a_two_stage_kernel_runs_in_parallel():
    A = qc.placeholder((6,), "float32", "A")
    B = qc.compute((6,), lambda i: A[i] + 1.0, "B")
    C = qc.compute((6,), lambda i: B[i] * 2.0, "C")
    sch = qc.Schedule(C)
    sch.parallel("i")
    sch.parallel("i_1")
    A_value = helpers.random_array(np.random.default_rng(1), (6,))
    reference = (A_value + np.float32(1.0)) * np.float32(2.0)
    helpers.check_schedule(sch, {"A": A_value}, {"C": reference})


def test_parallel_of_a_loop_reading_what_another_iteration_writes_is_refused():
    i = symbol("i")
    A = ir.Buffer("A", qc.float32, (6,))
    B = ir.Buffer("B", qc.float32, (6,))
    C = ir.Buffer("C", qc.float32, (5,))
    body = ir.Seq((ir.Store(B, (i,), ir.Load(A, (i,))), ir.Store(C, (i,), ir.Load(B, (i + 1,)))))
    sch = Schedule(ir.Kernel("shifted", (A, B, C), ir.For(i, 5, body), ("B", "C")))
    with pytest.raises(qc.ScheduleError, match=r"parallel: .*loop i carries a dependence through "
                       r"B: B\[i \+ 1\] and B\[i\] may reach the same element from different "
                       r"iterations"):
        sch.parallel("i")


def test_unroll_of_a_symbolic_extent_is_refused():
    sch = qc.Schedule(scale_program(4, 6, symbolic=True))
    with pytest.raises(qc.ScheduleError, match=r"unroll: .*its extent N is not a constant\. "
                       r"Split j "
                       r"by a constant factor first"):
        sch.unroll("j")


def test_annotating_a_loop_twice_is_refused():
    sch = qc.Schedule(scale_program(4, 6, symbolic=False))
    sch.vectorize("j")
    with pytest.raises(qc.ScheduleError, match=r"parallel: .*loop j is already marked vector"):
        sch.parallel("j")


def test_annotating_a_bound_loop_is_refused():
    sch = qc.Schedule(scale_program(4, 6, symbolic=False))
    sch.bind("i", "blockIdx.x")
    with pytest.raises(
        qc.ScheduleError, match=r"unroll: .*loop i is bound to GPU axis blockIdx\.x"
    ):
        sch.unroll("i")


@pytest.mark.parametrize("inner_first", [False, True])
def test_a_parallel_loop_inside_another_is_refused(inner_first):
    sch = qc.Schedule(scale_program(4, 6, symbolic=False))
    first, second = ("j", "i") if inner_first else ("i", "j")
    sch.parallel(first)
    relation = "around" if inner_first else "inside"
    with pytest.raises(
        qc.ScheduleError, match=rf"it would sit {relation} loop {first}, which is already parallel"
    ):
        sch.parallel(second)


def test_a_parallel_loop_inside_a_vector_loop_is_refused():
    sch = qc.Schedule(scale_program(4, 6, symbolic=False))
    sch.vectorize("i")
    with pytest.raises(
        qc.ScheduleError, match=r"parallel: .*it sits inside loop i, which is a SIMD loop"
    ):
        sch.parallel("j")
    sch = qc.Schedule(scale_program(4, 6, symbolic=False))
    sch.parallel("j")
    with pytest.raises(qc.ScheduleError, match=r"vectorize: .*loop j inside it is parallel"):
        sch.vectorize("i")


def test_vectorize_need_not_be_innermost():
    sch = qc.Schedule(scale_program(4, 6, symbolic=False))
    sch.vectorize("i")
    A = helpers.random_array(np.random.default_rng(2), (4, 6))
    helpers.check_schedule(sch, {"A": A}, {"B": A * np.float32(2.0) + np.float32(1.0)})


@settings(max_examples=20, deadline=None)
@given(rows=EXTENTS, inner=EXTENTS, columns=EXTENTS, symbolic=st.booleans(),
       factors=st.tuples(st.integers(1, 4), st.integers(1, 4)), seed=st.integers(0, 2**16))
def test_parallel_fused_tile_loops_match_numpy(rows, inner, columns, symbolic, factors, seed):
    sch = qc.Schedule(matmul_program(rows, inner, columns, symbolic))
    i_outer, j_outer, i_inner, j_inner = sch.tile("i", "j", *factors)
    sch.parallel(sch.fuse(i_outer, j_outer))
    sch.vectorize(j_inner)
    A, B = _matmul_arrays(seed, rows, inner, columns)
    helpers.check_schedule(sch, {"A": A, "B": B}, {"C": A @ B})


def test_vectorize_of_a_split_fused_loop_is_accepted():
    sch = qc.Schedule(scale_program(5, 3, symbolic=False))
    fused = sch.fuse("i", "j")
    outer, inner = sch.split(fused, 5)
    sch.parallel(outer)
    sch.vectorize(inner)
    A = helpers.random_array(np.random.default_rng(5), (5, 3))
    helpers.check_schedule(sch, {"A": A}, {"B": A * np.float32(2.0) + np.float32(1.0)})
