"""bind: map a loop onto a GPU grid or block axis.

    for i_o in range(M // 64):          for i_o in range(M // 64):  # blockIdx.x
        for i_i in range(64):    ->         for i_i in range(64):  # threadIdx.x
            body(i_o, i_i)                      body(i_o, i_i)

    bind(i_o, "blockIdx.x"); bind(i_i, "threadIdx.x")

The CUDA renderer turns a bound loop into the block or thread index; the interpreter and
the C renderer run it as a serial loop. One nest (a loop with the loops around and inside
it) binds each axis at most once, keeps blockIdx loops outside threadIdx loops, and holds
at most 1024 threads per block. Bound iterations run at once, so they must not race.
"""

import dataclasses

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.printer import render
from ..nest import child_steps, loops_on_path, replace_at, resolve_loop, walk_paths, with_body
from .annotate import check_independent_iterations

MAX_THREADS_PER_BLOCK = 1024


def _thread_counts(stmt):
    """Products of the constant threadIdx extents along each path under `stmt` (paths
    with a symbolic threadIdx extent are left out: their size is only known at launch)."""
    if isinstance(stmt, ir.For):
        inner = _thread_counts(stmt.body)
        if not stmt.kind.startswith("threadIdx"):
            return inner
        if not stmt.extent.is_Integer:
            return []
        return [int(stmt.extent) * count for count in inner]
    steps = child_steps(stmt)
    if not steps:
        return [1]
    return [count for _, child in steps for count in _thread_counts(child)]


def _check_axis(kernel, node, axis, asked):
    if axis not in ir.GPU_AXES:
        raise ScheduleError(
            "bind", asked, f"{axis!r} is not a GPU axis",
            f"Use one of {', '.join(ir.GPU_AXES)}.", render(kernel, mark=node),
        )
    if node.kind != "serial":
        what = "already bound to" if node.kind in ir.GPU_AXES else "already marked"
        raise ScheduleError(
            "bind", asked, f"loop {node.var} is {what} {node.kind}",
            "A loop takes one annotation or binding; split it to bind the parts.",
            render(kernel, mark=node),
        )


def _check_nest(kernel, node, enclosing, inside, axis, asked):
    for other in enclosing + inside:
        if other.kind == axis:
            raise ScheduleError(
                "bind", asked,
                f"loop {other.var} of the same nest is already bound to {axis}, so loops "
                f"{other.var} and {node.var} would both be {axis}",
                "Bind each axis once per nest; fuse the two loops first to bind both to one axis.",
                render(kernel, mark=other),
            )
    if axis.startswith("blockIdx"):
        threads = [other for other in enclosing if other.kind.startswith("threadIdx")]
        if threads:
            raise ScheduleError(
                "bind", asked,
                f"loop {node.var} is nested inside loop {threads[0].var}, bound to "
                f"{threads[0].kind}, and a blockIdx loop cannot run inside a threadIdx loop",
                "Bind loops outside the thread loops to blockIdx, or reorder first.",
                render(kernel, mark=node),
            )
    else:
        blocks = [other for other in inside if other.kind.startswith("blockIdx")]
        if blocks:
            raise ScheduleError(
                "bind", asked,
                f"loop {blocks[0].var} inside it is bound to {blocks[0].kind}, and a blockIdx "
                "loop cannot run inside a threadIdx loop",
                "Bind an inner loop to threadIdx, or reorder first.",
                render(kernel, mark=blocks[0]),
            )


def _check_block_size(kernel, node, enclosing, axis, asked):
    above = 1
    for other in enclosing:
        if other.kind.startswith("threadIdx"):
            if not other.extent.is_Integer:
                return
            above *= int(other.extent)
    if not node.extent.is_Integer:
        return
    bound = dataclasses.replace(node, kind=axis)
    largest = above * max(_thread_counts(bound), default=1)
    if largest > MAX_THREADS_PER_BLOCK:
        raise ScheduleError(
            "bind", asked,
            f"the block would hold {largest} threads, over CUDA's limit of "
            f"{MAX_THREADS_PER_BLOCK} threads per block",
            f"Split {node.var} so that the threadIdx extents multiply to at most "
            f"{MAX_THREADS_PER_BLOCK}, and bind the outer part to blockIdx.",
            render(kernel, mark=node),
        )


def bind(kernel, loop, axis):
    """Bind `loop` to `axis`, one of ir.nodes.GPU_AXES ("blockIdx.x", "threadIdx.y", ...)."""
    path, node = resolve_loop(kernel, loop, "bind")
    asked = f"bind loop {node.var} to {axis}"
    _check_axis(kernel, node, axis, asked)
    enclosing = loops_on_path(kernel.body, path)[:-1]
    inside = [stmt for _, stmt in walk_paths(node.body) if isinstance(stmt, ir.For)]
    _check_nest(kernel, node, enclosing, inside, axis, asked)
    if axis.startswith("threadIdx"):
        _check_block_size(kernel, node, enclosing, axis, asked)
    # Each thread owns its "local" buffers and each block its "shared" ones.
    private = ("local",) if axis.startswith("threadIdx") else ("local", "shared")
    check_independent_iterations(kernel, path, "bind", asked, private_scopes=private)
    bound = dataclasses.replace(node, kind=axis)
    return with_body(kernel, replace_at(kernel.body, path, bound)), []
