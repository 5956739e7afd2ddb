"""Index clean-up after every primitive: simplify each index under the ranges of the
loops around it, drop guards that provably hold, and re-verify the kernel (all but its
GPU barriers, which the insert_barriers pass may still add: the build checks those)."""

import dataclasses

import sympy

from ..ir import nodes as ir
from ..ir.index import proves, simplify
from ..ir.verify import verify
from ..ir.walk import children, map_children


def _simplify_value(value, ranges):
    def visit(v):
        v = map_children(v, visit)
        if isinstance(v, ir.Load):
            return dataclasses.replace(v, indices=tuple(simplify(e, ranges) for e in v.indices))
        if isinstance(v, ir.Index):
            return dataclasses.replace(v, expr=simplify(v.expr, ranges))
        return v

    return visit(value)


def _holds(cond, ranges):
    return all(proves(fact, ranges) for fact in sympy.And.make_args(cond))


def _simplify_stmt(stmt, ranges):
    if isinstance(stmt, ir.For):
        extent = simplify(stmt.extent, ranges)
        inner = dict(ranges)
        inner[stmt.var] = (sympy.Integer(0), extent - 1)
        return dataclasses.replace(stmt, extent=extent, body=_simplify_stmt(stmt.body, inner))
    if isinstance(stmt, ir.If):
        cond = stmt.cond.xreplace({}) if isinstance(stmt.cond, sympy.Basic) else stmt.cond
        cond = cond.func(*(simplify(a, ranges) for a in cond.args)) if cond.args else cond
        if _holds(cond, ranges):
            return _simplify_stmt(stmt.then, ranges)
        otherwise = None if stmt.otherwise is None else _simplify_stmt(stmt.otherwise, ranges)
        return ir.If(cond, _simplify_stmt(stmt.then, ranges), otherwise)
    if isinstance(stmt, (ir.Store, ir.Reduce)):
        changes = {
            "indices": tuple(simplify(e, ranges) for e in stmt.indices),
            "value": _simplify_value(stmt.value, ranges),
        }
        if isinstance(stmt, ir.Reduce):
            changes["init_when"] = tuple(simplify(e, ranges) for e in stmt.init_when)
        return dataclasses.replace(stmt, **changes)
    if not children(stmt):
        return stmt
    return map_children(stmt, lambda child: _simplify_stmt(child, ranges))


def tidy(kernel):
    """`kernel` with simplified indices and provably true guards removed, verified but for
    missing barriers (the build checks those)."""
    kernel = dataclasses.replace(kernel, body=_simplify_stmt(kernel.body, kernel.ranges()))
    return verify(kernel, barriers=False)
