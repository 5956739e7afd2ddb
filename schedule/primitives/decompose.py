"""decompose: move a reduction's initialisation into a loop nest of its own.

    for i in range(M):                          for i_init in range(M):
        for j in range(N):                          for j_init in range(N):
            for k in range(K):             ->           C[i_init, j_init] = 0
                C[i, j] sum= A[i, k] * B[k, j]  for i in range(M):
                    # init when k == 0              for j in range(N):
                                                        for k in range(K):
                                                            C[i, j] sum= A[i, k] * B[k, j]

    decompose(C, i)

The init nest stands just before `loop` and copies the spatial loops (those whose
variables index the element) from `loop` down to the Reduce, under fresh names, with the
guards on the way; reduction loops (those `init_when` tests) are dropped. Afterwards the
reduction loops may be reordered freely: no iteration depends on being the first.
"""

import dataclasses

import sympy

from ...ir import nodes as ir
from ...ir.dtypes import identity
from ...ir.errors import ScheduleError
from ...ir.index import symbol
from ...ir.printer import render
from ..nest import fresh_name, get_at, replace_at, resolve_loop, with_body, writer_paths


def _find_reduce(kernel, buffer_name, loop_path, loop, asked):
    paths = writer_paths(kernel, buffer_name)
    inside = [p for p in paths if p[: len(loop_path)] == loop_path]
    reduces = [p for p in inside if isinstance(get_at(kernel.body, p), ir.Reduce)]
    if not reduces:
        obstacle = (
            f"no reduction into {buffer_name} stands inside loop {loop.var}" if paths
            else f"no statement writes {buffer_name}"
        )
        raise ScheduleError(
            "decompose", asked, obstacle,
            "Name a reduction tensor and a loop that encloses its reduction.",
            render(kernel, mark=loop),
        )
    reduce_path = reduces[0]
    reduce = get_at(kernel.body, reduce_path)
    if not reduce.init_when:
        raise ScheduleError(
            "decompose", asked,
            f"the reduction into {buffer_name} has no initialisation left: it was already "
            "decomposed",
            "Decompose each reduction once.", render(kernel, mark=reduce),
        )
    return reduce_path, reduce


def _path_statements(kernel, loop_path, reduce_path):
    """The statements from `loop` (inclusive) down to the Reduce (exclusive)."""
    depths = range(len(loop_path), len(reduce_path))
    return [get_at(kernel.body, reduce_path[:depth]) for depth in depths]


def _classify(kernel, statements, reduce, buffer_name, asked):
    """{loop var: fresh symbol} for the spatial loops, and the reduction loop variables."""
    init_symbols = set().union(*(sympy.sympify(e).free_symbols for e in reduce.init_when))
    index_symbols = set().union(*(sympy.sympify(e).free_symbols for e in reduce.indices))
    loops = [stmt for stmt in statements if isinstance(stmt, ir.For)]
    reduction_vars = {loop.var for loop in loops if loop.var in init_symbols}
    outside = init_symbols - reduction_vars - {v.symbol for v in kernel.shape_vars}
    if outside:
        names = ", ".join(sorted(map(str, outside)))
        raise ScheduleError(
            "decompose", asked,
            f"reduction loop {names} encloses loop {statements[0].var}, so the init nest would "
            "run again in each of its iterations",
            f"Decompose at {names} or at a loop around it.", render(kernel, mark=statements[0]),
        )
    renaming = {}
    for loop in loops:
        if loop.var in init_symbols and loop.var in index_symbols:
            raise ScheduleError(
                "decompose", asked,
                f"the variable of loop {loop.var} both indexes {buffer_name} and steps the "
                "reduction (a spatial loop fused with a reduction loop)",
                "Decompose before fusing spatial and reduction loops.", render(kernel, mark=loop),
            )
        if loop.var in init_symbols:
            continue
        if loop.var not in index_symbols:
            raise ScheduleError(
                "decompose", asked,
                f"loop {loop.var} neither indexes {buffer_name} nor steps the reduction, so each "
                "of its iterations redoes the whole reduction",
                f"Decompose at a loop inside {loop.var}.", render(kernel, mark=loop),
            )
        renaming[loop.var] = symbol(fresh_name(kernel, f"{loop.var.name}_init"))
    return renaming, reduction_vars


