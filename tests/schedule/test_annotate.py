"""unroll, vectorize, parallel: property tests against the interpreter, compiled C and
numpy, the carried-dependence checks, and their errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.ir.index import symbol
from quiltc.schedule.nest import walk_paths
from quiltc.schedule.schedule import Schedule

from support import helpers, programs
from support.tiers import examples

EXTENTS = st.sampled_from([1, 2, 3, 5, 7, 8])


@settings(max_examples=examples(25))
@given(rows=EXTENTS, columns=EXTENTS, symbolic=st.booleans(), factor=st.integers(1, 5),
       split_loop=st.sampled_from(["i", "j"]), seed=st.integers(0, 2**16))
def test_annotations_on_an_elementwise_kernel_match_numpy(rows, columns, symbolic, factor,
                                                          split_loop, seed):
    sch = qc.Schedule(programs.scale(rows, columns, symbolic))
    outer, inner = sch.split(split_loop, factor)
    other = "j" if split_loop == "i" else "i"
    sch.unroll(inner)
    sch.parallel(outer if split_loop == "i" else other)
    sch.vectorize(other if split_loop == "i" else outer)
    kinds = {loop.var.name: loop.kind for loop in _loops(sch)}
    assert kinds[inner.name] == "unroll"
    assert sorted(kinds.values()) == ["parallel", "unroll", "vector"]
    helpers.check_schedule(sch, *programs.scale_arrays(seed, rows, columns))


@settings(max_examples=examples(25))
@given(rows=EXTENTS, inner=EXTENTS, columns=EXTENTS, symbolic=st.booleans(),
       order=st.permutations(["i", "j", "k"]), unroll_k=st.booleans(), seed=st.integers(0, 2**16))
def test_annotations_on_matmul_spatial_loops_match_numpy(rows, inner, columns, symbolic, order,
                                                         unroll_k, seed):
    sch = qc.Schedule(programs.matmul(rows, inner, columns, symbolic))
    sch.reorder(*order)
    sch.parallel("i")
    if order.index("j") > order.index("i"):
        sch.vectorize("j")
    if unroll_k and not symbolic:
        sch.unroll("k")
    helpers.check_schedule(sch, *programs.matmul_arrays(seed, rows, inner, columns))


def _loops(sch):
    return [stmt for _, stmt in walk_paths(sch.kernel.body) if isinstance(stmt, ir.For)]


def test_vectorize_of_a_reduction_loop_is_refused():
    sch = qc.Schedule(programs.matmul(4, 5, 3))
    with pytest.raises(qc.ScheduleError, match=r"vectorize: .*loop k carries a reduction: every "
                       r"iteration accumulates into C\[i, j\], which does not depend on k\..*"
                       r"Vectorize a spatial loop.*cache_write or decompose"):
        sch.vectorize("k")


def test_parallel_of_a_reduction_loop_is_refused():
    sch = qc.Schedule(programs.matmul(4, 5, 3, symbolic=True))
    with pytest.raises(qc.ScheduleError, match=r"parallel: .*loop k carries a reduction.*race"):
        sch.parallel("k")


def test_vectorize_of_a_loop_fusing_spatial_and_reduction_iterations_is_refused():
    sch = qc.Schedule(programs.matmul(4, 5, 3))
    fused = sch.fuse("j", "k")
    with pytest.raises(qc.ScheduleError, match=r"loop j_k carries a reduction: every iteration "
                       r"accumulates into C\[i, floor\(j_k/5\)\], which may be the same element"):
        sch.vectorize(fused)


def test_decompose_leaves_the_reduction_loop_still_carrying_the_reduction():
    sch = qc.Schedule(programs.matmul(4, 5, 3))
    sch.decompose("C", "i")
    with pytest.raises(qc.ScheduleError, match=r"loop k carries a reduction"):
        sch.parallel("k")


def test_each_stage_of_a_two_stage_kernel_runs_in_parallel():
    sch = qc.Schedule(programs.two_stages(6, 2))
    sch.parallel("i")
    sch.parallel("i_1")
    helpers.check_schedule(sch, *programs.two_stages_arrays(1, 6, 2))


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
    sch = qc.Schedule(programs.scale(4, 6, symbolic=True))
    with pytest.raises(qc.ScheduleError, match=r"unroll: .*its extent N is not a constant\. "
                       r"Split j "
                       r"by a constant factor first"):
        sch.unroll("j")


@pytest.mark.parametrize("first, second, message", [
    (("vectorize", "j"), ("parallel", "j"), r"parallel: .*loop j is already marked vector"),
    (("bind", "i", "blockIdx.x"), ("unroll", "i"),
     r"unroll: .*loop i is bound to GPU axis blockIdx\.x"),
    (("parallel", "i"), ("parallel", "j"),
     r"parallel: .*it would sit inside loop i, which is already parallel"),
    (("parallel", "j"), ("parallel", "i"),
     r"parallel: .*it would sit around loop j, which is already parallel"),
    (("vectorize", "i"), ("parallel", "j"),
     r"parallel: .*it sits inside loop i, which is a SIMD loop"),
    (("parallel", "j"), ("vectorize", "i"), r"vectorize: .*loop j inside it is parallel"),
], ids=["annotated-twice", "bound", "parallel-in-parallel", "parallel-around-parallel",
        "parallel-in-vector", "vector-around-parallel"])
def test_an_annotation_that_conflicts_with_an_earlier_one_is_refused(first, second, message):
    sch = programs.schedule(programs.scale(4, 6), [first])
    primitive, loop = second
    with pytest.raises(qc.ScheduleError, match=message):
        getattr(sch, primitive)(loop)


def test_vectorize_need_not_be_innermost():
    sch = qc.Schedule(programs.scale(4, 6))
    sch.vectorize("i")
    helpers.check_schedule(sch, *programs.scale_arrays(2, 4, 6))


@given(rows=EXTENTS, inner=EXTENTS, columns=EXTENTS, symbolic=st.booleans(),
       factors=st.tuples(st.integers(1, 4), st.integers(1, 4)), seed=st.integers(0, 2**16))
def test_parallel_fused_tile_loops_match_numpy(rows, inner, columns, symbolic, factors, seed):
    sch = qc.Schedule(programs.matmul(rows, inner, columns, symbolic))
    i_outer, j_outer, i_inner, j_inner = sch.tile("i", "j", *factors)
    sch.parallel(sch.fuse(i_outer, j_outer))
    sch.vectorize(j_inner)
    helpers.check_schedule(sch, *programs.matmul_arrays(seed, rows, inner, columns))


def test_vectorize_of_a_split_fused_loop_is_accepted():
    sch = qc.Schedule(programs.scale(5, 3))
    fused = sch.fuse("i", "j")
    outer, inner = sch.split(fused, 5)
    sch.parallel(outer)
    sch.vectorize(inner)
    helpers.check_schedule(sch, *programs.scale_arrays(5, 5, 3))


@settings(max_examples=examples(20))
@given(rows=EXTENTS, columns=st.sampled_from([1, 3, 16, 37, 100]), symbolic=st.booleans(),
       combiner=st.sampled_from(["sum", "max", "min"]), dtype=st.sampled_from(["float32",
                                                                               "int32"]),
       seed=st.integers(0, 2**16))
def test_a_decomposed_reduction_loop_vectorizes_as_a_simd_reduction(rows, columns, symbolic,
                                                                    combiner, dtype, seed):
    size = qc.var("N", 1, 128) if symbolic else columns
    x = qc.placeholder((rows, size), dtype, "X")
    k = qc.reduce_axis(size, "k")
    reducer = {"sum": qc.sum, "max": qc.max, "min": qc.min}[combiner]
    total = qc.compute((rows,), lambda i: reducer(x[i, k], axis=k), "S")
    sch = qc.Schedule(total)
    sch.decompose("S", "k")
    sch.vectorize("k")
    source = qc.build(sch).source
    clause = {"sum": "+"}.get(combiner, combiner)
    assert f"#pragma omp simd reduction({clause}:quiltc_accumulator)" in source
    rng = np.random.default_rng(seed)
    values = (rng.standard_normal((rows, columns)) * 100).astype(dtype)
    helpers.check_schedule(sch, {"X": values})
