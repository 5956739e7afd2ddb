"""compute_at: compute a producer inside a loop of its consumer, only the part that one
iteration of that loop reads.

    for i in range(N):                          for i_1 in range(N):
        for k in range(K):                          for k in range(K):
            M[i] max= X[i, k]                           M[i_1] max= X[i_1, k]
    for i_1 in range(N):                 ->         for j in range(K):
        for j in range(K):                              E[i_1, j] = exp(X[i_1, j] - M[i_1])
            E[i_1, j] = exp(X[i_1, j] - M[i_1])

    compute_at("M", "i_1")

The producer's loops over its dimensions become loops over the region read (see
schedule/region.py) with fresh names, indices start + offset, guarded where start +
offset may pass the producer's extent; a region dimension of extent 1 needs no loop. Any
other loops of the producer (a reduction's, with its `init_when`) move along unchanged.
The producer keeps its storage; only where it is computed changes. A reduction whose
initialisation stands in a nest of its own (decompose, or a reduction over an axis that
may be empty) moves with that nest, the initialisation first.
"""

import dataclasses

import sympy

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.printer import render
from ...ir.walk import find_all, rewrite, substitute
from ..nest import (
    buffer_named,
    get_at,
    guard_leaves,
    loops_on_path,
    ranges_on_path,
    replace_at,
    resolve_loop,
    walk_paths,
    with_body,
    writer_paths,
)
from ..region import accesses, fresh_symbols, infer_region

PRIMITIVE = "compute_at"


def _stages(kernel):
    """(path, statement) of each top-level statement of the kernel's body, under the
    Allocs that open it: the loop nests of the program's stages."""
    path, stmt = (), kernel.body
    while isinstance(stmt, ir.Alloc):
        path, stmt = path + (("body", None),), stmt.body
    if isinstance(stmt, ir.Seq):
        return [(path + (("stmts", k),), item) for k, item in enumerate(stmt.stmts)]
    return [(path, stmt)]


def _stage_of(kernel, path):
    """Position (in `_stages`) of the top-level statement holding the statement at `path`."""
    return next(
        position
        for position, (stage_path, _) in enumerate(_stages(kernel))
        if path[: len(stage_path)] == stage_path
    )


def _loop_names(kernel, path):
    return ", ".join(str(loop.var) for loop in loops_on_path(kernel.body, path)) or "no loops"


def _reader_paths(stmt, buffer_name):
    """Paths of the Store and Reduce statements under `stmt` whose values load the buffer."""
    return list(dict.fromkeys(access.path for access in accesses(stmt, buffer_name, "read")))


def _inside(path, loop_path):
    return len(path) > len(loop_path) and path[: len(loop_path)] == loop_path


def _is_initialisation(stmt):
    """Whether `stmt` stores a constant (a decomposed reduction's identity)."""
    return isinstance(stmt, ir.Store) and isinstance(stmt.value, ir.Const)


def _producer_stages(kernel, buffer, at_loop):
    """[(stage position, writer path)] of the producer: a computed intermediate written by
    one statement, or a reduction decomposed into its initialisation's nest and its own
    (each a stage of its own, the initialisation first)."""
    name = buffer.name
    if name in kernel.outputs:
        raise ScheduleError(
            PRIMITIVE, f"compute {name} at loop {at_loop.var}",
            f"{name} is an output of the kernel: every element must be computed and stored "
            "where the caller sees it",
            "Compute intermediate tensors at loops of their consumers; schedule the "
            "output's own loops with split, reorder and cache_write instead.",
            render(kernel, mark=at_loop),
        )
    writers = writer_paths(kernel, name)
    if not writers:
        raise ScheduleError(
            PRIMITIVE, f"compute {name} at loop {at_loop.var}",
            f"no statement writes {name} (it is an input of the kernel)",
            "Name a computed tensor; to bring an input closer use cache_read.",
            render(kernel, mark=at_loop),
        )
    positions = [_stage_of(kernel, path) for path in writers]
    statements = [get_at(kernel.body, path) for path in writers]
    decomposed = (len(writers) == 2 and positions[0] < positions[1]
                  and _is_initialisation(statements[0])
                  and isinstance(statements[1], ir.Reduce))
    if len(writers) > 1 and not decomposed or len(set(positions)) < len(positions):
        raise ScheduleError(
            PRIMITIVE, f"compute {name} at loop {at_loop.var}",
            f"{name} is written by {len(writers)} statements, and compute_at moves one loop "
            "nest holding one store, or a reduction's initialisation nest and its own",
            "Apply compute_at before splitting the writes apart, or decompose the "
            "reduction into a nest of its own (decompose at its outermost loop).",
            render(kernel, mark=get_at(kernel.body, writers[0])),
        )
    return list(zip(positions, writers))


