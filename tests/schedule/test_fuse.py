"""fuse: property tests against the interpreter, compiled C and numpy, and its errors."""

from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir.index import symbol

from support import helpers, programs
from support.tiers import examples

EXTENTS = st.sampled_from([1, 2, 3, 5, 7, 8])


@settings(max_examples=examples(25))
@given(shape=st.tuples(EXTENTS, EXTENTS, EXTENTS), symbolic=st.booleans(),
       pair=st.sampled_from([("i", "j"), ("j", "l")]), split_after=st.booleans(),
       factor=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_fuse_elementwise_matches_numpy(shape, symbolic, pair, split_after, factor, seed):
    sch = qc.Schedule(programs.volume(shape, symbolic))
    fused = sch.fuse(*pair)
    assert fused.name == "_".join(pair)
    if split_after:
        sch.split(fused, factor)
    helpers.check_schedule(sch, *programs.volume_arrays(seed, shape))


@given(rows=EXTENTS, inner=EXTENTS, columns=EXTENTS, fuse_reduction=st.booleans(),
       seed=st.integers(0, 2**16))
def test_fuse_matmul_matches_numpy(rows, inner, columns, fuse_reduction, seed):
    sch = qc.Schedule(programs.matmul(rows, inner, columns))
    if fuse_reduction:
        sch.fuse("j", "k")
    else:
        sch.fuse(sch.fuse("i", "j"), "k")
    helpers.check_schedule(sch, *programs.matmul_arrays(seed, rows, inner, columns))


def test_split_of_a_fused_loop_by_the_inner_extent_gives_back_plain_indices():
    sch = qc.Schedule(programs.volume((4, 6, 2)))
    fused = sch.fuse("j", "l")
    sch.split(fused, 2)
    assert "B[i, j_l_o, j_l_i] = ((A[i, j_l_o, j_l_i] * 3.0) - 1.0)" in repr(sch)


def test_fuse_of_a_split_loop_keeps_its_guard():
    sch = qc.Schedule(programs.volume((5, 3, 2)))
    outer, inner = sch.split("i", 2)
    fused = sch.fuse(inner, "j")
    assert "if" in repr(sch)
    helpers.check_schedule(sch, *programs.volume_arrays(0, (5, 3, 2)))
    assert sch.loops("B") == [outer, fused, symbol("l")]


@pytest.mark.parametrize("program, before, loops, message", [
    pytest.param(partial(programs.volume, (4, 6, 2)), (), ("i", "l"),
                 r"fuse: .*loop l is not directly nested in loop i", id="not-nested"),
    pytest.param(partial(programs.two_stages, 4, 3), (), ("i", "j_1"),
                 r"loop j_1 is not directly nested in loop i .*somewhere else", id="two-nests"),
    pytest.param(partial(programs.volume, (4, 6, 2)), (), ("j", "i"),
                 r"loop i encloses loop j\. Pass the outer loop first: fuse\(i, j\)",
                 id="swapped"),
    pytest.param(partial(programs.volume, (4, 6, 2)), (("vectorize", "l"),), ("j", "l"),
                 r"loop l is already marked vector", id="annotated"),
    pytest.param(programs.ragged_kernel, (), ("i", "j"),
                 r"fuse: .*extent of loop j \(i \+ 1\) depends on i, but it is not the length of "
                 r"each row of a ragged batch.*Fuse a ragged pair before padding or remapping",
                 id="ragged-pair"),
    pytest.param(programs.two_inner_loops_kernel, (), ("i", "j"),
                 r"loop j is not directly nested in loop i \(it is inside it, but not as the only",
                 id="two-statements"),
])
def test_fuse_refuses_loops_it_cannot_fuse(program, before, loops, message):
    sch = programs.schedule(program(), before)
    with pytest.raises(qc.ScheduleError, match=message):
        sch.fuse(*loops)


def test_a_loop_of_no_iteration_is_not_fused_into():
    # split_op's tile loop runs no iteration when B's largest value is below the factor;
    # fused inside another loop it made Mod(fused, 0) (a fuzz finding, seed 6660001).
    batch = qc.var("B", 1, 6)
    x = qc.placeholder((batch, 3), "float32", "X")
    doubled = qc.compute((batch, 3), lambda b, h: x[b, h] * np.float32(2.0), "doubled")
    sch = qc.Schedule(doubled)
    tiles, lanes, _ = sch.split_op("b", 8)
    sch.reorder(lanes, tiles)
    with pytest.raises(qc.ScheduleError, match=r"loop b_o runs no iteration \(its extent is 0\)"):
        sch.fuse(lanes, tiles)
