"""reorder: property tests against the interpreter, compiled C and numpy, and its errors."""

import numpy as np
import pytest
import sympy
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


def matmul_program(rows, inner, columns, symbolic):
    M, K = _size("M", rows, symbolic), _size("K", inner, symbolic)
    A = qc.placeholder((M, K), "float32", "A")
    B = qc.placeholder((K, columns), "float32", "B")
    k = qc.reduce_axis(K, "k")
    return qc.compute((M, columns), lambda i, j: qc.sum(A[i, k] * B[k, j], axis=k), "C")


@st.composite
def named_subsets(draw, loops):
    """Two or more distinct loops of `loops`, in a random order."""
    chosen = draw(st.lists(st.sampled_from(loops), min_size=2, max_size=len(loops), unique=True))
    return draw(st.permutations(chosen))


@settings(max_examples=25, deadline=None)
@given(shape=st.tuples(EXTENTS, EXTENTS, EXTENTS), symbolic=st.booleans(),
       split_loop=st.sampled_from([None, "i", "j", "l"]), factor=st.integers(1, 4),
       data=st.data(), seed=st.integers(0, 2**16))
def test_reorder_elementwise_matches_numpy(shape, symbolic, split_loop, factor, data, seed):
    sch = qc.Schedule(volume_program(shape, symbolic))
    if split_loop:
        sch.split(split_loop, factor)
    loops = sch.loops("B")
    order = data.draw(named_subsets(loops))
    sch.reorder(*order)
    after = sch.loops("B")
    positions = sorted(loops.index(loop) for loop in order)
    assert [after[p] for p in positions] == list(order)
    unnamed = [p for p, loop in enumerate(loops) if loop not in order]
    assert [after[p] for p in unnamed] == [loops[p] for p in unnamed]
    A = helpers.random_array(np.random.default_rng(seed), shape)
    helpers.check_schedule(sch, {"A": A}, {"B": A * np.float32(3.0) - np.float32(1.0)})


@settings(max_examples=25, deadline=None)
@given(rows=EXTENTS, inner=EXTENTS, columns=EXTENTS, symbolic=st.booleans(),
       order=st.permutations(["i", "j", "k"]), seed=st.integers(0, 2**16))
def test_reorder_matmul_matches_numpy(rows, inner, columns, symbolic, order, seed):
    sch = qc.Schedule(matmul_program(rows, inner, columns, symbolic))
    sch.reorder(*order)
    assert [loop.name for loop in sch.loops("C")] == list(order)
    rng = np.random.default_rng(seed)
    A, B = helpers.random_array(rng, (rows, inner)), helpers.random_array(rng, (inner, columns))
    helpers.check_schedule(sch, {"A": A, "B": B}, {"C": A @ B})


def test_reorder_keeps_unnamed_loops_in_place():
    sch = qc.Schedule(volume_program((2, 3, 4), symbolic=False))
    sch.reorder("l", "i")
    assert [loop.name for loop in sch.loops("B")] == ["l", "j", "i"]


def test_reorder_moves_a_guard_between_the_loops_onto_the_statements():
    i, j = symbol("i"), symbol("j")
    out = ir.Buffer("out", qc.float32, (4, 3))
    store = ir.Store(out, (i, j), ir.Const(1.0, qc.float32))
    guarded = ir.For(i, 4, ir.If(sympy.Lt(i, 3), ir.For(j, 3, store)))
    sch = Schedule(ir.Kernel("guarded", (out,), guarded, ("out",)))
    sch.reorder("j", "i")
    assert repr(sch).splitlines()[1:] == [
        "    for j in range(3):",
        "        for i in range(4):",
        "            if i < 3:",
        "                out[i, j] = 1.0",
    ]


def test_reorder_of_loops_in_different_nests_is_refused():
    A = qc.placeholder((4, 3), "float32", "A")
    B = qc.compute((4, 3), lambda i, j: A[i, j] + 1.0, "B")
    C = qc.compute((4, 3), lambda i, j: B[i, j] * 2.0, "C")
    sch = qc.Schedule(C)
    with pytest.raises(
        qc.ScheduleError, match=r"reorder: .*loops i and j_1 are in different nests"
    ):
        sch.reorder("j_1", "i")


def test_reorder_of_loops_that_are_not_perfectly_nested_is_refused():
    i, j, l = symbol("i"), symbol("j"), symbol("l")
    out = ir.Buffer("out", qc.float32, (4, 4))
    one = ir.Const(1.0, qc.float32)
    first, second = ir.Store(out, (i, j), one), ir.Store(out, (i, l), one)
    body = ir.Seq((ir.For(j, 4, first), ir.For(l, 4, second)))
    sch = Schedule(ir.Kernel("two", (out,), ir.For(i, 4, body), ("out",)))
    with pytest.raises(
        qc.ScheduleError, match=r"a Seq statement stands between them, so the loops are not "
        r"perfectly nested",
    ):
        sch.reorder("j", "i")


def test_reorder_that_would_move_a_ragged_extent_outside_its_loop_is_refused():
    i, j = symbol("i"), symbol("j")
    out = ir.Buffer("out", qc.float32, (4, 4))
    store = ir.Store(out, (i, j), ir.Const(1.0, qc.float32))
    sch = Schedule(ir.Kernel("ragged", (out,), ir.For(i, 4, ir.For(j, i + 1, store)), ("out",)))
    with pytest.raises(
        qc.ScheduleError, match=r"extent of loop j \(i \+ 1\) depends on i, which would move "
        r"inside j",
    ):
        sch.reorder("j", "i")


def test_reorder_naming_a_loop_twice_is_refused():
    sch = qc.Schedule(volume_program((2, 3, 4), symbolic=False))
    with pytest.raises(qc.ScheduleError, match=r"loop j is named twice"):
        sch.reorder("j", "i", "j")


def test_reorder_that_would_put_a_parallel_loop_inside_a_vector_loop_is_refused():
    sch = qc.Schedule(volume_program((2, 3, 4), symbolic=False))
    sch.parallel("i")
    sch.vectorize("l")
    with pytest.raises(qc.ScheduleError, match=r"reorder: .*parallel loop i would move inside loop "
                       r"l, a SIMD loop"):
        sch.reorder("l", "i")