def _check_stage_is_own(kernel, buffer, position, at_loop):
    """Other buffers written in the producer's nest must be read only inside that nest,
    else moving the nest would move their computation away from their readers."""
    stage_path, stage = _stages(kernel)[position]
    written = {node.buffer.name for _, node in walk_paths(stage)
               if isinstance(node, (ir.Store, ir.Reduce))} - {buffer.name}
    for other in sorted(written):
        for path in _reader_paths(kernel.body, other):
            if not path[: len(stage_path)] == stage_path:
                raise ScheduleError(
                    PRIMITIVE, f"compute {buffer.name} at loop {at_loop.var}",
                    f"{buffer.name} is computed in one loop nest together with {other}, and "
                    f"{other} is read outside that nest, so moving the nest would take "
                    f"{other} away from its readers",
                    f"Compute {other} at its consumer first, or compute {buffer.name} in a "
                    "nest of its own.",
                    render(kernel, mark=stage),
                )


def _check_readers(kernel, buffer, at_path, at_loop):
    readers = _reader_paths(kernel.body, buffer.name)
    inside = [path for path in readers if _inside(path, at_path)]
    if not inside:
        where = "; ".join(f"inside loops ({_loop_names(kernel, p)})" for p in readers)
        raise ScheduleError(
            PRIMITIVE, f"compute {buffer.name} at loop {at_loop.var}",
            f"loop {at_loop.var} does not enclose any read of {buffer.name}: compute_at into "
            f"a non-enclosing loop; {buffer.name} is read {where or 'nowhere'}",
            "Pick one of the loops around a read of it.",
            render(kernel, mark=at_loop),
        )
    for path in readers:
        if not _inside(path, at_path):
            reader = get_at(kernel.body, path)
            raise ScheduleError(
                PRIMITIVE, f"compute {buffer.name} at loop {at_loop.var}",
                f"{buffer.name} is also read by the statement writing {reader.buffer.name} "
                f"inside loops ({_loop_names(kernel, path)}), outside loop {at_loop.var}",
                f"Pick a loop that encloses every read of {buffer.name}, or compute "
                f"{reader.buffer.name} at that loop too.",
                render(kernel, mark=reader),
            )


def _check_order(kernel, buffer, position, at_path, at_loop):
    """The consumer's nest comes after the producer's, and nothing in between writes a
    buffer the producer reads (the moved producer would see the new values)."""
    consumer = _stage_of(kernel, at_path)
    if consumer <= position:
        raise ScheduleError(
            PRIMITIVE, f"compute {buffer.name} at loop {at_loop.var}",
            f"loop {at_loop.var} is not in a loop nest that runs after the one computing "
            f"{buffer.name}",
            f"Pick a loop of a consumer of {buffer.name}.",
            render(kernel, mark=at_loop),
        )
    stage_path, stage = _stages(kernel)[position]
    inputs = {load.buffer.name for load in find_all(stage, lambda n: isinstance(n, ir.Load))}
    for name in sorted(inputs):
        for path in writer_paths(kernel, name):
            if position < _stage_of(kernel, path) <= consumer:
                raise ScheduleError(
                    PRIMITIVE, f"compute {buffer.name} at loop {at_loop.var}",
                    f"{buffer.name} reads {name}, which is written between its loop nest "
                    f"and loop {at_loop.var}",
                    "Compute it at a loop before that write.",
                    render(kernel, mark=get_at(kernel.body, path)),
                )


