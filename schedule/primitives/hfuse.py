"""hfuse: two independent loop nests, side by side, become one parallel loop.

    for a in range(Ea):                     for f in range(Ea + Eb):  # parallel
        body_a(a)                    ->         if f < Ea:
    for c in range(Eb):                             body_a(f)
        body_c(c)                               if Ea + Eb - 1 - f < Eb:
                                                    body_c(Ea + Eb - 1 - f)

The threads of the one loop share out the iterations of both nests, so two small nests
keep all threads busy where each alone would not. That needs three things: the nests
follow each other directly, neither writes a buffer the other reads or writes, and each
outer loop's iterations are independent (as `parallel` checks). The second nest runs its
iterations in reverse (independent iterations may), so its index `Ea + Eb - 1 - f` is
bounded by its guard alone.
"""

import sympy

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.index import symbol
from ...ir.printer import render
from ...ir.walk import find_all, substitute
from ..dependence import carried_dependence
from ..nest import (
    buffers_touched,
    fresh_name,
    get_at,
    loops_on_path,
    replace_at,
    resolve_loop,
    with_body,
)


def _check_adjacent(kernel, path_a, path_b, asked, node_b):
    parent_a, parent_b = path_a[:-1], path_b[:-1]
    if not (path_a and path_b and parent_a == parent_b and path_a[-1][0] == "stmts"
            and path_b[-1][1] == path_a[-1][1] + 1):
        raise ScheduleError(
            "hfuse", asked, "the second nest does not directly follow the first in one block",
            "Pass two outermost loops of consecutive nests, first the earlier one.",
            render(kernel, mark=node_b),
        )


def _check_kinds(kernel, path, node, asked):
    inner = [s for s in find_all(node.body, lambda n: isinstance(n, ir.For))]
    around = loops_on_path(kernel.body, path)[:-1]
    for loop in [node] + around + inner:
        busy = loop.kind != "serial" and not (loop is node and loop.kind == "parallel")
        if busy:
            raise ScheduleError(
                "hfuse", asked, f"loop {loop.var} is marked {loop.kind}, and the fused loop "
                "runs on parallel threads, which may neither nest nor start inside such a loop",
                "Fuse nests of serial loops, then annotate the loops inside the fused one.",
                render(kernel, mark=loop),
            )


def hfuse(kernel, nest_a, nest_b):
    """Fuse the consecutive independent nests whose outer loops are `nest_a` and
    `nest_b` into one parallel loop; returns [fused loop]."""
    path_a, node_a = resolve_loop(kernel, nest_a, "hfuse")
    path_b, node_b = resolve_loop(kernel, nest_b, "hfuse")
    asked = f"fuse the nests of loops {node_a.var} and {node_b.var} into one parallel loop"
    _check_adjacent(kernel, path_a, path_b, asked, node_b)
    written_a, read_a = buffers_touched(node_a)
    written_b, read_b = buffers_touched(node_b)
    shared = sorted((written_a & (read_b | written_b)) | (written_b & read_a))
    if shared:
        raise ScheduleError(
            "hfuse", asked, f"both nests touch {', '.join(shared)}, which one of them writes",
            "Fuse nests that share no written buffer; run dependent nests one after the other.",
            render(kernel, mark=node_b),
        )
    for path, node in ((path_a, node_a), (path_b, node_b)):
        _check_kinds(kernel, path, node, asked)
        dependence = carried_dependence(kernel, path)
        if dependence is not None:
            obstacle, stmt = dependence
            raise ScheduleError(
                "hfuse", asked, obstacle,
                "Fuse nests whose outer loops could each run in parallel.",
                render(kernel, mark=stmt),
            )
    fused = symbol(fresh_name(kernel, f"{node_a.var.name}_{node_b.var.name}"))
    total = node_a.extent + node_b.extent
    reversed_index = total - 1 - fused
    body = ir.seq(
        ir.If(sympy.Lt(fused, node_a.extent), substitute(node_a.body, {node_a.var: fused})),
        ir.If(sympy.Lt(reversed_index, node_b.extent),
              substitute(node_b.body, {node_b.var: reversed_index})),
    )
    loop = ir.For(fused, total, body, "parallel")
    parent = get_at(kernel.body, path_a[:-1])
    position = path_a[-1][1]
    stmts = parent.stmts[:position] + (loop,) + parent.stmts[position + 2:]
    new_parent = ir.seq(*stmts)
    return with_body(kernel, replace_at(kernel.body, path_a[:-1], new_parent)), [fused]
