"""tile: property tests against the interpreter, compiled C and numpy, and its errors."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir.index import symbol

from support import helpers, programs
from support.tiers import examples

EXTENTS = st.sampled_from([1, 2, 3, 5, 7, 8, 11])
FACTORS = st.integers(1, 6)


@settings(max_examples=examples(25))
@given(rows=EXTENTS, columns=EXTENTS, symbolic=st.booleans(), x_factor=FACTORS,
       y_factor=FACTORS, seed=st.integers(0, 2**16))
def test_tile_elementwise_matches_numpy(rows, columns, symbolic, x_factor, y_factor, seed):
    sch = qc.Schedule(programs.scale(rows, columns, symbolic))
    tiles = sch.tile("i", "j", x_factor, y_factor)
    assert [loop.name for loop in tiles] == ["i_o", "j_o", "i_i", "j_i"]
    assert sch.loops("B") == list(tiles)
    helpers.check_schedule(sch, *programs.scale_arrays(seed, rows, columns))


@settings(max_examples=examples(25))
@given(rows=EXTENTS, inner=EXTENTS, columns=EXTENTS, symbolic=st.booleans(),
       pair=st.sampled_from([("i", "j"), ("j", "k"), ("i", "k")]), x_factor=FACTORS,
       y_factor=FACTORS, seed=st.integers(0, 2**16))
def test_tile_matmul_matches_numpy(rows, inner, columns, symbolic, pair, x_factor, y_factor, seed):
    sch = qc.Schedule(programs.matmul(rows, inner, columns, symbolic))
    sch.tile(*pair, x_factor, y_factor)
    helpers.check_schedule(sch, *programs.matmul_arrays(seed, rows, inner, columns))


def test_tile_of_loops_with_one_between_keeps_that_loop_in_place():
    sch = qc.Schedule(programs.matmul(4, 6, 8))
    sch.tile("i", "k", 2, 3)
    assert [loop.name for loop in sch.loops("C")] == ["i_o", "k_o", "j", "i_i", "k_i"]


def test_tile_with_the_loops_swapped_names_the_right_order():
    sch = qc.Schedule(programs.scale(4, 6))
    with pytest.raises(
        qc.ScheduleError, match=r"tile: .*loop j is nested inside loop i\. Pass the outer loop "
        r"first: tile\(i, j, \.\.\.\)",
    ):
        sch.tile("j", "i", 2, 2)


@pytest.mark.parametrize("factors", [(0, 2), (2, -1), (2, 1.5)])
def test_tile_rejects_a_factor_that_is_not_a_positive_integer(factors):
    sch = qc.Schedule(programs.scale(4, 6))
    with pytest.raises(qc.ScheduleError, match=r"tile: .*split factor must be a positive integer"):
        sch.tile("i", "j", *factors)


def test_tile_of_loops_in_different_nests_is_refused():
    sch = qc.Schedule(programs.two_stages(4, 3))
    with pytest.raises(qc.ScheduleError, match=r"tile: .*loops i and j_1 are in different nests"):
        sch.tile("i", "j_1", 2, 2)
    assert sch.loops("B") == [symbol("i"), symbol("j")]


def test_tile_of_a_ragged_pair_is_refused():
    sch = programs.schedule(programs.ragged_kernel())
    with pytest.raises(
        qc.ScheduleError, match=r"tile: .*extent of loop j \(i \+ 1\) depends on i, so j's outer "
        r"part cannot move outside i's inner part\. Tile loops of a rectangular nest",
    ):
        sch.tile("i", "j", 2, 2)
