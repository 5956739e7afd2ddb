"""Ragged fusion: a batch loop and the loop over each row's length become one flat loop
over every valid position of the batch, with no padding and no empty iterations.

    for b in range(B):                     for b_l in range(L_off1(B)):
        for l in range(L_len(b)):    ->        body(L_row(b_l), L_pos(b_l))
            body(b, l)

`L_row[f]` and `L_pos[f]` (the row of flat position f and its place in that row) are
prelude tables computed from the lengths once per call; `L_off1(B)`, the prefix sum over
all rows, is the number of positions. A ragged buffer stored row after row is indexed at
`L_off1(L_row(f)) + L_pos(f)`, which its layout folds back to f, so a fused elementwise
loop reads and writes its tokens contiguously and splits, vectorizes and runs in parallel
like a dense one. The verifier bounds `L_pos(f)` by `L_len(L_row(f)) - 1` (see
Kernel.ranges), which keeps every access provably inside its row.
"""

import dataclasses

import sympy

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.index import symbol, table
from ...ir.printer import render
from ...ir.walk import substitute
from ..nest import fresh_name, guard_leaves, ragged_batch_dim, replace_at, with_body


def _row_dim(kernel, outer, inner, asked):
    """The ragged dim whose rows `outer` visits and whose lengths bound `inner`."""
    dim = ragged_batch_dim(kernel, outer)
    lengths = None if dim is None else table(dim.lengths_table)(outer.var)
    if dim is None or sympy.expand(inner.extent - lengths) != 0:
        expected = (f"{dim.lengths_table}({outer.var})" if dim is not None
                    else "the length of each row of a ragged batch")
        raise ScheduleError(
            "fuse", asked,
            f"the extent of loop {inner.var} ({inner.extent}) depends on {outer.var}, but it is "
            f"not {expected}, so no flat table of rows can enumerate the pair",
            "Fuse a ragged pair before padding or remapping it: the outer loop must run over "
            "the batch and the inner one over each row's length.",
            render(kernel, mark=inner),
        )
    return dim


def fuse_ragged(kernel, outer_path, outer, inner, guards, asked):
    """Fuse batch loop `outer` with `inner`, the loop over each row's length (separated
    only by `guards`), into one loop over all positions; returns (kernel, [fused var])."""
    dim = _row_dim(kernel, outer, inner, asked)
    fused = symbol(fresh_name(kernel, f"{outer.var}_{inner.var}"))
    rows = ir.FlatRows(f"{dim.name}_row", f"{dim.name}_pos", dim.lengths_table, dim.batch)
    starts = ir.PrefixSum(f"{dim.name}_off1", ((dim.lengths_table, False),), dim.batch)
    mapping = {outer.var: table(rows.rows)(fused), inner.var: table(rows.positions)(fused)}
    body = substitute(inner.body, mapping)
    for cond in reversed(guards):
        body = guard_leaves(body, cond.xreplace(mapping))
    new_loop = ir.For(fused, table(starts.table)(dim.batch), body)
    kernel = with_body(kernel, replace_at(kernel.body, outer_path, new_loop))
    added = tuple(entry for entry in (rows, starts) if entry not in kernel.prelude)
    prelude = tuple(sorted(kernel.prelude + added, key=lambda entry: entry.table))
    return dataclasses.replace(kernel, prelude=prelude), [fused]
