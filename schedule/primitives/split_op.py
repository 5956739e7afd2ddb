"""split_op: a loop becomes whole tiles of m and a remainder loop, with no element guard.

    for l in range(E):             for l_o in range(E // 4):
        body(l)            ->          if 4*l_o + 4 <= E:
                                           for l_i in range(4):
                                               body(4*l_o + l_i)
                                   for l_r in range(E - 4*(E // 4)):
                                       body(4*(E // 4) + l_r)

E may be ragged (`L_len(b)`). The element loop `l_i` runs a constant 4 iterations with
no guard inside, so it can be vectorized or unrolled; the remainder runs the last
E % 4 elements. The check `4*l_o + 4 <= E` always holds (the tile is whole): it states
that for the verifier, and tidying drops it once `proves` sees 4*(E // 4) - E is
-(E % 4). The remainder's copy of the body gets fresh loop names; a factor that provably
divides E leaves no remainder loop, and one larger than a constant E no tiles (the
handles are still returned, naming no loop).
"""

import sympy

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.index import floordiv, symbol
from ...ir.printer import render
from ...ir.walk import find_all, rewrite, substitute
from ..nest import all_loops, replace_at, resolve_loop, with_body
from .split import check_factor


def fresh_symbol(taken, base):
    """A symbol named after `base` that is not in `taken` (which then holds it)."""
    candidate, number = base, 0
    while candidate in taken:
        number += 1
        candidate = f"{base}_{number}"
    taken.add(candidate)
    return symbol(candidate)


def split_op(kernel, loop, factor):
    """Split `loop` into a nest over whole tiles of `factor` and a remainder loop;
    returns [tile loop, element loop, remainder loop]."""
    path, node = resolve_loop(kernel, loop, "split_op")
    factor = check_factor("split_op", node.var.name, factor, kernel, node)
    allocs = find_all(node.body, lambda n: isinstance(n, ir.Alloc))
    if allocs:
        raise ScheduleError(
            "split_op", f"split loop {node.var} into whole tiles of {factor} and a remainder",
            f"the loop allocates {allocs[0].buffer.name} inside, which both parts would need",
            "Split the loop before caching inside it, or split a loop inside the allocation.",
            render(kernel, mark=allocs[0]),
        )
    taken = {v.name for v in all_loops(kernel)} | {v.symbol.name for v in kernel.shape_vars}
    tile = fresh_symbol(taken, f"{node.var.name}_o")
    element = fresh_symbol(taken, f"{node.var.name}_i")
    remainder = fresh_symbol(taken, f"{node.var.name}_r")
    whole = factor * floordiv(node.extent, factor)
    main = ir.For(tile, floordiv(node.extent, factor), ir.If(
        sympy.Le(factor * tile + factor, node.extent),
        ir.For(element, factor, substitute(node.body, {node.var: factor * tile + element}))))
    renames = {inner.var: fresh_symbol(taken, f"{inner.var.name}_r")
               for inner in find_all(node.body, lambda n: isinstance(n, ir.For))}
    copy = substitute(node.body, {node.var: whole + remainder, **renames})
    copy = rename_loops(copy, renames)
    rest_extent = sympy.expand(node.extent - whole)
    # A factor that provably divides the extent (1 always does) leaves no remainder
    # loop, and one provably larger than the extent leaves no tiles.
    parts = [] if whole == 0 else [main]
    parts += [] if rest_extent == 0 else [ir.For(remainder, rest_extent, copy)]
    new = ir.seq(*parts)
    return with_body(kernel, replace_at(kernel.body, path, new)), [tile, element, remainder]


def rename_loops(stmt, renames):
    """`stmt` with each loop whose variable is in `renames` binding its new name."""

    def rename(node):
        if isinstance(node, ir.For) and node.var in renames:
            return ir.For(renames[node.var], node.extent, node.body, node.kind)
        return node

    return rewrite(stmt, rename)
