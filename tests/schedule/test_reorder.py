"""reorder: property tests against the interpreter, compiled C and numpy, and its errors."""

from functools import partial

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.ir.index import symbol
from quiltc.schedule.schedule import Schedule

from support import helpers, programs
from support.tiers import examples

EXTENTS = st.sampled_from([1, 2, 3, 5, 7, 8])


@st.composite
def named_subsets(draw, loops):
    """Two or more distinct loops of `loops`, in a random order."""
    chosen = draw(st.lists(st.sampled_from(loops), min_size=2, max_size=len(loops), unique=True))
    return draw(st.permutations(chosen))


@settings(max_examples=examples(25))
@given(shape=st.tuples(EXTENTS, EXTENTS, EXTENTS), symbolic=st.booleans(),
       split_loop=st.sampled_from([None, "i", "j", "l"]), factor=st.integers(1, 4),
       data=st.data(), seed=st.integers(0, 2**16))
def test_reorder_elementwise_matches_numpy(shape, symbolic, split_loop, factor, data, seed):
    sch = qc.Schedule(programs.volume(shape, symbolic))
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
    helpers.check_schedule(sch, *programs.volume_arrays(seed, shape))


@settings(max_examples=examples(25))
@given(rows=EXTENTS, inner=EXTENTS, columns=EXTENTS, symbolic=st.booleans(),
       order=st.permutations(["i", "j", "k"]), seed=st.integers(0, 2**16))
def test_reorder_matmul_matches_numpy(rows, inner, columns, symbolic, order, seed):
    sch = qc.Schedule(programs.matmul(rows, inner, columns, symbolic))
    sch.reorder(*order)
    assert [loop.name for loop in sch.loops("C")] == list(order)
    helpers.check_schedule(sch, *programs.matmul_arrays(seed, rows, inner, columns))


def test_reorder_keeps_unnamed_loops_in_place():
    sch = qc.Schedule(programs.volume((2, 3, 4)))
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


@pytest.mark.parametrize("program, before, order, message", [
    pytest.param(partial(programs.two_stages, 4, 3), (), ("j_1", "i"),
                 r"reorder: .*loops i and j_1 are in different nests", id="two-nests"),
    pytest.param(programs.two_inner_loops_kernel, (), ("j", "i"),
                 r"a Seq statement stands between them, so the loops are not perfectly nested",
                 id="not-perfectly-nested"),
    pytest.param(programs.ragged_kernel, (), ("j", "i"),
                 r"extent of loop j \(i \+ 1\) depends on i, which would move inside j",
                 id="ragged-extent"),
    pytest.param(partial(programs.volume, (2, 3, 4)), (), ("j", "i", "j"),
                 r"loop j is named twice", id="named-twice"),
    pytest.param(partial(programs.volume, (2, 3, 4)), (("parallel", "i"), ("vectorize", "l")),
                 ("l", "i"), r"reorder: .*parallel loop i would move inside loop l, a SIMD loop",
                 id="parallel-into-vector"),
])
def test_reorder_refuses_orders_it_cannot_make(program, before, order, message):
    sch = programs.schedule(program(), before)
    with pytest.raises(qc.ScheduleError, match=message):
        sch.reorder(*order)
