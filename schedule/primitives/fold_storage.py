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
iteration's region before its reader runs. The folded buffer is a fixed-size local array:
a slice that ends at a constant index is sized by that index, a row of a ragged dim by
the dim's declared maximum, and a slice as long as a size (a row of N elements) by the
largest N its range allows, while that keeps the slice within SYMBOLIC_SLICE_ELEMENTS;
a longer one is refused here rather than by the build.
"""

import dataclasses
import math

import sympy

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.index import bounds, simplify
from ...ir.layout import Dense
from ...ir.printer import render
from ...ir.walk import find_all, rewrite
from ..nest import loops_on_path, walk_paths

# The most elements a folded slice sized by a size's declared maximum may hold: 64 KiB of
# float32, a row that stays in L1 (a softmax row over a sequence of up to 16,384).
SYMBOLIC_SLICE_ELEMENTS = 16384


def _fail(asked, obstacle, kernel, hint, mark=None):
    raise ScheduleError("fold_storage", asked, obstacle, hint, render(kernel, mark=mark))


def _accesses(stmt, name):
    """Stores, reductions and loads of buffer `name` in `stmt` (nested values included)."""
    found = []
    if isinstance(stmt, (ir.Store, ir.Reduce)) and stmt.buffer.name == name:
        found.append(stmt)
    for value in find_all(stmt, lambda node: isinstance(node, ir.Load)):
        if value.buffer.name == name:
            found.append(value)
    return found


def _slice_extent(asked, name, dim, extent, inside, fixed, ranges, kernel, target,
                  varies_by_row, elements_so_far):
    """The constant extent of dim `dim` of one iteration's slice: past the highest index
    any access reaches, no more than the buffer's own extent (for a dim that `varies_by_row`,
    a ragged one, its declared maximum; for one as long as a size, the size's largest value
    while the slice, `elements_so_far` times it, stays within SYMBOLIC_SLICE_ELEMENTS). The
    folded buffer is local (a fixed-size array in C), so a longer symbolic extent is
    refused here, not at build."""
    # sympy's Max, not Python's: two symbolic bounds (a row's last index and a guarded
    # tile's, 4*ceiling(L/4) - 1) need not compare
    highest = sympy.Max(*(bounds(a.indices[dim].xreplace(fixed), ranges)[1] for a in inside))
    size = simplify(sympy.Min(sympy.sympify(extent), highest + 1), {**kernel.ranges(), **ranges})
    if not size.is_Integer and (highest + 1).is_Integer:
        size = highest + 1  # room for every index reached, even where the extent is less
    if not size.is_Integer and varies_by_row and sympy.sympify(extent).is_Integer:
        size = sympy.Integer(extent)  # a row of a ragged dim: room for its declared maximum
    if not size.is_Integer:
        largest = bounds(size, kernel.ranges())[1]
        if largest.is_Integer and elements_so_far * int(largest) <= SYMBOLIC_SLICE_ELEMENTS:
            size = largest
    if not size.is_Integer:
        _fail(asked, f"one iteration of loop {target.var} uses a slice of {name} that is "
                     f"{size} long in dim {dim}, which is not a constant, and a folded buffer "
                     "is local storage of fixed size",
              kernel, f"Split the loops that run over dim {dim} of {name} by a constant "
                      "factor and compute_at and fold at the outer loop of the split (or at "
                      "a loop inside whose slice is constant), or leave it unfolded.", target)
    return size


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
    # An offset may name the sizes (`f % batch` of a loop fused over a batch), which stay
    # put while the kernel runs, but no loop inside `loop`.
    inner_vars = {l.var for l in find_all(target.body, lambda node: isinstance(node, ir.For))}
    shape = []
    for dim, extent in enumerate(buffer.shape):
        offsets = {sympy.expand(a.indices[dim] - a.indices[dim].xreplace(fixed)) for a in inside}
        if len(offsets) != 1 or offsets.pop().free_symbols & inner_vars:
            _fail(asked, f"the accesses of {name} move differently in dim {dim}", kernel,
                  "Fold at a loop whose iterations each use one block of the buffer.")
        varies_by_row = (dim in getattr(buffer.layout, "ragged", ())
                         or dim in getattr(buffer.layout, "causal", ()))
        shape.append(_slice_extent(asked, name, dim, extent, inside, fixed, ranges, kernel,
                                   target, varies_by_row, math.prod(map(int, shape))))
    # One iteration's slice of a ragged buffer is a plain array: its rows no longer lie
    # back to back.
    folded = dataclasses.replace(buffer, shape=tuple(shape), layout=Dense())

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
