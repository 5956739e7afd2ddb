"""split: property tests against the interpreter, compiled C and numpy, and its errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import helpers
import quiltc as qc

EXTENTS = st.sampled_from([1, 2, 3, 4, 5, 7, 8, 11])
FACTORS = st.integers(1, 9)


def _size(name, extent, symbolic):
    return qc.var(name, 1, 16) if symbolic else extent


def scale_program(rows, columns, symbolic):
    """B = 2*A + 1 over a (rows, columns) array, sizes static or qc.var."""
    M, N = _size("M", rows, symbolic), _size("N", columns, symbolic)
    A = qc.placeholder((M, N), "float32", "A")
    B = qc.compute((M, N), lambda i, j: A[i, j] * 2.0 + 1.0, "B")
    return B


def matmul_program(rows, inner, columns, symbolic):
    M, K = _size("M", rows, symbolic), _size("K", inner, symbolic)
    A = qc.placeholder((M, K), "float32", "A")
    B = qc.placeholder((K, columns), "float32", "B")
    k = qc.reduce_axis(K, "k")
    return qc.compute((M, columns), lambda i, j: qc.sum(A[i, k] * B[k, j], axis=k), "C")


@settings(max_examples=25, deadline=None)
@given(rows=EXTENTS, columns=EXTENTS, symbolic=st.booleans(), loop=st.sampled_from(["i", "j"]),
       factor=FACTORS, guard=st.sampled_from([None, True]), seed=st.integers(0, 2**16))
def test_split_elementwise_matches_numpy(rows, columns, symbolic, loop, factor, guard, seed):
    sch = qc.Schedule(scale_program(rows, columns, symbolic))
    outer, inner = sch.split(loop, factor, guard=guard)
    i, j = qc.ir.symbol("i"), qc.ir.symbol("j")
    assert sch.loops("B") == ([outer, inner, j] if loop == "i" else [i, outer, inner])
    A = helpers.random_array(np.random.default_rng(seed), (rows, columns))
    helpers.check_schedule(sch, {"A": A}, {"B": A * np.float32(2.0) + np.float32(1.0)})


@settings(max_examples=25, deadline=None)
@given(rows=EXTENTS, inner=EXTENTS, columns=EXTENTS, symbolic=st.booleans(),
       loop=st.sampled_from(["i", "j", "k"]), factor=FACTORS, seed=st.integers(0, 2**16))
def test_split_matmul_matches_numpy(rows, inner, columns, symbolic, loop, factor, seed):
    sch = qc.Schedule(matmul_program(rows, inner, columns, symbolic))
    sch.split(loop, factor)
    rng = np.random.default_rng(seed)
    A, B = helpers.random_array(rng, (rows, inner)), helpers.random_array(rng, (inner, columns))
    helpers.check_schedule(sch, {"A": A, "B": B}, {"C": A @ B})


def test_split_by_a_divisor_needs_no_guard():
    sch = qc.Schedule(scale_program(6, 4, symbolic=False))
    sch.split("i", 3, guard=False)
    assert "if" not in repr(sch)


@pytest.mark.parametrize("factor", [0, -2, 2.5, True])
def test_split_rejects_a_factor_that_is_not_a_positive_integer(factor):
    sch = qc.Schedule(scale_program(6, 4, symbolic=False))
    with pytest.raises(qc.ScheduleError, match=r"split: .*split factor must be a positive integer"):
        sch.split("i", factor)


def test_split_without_guard_refuses_a_factor_that_may_not_divide():
    sch = qc.Schedule(scale_program(6, 4, symbolic=True))
    with pytest.raises(qc.ScheduleError, match=r"4 may not divide M"):
        sch.split("i", 4, guard=False)


def test_split_of_an_unknown_loop_lists_the_loops():
    sch = qc.Schedule(scale_program(6, 4, symbolic=False))
    with pytest.raises(
        qc.ScheduleError, match=r"no loop called 'x'.*Loops in the kernel now: i, j"
    ):
        sch.split("x", 2)
