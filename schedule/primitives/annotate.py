"""unroll, vectorize, parallel: mark how a loop's iterations run.

    for j in range(8):                  for j in range(8):  # vector
        B[i, j] = A[i, j] * 2    ->         B[i, j] = A[i, j] * 2

    unroll(j) marks "unroll", vectorize(j) "vector", parallel(j) "parallel".

The loop nest does not change shape; the kind tells the renderers what to emit. Vector and
parallel iterations run at once, so such a loop must not carry a dependence: the elements
each iteration touches of a buffer written inside the loop must be disjoint from the
elements every other iteration touches (schedule/dependence.py, shared with bind).

One dependence a SIMD loop may carry: a reduction into one element (`s[i] sum= x[i, k]`
as the whole body of the k loop). Each lane then keeps a partial result that the lanes
combine at the end (`#pragma omp simd reduction`), which reassociates the combine: exact
for max and min and for integers, and for a float sum a change of rounding order of the
kind every vectorized library makes.

    for k in range(768):  # vector
        s[i] sum= x[i, k]
"""

import dataclasses

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.printer import render
from ..dependence import carried_dependence
from ..nest import loops_on_path, replace_at, resolve_loop, walk_paths, with_body

_HINT = {
    "vectorize": "Vectorize a spatial loop (one whose variable picks the element written), or "
    "separate the reduction with cache_write or decompose and vectorize the spatial loops.",
    "parallel": "Parallelize a spatial loop (one whose variable picks the element written); "
    "iterations of a reduction loop would race on the same elements.",
    "bind": "Bind a spatial loop (one whose variable picks the element written); threads of a "
    "reduction loop would race on the same elements.",
}

_VERB = {"vectorize": "vectorize", "parallel": "parallelize"}


def check_independent_iterations(kernel, path, primitive, asked, private_scopes=()):
    """Raise ScheduleError when iterations of the loop at `path` may touch the same element
    of a buffer written inside it (see schedule/dependence.py)."""
    dependence = carried_dependence(kernel, path, private_scopes)
    if dependence is not None:
        obstacle, stmt = dependence
        raise ScheduleError(primitive, asked, obstacle, _HINT[primitive], render(kernel, mark=stmt))


def _check_serial(kernel, node, primitive, asked):
    if node.kind != "serial":
        what = "bound to GPU axis" if node.kind in ir.GPU_AXES else "already marked"
        raise ScheduleError(
            primitive, asked, f"loop {node.var} is {what} {node.kind}",
            "A loop takes one annotation or binding; split it to annotate the parts.",
            render(kernel, mark=node),
        )


def _mark(kernel, path, node, kind):
    return with_body(kernel, replace_at(kernel.body, path, dataclasses.replace(node, kind=kind)))


def unroll(kernel, loop):
    """Mark `loop` for full unrolling; its extent must be a constant."""
    path, node = resolve_loop(kernel, loop, "unroll")
    asked = f"unroll loop {node.var}"
    _check_serial(kernel, node, "unroll", asked)
    if not node.extent.is_Integer:
        raise ScheduleError(
            "unroll", asked, f"its extent {node.extent} is not a constant",
            f"Split {node.var} by a constant factor first and unroll the inner loop.",
            render(kernel, mark=node),
        )
    return _mark(kernel, path, node, "unroll"), []


def _neighbours(kernel, path, node):
    """("inside", loop) for each loop around `node`, ("around", loop) for each loop in it."""
    enclosing = [("inside", outer) for outer in loops_on_path(kernel.body, path)[:-1]]
    inside = [("around", stmt) for _, stmt in walk_paths(node.body) if isinstance(stmt, ir.For)]
    return enclosing + inside


def _concurrent(kernel, loop, primitive, kind, conflict):
    """Mark `loop` with `kind` after the checks vectorize and parallel share: the loop is
    still serial, no neighbouring loop `conflict`s with it (conflict(relation, other)
    gives (obstacle, hint) or None), and its iterations may run at once."""
    path, node = resolve_loop(kernel, loop, primitive)
    asked = f"{_VERB[primitive]} loop {node.var}"
    _check_serial(kernel, node, primitive, asked)
    for relation, other in _neighbours(kernel, path, node):
        found = conflict(relation, other)
        if found is not None:
            obstacle, hint = found
            raise ScheduleError(primitive, asked, obstacle, hint, render(kernel, mark=other))
    if not (kind == "vector" and node.is_scalar_reduction()):
        check_independent_iterations(kernel, path, primitive, asked)
    return _mark(kernel, path, node, kind), []



def _vector_conflict(relation, other):
    """Threads cannot start inside a SIMD loop: no parallel loop may run inside it."""
    if relation == "around" and other.kind == "parallel":
        return (
            f"loop {other.var} inside it is parallel, and threads cannot start inside one "
            "SIMD loop",
            "Vectorize a loop inside the parallel one.",
        )
    return None


def vectorize(kernel, loop):
    """Mark `loop` as a SIMD loop; its iterations must not depend on one another, and no
    parallel loop may run inside it."""
    return _concurrent(kernel, loop, "vectorize", "vector", _vector_conflict)


def _parallel_conflict(relation, other):
    """One parallel loop per nest, and none inside a SIMD loop."""
    if other.kind == "parallel":
        return (
            f"it would sit {relation} loop {other.var}, which is already parallel",
            "Parallelize one loop per nest; fuse the two loops first to get more iterations.",
        )
    if relation == "inside" and other.kind in ir.SIMD_KINDS:
        return (
            f"it sits inside loop {other.var}, which is a SIMD loop, and threads cannot "
            "start inside one",
            "Parallelize a loop outside the vector loop.",
        )
    return None


def parallel(kernel, loop):
    """Run the iterations of `loop` on parallel threads; they must not race, and the loop
    may neither sit inside nor enclose another parallel loop, nor sit inside a SIMD loop."""
    return _concurrent(kernel, loop, "parallel", "parallel", _parallel_conflict)
