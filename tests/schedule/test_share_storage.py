"""share_storage: an intermediate kept in the memory of the output it feeds computes what
its own buffer did, and a sharing that would let the output's store overwrite an element
still to be read is refused."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc import recipes
from quiltc.ir import interp

from support.tiers import examples

F32 = np.float32


def _softmax(at_rows):
    """The recipe's softmax, its stages computed at the row loop or in nests of their own,
    and its exponentials kept in the output."""
    x, (row_max, exps, row_sum), out = recipes.cpu.softmax_program(qc.var("R", 1, 64),
                                                                   qc.var("C", 1, 300))
    sch = qc.Schedule(out)
    if at_rows:
        row = sch.loops(out)[0]
        for stage in (row_sum, exps, row_max):
            sch.compute_at(stage, row)
    sch.share_storage(exps, out)
    return sch


@settings(max_examples=examples(10), deadline=None)
@given(rows=st.integers(1, 7), cols=st.integers(1, 300), at_rows=st.booleans(),
       seed=st.integers(0, 2**16))
def test_exponentials_kept_in_the_output_give_the_softmax(rows, cols, at_rows, seed):
    sch = _softmax(at_rows)
    assert "exps = alloc" not in repr(sch) and "softmax[i_3, j_3] / row_sum" in repr(sch) \
        if at_rows else "exps = alloc" not in repr(sch)
    values = np.random.default_rng(seed).standard_normal((rows, cols), dtype=F32) * F32(8)
    shifted = np.exp(values - values.max(axis=1, keepdims=True))
    want = shifted / shifted.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(qc.build(sch)(X=values), want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(interp.run(sch.kernel, X=values)["softmax"], want,
                               rtol=1e-5, atol=1e-7)


def _doubled(out_body, extra_output=False):
    """e = 2 x, and an output of e (`out_body(e, i, j)`); with `extra_output`, also each
    row's sum of e, computed after the output."""
    rows, cols = qc.var("R", 1, 8), qc.var("C", 1, 8)
    x = qc.placeholder((rows, cols), "float32", "x")
    e = qc.compute((rows, cols), lambda i, j: x[i, j] * F32(2), "e")
    out = qc.compute((rows, cols), lambda i, j: out_body(e, i, j), "out")
    if not extra_output:
        return qc.Schedule(out), e, out
    k = qc.reduce_axis(cols, "k")
    total = qc.compute((rows,), lambda i: qc.sum(e[i, k], axis=k), "total")
    return qc.Schedule([out, total]), e, out


@pytest.mark.parametrize(("case", "message"), [
    ("other element", r"the store of out reads e\[i_1, 0\], another element than its own"),
    ("read after", r"a statement that touches e runs after the store of out"),
    ("other shape", r"e is float32\[R, C\] and total is float32\[R\]"),
    ("not an output", r"x is not an output of kernel"),
])
def test_a_sharing_that_could_overwrite_a_live_element_is_refused(case, message):
    if case == "other element":
        sch, e, out = _doubled(lambda e, i, j: e[i, j] + e[i, 0])
        asked = (e, out)
    elif case == "read after":
        sch, e, out = _doubled(lambda e, i, j: e[i, j] + F32(1), extra_output=True)
        asked = (e, out)
    elif case == "other shape":
        sch, e, out = _doubled(lambda e, i, j: e[i, j] + F32(1), extra_output=True)
        asked = (e, "total")
    else:
        sch, e, out = _doubled(lambda e, i, j: e[i, j] + F32(1))
        asked = (e, "x")
    with pytest.raises(qc.ScheduleError, match=message):
        sch.share_storage(*asked)


def test_iterations_that_would_meet_in_the_output_are_refused():
    # Row i of out reads row R - 1 - i of e too, which compute_at then computes in
    # iteration i: kept in out, it is the row iteration R - 1 - i writes.
    rows, cols = qc.var("R", 2, 8), qc.var("C", 1, 8)
    x = qc.placeholder((rows, cols), "float32", "x")
    e = qc.compute((rows, cols), lambda i, j: x[i, j] * F32(2), "e")
    k = qc.reduce_axis(cols, "k")
    mirrored = qc.compute((rows,), lambda i: qc.sum(e[rows - 1 - i, k], axis=k), "mirrored")
    out = qc.compute((rows, cols), lambda i, j: mirrored[i] + x[i, j], "out")
    sch = qc.Schedule(out)
    row = sch.loops(out)[0]
    sch.compute_at(mirrored, row)
    sch.compute_at(e, row)
    with pytest.raises(qc.ScheduleError, match=r"iterations of loop \w+ would meet in out"):
        sch.share_storage(e, out)
