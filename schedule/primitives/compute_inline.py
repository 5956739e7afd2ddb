"""compute_inline: substitute an elementwise stage into its readers and drop its buffer.

    H = alloc[N, C]                              for i_1 in range(N):
    for i in range(N):                               for j_1 in range(C):
        for j in range(C):                   ->          G[i_1, j_1] = gelu(X[i_1, j_1] + b[j_1])
            H[i, j] = X[i, j] + b[j]
    for i_1 in range(N):
        for j_1 in range(C):
            G[i_1, j_1] = gelu(H[i_1, j_1])

    compute_inline("H")

Each load H[e0, e1] becomes H's value with (i, j) replaced by (e0, e1). The value is
recomputed at every read: inlining trades arithmetic for memory traffic.
"""

import sympy

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.printer import render
from ...ir.walk import find_all, rewrite, substitute
from ..nest import buffer_named, get_at, replace_at, with_body, writer_paths

PRIMITIVE = "compute_inline"


def _the_store(kernel, buffer):
    """The one Store that computes `buffer` (and its path), or ScheduleError."""
    name = buffer.name
    asked = f"inline {name} into its readers"
    if name in kernel.outputs:
        raise ScheduleError(
            PRIMITIVE, asked,
            f"{name} is an output of the kernel, so its values must be stored",
            "Inline intermediate tensors only; an output can take its producers inline.",
            render(kernel),
        )
    paths = writer_paths(kernel, name)
    if not paths:
        raise ScheduleError(
            PRIMITIVE, asked, f"no statement writes {name} (it is an input of the kernel)",
            "Name a computed intermediate tensor.", render(kernel),
        )
    writers = [get_at(kernel.body, path) for path in paths]
    reductions = [writer for writer in writers if isinstance(writer, ir.Reduce)]
    if reductions:
        raise ScheduleError(
            PRIMITIVE, asked,
            f"{name} is a reduction ({reductions[0].combiner} over a loop), and only an "
            "elementwise stage has one value per element to substitute",
            f"Use compute_at({name!r}, loop) to compute it next to its readers instead.",
            render(kernel, mark=reductions[0]),
        )
    writer = writers[0]
    if len(paths) > 1:
        raise ScheduleError(
            PRIMITIVE, asked, f"{name} is written by {len(paths)} statements",
            "Inline a tensor written by one elementwise store.",
            render(kernel, mark=writer),
        )
    if find_all(writer.value, lambda v: isinstance(v, ir.Load) and v.buffer.name == name):
        raise ScheduleError(
            PRIMITIVE, asked, f"the value stored into {name} reads {name} itself",
            "Inline a stage whose value depends only on other tensors.",
            render(kernel, mark=writer),
        )
    return paths[0], writer


def _nest_path(kernel, store_path, store):
    """Path of the perfect loop nest around `store` whose loops are exactly its indices."""
    path, remaining = store_path, set(store.indices)
    perfect = len(remaining) == len(store.indices) and all(
        isinstance(index, sympy.Symbol) for index in store.indices
    )
    while perfect and remaining:
        parent = get_at(kernel.body, path[:-1]) if path else None
        perfect = isinstance(parent, ir.For) and parent.var in remaining
        if perfect:
            remaining.discard(parent.var)
            path = path[:-1]
    if not perfect:
        raise ScheduleError(
            PRIMITIVE, f"inline {store.buffer.name} into its readers",
            f"{store.buffer.name} is stored at [{', '.join(map(str, store.indices))}] inside "
            "loops that are not exactly one loop per index around the store alone (split, "
            "guarded, or holding other statements), so the store is not a plain elementwise "
            "stage",
            f"Apply compute_inline before other primitives touch {store.buffer.name}'s loops.",
            render(kernel, mark=store),
        )
    return path


def _without(body, path):
    """`body` with the statement at `path` removed from the Seq holding it."""
    parent_path, (field, position) = path[:-1], path[-1]
    parent = get_at(body, parent_path)
    if position is None:
        return replace_at(body, path, ir.Seq(()))
    remaining = getattr(parent, field)[:position] + getattr(parent, field)[position + 1:]
    return replace_at(body, parent_path, ir.seq(*remaining))


def compute_inline(kernel, buffer_name):
    """Replace every read of the elementwise intermediate `buffer_name` by its value and
    remove its loop nest and its allocation. Returns (kernel, [])."""
    buffer = buffer_named(kernel, buffer_name, PRIMITIVE)
    store_path, store = _the_store(kernel, buffer)
    body = _without(kernel.body, _nest_path(kernel, store_path, store))

    def inline(node):
        if isinstance(node, ir.Load) and node.buffer.name == buffer_name:
            return substitute(store.value, dict(zip(store.indices, node.indices)))
        if isinstance(node, ir.Alloc) and node.buffer.name == buffer_name:
            return node.body
        return node

    return with_body(kernel, rewrite(body, inline)), []
