"""remap: a ragged batch loop visits its rows in another order, for load balance.

    for b in range(B):  # parallel            for b in range(B):  # parallel
        for l in range(L_len(b)):       ->        for l in range(L_len(L_order_desc(b))):
            Y[b, l] = X[b, l] * 2                     Y[L_order_desc(b), l] = ...

With "length-desc" the loop meets the longest rows first: `L_order_desc[k]` is the row
with the k-th longest length (ties in row order), a table the prelude computes from the
lengths. OpenMP threads taking iterations in turn then start on the long rows, and the
short ones fill in at the end. Every row is still visited once, so the result is the
same and a loop that ran its iterations in parallel still may: mark the loop parallel
before remapping it, since the dependence check cannot see through the table (it does
not know the table is a permutation of the rows).
"""

import dataclasses

import sympy

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.index import table
from ...ir.printer import render
from ...ir.walk import find_all, substitute
from ..nest import ragged_batch_dim, replace_at, resolve_loop

ORDERS = ("length-desc",)


def remap(kernel, loop, order):
    """Visit the rows of ragged batch loop `loop` in `order` ("length-desc": longest
    first); returns [loop]."""
    path, node = resolve_loop(kernel, loop, "remap")
    asked = f"remap loop {node.var} (extent {node.extent}) to the order {order!r}"
    if order not in ORDERS:
        raise ScheduleError(
            "remap", asked, f"{order!r} is not an order remap knows",
            f"Pass one of {', '.join(repr(o) for o in ORDERS)}.", render(kernel, mark=node),
        )
    dim = ragged_batch_dim(kernel, node)
    if dim is None:
        batches = ", ".join(f"{d.name}: {d.batch}" for d in kernel.ragged_dims) or "none"
        raise ScheduleError(
            "remap", asked,
            f"loop {node.var} does not run over the rows of a ragged batch (batches: {batches})",
            "Remap the loop over the batch axis of a ragged tensor (its first loop).",
            render(kernel, mark=node),
        )
    starts = [reduce for reduce in find_all(node.body, lambda n: isinstance(n, ir.Reduce))
              if any(node.var in sympy.sympify(e).free_symbols for e in reduce.init_when)]
    if starts:
        raise ScheduleError(
            "remap", asked,
            f"loop {node.var} runs a reduction into {starts[0].buffer.name} that starts from its "
            f"identity on the first value of {node.var}: visited in another order, that start "
            "would come after other iterations had added to the element",
            "Remap the loop over the rows of the batch, outside any reduction.",
            render(kernel, mark=starts[0]),
        )
    entry = ir.RowOrder(f"{dim.name}_order_desc", dim.lengths_table, dim.batch, dim.max)
    body = substitute(node.body, {node.var: table(entry.table)(node.var)})
    new_loop = dataclasses.replace(node, body=body)
    kernel = dataclasses.replace(kernel, body=replace_at(kernel.body, path, new_loop))
    if entry not in kernel.prelude:
        prelude = tuple(sorted(kernel.prelude + (entry,), key=lambda e: e.table))
        kernel = dataclasses.replace(kernel, prelude=prelude)
    return kernel, [node.var]