def _dimension_loops(kernel, buffer, stage_path, writer_path, at_loop):
    """The producer's loop over each dimension of `buffer`: the writer's indices must be
    distinct loop variables of its nest, each running over its whole dimension."""
    writer = get_at(kernel.body, writer_path)
    stage = get_at(kernel.body, stage_path)
    nest_loops = {loop.var: loop for loop in loops_on_path(stage, writer_path[len(stage_path):])}
    loops = []
    for dim, index in enumerate(writer.indices):
        # A ragged dim's extent is the row's length, as the writer's loop runs it.
        extent = buffer.extent(dim, writer.indices)
        loop = nest_loops.get(index)
        taken = loop is not None and any(loop.var == other.var for other in loops)
        if loop is None or taken or sympy.expand(loop.extent - extent) != 0:
            raise ScheduleError(
                PRIMITIVE, f"compute {buffer.name} at loop {at_loop.var}",
                f"{buffer.name} is written at [{', '.join(map(str, writer.indices))}], not at "
                "one whole loop of its own nest per dimension, so the region to compute "
                "cannot be mapped back onto its loops",
                f"Apply compute_at before splitting, fusing or tiling the loops of "
                f"{buffer.name}; transform the consumer's loops freely.",
                render(kernel, mark=writer),
            )
        loops.append(loop)
    return loops


def _restrict(nest, loops, region, variables):
    """`nest` computing only `region`: each dimension loop runs over the region with a
    new variable, its old variable replaced by start + offset everywhere inside."""
    offsets = {
        loop.var: sympy.Integer(0) if interval.extent == 1 else variable
        for loop, interval, variable in zip(loops, region.intervals, variables)
    }
    nest = substitute(nest, {
        loop.var: interval.start + offsets[loop.var]
        for loop, interval in zip(loops, region.intervals)
    })
    by_var = {loop.var: (interval, variable)
              for loop, interval, variable in zip(loops, region.intervals, variables)}

    def restrict_loop(stmt):
        if not (isinstance(stmt, ir.For) and stmt.var in by_var):
            return stmt
        interval, variable = by_var[stmt.var]
        body = stmt.body
        if interval.needs_guard:
            offset = offsets[stmt.var]
            body = guard_leaves(body, sympy.Lt(interval.start + offset, stmt.extent))
        if interval.extent == 1:
            return body
        return ir.For(variable, interval.extent, body)

    return rewrite(nest, restrict_loop)


def _without_stage(body, stage_path):
    """`body` with the top-level statement at `stage_path` removed."""
    parent_path, (_, position) = stage_path[:-1], stage_path[-1]
    parent = get_at(body, parent_path)
    remaining = parent.stmts[:position] + parent.stmts[position + 1:]
    return replace_at(body, parent_path, ir.seq(*remaining))


def compute_at(kernel, buffer_name, loop):
    """Move the loop nest computing `buffer_name` into `loop`, restricted to the region of
    the buffer that one iteration of `loop` reads.

    The producer must be a computed tensor that is not an output, written by one
    statement in a top-level loop nest of its own, before the consumer's nest; `loop`
    must enclose every read of it. Returns (kernel, []).
    """
    at_path, at_loop = resolve_loop(kernel, loop, PRIMITIVE)
    buffer = buffer_named(kernel, buffer_name, PRIMITIVE)
    producers = _producer_stages(kernel, buffer, at_loop)
    _check_readers(kernel, buffer, at_path, at_loop)
    for position, _ in producers:
        _check_order(kernel, buffer, position, at_path, at_loop)
        _check_stage_is_own(kernel, buffer, position, at_loop)
    region = infer_region(
        at_loop.body, buffer, ranges_on_path(kernel, at_path), "read", PRIMITIVE
    )
    nests = []
    for position, writer_path in producers:
        stage_path, nest = _stages(kernel)[position]
        nests.append((nest, _dimension_loops(kernel, buffer, stage_path, writer_path, at_loop)))
    variables = iter(fresh_symbols(kernel, [f"{buffer.name}_{loop.var}"
                                            for _, loops in nests for loop in loops]))
    moved = [_restrict(nest, loops, region, [next(variables) for _ in loops])
             for nest, loops in nests]
    new_loop = dataclasses.replace(at_loop, body=ir.seq(*moved, at_loop.body))
    body = replace_at(kernel.body, at_path, new_loop)
    for position, _ in sorted(producers, reverse=True):
        body = _without_stage(body, _stages(kernel)[position][0])
    return with_body(kernel, body), []
