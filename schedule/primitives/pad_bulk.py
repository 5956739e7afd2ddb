"""pad_bulk: a fused ragged loop's flat extent rounds up to a multiple of m (CoRa's bulk
padding), so it splits into whole tiles with no tail loop and no guard per tile.

    for f in range(L_off1(B)):               for f in range(round_up(L_off1(B), 8)):
        T[L_row(f), L_pos(f)] = X[...] * 2 ->    if f < L_off1(B):
        Y[L_row(f), L_pos(f)] = T[...] + 1           T[L_row_bulk8(f), L_pos_bulk8(f)] = ...
                                                 U[L_row_bulk8(f), L_pos_bulk8(f)] = T[...] + 1
                                                 if f < L_off1(B):
                                                     Y[L_row_bulk8(f), L_pos_bulk8(f)] = ...

The row and position tables run on past the last row (`FlatRows` with `pad`): an extra
position continues the last row beyond its end, so a buffer stored row after row is still
indexed at f itself. Every intermediate the loop reaches at flat positions gets storage
for the padded total after its last row (`Ragged.bulk`), so a statement that reads and
writes only such buffers runs on the padded positions unguarded: they write the padding,
a scratch row no valid element lives in. A statement touching a parameter (whose storage
the caller sizes) or an accumulation keeps the guard `f < total`, as `pad_loop` does; the
verifier proves both through the flat extent the layout gives a fused position.
"""

import dataclasses
import math

import sympy
from sympy.core.function import AppliedUndef

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.index import table
from ...ir.layout import Ragged, round_up
from ...ir.printer import render
from ...ir.walk import exprs_of, find_all, rewrite
from ..nest import ranges_on_path, replace_at, resolve_loop, with_body
from .pad_loop import Padding, check_multiple, guard_padded


def _fused_tables(kernel, node, asked):
    """The FlatRows entry whose total is `node`'s extent: `node` must be a fused ragged loop."""
    for entry in kernel.prelude:
        if (isinstance(entry, ir.FlatRows) and entry.pad == 1
                and node.extent == table(f"{entry.lengths.removesuffix('_len')}_off1")(
                    entry.count)):
            return entry
    raise ScheduleError(
        "pad_bulk", asked,
        f"loop {node.var} runs over {node.extent}, not over every position of a ragged batch "
        "(a loop made by fusing a batch loop with its row loop)",
        "Fuse the ragged pair first (sch.fuse(b, l)), then pad the fused loop; pad other "
        "loops with pad_loop.",
        render(kernel, mark=node),
    )


def _bulk_buffers(kernel, body, dim, multiple):
    """{name: bulk-padded buffer} of the intermediates `body` reaches at flat positions:
    stored row after row along `dim` alone, so the padding lies after the last row."""
    allocated = {stmt.buffer.name for stmt in find_all(kernel.body,
                                                       lambda n: isinstance(n, ir.Alloc))}
    padded = {}
    for node in find_all(body, lambda n: isinstance(n, (ir.Load, ir.Store, ir.Reduce))):
        layout = node.buffer.layout
        if (node.buffer.name in allocated and isinstance(layout, Ragged) and layout.dim == dim
                and layout.ragged == (1,) and not layout.causal and layout.pad == 1
                and layout.flat_index(node.indices) is not None):
            # Storage for the loop padded before and for this one: round_up to the lcm
            # reaches at least as far as rounding up to either.
            bulk = math.lcm(layout.bulk, multiple)
            padded[node.buffer.name] = dataclasses.replace(
                node.buffer, layout=dataclasses.replace(layout, bulk=bulk))
    return padded


def _rename_tables(stmt, renamed):
    """`stmt` with each lookup into a table of `renamed` ({old: new}) made into the new."""

    def expr_fn(expr):
        if not isinstance(expr, sympy.Basic):
            return expr
        for old, new in renamed.items():
            expr = expr.replace(old, new)
        return expr

    return rewrite(stmt, lambda node: node, expr_fn)


def pad_bulk(kernel, loop, multiple):
    """Round fused ragged loop `loop` up to a multiple of `multiple` flat positions,
    padding the storage of the intermediates it reaches after their last row; returns
    [loop]."""
    path, node = resolve_loop(kernel, loop, "pad_bulk")
    asked = f"pad fused loop {node.var} (extent {node.extent}) to a multiple of {multiple!r}"
    multiple = check_multiple("pad_bulk", asked, multiple, kernel, node)
    flat = _fused_tables(kernel, node, asked)
    bulk = dataclasses.replace(flat, rows=f"{flat.rows}_bulk{multiple}",
                               positions=f"{flat.positions}_bulk{multiple}", pad=multiple)
    body = _rename_tables(node.body, {table(flat.rows): table(bulk.rows),
                                      table(flat.positions): table(bulk.positions)})
    padded_buffers = _bulk_buffers(kernel, body, flat.lengths.removesuffix("_len"), multiple)

    def repad(stmt):
        if (isinstance(stmt, (ir.Load, ir.Store, ir.Reduce, ir.Alloc))
                and stmt.buffer.name in padded_buffers):
            return dataclasses.replace(stmt, buffer=padded_buffers[stmt.buffer.name])
        return stmt

    padded = round_up(node.extent, multiple)
    kernel = with_body(kernel, rewrite(kernel.body, repad))
    ranges = ranges_on_path(kernel, path)
    ranges[node.var] = (sympy.Integer(0), padded - 1)
    padding = Padding(node.var, node.extent, padded, frozenset(padded_buffers), flat=True)
    guard = sympy.Lt(node.var, node.extent)
    unpadded = {table(bulk.rows): table(flat.rows), table(bulk.positions): table(flat.positions)}

    def unpad_guarded(stmt):
        # Under the guard the position is a real one, which the unpadded tables bound
        # tightly enough for the verifier to see each access inside its row.
        if isinstance(stmt, ir.If) and stmt.cond == guard:
            return ir.If(guard, _rename_tables(stmt.then, unpadded), stmt.otherwise)
        return stmt

    guarded = guard_padded(rewrite(body, repad), padding, ranges)
    new_loop = ir.For(node.var, padded, rewrite(guarded, unpad_guarded), node.kind)
    kernel = with_body(kernel, replace_at(kernel.body, path, new_loop))
    return dataclasses.replace(kernel, prelude=_prelude(kernel, flat, bulk)), [node.var]


def _prelude(kernel, flat, bulk):
    """The prelude with the bulk tables, and without the unpadded ones once nothing reads
    them (every loop over them padded)."""
    read = {application.func.__name__ for node in find_all(kernel.body, lambda _: True)
            for expr in exprs_of(node) for application in expr.atoms(AppliedUndef)}
    entries = [entry for entry in kernel.prelude if entry != flat or flat.rows in read
               or flat.positions in read]
    entries += [bulk] if bulk not in entries else []
    return tuple(sorted(entries, key=lambda entry: entry.table))
