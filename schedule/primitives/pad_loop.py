"""pad_loop: a loop's extent rounds up to a multiple of m, so it splits into whole tiles.

    for l in range(L_len(b)):          for l in range(round_up(L_len(b), 4)):
        T[b, l] = X[b, l] * 2     ->       if l < L_len(b):
        Y[b, l] = T[b, l] + 1                  T[b, l] = X[b, l] * 2
                                           if l < L_len(b):
                                               Y[b, l] = T[b, l] + 1

`round_up(E, m)` is `((E + m - 1) // m) * m`. Every statement inside gets the guard
`l < E` unless it is a store into an intermediate whose dim indexed by `l` spans the
padded extent, with all accesses that use `l` inside their buffers over the padded range:
a buffer padded along that index by `pad_storage(T, 1, 4)` holds the extra elements, so
`T[b, l] = ...` above would run unguarded if it read only padded buffers (reading the
caller's unpadded X needs the guard). A reduction into such an element runs unguarded
too (each padded iteration sums into a padded element of its own); a reduction over `l`
keeps the guard, since a padded iteration would add to a real element.
"""

from dataclasses import dataclass

import sympy

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.index import proves
from ...ir.layout import round_up
from ...ir.printer import render
from ...ir.walk import find_all
from ..nest import looks_up_guarded, ranges_on_path, replace_at, resolve_loop, with_body


def check_multiple(primitive, asked, multiple, kernel, node):
    """A padding multiple must be a positive integer."""
    if isinstance(multiple, bool) or not isinstance(multiple, (int, sympy.Integer)) or multiple < 1:
        raise ScheduleError(
            primitive, asked, f"the multiple {multiple!r} is not a positive integer",
            "Pad to a multiple of 1 or more, such as 4, 8 or 16 (the vector width).",
            render(kernel, mark=node),
        )
    return int(multiple)


@dataclass(frozen=True)
class Padding:
    """The loop being padded: its variable, old and new extents, and the names of the
    kernel's intermediate (allocated) buffers with storage for the padded iterations.
    `flat` marks a fused ragged loop (pad_bulk), whose stores reach storage at the flat
    position itself rather than at the variable in one dim."""

    var: sympy.Symbol
    extent: sympy.Expr
    padded: sympy.Expr
    intermediates: frozenset
    flat: bool = False


def _stays_inside(stmt, padding, ranges):
    """Whether `stmt` may run for the padded iterations: a store or reduction into an
    intermediate whose dim indexed by the loop variable alone spans the padded extent (so
    the extra iterations write only padding), with every access that uses the variable
    provably inside its buffer."""
    var = padding.var
    if not isinstance(stmt, (ir.Store, ir.Reduce)) or stmt.buffer.name not in padding.intermediates:
        return False
    if padding.flat:
        writes_padding = stmt.buffer.layout.flat_index(stmt.indices) == var
    else:
        writes_padding = any(index == var and sympy.expand(
            stmt.buffer.extent(dim, stmt.indices) - padding.padded) == 0
            for dim, index in enumerate(stmt.indices))
    if not writes_padding:
        return False
    loads = find_all(stmt.value, lambda node: isinstance(node, ir.Load))
    found = [(stmt.buffer, stmt.indices)] + [(load.buffer, load.indices) for load in loads]
    for buffer, indices in found:
        if not any(var in sympy.sympify(index).free_symbols for index in indices):
            continue
        for dim, index in enumerate(indices):
            if not proves(sympy.Lt(index, buffer.extent(dim, indices)), ranges):
                return False
    return True


def guard_padded(stmt, padding, ranges):
    """`stmt` with `var < extent` on each leaf that cannot run the padded iterations,
    and around each loop or guard whose own table lookup the padded iterations would
    take out of range."""
    guard = sympy.Lt(padding.var, padding.extent)
    if isinstance(stmt, (ir.Store, ir.Reduce)):
        if _stays_inside(stmt, padding, ranges):
            return stmt
        return ir.If(guard, stmt)
    if looks_up_guarded(stmt, guard):
        return ir.If(guard, stmt)
    if isinstance(stmt, ir.For):
        inner = dict(ranges)
        inner[stmt.var] = (sympy.Integer(0), stmt.extent - 1)
        return ir.For(stmt.var, stmt.extent, guard_padded(stmt.body, padding, inner), stmt.kind)
    if isinstance(stmt, ir.If):
        otherwise = (None if stmt.otherwise is None
                     else guard_padded(stmt.otherwise, padding, ranges))
        return ir.If(stmt.cond, guard_padded(stmt.then, padding, ranges), otherwise)
    if isinstance(stmt, ir.Seq):
        return ir.Seq(tuple(guard_padded(s, padding, ranges) for s in stmt.stmts))
    if isinstance(stmt, ir.Alloc):
        return ir.Alloc(stmt.buffer, stmt.scope, guard_padded(stmt.body, padding, ranges))
    return stmt


def pad_loop(kernel, loop, multiple):
    """Round `loop`'s extent up to a multiple of `multiple`, guarding the statements
    inside that would touch elements past the old extent; returns [loop]."""
    path, node = resolve_loop(kernel, loop, "pad_loop")
    asked = f"pad loop {node.var} (extent {node.extent}) to a multiple of {multiple!r}"
    multiple = check_multiple("pad_loop", asked, multiple, kernel, node)
    padded = round_up(node.extent, multiple)
    ranges = ranges_on_path(kernel, path)
    ranges[node.var] = (sympy.Integer(0), padded - 1)
    intermediates = frozenset(stmt.buffer.name for stmt in find_all(
        kernel.body, lambda n: isinstance(n, ir.Alloc)))
    body = guard_padded(node.body, Padding(node.var, node.extent, padded, intermediates), ranges)
    new_loop = ir.For(node.var, padded, body, node.kind)
    return with_body(kernel, replace_at(kernel.body, path, new_loop)), [node.var]