def _first_iteration(reduction_vars):
    return {var: sympy.Integer(0) for var in reduction_vars}


def element_nest(statements, reduce, renaming, reduction_vars, make):
    """A nest over the elements `reduce` accumulates into, its spatial loops (those in
    `statements` whose variables `renaming` maps to fresh symbols) and guards copied, the
    reduction loops dropped; `make(indices, mapping)` is the statement for the element at
    `indices`, `mapping` what the nest substitutes for the statements' variables."""
    # The original initialised each element at the first reduction iteration, where every
    # reduction variable is zero: guards and extents are evaluated there.
    mapping = {**renaming, **_first_iteration(reduction_vars)}
    indices = tuple(sympy.sympify(e).xreplace(mapping) for e in reduce.indices)
    stmt = make(indices, mapping)
    for outer in reversed(statements):
        if isinstance(outer, ir.For) and outer.var in renaming:
            stmt = ir.For(renaming[outer.var], outer.extent.xreplace(mapping), stmt, outer.kind)
        elif isinstance(outer, ir.If):
            stmt = ir.If(outer.cond.xreplace(mapping), stmt)
    return stmt


def _check_path(kernel, statements, reduce_path, loop_path, buffer_name, asked):
    for depth, stmt in enumerate(statements):
        if isinstance(stmt, ir.Alloc) and stmt.buffer.name == buffer_name:
            raise ScheduleError(
                "decompose", asked, f"{buffer_name} is allocated inside loop {statements[0].var}",
                "Decompose at a loop inside the allocation.", render(kernel, mark=stmt),
            )
        step = reduce_path[len(loop_path) + depth]
        if isinstance(stmt, ir.If) and step[0] != "then":
            raise ScheduleError(
                "decompose", asked, "the reduction sits in the else branch of a guard",
                "Decompose at a loop inside the guard.", render(kernel, mark=stmt),
            )


def decompose(kernel, buffer_name, loop):
    """Initialise the reduction into `buffer_name` in a nest of its own just before `loop`,
    and leave the Reduce without `init_when`."""
    loop_path, node = resolve_loop(kernel, loop, "decompose")
    asked = f"decompose the reduction into {buffer_name} at loop {node.var}"
    reduce_path, reduce = _find_reduce(kernel, buffer_name, loop_path, node, asked)
    statements = _path_statements(kernel, loop_path, reduce_path)
    _check_path(kernel, statements, reduce_path, loop_path, buffer_name, asked)
    renaming, reduction_vars = _classify(kernel, statements, reduce, buffer_name, asked)
    first = _first_iteration(reduction_vars)
    leftover = [sympy.sympify(e).xreplace(first) for e in reduce.init_when]
    if any(e != 0 for e in leftover):
        raise ScheduleError(
            "decompose", asked,
            f"its first reduction iteration is not where {', '.join(map(str, reduce.init_when))} "
            "are all zero",
            "Decompose reductions whose loops start at zero.", render(kernel, mark=reduce),
        )
    start = ir.as_value(identity(reduce.combiner, reduce.buffer.dtype), reduce.buffer.dtype)
    init = element_nest(statements, reduce, renaming, reduction_vars,
                        lambda indices, _mapping: ir.Store(reduce.buffer, indices, start))
    body = replace_at(kernel.body, reduce_path, dataclasses.replace(reduce, init_when=()))
    decomposed = get_at(body, loop_path)
    parent_path, parent = loop_path[:-1], get_at(body, loop_path[:-1])
    if loop_path and isinstance(parent, ir.Seq):
        position = loop_path[-1][1]
        stmts = parent.stmts[:position] + (init, decomposed) + parent.stmts[position + 1:]
        return with_body(kernel, replace_at(body, parent_path, ir.Seq(stmts))), []
    return with_body(kernel, replace_at(body, loop_path, ir.Seq((init, decomposed)))), []
