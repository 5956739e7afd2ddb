"""split: one loop becomes an outer and an inner loop.

    for i in range(N):            for i_o in range(ceil(N / 8)):
        body(i)           ->          for i_i in range(8):
                                          body(i_o*8 + i_i)

When 8 may not divide N, every store in the body gets the guard `if i_o*8 + i_i < N`
(on the innermost statements, so the loops stay perfectly nested).
"""

import sympy

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.index import floordiv, symbol
from ...ir.printer import render
from ...ir.walk import substitute
from ..nest import fresh_name, guard_leaves, replace_at, resolve_loop, with_body


def check_factor(primitive, loop_name, factor, kernel, loop):
    """A split factor must be a positive integer."""
    if isinstance(factor, bool) or not isinstance(factor, (int, sympy.Integer)) or factor < 1:
        raise ScheduleError(
            primitive,
            f"split loop {loop_name} by {factor!r}",
            "a split factor must be a positive integer",
            "Use a factor of 1 or more, such as 4, 8 or 16.",
            render(kernel, mark=loop),
        )
    return int(factor)


def split(kernel, loop, factor, guard=None):
    """Split `loop` by `factor` into (outer, inner); inner runs `factor` iterations.

    `guard=None` adds the guard only when `factor` may not divide the extent;
    `guard=False` asks for no guard and is refused unless the division is provably exact.
    """
    path, node = resolve_loop(kernel, loop, "split")
    factor = check_factor("split", node.var.name, factor, kernel, node)
    exact = sympy.Mod(node.extent, factor) == 0
    if guard is False and not exact:
        raise ScheduleError(
            "split",
            f"split loop {node.var} (extent {node.extent}) by {factor} without a guard",
            f"{factor} may not divide {node.extent}, so the last outer iteration would run past it",
            "Pass guard=True (or leave guard unset), or pick a factor that divides the extent.",
            render(kernel, mark=node),
        )
    outer = symbol(fresh_name(kernel, f"{node.var.name}_o"))
    inner = symbol(fresh_name(kernel, f"{node.var.name}_i"))
    combined = outer * factor + inner
    body = substitute(node.body, {node.var: combined})
    if not exact or guard:
        body = guard_leaves(body, sympy.Lt(combined, node.extent))
    outer_extent = floordiv(node.extent + factor - 1, factor)
    # Annotations (parallel, vector, ...) are for the caller to re-apply to the new loops.
    new_loop = ir.For(outer, outer_extent, ir.For(inner, factor, body))
    return with_body(kernel, replace_at(kernel.body, path, new_loop)), [outer, inner]
