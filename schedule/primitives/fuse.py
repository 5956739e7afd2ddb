"""fuse: two directly nested loops become one loop over their product.

    for i in range(M):                  for i_j in range(M*N):
        for j in range(N):       ->         body(i_j // N, i_j % N)
            body(i, j)

Guards without an else branch between the two loops move onto the innermost statements
(nest.guard_leaves), so the fused loop stays perfectly nested. A later split of `i_j` by
N simplifies back to plain indices. A ragged pair (a batch loop and the loop over each
row's length) becomes one flat loop over all positions through prelude tables: see
ragged_fuse.
"""

import sympy

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.index import floordiv, proves, symbol
from ...ir.printer import render
from ...ir.walk import substitute
from ..nest import fresh_name, guard_leaves, ranges_on_path, replace_at, resolve_loop, with_body
from .ragged_fuse import fuse_ragged


def _check_nested(kernel, outer_path, outer, inner_path, inner, asked):
    """The guards between `outer` and `inner`, when `inner` is directly inside `outer`."""
    if outer is inner:
        raise ScheduleError(
            "fuse", asked, f"both arguments name loop {outer.var}",
            "Name two different loops: the outer one first.", render(kernel, mark=outer),
        )
    if outer_path[: len(inner_path)] == inner_path:
        raise ScheduleError(
            "fuse", asked, f"loop {inner.var} encloses loop {outer.var}",
            f"Pass the outer loop first: fuse({inner.var}, {outer.var}).",
            render(kernel, mark=inner),
        )
    guards, body = [], outer.body
    while isinstance(body, ir.If) and body.otherwise is None:
        guards.append(body.cond)
        body = body.then
    if body is not inner:
        where = (
            "inside it, but not as the only statement of its body"
            if inner_path[: len(outer_path)] == outer_path
            else "somewhere else in the kernel"
        )
        raise ScheduleError(
            "fuse", asked,
            f"loop {inner.var} is not directly nested in loop {outer.var} (it is {where})",
            "Fuse a loop with the single loop of its body; reorder first to bring them together.",
            render(kernel, mark=outer),
        )
    return guards


def check_rectangular(primitive, asked, outer, inner, consequence, hint, kernel):
    """Raise ScheduleError when the extent of loop `inner` depends on the variable of
    loop `outer` (a ragged pair), which `primitive` cannot transform: `consequence` says
    why, `hint` what to do instead. Shared with tile."""
    if outer.var in inner.extent.free_symbols:
        raise ScheduleError(
            primitive, asked,
            f"the extent of loop {inner.var} ({inner.extent}) depends on {outer.var}, so "
            f"{consequence}",
            hint, render(kernel, mark=inner),
        )


def fuse(kernel, outer, inner):
    """Fuse `outer` with `inner`, the only statement of its body, into one serial loop.

    Both loops must still be serial (fuse before annotating or binding). When the inner
    extent is the length of the outer loop's row, the pair fuses into one ragged loop.
    """
    outer_path, outer_loop = resolve_loop(kernel, outer, "fuse")
    inner_path, inner_loop = resolve_loop(kernel, inner, "fuse")
    asked = f"fuse loops {outer_loop.var} and {inner_loop.var}"
    guards = _check_nested(kernel, outer_path, outer_loop, inner_path, inner_loop, asked)
    for loop in (outer_loop, inner_loop):
        if loop.kind != "serial":
            raise ScheduleError(
                "fuse", asked, f"loop {loop.var} is already marked {loop.kind}",
                "Fuse the loops first, then annotate or bind the fused loop.",
                render(kernel, mark=loop),
            )
    if outer_loop.var in inner_loop.extent.free_symbols:
        return fuse_ragged(kernel, outer_path, outer_loop, inner_loop, guards, asked)
    if inner_loop.extent == 0:
        raise ScheduleError(
            "fuse", asked, f"loop {inner_loop.var} runs no iteration (its extent is 0), so no "
            f"fused index can recover {outer_loop.var} from it",
            "Leave an empty loop unfused (split_op's tile loop is empty when the extent's "
            "largest value is below the factor).", render(kernel, mark=inner_loop),
        )
    fused = symbol(fresh_name(kernel, f"{outer_loop.var}_{inner_loop.var}"))
    inner_extent = inner_loop.extent
    extent = outer_loop.extent * inner_extent
    mapping = {
        outer_loop.var: floordiv(fused, inner_extent),
        inner_loop.var: sympy.Mod(fused, inner_extent),
    }
    body = substitute(inner_loop.body, mapping)
    for cond in reversed(guards):
        body = guard_leaves(body, cond.xreplace(mapping))
    ranges = ranges_on_path(kernel, outer_path[:-1]) if outer_path else kernel.ranges()
    ranges[fused] = (sympy.Integer(0), extent - 1)
    in_range = sympy.Lt(mapping[outer_loop.var], outer_loop.extent)
    if not proves(in_range, ranges):
        # Interval arithmetic cannot always show fused // N < M for a symbolic N; the
        # guard states it, keeps the kernel verifiable, and tidy drops it once provable.
        body = guard_leaves(body, in_range)
    new_loop = ir.For(fused, extent, body)
    return with_body(kernel, replace_at(kernel.body, outer_path, new_loop)), [fused]
