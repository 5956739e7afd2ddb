"""Finding and replacing statements in a kernel, shared by every schedule primitive.

A *path* is a tuple of (field, position) steps from `kernel.body` down to a statement;
`position` is None for a single-node field. Paths let primitives replace one occurrence
of a subtree even where an identical subtree stands elsewhere.
"""

import dataclasses

import sympy
from sympy.core.function import AppliedUndef

from ..ir import nodes as ir
from ..ir.errors import ScheduleError
from ..ir.printer import render
from ..ir.walk import exprs_of, find_all


def child_steps(stmt):
    """(step, child statement) pairs of `stmt`, in order."""
    out = []
    for name in stmt.child_fields:
        value = getattr(stmt, name)
        if isinstance(value, tuple):
            out.extend(((name, k), item) for k, item in enumerate(value)
                       if isinstance(item, ir.Stmt))
        elif isinstance(value, ir.Stmt):
            out.append(((name, None), value))
    return out


def walk_paths(stmt, path=()):
    """(path, statement) for every statement under `stmt`, in pre-order."""
    yield path, stmt
    for step, child in child_steps(stmt):
        yield from walk_paths(child, path + (step,))


def get_at(stmt, path):
    """The statement at `path` under `stmt`."""
    for name, position in path:
        value = getattr(stmt, name)
        stmt = value if position is None else value[position]
    return stmt


def replace_at(stmt, path, new):
    """A copy of `stmt` with the statement at `path` replaced by `new`."""
    if not path:
        return new
    (name, position), rest = path[0], path[1:]
    value = getattr(stmt, name)
    if position is None:
        return dataclasses.replace(stmt, **{name: replace_at(value, rest, new)})
    items = list(value)
    items[position] = replace_at(items[position], rest, new)
    return dataclasses.replace(stmt, **{name: tuple(items)})


def with_body(kernel, body):
    """`kernel` with a new body."""
    return dataclasses.replace(kernel, body=body)


def loops_on_path(stmt, path):
    """The For nodes enclosing (and including) the statement at `path`, outermost first."""
    loops = []
    node = stmt
    if isinstance(node, ir.For):
        loops.append(node)
    for name, position in path:
        value = getattr(node, name)
        node = value if position is None else value[position]
        if isinstance(node, ir.For):
            loops.append(node)
    return loops


def all_loops(kernel):
    """Every loop variable in `kernel`, in pre-order."""
    return [s.var for _, s in walk_paths(kernel.body) if isinstance(s, ir.For)]


def resolve_loop(kernel, loop, primitive):
    """(path, For) of the loop named `loop` (a name or symbol); ScheduleError if absent."""
    name = loop.name if isinstance(loop, sympy.Symbol) else str(loop)
    for path, stmt in walk_paths(kernel.body):
        if isinstance(stmt, ir.For) and stmt.var.name == name:
            return path, stmt
    known = ", ".join(v.name for v in all_loops(kernel)) or "none"
    raise ScheduleError(
        primitive,
        f"transform loop {name!r}",
        f"the kernel has no loop called {name!r}",
        f"Loops in the kernel now: {known}.",
        render(kernel),
    )


def ranges_on_path(kernel, path):
    """{symbol: (lo, hi)} for the shape variables and the loops along `path`, outermost first."""
    ranges = kernel.ranges()
    for loop in loops_on_path(kernel.body, path):
        ranges[loop.var] = (sympy.Integer(0), loop.extent - 1)
    return ranges


def ragged_batch_dim(kernel, loop):
    """The ragged dim whose rows `loop` (a For) runs over, or None."""
    for dim in kernel.ragged_dims:
        if sympy.simplify(loop.extent - dim.batch) == 0:
            return dim
    return None


def fresh_name(kernel, base, chosen=None):
    """A name based on `base` that no loop, size or buffer of `kernel` uses yet, nor any
    name in `chosen` (the names a step has picked before adding its nodes), which then
    holds it too."""
    taken = {v.name for v in all_loops(kernel)} | {v.symbol.name for v in kernel.shape_vars}
    taken |= {buffer.name for buffer in kernel.params}
    taken |= {stmt.buffer.name for _, stmt in walk_paths(kernel.body) if isinstance(stmt, ir.Alloc)}
    taken |= chosen or set()
    candidate, n = base, 0
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    if chosen is not None:
        chosen.add(candidate)
    return candidate


def writer_paths(kernel, buffer_name):
    """Paths of the Store and Reduce statements that write `buffer_name`."""
    return [
        path
        for path, stmt in walk_paths(kernel.body)
        if isinstance(stmt, (ir.Store, ir.Reduce)) and stmt.buffer.name == buffer_name
    ]


def buffers_touched(stmt):
    """(written, read): the names of the buffers `stmt` stores or reduces into, and of
    those it loads from."""
    written = {s.buffer.name
               for s in find_all(stmt, lambda n: isinstance(n, (ir.Store, ir.Reduce)))}
    read = {load.buffer.name for load in find_all(stmt, lambda n: isinstance(n, ir.Load))}
    return written, read


def allocation(kernel, name):
    """The Alloc statement of intermediate buffer `name`, or None (a parameter, or none)."""
    return next((stmt for _, stmt in walk_paths(kernel.body)
                 if isinstance(stmt, ir.Alloc) and stmt.buffer.name == name), None)


def buffer_named(kernel, name, primitive):
    """The parameter or allocated buffer called `name`; ScheduleError if none."""
    for buffer in kernel.params:
        if buffer.name == name:
            return buffer
    alloc = allocation(kernel, name)
    if alloc is not None:
        return alloc.buffer
    raise ScheduleError(
        primitive,
        f"use buffer {name!r}",
        f"the kernel has no buffer called {name!r}",
        "Name a tensor of the schedule's graph.",
    )


def _tables_read(expr):
    return sympy.sympify(expr).atoms(AppliedUndef)


def looks_up_guarded(stmt, cond):
    """Whether `stmt`'s own extent or condition looks up a table at an index that `cond`
    guards: it runs before anything inside `stmt`, so a guard inside comes too late."""
    guarded = cond.free_symbols
    return any(read.free_symbols & guarded
               for expr in exprs_of(stmt) for read in _tables_read(expr))


def guard_leaves(stmt, cond):
    """`stmt` with every Store and Reduce under it wrapped in `if cond`.

    Guards sit on the innermost statements rather than around loops so that loop nests
    stay perfectly nested (reorder, fuse and tile need that), except above a loop or
    guard that looks up a ragged table at a guarded index (`for j in range(L_len(b))`
    under `b < B`): that lookup must not run for the iterations the guard removes.
    Nested guards merge into one condition unless one reads a table, whose lookup
    must stay behind the guard that keeps it in range.
    """
    if isinstance(stmt, (ir.Store, ir.Reduce)) or looks_up_guarded(stmt, cond):
        return ir.If(cond, stmt)
    if isinstance(stmt, ir.If) and stmt.otherwise is None and isinstance(
        stmt.then, (ir.Store, ir.Reduce)
    ) and not (_tables_read(cond) or _tables_read(stmt.cond)):
        return ir.If(sympy.And(cond, stmt.cond), stmt.then)
    steps = child_steps(stmt)
    for step, child in steps:
        stmt = replace_at(stmt, (step,), guard_leaves(child, cond))
    return stmt
