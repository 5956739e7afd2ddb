"""tile: property tests against the interpreter, compiled C and numpy, and its errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import helpers
import quiltc as qc
from quiltc.ir.index import symbol

EXTENTS = st.sampled_from([1, 2, 3, 5, 7, 8, 11])
FACTORS = st.integers(1, 6)


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


@settings(max_examples=25, deadline=None)
@given(rows=EXTENTS, columns=EXTENTS, symbolic=st.booleans(), x_factor=FACTORS,
       y_factor=FACTORS, seed=st.integers(0, 2**16))
def test_tile_elementwise_matches_numpy(rows, columns, symbolic, x_factor, y_factor, seed):
    sch = qc.Schedule(scale_program(rows, columns, symbolic))
    tiles = sch.tile("i", "j", x_factor, y_factor)
    assert [loop.name for loop in tiles] == ["i_o", "j_o", "i_i", "j_i"]
    assert sch.loops("B") == list(tiles)
    A = helpers.random_array(np.random.default_rng(seed), (rows, columns))
    helpers.check_schedule(sch, {"A": A}, {"B": A * np.float32(2.0) + np.float32(1.0)})


@settings(max_examples=25, deadline=None)
@given(rows=EXTENTS, inner=EXTENTS, columns=EXTENTS, symbolic=st.booleans(),
       pair=st.sampled_from([("i", "j"), ("j", "k"), ("i", "k")]), x_factor=FACTORS,
       y_factor=FACTORS, seed=st.integers(0, 2**16))
def test_tile_matmul_matches_numpy(rows, inner, columns, symbolic, pair, x_factor, y_factor, seed):
    sch = qc.Schedule(matmul_program(rows, inner, columns, symbolic))
    sch.tile(*pair, x_factor, y_factor)
    rng = np.random.default_rng(seed)
    A, B = helpers.random_array(rng, (rows, inner)), helpers.random_array(rng, (inner, columns))
    helpers.check_schedule(sch, {"A": A, "B": B}, {"C": A @ B})


def test_tile_of_loops_with_one_between_keeps_that_loop_in_place():
    sch = qc.Schedule(matmul_program(4, 6, 8, symbolic=False))
    sch.tile("i", "k", 2, 3)
    assert [loop.name for loop in sch.loops("C")] == ["i_o", "k_o", "j", "i_i", "k_i"]


def test_tile_with_the_loops_swapped_names_the_right_order():
    sch = qc.Schedule(scale_program(4, 6, symbolic=False))
    with pytest.raises(
        qc.ScheduleError, match=r"tile: .*loop j is nested inside loop i\. Pass the outer loop "
        r"first: tile\(i, j, \.\.\.\)",
    ):
        sch.tile("j", "i", 2, 2)


@pytest.mark.parametrize("factors", [(0, 2), (2, -1), (2, 1.5)])
def test_tile_rejects_a_factor_that_is_not_a_positive_integer(factors):
    sch = qc.Schedule(scale_program(4, 6, symbolic=False))
    with pytest.raises(qc.ScheduleError, match=r"tile: .*split factor must be a positive integer"):
        sch.tile("i", "j", *factors)


def test_tile_of_loops_in_different_nests_is_refused():
    A = qc.placeholder((4, 3), "float32", "A")
    B = qc.compute((4, 3), lambda i, j: A[i, j] + 1.0, "B")
    C = qc.compute((4, 3), lambda i, j: B[i, j] * 2.0, "C")
    sch = qc.Schedule(C)
    with pytest.raises(qc.ScheduleError, match=r"tile: .*loops i and j_1 are in different nests"):
        sch.tile("i", "j_1", 2, 2)
    assert sch.loops("B") == [symbol("i"), symbol("j")]
