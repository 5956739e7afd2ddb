"""reorder: permute the loops of one perfectly nested chain.

    for i in range(M):                  for j in range(N):
        for j in range(N):       ->         for k in range(K):
            for k in range(K):                  for i in range(M):
                body(i, j, k)                       body(i, j, k)

    reorder(j, k, i)

The named loops are permuted among their own positions; loops of the chain that are not
named stay where they are (TVM's semantics). Guards without an else branch may stand
between the loops: they move onto the innermost statements (nest.guard_leaves), which is
legal because a loop has no effect but its body.
"""

import dataclasses

import sympy

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.printer import render
from ...ir.walk import find_all
from ..nest import guard_leaves, replace_at, resolve_loop, with_body


@dataclasses.dataclass(frozen=True)
class Chain:
    """A perfectly nested run of loops: `loops` outermost first, the guards found between
    them, and `body`, the statement inside the innermost loop."""

    path: tuple
    loops: tuple
    guards: tuple
    body: ir.Stmt


def _describe(stmt):
    if isinstance(stmt, ir.For):
        return f"loop {stmt.var}"
    if isinstance(stmt, ir.If):
        return "a guard with an else branch"
    return f"a {type(stmt).__name__} statement"


def perfect_chain(kernel, loops, primitive, asked):
    """The Chain from the outermost to the innermost of `loops` (names or symbols).

    Raises ScheduleError (for `primitive`, asked to do `asked`) when a loop is missing or
    named twice, when the loops are in different nests, or when anything but a loop or a
    guard without else stands between them.
    """
    if not loops:
        raise ScheduleError(primitive, asked, "no loop was named", "Name the loops to reorder.")
    resolved = [resolve_loop(kernel, loop, primitive) for loop in loops]
    names = [node.var.name for _, node in resolved]
    for position, name in enumerate(names):
        if name in names[:position]:
            raise ScheduleError(
                primitive, asked, f"loop {name} is named twice",
                "Name each loop once.", render(kernel, mark=resolved[position][1]),
            )
    by_depth = sorted(resolved, key=lambda entry: len(entry[0]))
    for (outer_path, outer), (inner_path, inner) in zip(by_depth, by_depth[1:]):
        if inner_path[: len(outer_path)] != outer_path:
            raise ScheduleError(
                primitive, asked,
                f"loops {outer.var} and {inner.var} are in different nests (neither encloses "
                "the other)",
                "Name loops of one nest; bring separate nests together with compute_at first.",
                render(kernel, mark=inner),
            )
    path, node = by_depth[0]
    chain, guards = [node], []
    remaining = set(names) - {node.var.name}
    while remaining:
        body = node.body
        while isinstance(body, ir.If) and body.otherwise is None:
            guards.append(body.cond)
            body = body.then
        if not isinstance(body, ir.For):
            innermost = by_depth[-1][1].var
            raise ScheduleError(
                primitive, asked,
                f"loop {node.var} does not directly enclose the next loop on the way to "
                f"{innermost}: {_describe(body)} stands between them, so the loops are not "
                "perfectly nested",
                "Name only loops that nest directly inside one another (guards without an else "
                "may stand between them).",
                render(kernel, mark=body),
            )
        chain.append(body)
        remaining.discard(body.var.name)
        node = body
    return Chain(path, tuple(chain), tuple(guards), node.body)


def _check_extents(kernel, order, asked):
    placed = set()
    chain_vars = {loop.var for loop in order}
    for loop in order:
        inside = (loop.extent.free_symbols & chain_vars) - placed
        if inside:
            names = ", ".join(sorted(str(v) for v in inside))
            raise ScheduleError(
                "reorder", asked,
                f"the extent of loop {loop.var} ({loop.extent}) depends on {names}, which "
                f"would move inside {loop.var}",
                f"Keep {names} outside {loop.var}.",
                render(kernel, mark=loop),
            )
        placed.add(loop.var)


def _check_kind_nesting(kernel, order, asked):
    """No parallel loop inside a SIMD loop, and no blockIdx loop inside a threadIdx loop."""
    vector_loop = thread_loop = None
    for loop in order:
        if loop.kind == "parallel" and vector_loop is not None:
            raise ScheduleError(
                "reorder", asked,
                f"parallel loop {loop.var} would move inside loop {vector_loop.var}, a SIMD "
                "loop, and threads cannot start inside one",
                "Keep parallel loops outside vector loops.", render(kernel, mark=loop),
            )
        if loop.kind.startswith("blockIdx") and thread_loop is not None:
            raise ScheduleError(
                "reorder", asked,
                f"loop {loop.var} (bound to {loop.kind}) would move inside loop "
                f"{thread_loop.var} (bound to {thread_loop.kind})",
                "Keep blockIdx loops outside threadIdx loops.", render(kernel, mark=loop),
            )
        if loop.kind in ir.SIMD_KINDS and vector_loop is None:
            vector_loop = loop
        if loop.kind.startswith("threadIdx") and thread_loop is None:
            thread_loop = loop


def _check_reduction_starts(kernel, chain, order, asked):
    """A reduction that sets its identity on the first iteration of its loops (`init_when`)
    needs that iteration to stay first for each element it writes. Where the element does
    not depend on those loops it does (every loop starts at 0, so their first iteration
    comes first in any order); where it does (a loop fused from an output and a reduction
    loop), the loops the start condition names keep their relative order."""
    # A loop of one iteration is first whatever its place.
    single = {loop.var for loop in chain.loops if sympy.sympify(loop.extent) == 1}
    for reduce in find_all(chain.body, lambda node: isinstance(node, ir.Reduce)):
        named = set().union(*(sympy.sympify(e).free_symbols for e in reduce.init_when)) - single
        element = set().union(*(sympy.sympify(e).free_symbols for e in reduce.indices))
        if not named & element:
            continue
        before = [loop.var for loop in chain.loops if loop.var in named]
        after = [loop.var for loop in order if loop.var in named]
        if before != after:
            raise ScheduleError(
                "reorder", asked,
                f"the reduction into {reduce.buffer.name} starts from its identity on the first "
                f"iteration of loops {', '.join(map(str, before))}, and the new order would "
                "reach that iteration after others that add to the same element",
                f"Keep {', '.join(map(str, before))} in this order, or first separate the "
                f"start with sch.decompose({reduce.buffer.name!r}, ...), after which the "
                "reduction loops reorder freely",
                render(kernel, mark=reduce),
            )


def reorder(kernel, *loops):
    """Reorder the named loops of one perfectly nested chain into the given order.

    The loops need not be adjacent: other loops of the chain keep their positions. No
    loop's extent may depend on a loop that would move inside it. Loop kinds move with
    their loops.
    """
    asked = f"reorder loops {', '.join(str(loop) for loop in loops)}"
    chain = perfect_chain(kernel, loops, "reorder", asked)
    names = [str(loop) for loop in loops]
    named_positions = [p for p, loop in enumerate(chain.loops) if loop.var.name in names]
    by_name = {loop.var.name: loop for loop in chain.loops}
    order = list(chain.loops)
    for position, name in zip(named_positions, names):
        order[position] = by_name[name]
    _check_extents(kernel, order, asked)
    _check_kind_nesting(kernel, order, asked)
    _check_reduction_starts(kernel, chain, order, asked)
    stmt = chain.body
    for cond in reversed(chain.guards):
        stmt = guard_leaves(stmt, cond)
    for loop in reversed(order):
        stmt = dataclasses.replace(loop, body=stmt)
    return with_body(kernel, replace_at(kernel.body, chain.path, stmt)), []
