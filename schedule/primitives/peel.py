"""peel: the last iteration of a loop runs apart from the others.

    for t in range(T):                  for t in range(T - 1):
        if 16*t + i < L:         ->         S[16*t + i] = ...      # the guard is proved away
            S[16*t + i] = ...           if 1 <= T:
                                            if 16*(T - 1) + i < L:
                                                S[16*(T - 1) + i] = ...

A loop over tiles of a ragged length (split with a guard) has one partial tile at most,
its last: peeled, every other iteration runs whole tiles, and tidying drops the guards
that the smaller extent proves true, so their inner loops vectorize. The peeled copy keeps
its guards; its loops and the local buffers it allocates get fresh names, so the steps
that follow schedule the main loop (the copy runs once per outer iteration).
"""

import dataclasses

import sympy

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.printer import render
from ...ir.walk import find_all, rewrite, substitute
from ..nest import all_loops, fresh_name, replace_at, resolve_loop, with_body
from .split_op import fresh_symbol, rename_loops


def _renamed_buffers(stmt, kernel, taken):
    """`stmt` with each buffer it allocates renamed afresh, in its Alloc and accesses."""
    renames = {}
    for alloc in find_all(stmt, lambda n: isinstance(n, ir.Alloc)):
        name = fresh_name(kernel, f"{alloc.buffer.name}_last", taken)
        renames[alloc.buffer.name] = dataclasses.replace(alloc.buffer, name=name)

    def rename(node):
        if isinstance(node, (ir.Alloc, ir.Load, ir.Store, ir.Reduce)) and \
                node.buffer.name in renames:
            return dataclasses.replace(node, buffer=renames[node.buffer.name])
        return node

    return rewrite(stmt, rename)


def peel(kernel, loop):
    """Run the last iteration of `loop` after the others, as a copy with fresh loop and
    local buffer names; returns [the loop, now one iteration shorter]."""
    path, node = resolve_loop(kernel, loop, "peel")
    if node.kind != "serial":
        raise ScheduleError(
            "peel", f"peel the last iteration of loop {node.var}", f"the loop is {node.kind}",
            "Peel before annotating the loop.", render(kernel, mark=node))
    taken = {v.name for v in all_loops(kernel)} | {v.symbol.name for v in kernel.shape_vars}
    renames = {inner.var: fresh_symbol(taken, f"{inner.var.name}_last")
               for inner in find_all(node.body, lambda n: isinstance(n, ir.For))}
    last = sympy.expand(node.extent - 1)
    copy = rename_loops(substitute(node.body, {node.var: last, **renames}), renames)
    copy = _renamed_buffers(copy, kernel, set())
    main = ir.For(node.var, last, node.body, node.kind)
    peeled = ir.If(sympy.Ge(node.extent, 1), copy)
    return with_body(kernel, replace_at(kernel.body, path, ir.seq(main, peeled))), [node.var]
