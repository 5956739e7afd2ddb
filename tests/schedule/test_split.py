"""split: property tests against the interpreter, compiled C and numpy, and its errors."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc

from support import helpers, programs
from support.tiers import examples

EXTENTS = st.sampled_from([1, 2, 3, 4, 5, 7, 8, 11])
FACTORS = st.integers(1, 9)


@settings(max_examples=examples(25))
@given(rows=EXTENTS, columns=EXTENTS, symbolic=st.booleans(), loop=st.sampled_from(["i", "j"]),
       factor=FACTORS, guard=st.sampled_from([None, True]), seed=st.integers(0, 2**16))
def test_split_elementwise_matches_numpy(rows, columns, symbolic, loop, factor, guard, seed):
    sch = qc.Schedule(programs.scale(rows, columns, symbolic))
    outer, inner = sch.split(loop, factor, guard=guard)
    i, j = qc.ir.symbol("i"), qc.ir.symbol("j")
    assert sch.loops("B") == ([outer, inner, j] if loop == "i" else [i, outer, inner])
    helpers.check_schedule(sch, *programs.scale_arrays(seed, rows, columns))


@settings(max_examples=examples(25))
@given(rows=EXTENTS, inner=EXTENTS, columns=EXTENTS, symbolic=st.booleans(),
       loop=st.sampled_from(["i", "j", "k"]), factor=FACTORS, seed=st.integers(0, 2**16))
def test_split_matmul_matches_numpy(rows, inner, columns, symbolic, loop, factor, seed):
    sch = qc.Schedule(programs.matmul(rows, inner, columns, symbolic))
    sch.split(loop, factor)
    helpers.check_schedule(sch, *programs.matmul_arrays(seed, rows, inner, columns))


def test_split_by_a_divisor_needs_no_guard():
    sch = qc.Schedule(programs.scale(6, 4))
    sch.split("i", 3, guard=False)
    assert "if" not in repr(sch)


@pytest.mark.parametrize("factor", [0, -2, 2.5, True])
def test_split_rejects_a_factor_that_is_not_a_positive_integer(factor):
    sch = qc.Schedule(programs.scale(6, 4))
    with pytest.raises(qc.ScheduleError, match=r"split: .*split factor must be a positive integer"):
        sch.split("i", factor)


def test_split_without_guard_refuses_a_factor_that_may_not_divide():
    sch = qc.Schedule(programs.scale(6, 4, symbolic=True))
    with pytest.raises(qc.ScheduleError, match=r"4 may not divide M"):
        sch.split("i", 4, guard=False)


def test_split_of_an_unknown_loop_lists_the_loops():
    sch = qc.Schedule(programs.scale(6, 4))
    with pytest.raises(
        qc.ScheduleError, match=r"no loop called 'x'.*Loops in the kernel now: i, j"
    ):
        sch.split("x", 2)
