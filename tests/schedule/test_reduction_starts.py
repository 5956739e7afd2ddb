"""A reduction that sets its identity on the first iteration of its loops (`init when`)
must meet that iteration first for every element: reorder and remap refuse what would
move it (found by the random-program campaign: 8 instead of 12, and a row max of 2
instead of 9), and decompose lifts the restriction."""

import numpy as np
import pytest

import quiltc as qc
from quiltc.ir import interp

from support.helpers import check_schedule


def _row_sums():
    x = qc.placeholder((2, 3), "float32", "X")
    k = qc.reduce_axis(3, "k")
    return qc.compute((2,), lambda j: qc.sum(x[j, k], axis=k), "T")


def test_reorder_refuses_to_move_the_start_of_a_fused_reduction():
    sch = qc.Schedule(_row_sums())
    outer, inner = sch.split(sch.fuse("j", "k"), 2, guard=True)
    with pytest.raises(qc.ScheduleError, match=r"reorder: asked to reorder loops j_k_i, j_k_o, "
                                               r"but the reduction into T starts from its "
                                               r"identity on the first iteration of loops "
                                               r"j_k_o, j_k_i"):
        sch.reorder(inner, outer)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(interp.run(sch.kernel, X=x)["T"], [3, 12])


def test_reorder_keeps_allowing_spatial_loops_around_a_reduction():
    a = qc.placeholder((4, 5), "float32", "A")
    b = qc.placeholder((5, 3), "float32", "B")
    k = qc.reduce_axis(5, "k")
    c = qc.compute((4, 3), lambda i, j: qc.sum(a[i, k] * b[k, j], axis=k), "C")
    sch = qc.Schedule(c)
    i, j, k = sch.loops("C")
    sch.reorder(k, i)
    rng = np.random.default_rng(0)
    av, bv = rng.standard_normal((4, 5), np.float32), rng.standard_normal((5, 3), np.float32)
    check_schedule(sch, {"A": av, "B": bv}, {"C": av @ bv})


def test_a_decomposed_reduction_reorders_freely():
    sch = qc.Schedule(_row_sums())
    j, k = sch.loops("T")
    sch.decompose("T", j)
    outer, inner = sch.split(sch.fuse(j, k), 2, guard=True)
    sch.reorder(inner, outer)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    check_schedule(sch, {"X": x}, {"T": x.sum(axis=1)})


def test_remap_refuses_a_loop_inside_a_reduction_whose_extent_equals_the_batch():
    length = qc.ragged_dim("L", 3, 9)
    x = qc.placeholder((3, length), "float32", "X")
    k = qc.reduce_axis(length, "k")
    t = qc.compute((3, length), lambda b, l: qc.max(x[b, k], axis=k), "T")
    sch = qc.Schedule(t)
    _, inner = sch.split("k", 3)
    with pytest.raises(qc.ScheduleError, match=r"remap: asked to remap loop k_i .* runs a "
                                               r"reduction into T that starts from its identity"):
        sch.remap(inner)


def test_the_parts_of_a_split_reduction_loop_reorder_freely():
    """Each element's iterations form a rectangle from 0, so its first iteration stays
    first in any order of the reduction's own loops."""
    sch = qc.Schedule(_row_sums())
    outer, inner = sch.split("k", 2)
    sch.reorder(inner, outer)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    check_schedule(sch, {"X": x}, {"T": x.sum(axis=1)})
