"""decompose: property tests against the interpreter, compiled C and numpy, and its errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc

from support import helpers, programs
from support.tiers import examples

EXTENTS = st.sampled_from([1, 2, 3, 5, 7, 8])
REDUCERS = {"sum": (qc.sum, np.sum), "max": (qc.max, np.max), "min": (qc.min, np.min)}


def row_reduction_program(rows, columns, combiner, symbolic):
    """R[i] = combiner over j of A[i, j] * 2."""
    M, N = programs.size("M", rows, symbolic), programs.size("N", columns, symbolic)
    A = qc.placeholder((M, N), "float32", "A")
    j = qc.reduce_axis(N, "j")
    reducer = REDUCERS[combiner][0]
    return qc.compute((M,), lambda i: reducer(A[i, j] * 2.0, axis=j), "R")


@settings(max_examples=examples(25))
@given(rows=EXTENTS, inner=EXTENTS, columns=EXTENTS, symbolic=st.booleans(),
       at=st.sampled_from(["i", "j"]), reduction_factor=st.integers(1, 4),
       reduction_outside=st.booleans(), seed=st.integers(0, 2**16))
def test_decompose_matmul_matches_numpy(rows, inner, columns, symbolic, at, reduction_factor,
                                        reduction_outside, seed):
    sch = qc.Schedule(programs.matmul(rows, inner, columns, symbolic))
    sch.decompose("C", at)
    k_outer, k_inner = sch.split("k", reduction_factor)
    if reduction_outside:
        sch.reorder(k_outer, "i", "j", k_inner) if at == "i" else sch.reorder(k_outer, "j", k_inner)
    helpers.check_schedule(sch, *programs.matmul_arrays(seed, rows, inner, columns))


@settings(max_examples=examples(25))
@given(rows=EXTENTS, columns=EXTENTS, combiner=st.sampled_from(sorted(REDUCERS)),
       symbolic=st.booleans(), row_factor=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_decompose_under_a_split_guard_matches_numpy(rows, columns, combiner, symbolic, row_factor,
                                                     seed):
    sch = qc.Schedule(row_reduction_program(rows, columns, combiner, symbolic))
    row_outer, _ = sch.split("i", row_factor)
    sch.decompose("R", row_outer)
    A = helpers.random_array(np.random.default_rng(seed), (rows, columns))
    reference = REDUCERS[combiner][1](A * np.float32(2.0), axis=1)
    helpers.check_schedule(sch, {"A": A}, {"R": reference})


def test_decompose_writes_the_identity_in_a_nest_of_fresh_loops():
    sch = qc.Schedule(row_reduction_program(5, 3, "max", symbolic=False))
    outer, inner = sch.split("i", 2)
    sch.decompose("R", outer)
    assert repr(sch).splitlines()[1:5] == [
        "    for i_o_init in range(3):",
        "        for i_i_init in range(2):",
        "            if i_i_init + 2*i_o_init < 5:",
        "                R[i_i_init + 2*i_o_init] = -inf",
    ]
    assert "init when" not in repr(sch)


def test_decompose_at_a_loop_that_does_not_hold_the_reduction_is_refused():
    A = qc.placeholder((4, 3), "float32", "A")
    j = qc.reduce_axis(3, "j")
    S = qc.compute((4,), lambda i: qc.sum(A[i, j], axis=j), "S")
    T = qc.compute((4,), lambda i: S[i] * 2.0, "T")
    sch = qc.Schedule(T)
    with pytest.raises(qc.ScheduleError, match=r"no reduction into S stands inside loop i_1"):
        sch.decompose("S", "i_1")
    with pytest.raises(qc.ScheduleError, match=r"no statement writes X"):
        sch.decompose("X", "i")


@pytest.mark.parametrize("first, at, message", [
    (("decompose", "C", "i"), "j",
     r"decompose: .*the reduction into C has no initialisation left: it was already decomposed"),
    (("reorder", "k", "i"), "j",
     r"reduction loop k encloses loop j, so the init nest would run again in each of its "
     r"iterations"),
    (("fuse", "j", "k"), "i",
     r"the variable of loop j_k both indexes C and steps the reduction"),
], ids=["decomposed-twice", "inside-the-reduction-loop", "fused-spatial-and-reduction"])
def test_decompose_after_a_step_that_leaves_no_place_for_it_is_refused(first, at, message):
    sch = programs.schedule(programs.matmul(4, 5, 3), [first])
    with pytest.raises(qc.ScheduleError, match=message):
        sch.decompose("C", at)
