"""fuse: property tests against the interpreter, compiled C and numpy, and its errors."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import helpers
import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.ir.index import symbol
from quiltc.schedule.schedule import Schedule

EXTENTS = st.sampled_from([1, 2, 3, 5, 7, 8])


def _size(name, extent, symbolic):
    return qc.var(name, 1, 16) if symbolic else extent


def volume_program(shape, symbolic):
    """B[i, j, l] = A[i, j, l] * 3 - 1 over a 3-D array, sizes static or qc.var."""
    sizes = tuple(_size(name, n, symbolic) for name, n in zip("MNP", shape))
    A = qc.placeholder(sizes, "float32", "A")
    return qc.compute(sizes, lambda i, j, l: A[i, j, l] * 3.0 - 1.0, "B")


def matmul_program(rows, inner, columns):
    A = qc.placeholder((rows, inner), "float32", "A")
    B = qc.placeholder((inner, columns), "float32", "B")
    k = qc.reduce_axis(inner, "k")
    return qc.compute((rows, columns), lambda i, j: qc.sum(A[i, k] * B[k, j], axis=k), "C")


@settings(max_examples=25, deadline=None)
@given(shape=st.tuples(EXTENTS, EXTENTS, EXTENTS), symbolic=st.booleans(),
       pair=st.sampled_from([("i", "j"), ("j", "l")]), split_after=st.booleans(),
       factor=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_fuse_elementwise_matches_numpy(shape, symbolic, pair, split_after, factor, seed):
    sch = qc.Schedule(volume_program(shape, symbolic))
    fused = sch.fuse(*pair)
    assert fused.name == "_".join(pair)
    if split_after:
        fused_extent = shape[0] * shape[1] if pair == ("i", "j") else shape[1] * shape[2]
        # ir/verify.py cannot yet bound floor(x / N) under a guard on x, so a static fused
        # loop is split only by divisors (exact, no guard); symbolic ones keep fuse's guard.
        sch.split(fused, factor if symbolic else math.gcd(factor, fused_extent))
    A = helpers.random_array(np.random.default_rng(seed), shape)
    helpers.check_schedule(sch, {"A": A}, {"B": A * np.float32(3.0) - np.float32(1.0)})


@settings(max_examples=20, deadline=None)
@given(rows=EXTENTS, inner=EXTENTS, columns=EXTENTS, fuse_reduction=st.booleans(),
       seed=st.integers(0, 2**16))
def test_fuse_matmul_matches_numpy(rows, inner, columns, fuse_reduction, seed):
    sch = qc.Schedule(matmul_program(rows, inner, columns))
    if fuse_reduction:
        sch.fuse("j", "k")
    else:
        sch.fuse(sch.fuse("i", "j"), "k")
    rng = np.random.default_rng(seed)
    A, B = helpers.random_array(rng, (rows, inner)), helpers.random_array(rng, (inner, columns))
    helpers.check_schedule(sch, {"A": A, "B": B}, {"C": A @ B})


def test_split_of_a_fused_loop_by_the_inner_extent_gives_back_plain_indices():
    sch = qc.Schedule(volume_program((4, 6, 2), symbolic=False))
    fused = sch.fuse("j", "l")
    sch.split(fused, 2)
    assert "B[i, j_l_o, j_l_i] = ((A[i, j_l_o, j_l_i] * 3.0) - 1.0)" in repr(sch)


def test_fuse_of_a_split_loop_keeps_its_guard():
    sch = qc.Schedule(volume_program((5, 3, 2), symbolic=False))
    outer, inner = sch.split("i", 2)
    fused = sch.fuse(inner, "j")
    assert "if" in repr(sch)
    A = helpers.random_array(np.random.default_rng(0), (5, 3, 2))
    helpers.check_schedule(sch, {"A": A}, {"B": A * np.float32(3.0) - np.float32(1.0)})
    assert sch.loops("B") == [outer, fused, symbol("l")]


def test_fuse_of_loops_that_are_not_nested_is_refused():
    sch = qc.Schedule(volume_program((4, 6, 2), symbolic=False))
    with pytest.raises(qc.ScheduleError, match=r"fuse: .*loop l is not directly nested in loop i"):
        sch.fuse("i", "l")


def test_fuse_of_loops_of_two_nests_is_refused():
    A = qc.placeholder((4, 3), "float32", "A")
    B = qc.compute((4, 3), lambda i, j: A[i, j] + 1.0, "B")
    C = qc.compute((4, 3), lambda i, j: B[i, j] * 2.0, "C")
    sch = qc.Schedule(C)
    with pytest.raises(
        qc.ScheduleError, match=r"loop j_1 is not directly nested in loop i .*somewhere else"
    ):
        sch.fuse("i", "j_1")


def test_fuse_with_the_loops_swapped_names_the_right_order():
    sch = qc.Schedule(volume_program((4, 6, 2), symbolic=False))
    with pytest.raises(
        qc.ScheduleError, match=r"loop i encloses loop j\. Pass the outer loop first: fuse\(i, j\)"
    ):
        sch.fuse("j", "i")


def test_fuse_of_an_annotated_loop_is_refused():
    sch = qc.Schedule(volume_program((4, 6, 2), symbolic=False))
    sch.vectorize("l")
    with pytest.raises(qc.ScheduleError, match=r"loop l is already marked vector"):
        sch.fuse("j", "l")


def test_fuse_of_a_ragged_pair_is_refused():
    i, j = symbol("i"), symbol("j")
    out = ir.Buffer("out", qc.float32, (4, 4))
    store = ir.Store(out, (i, j), ir.Const(1.0, qc.float32))
    kernel = ir.Kernel("ragged", (out,), ir.For(i, 4, ir.For(j, i + 1, store)), ("out",))
    sch = Schedule(kernel)
    with pytest.raises(
        qc.ScheduleError, match=r"extent of loop j \(i \+ 1\) depends on i, so the pair is ragged"
    ):
        sch.fuse("i", "j")


def test_fuse_of_a_loop_with_two_statements_is_refused():
    i, j, l = symbol("i"), symbol("j"), symbol("l")
    out = ir.Buffer("out", qc.float32, (4, 4))
    one = ir.Const(1.0, qc.float32)
    first, second = ir.Store(out, (i, j), one), ir.Store(out, (i, l), one)
    body = ir.Seq((ir.For(j, 4, first), ir.For(l, 4, second)))
    sch = Schedule(ir.Kernel("two", (out,), ir.For(i, 4, body), ("out",)))
    with pytest.raises(
        qc.ScheduleError, match=r"loop j is not directly nested in loop i \(it is inside it, but "
        r"not as the only",
    ):
        sch.fuse("i", "j")
