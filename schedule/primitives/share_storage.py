"""share_storage: keep an intermediate's elements in the memory of the output it feeds.

A softmax's exponentials are written, summed, and read once more by the output's own
element, after which they are dead. Kept in the output's memory instead of a buffer of
their own, the output's lines are fetched (or written) while the exponentials are
computed rather than in a pass of their own, and the last pass rescales in place:

    exps = alloc[8T, 128]
    for t in range(T):                           for t in range(T):
        for r, j:                                    for r, j:
            exps[8t + r, j] = exp(...)                   out[8t + r, j] = exp(...)
        for r:                               ->      for r:
            sum[r] = sum_j exps[8t + r, j]               sum[r] = sum_j out[8t + r, j]
        for r, j:                                    for r, j:
            out[8t + r, j] =                             out[8t + r, j] =
                exps[8t + r, j] / sum[r]                     out[8t + r, j] / sum[r]

It keeps the meaning when the output's one store is the last of everything that touches
the intermediate: it reads the intermediate at its own element only, comes after every
other access in the statements the two share, and the loops around those statements
keep each iteration to elements of its own (the parallel loops' test, dependence.py).
Apply it before fold_storage, while the intermediate still has the output's shape.
"""

import dataclasses

import sympy

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.printer import render
from ...ir.walk import find_all, rewrite
from ..dependence import accesses, independent
from ..nest import loops_on_path, ranges_on_path, walk_paths

PRIMITIVE = "share_storage"


def _fail(asked, obstacle, hint, kernel, mark=None):
    raise ScheduleError(PRIMITIVE, asked, obstacle, hint, render(kernel, mark=mark))


def _touching(kernel, names):
    """(path, statement) of every leaf statement that reads or writes a buffer of `names`."""
    found = []
    for path, stmt in walk_paths(kernel.body):
        if isinstance(stmt, (ir.For, ir.Seq, ir.If, ir.Alloc)):
            continue
        written = isinstance(stmt, (ir.Store, ir.Reduce)) and stmt.buffer.name in names
        loads = find_all(stmt, lambda node: isinstance(node, ir.Load) and node.buffer.name in names)
        if written or loads:
            found.append((path, stmt))
    return found


def _buffers(kernel, name, output, asked):
    """(the intermediate's buffer, the output's), or a ScheduleError saying why not."""
    if output not in kernel.outputs:
        _fail(asked, f"{output} is not an output of kernel {kernel.name} (outputs: "
                     f"{', '.join(kernel.outputs)})",
              "Name an output the kernel writes.", kernel)
    allocs = find_all(kernel.body, lambda n: isinstance(n, ir.Alloc) and n.buffer.name == name)
    if not allocs:
        _fail(asked, f"{name} is not an intermediate buffer of kernel {kernel.name}",
              "Name a stage the kernel computes and keeps in a buffer of its own.", kernel)
    mine, theirs = allocs[0].buffer, kernel.param(output)
    same_shape = len(mine.shape) == len(theirs.shape) and all(
        sympy.simplify(sympy.sympify(a) - sympy.sympify(b)) == 0
        for a, b in zip(mine.shape, theirs.shape))
    if not (same_shape and mine.dtype == theirs.dtype and mine.layout == theirs.layout):
        _fail(asked, f"{name} is {mine.dtype.name}{list(mine.shape)} and {output} is "
                     f"{theirs.dtype.name}{list(theirs.shape)}: one element of one is not "
                     "one element of the other",
              "Share the storage of a stage of the output's shape and dtype, before "
              "pad_storage or fold_storage change either.", kernel)
    return mine, theirs


def _divergence(writer_path, other_paths):
    """The depth at which `writer_path` leaves the paths of the other statements, all in
    one sequence whose earlier statements hold them; None when it is not such a place."""
    depth = 0
    while all(len(path) > depth and path[depth] == writer_path[depth] for path in other_paths):
        depth += 1
    step = writer_path[depth]
    if step[0] != "stmts" or any(path[depth][0] != "stmts" or path[depth][1] >= step[1]
                                 for path in other_paths):
        return None
    return depth


def share_storage(kernel, name, output):
    """`kernel` with intermediate `name`'s elements kept in output `output`'s memory (same
    shape, dtype and layout); returns (kernel, [])."""
    asked = f"keep the elements of {name} in the storage of output {output}"
    _, theirs = _buffers(kernel, name, output, asked)
    touching = _touching(kernel, {name, output})
    writers = [(p, s) for p, s in touching
               if isinstance(s, (ir.Store, ir.Reduce)) and s.buffer.name == output]
    if len(writers) != 1 or not isinstance(writers[0][1], ir.Store):
        _fail(asked, f"{output} is written by {len(writers)} statements, not by one store",
              "Share the storage of an output that one elementwise store writes.", kernel)
    writer_path, writer = writers[0]
    reads_of_output = [s for _, s in touching if find_all(
        s, lambda n: isinstance(n, ir.Load) and n.buffer.name == output)]
    if reads_of_output:
        _fail(asked, f"the kernel reads {output} back, and it would read {name}'s values "
                     "there until the store",
              "Share the storage of an output nothing reads.", kernel, reads_of_output[0])
    stray = [load for load in find_all(writer.value, lambda n: isinstance(n, ir.Load)
                                       and n.buffer.name == name)
             if load.indices != writer.indices]
    if stray:
        _fail(asked, f"the store of {output} reads {stray[0]!r}, another element than its "
                     "own, which it may already have overwritten",
              f"Share storage only where {output}'s element reads {name}'s same element.",
              kernel, writer)
    others = [path for path, stmt in touching if stmt is not writer]
    depth = _divergence(writer_path, others) if others else len(writer_path)
    if depth is None:
        _fail(asked, f"a statement that touches {name} runs after the store of {output} or "
                     "beside it, where it would find the output's values",
              f"Compute {name} and every reader of it before the store of {output} (in "
              "earlier statements of the same loop).", kernel, writer)
    shared = [loop.var for loop in loops_on_path(kernel.body, writer_path[:depth])]

    def share(node):
        if isinstance(node, (ir.Load, ir.Store, ir.Reduce)) and node.buffer.name == name:
            return dataclasses.replace(node, buffer=theirs)
        if isinstance(node, ir.Alloc) and node.buffer.name == name:
            return node.body
        return node

    shared_kernel = dataclasses.replace(kernel, body=rewrite(kernel.body, share))
    _check_iterations_apart(shared_kernel, shared, name, output, asked)
    return shared_kernel, []


def _check_iterations_apart(kernel, loop_vars, name, output, asked):
    """Each loop of `loop_vars` (around the statements that touch `output` now that it
    holds `name`) keeps each iteration to elements of its own."""
    for path, loop in walk_paths(kernel.body):
        if not (isinstance(loop, ir.For) and loop.var in loop_vars):
            continue
        found = [access for access in accesses(loop.body, frozenset())
                 if access.buffer.name == output]
        overlap = independent(found, loop.var, loop.extent,
                              ranges_on_path(kernel, path)) if found else None
        if overlap is not None:
            _fail(asked, f"iterations of loop {loop.var} would meet in {output}'s memory: "
                         f"{overlap[0]}",
                  f"compute_at {name} at a loop whose iterations each write their own "
                  f"elements of {output}.", kernel, loop)
