"""fold_storage: shrink an intermediate buffer to what one iteration of a loop uses.

After `compute_at(columns, ox)` each iteration of ox writes and reads only its own slice
`columns[oy, ox, :]`, yet the buffer keeps the whole image's storage. A microcontroller
has no room for that: folding at ox allocates the buffer (scope local) inside ox's body
and rewrites every access with the loop variables of ox and the loops around it set to
0, so all iterations share one slice of (1, 1, pairs).

    for oy, ox:                                  for oy, ox:
        for t: columns[oy, ox, t] = ...    ->        for t: columns[0, 0, t] = ...
        ... columns[oy, ox, t] ...                   ... columns[0, 0, t] ...

This is sound when every access lies inside the loop, and in each dim every access is
shifted by the same offset by those variables (so each iteration's slice moves as one
block and never overlaps another's live data): compute_at's producer writes each
iteration's region before its reader runs.
"""

import dataclasses

import sympy

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.index import bounds
from ...ir.printer import render
from ...ir.walk import find_all, rewrite
from ..nest import loops_on_path, walk_paths


def _fail(asked, obstacle, kernel, hint):
    raise ScheduleError("fold_storage", asked, obstacle, hint, render(kernel))


def _accesses(stmt, name):
    """Stores, reductions and loads of buffer `name` in `stmt` (nested values included)."""
    found = []
    if isinstance(stmt, (ir.Store, ir.Reduce)) and stmt.buffer.name == name:
        found.append(stmt)
    for value in find_all(stmt, lambda node: isinstance(node, ir.Load)):
        if value.buffer.name == name:
            found.append(value)
    return found


def fold_storage(kernel, name, loop):
    """`kernel` with intermediate buffer `name` shrunk to the slice one iteration of
    `loop` (a loop variable or its name) uses; returns (kernel, [])."""
    asked = f"fold the storage of {name} at loop {loop}"
    loop_name = str(loop)
    paths = [(p, s) for p, s in walk_paths(kernel.body)
             if isinstance(s, ir.For) and s.var.name == loop_name]
    if len(paths) != 1:
        _fail(asked, f"there is no single loop {loop_name}", kernel, "Pass a loop of the kernel.")
    path, target = paths[0]
    outer = loops_on_path(kernel.body, path) + [target]
    fixed = {l.var: sympy.Integer(0) for l in outer}
    inside = [a for _, s in walk_paths(target.body) for a in _accesses(s, name)
              if not isinstance(s, (ir.For, ir.Seq, ir.If, ir.Alloc))]
    everywhere = [a for _, s in walk_paths(kernel.body) for a in _accesses(s, name)
                  if not isinstance(s, (ir.For, ir.Seq, ir.If, ir.Alloc))]
    if not inside or len(inside) != len(everywhere):
        _fail(asked, f"{name} is also used outside loop {loop_name}", kernel,
              "Compute it at this loop first (compute_at) or fold at an outer loop.")
    if any(name == p.name for p in kernel.params):
        _fail(asked, f"{name} is a parameter", kernel, "Fold intermediate buffers only.")
    buffer = inside[0].buffer
    ranges = {l.var: (sympy.Integer(0), l.extent - 1)
              for l in find_all(kernel.body, lambda node: isinstance(node, ir.For))}
    shape = []
    for dim, extent in enumerate(buffer.shape):
        offsets = {sympy.expand(a.indices[dim] - a.indices[dim].xreplace(fixed)) for a in inside}
        if len(offsets) != 1 or not offsets.pop().free_symbols <= set(fixed):
            _fail(asked, f"the accesses of {name} move differently in dim {dim}", kernel,
                  "Fold at a loop whose iterations each use one block of the buffer.")
        highest = max(bounds(a.indices[dim].xreplace(fixed), ranges)[1] for a in inside)
        shape.append(sympy.Min(extent, highest + 1) if highest.is_Integer else extent)
    folded = dataclasses.replace(buffer, shape=tuple(shape))

    def fold(node):
        if isinstance(node, (ir.Load, ir.Store, ir.Reduce)) and node.buffer.name == name:
            return dataclasses.replace(node, buffer=folded,
                                       indices=tuple(i.xreplace(fixed) for i in node.indices))
        if isinstance(node, ir.Alloc) and node.buffer.name == name:
            return node.body
        if isinstance(node, ir.For) and node.var == target.var:
            return dataclasses.replace(node, body=ir.Alloc(folded, "local", node.body))
        return node

    return dataclasses.replace(kernel, body=rewrite(kernel.body, fold)), []
