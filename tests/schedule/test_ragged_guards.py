"""Guards around ragged loops: a loop whose extent looks up a row table (`L_len[b]`,
`L_order_desc[b]`, `L_row[f]`) runs its lookup before anything inside it, so after a
split, pad_loop, split_op or tile of the loop over rows the guard must enclose it, and
the verifier proves every table lookup in extents, guards and indices. Run once more
under AddressSanitizer by tests/runtime_c/test_sanitize.py."""

import numpy as np
import pytest

import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.ir.verify import verify
from quiltc.ir.walk import rewrite

from support.helpers import SANITIZE, require_cc


def _row_sums():
    batch = qc.var("B", 1, 64)
    length = qc.ragged_dim("L", batch, 64)
    x = qc.placeholder((batch, length, 3), "float32", "X")
    j = qc.reduce_axis(length, "j")
    return qc.compute((batch, 3), lambda b, c: qc.sum(x[b, j, c], axis=j), "S")


def _row_maxima_of_scores():
    batch = qc.var("B", 1, 8)
    length = qc.ragged_dim("L", batch, 16)
    q = qc.placeholder((batch, length, 4), "float32", "Q")
    d = qc.reduce_axis(4, "d")
    scores = qc.compute((batch, length, length),
                        lambda b, i, j: qc.sum(q[b, i, d] * q[b, j, d], axis=d), "S")
    j = qc.reduce_axis(length, "j")
    return qc.compute((batch, length), lambda b, i: qc.max(scores[b, i, j], axis=j), "M")


def test_split_of_remapped_rows_guards_the_length_lookup():
    """The issue's reproducer: it read L_order_desc and L_len past their ends and
    crashed; every batch size from 1 to 63 now runs and matches numpy."""
    sch = qc.Schedule(_row_sums())
    b, _, _ = sch.loops("S")
    sch.split(sch.remap(b), 4)
    require_cc()
    fn = qc.build(sch, sanitize=SANITIZE)
    for rows in range(1, 64):
        parts = [np.full((r % 13, 3), np.float32(r), np.float32) for r in range(rows)]
        got = fn(X=qc.RaggedArray.from_list(parts))
        want = np.stack([p.sum(axis=0) if len(p) else np.zeros(3, np.float32) for p in parts])
        np.testing.assert_allclose(got, want, rtol=1e-6)


SCHEDULES = {
    "split the fused rows": lambda sch, b, i: sch.split(sch.fuse(b, i), 4),
    "pad the rows": lambda sch, b, i: sch.pad_loop(b, 4),
    "split_op the rows": lambda sch, b, i: sch.split_op(b, 4),
    "split the rows": lambda sch, b, i: sch.split(b, 3),
    "split the remapped rows": lambda sch, b, i: sch.split(sch.remap(b), 2),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_row_maxima_over_scores_stay_inside_the_tables(name):
    """(B, L, L) scores and their row max, lengths (6, 0, 12) as in the issue."""
    sch = qc.Schedule(_row_maxima_of_scores())
    b, i = sch.loops("M")[:2]
    SCHEDULES[name](sch, b, i)
    require_cc()
    fn = qc.build(sch, sanitize=SANITIZE)
    rng = np.random.default_rng(7)
    rows = [rng.uniform(-1, 1, (n, 4)).astype(np.float32) for n in (6, 0, 12)]
    got = fn(Q=qc.RaggedArray.from_list(rows))
    for row, result in zip(rows, got):
        np.testing.assert_allclose(result, (row @ row.T).max(axis=1) if len(row) else
                                   np.zeros(0, np.float32), rtol=1e-5, atol=1e-6)


def _guard_moved_inside(kernel):
    """`kernel` with each guard that encloses a loop pushed inside that loop: the
    lookup in the loop's extent then runs before the guard, as it used to."""

    def push(node):
        if isinstance(node, ir.If) and isinstance(node.then, ir.For) and node.otherwise is None:
            loop = node.then
            return ir.For(loop.var, loop.extent, ir.If(node.cond, loop.body), loop.kind)
        return node

    return rewrite(kernel, push)


def test_the_verifier_refuses_a_table_lookup_before_its_guard():
    sch = qc.Schedule(_row_sums())
    sch.split(sch.loops("S")[0], 4)
    unsafe = _guard_moved_inside(sch.kernel)
    assert unsafe != sch.kernel
    with pytest.raises(qc.VerifyError, match=r"L_len\(b_i \+ 4\*b_o\) may read table L_len "
                                             r"\(B entries\) out of range"):
        verify(unsafe)
