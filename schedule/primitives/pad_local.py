"""pad_local: a local tile is computed in full at the edge, so its inner loops run unguarded
(local padding, as in DietCode, MLSys 2022).

    C_local = alloc[8, 32]  # local                C_local = alloc[8, 32]  # local
    for k in range(K):                              for k in range(K):
        for i_i in range(8):                            for i_i in range(8):
            for j_i in range(32):              ->           for j_i in range(32):
                if i_i + 8*i_o < M:                             C_local[i_i, j_i] sum=
                    C_local[i_i, j_i] sum=                          A[Min(i_i + 8*i_o, M - 1), k]
                        A[i_i + 8*i_o, k] * B[k, j]                 * B[k, j]
    (the copy-out to C keeps its guard, C_local_0 + 8*i_o < M)

A guard fact `lhs < limit` goes when lhs is one index of the store plus an offset fixed
for the whole tile (what split and cache_write leave): the iterations it removed then
write only elements past the tile's edge, whose values are garbage. Those never leave the
tile, because every other read of it must sit under the same fact. Reads of the caller's
(or global) buffers in those stores are clamped into their extents, so the extra
iterations read a real element. Facts that bound no index of the tile (a split reduction
loop's `k < K`) stay: running those iterations would change real elements.
"""

import dataclasses

import sympy
from sympy.core.function import AppliedUndef

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.index import proves
from ...ir.layout import as_whole_tiles
from ...ir.printer import render
from ...ir.walk import find_all, rewrite
from ..nest import buffer_named, get_at, loops_on_path, ranges_on_path, replace_at, walk_paths


def _refuse(asked, obstacle, hint, kernel, mark=None):
    raise ScheduleError("pad_local", asked, obstacle, hint, render(kernel, mark=mark))


def _upper_bound(fact):
    """(lhs, limit) when `fact` says lhs < limit, else None."""
    if isinstance(fact, (sympy.StrictGreaterThan, sympy.GreaterThan)):
        fact = fact.reversed
    if isinstance(fact, sympy.StrictLessThan):
        return fact.lhs, fact.rhs
    if isinstance(fact, sympy.LessThan):
        return fact.lhs, fact.rhs + 1
    return None


def _guards(root, path, branch="then"):
    """(path, If) for each If on `path` under `root` whose `branch` the path takes
    (any branch for None), outermost first."""
    ifs = [(path[:d], get_at(root, path[:d])) for d in range(len(path))]
    return [(p, node) for p, node in ifs if isinstance(node, ir.If)
            and branch in (None, path[len(p)][0])]


def _is_write(node):
    return isinstance(node, (ir.Store, ir.Reduce))


def _loads(value, names):
    return find_all(value, lambda n: isinstance(n, ir.Load) and n.buffer.name in names)


def _edge(bound, indices, outside):
    """(dim, offset, limit) when `bound` (lhs, limit) says indices[dim] + offset < limit
    with offset fixed for the whole tile, else None."""
    lhs, limit = bound
    for dim, index in enumerate(indices):
        offset = sympy.expand(lhs - index)
        if offset.free_symbols <= outside and not offset.atoms(AppliedUndef):
            return dim, offset, limit
    return None


def _edge_dims(root, path, store, outside):
    """The dims of the tile `store` (at `path` under `root`, its allocation inside the
    loops `outside`) that the guards around it bound; a guard bounding none counts as
    every dim."""
    dims = set()
    for _, guard in _guards(root, path, None):
        for fact in sympy.And.make_args(guard.cond):
            bound = _upper_bound(fact)
            edge = None if bound is None else _edge(bound, store.indices, outside)
            dims |= set(range(len(store.indices))) if edge is None else {edge[0]}
    return dims


def _clamp(value, variables, tiles, ranges):
    """`value` with each index into a caller's or global buffer that moves with
    `variables` and may pass its extent clamped to the last element."""
    def clamp(node):
        if not isinstance(node, ir.Load) or node.buffer.name in tiles:
            return node
        indices = list(node.indices)
        for dim, index in enumerate(indices):
            extent = node.buffer.extent(dim, node.indices)
            gathered = node.gather and node.gather[dim] is not None
            if (not gathered and sympy.sympify(index).free_symbols & variables
                    and not proves(sympy.Lt(index, as_whole_tiles(extent)), ranges)):
                indices[dim] = sympy.Min(index, extent - 1)
        return dataclasses.replace(node, indices=tuple(indices))
    return rewrite(value, clamp)


def _check_store(kernel, asked, name, store, guards, ranges, partial):
    """Refuse a guarded store whose guards are no bounds, hold other stores, or whose
    indices or reads would go wrong without them."""
    for _, guard in guards:
        if guard.otherwise is not None:
            _refuse(asked, f"the guard {guard.cond} on a store into it has an else branch",
                    "Pad only tiles whose stores split's guards alone bound.", kernel, guard)
        if any(_upper_bound(f) is None for f in sympy.And.make_args(guard.cond)):
            _refuse(asked, f"the guard {guard.cond} on a store into it is not a bound "
                    "`index < limit` on loop indices", "Pad only tiles whose stores split's "
                    "guards alone bound.", kernel, guard)
        others = {s.buffer.name for s in find_all(guard.then, _is_write)} - {name}
        if others:
            _refuse(asked, f"the guard {guard.cond} also keeps stores into "
                    f"{', '.join(sorted(others))} in bounds", "Pad a tile whose guards hold "
                    "only stores into it (split leaves one guard per store).", kernel, guard)
    for dim, index in enumerate(store.indices):
        extent = store.buffer.shape[dim]
        if not (proves(sympy.Ge(index, 0), ranges) and proves(sympy.Lt(index, extent), ranges)):
            _refuse(asked, f"index {index} of {name} (dim {dim}, extent {extent}) may leave "
                    "the tile once the guard goes", "Cache a region as large as the whole "
                    "loops it is written in.", kernel, store)
    reads = sorted({load.buffer.name for load in _loads(store.value, partial)})
    if reads:
        _refuse(asked, f"the store reads {', '.join(reads)}, a tile written under a guard "
                "whose edge holds nothing", f"pad_local {reads[0]} first.", kernel, store)


def _check_readers(kernel, asked, alloc, padded, edges):
    """Every read of the tile outside the padded stores must sit under each dropped fact
    (spelled in its own indices), so that no padded element leaves the tile."""
    name = alloc.buffer.name
    for path, stmt in walk_paths(alloc.body):
        if path in padded or not _is_write(stmt):
            continue
        facts = [_upper_bound(f) for _, g in _guards(alloc.body, path)
                 for f in sympy.And.make_args(g.cond)]
        for load in _loads(stmt.value, {name}):
            for dim, offset, limit in edges:
                spelled = load.indices[dim] + offset
                if not any(fact and sympy.expand(fact[0] - fact[1] - spelled + limit) == 0
                           for fact in facts):
                    _refuse(asked, f"a statement reads {name} outside the guard {spelled} < "
                            f"{limit}, so it would see the padded elements", "Read the tile "
                            "only under its stores' guards (cache_write's copy-out keeps "
                            "them).", kernel, stmt)


def pad_local(kernel, tensor, dim=None):
    """Drop the guards that keep the stores into local tile `tensor` off its edge, and
    clamp the reads of the caller's (or global) buffers in those stores into their
    extents; the tile's copy-out keeps its guard. Returns (kernel, []).

    With `dim`, only the guards that bound that dim of the tile go (a tile of scores
    computed in full along its keys, its rows still guarded).

    `tensor` must be a local buffer (cache_write or cache_read with scope "local") that
    holds every store into it over its loops' whole ranges; every read of it outside
    those stores must sit under their guards, and the stores may read no other tile
    written under a guard.
    """
    name = tensor if isinstance(tensor, str) else tensor.name
    asked = f"pad the local tile {name} (drop the guards on the stores into it)"
    found = [(p, s) for p, s in walk_paths(kernel.body)
             if isinstance(s, ir.Alloc) and s.buffer.name == name]
    if not found or found[0][1].scope != "local":
        buffer_named(kernel, name, "pad_local")
        _refuse(asked, f"{name} is not a local buffer", "pad_local pads a local tile; "
                "cache_write(..., 'local', at=...) makes one", kernel)
    alloc_path, alloc = found[0]
    body_path = alloc_path + (("body", None),)
    sizes = {v.symbol for v in kernel.shape_vars}
    outside = sizes | {loop.var for loop in loops_on_path(kernel.body, alloc_path)}
    tiles = {s.buffer.name: sizes | {loop.var for loop in loops_on_path(kernel.body, p)}
             for p, s in walk_paths(kernel.body)
             if isinstance(s, ir.Alloc) and s.scope != "global"}
    # Other tiles stored under guards hold nothing (or garbage) past their edges; with
    # `dim`, only their edges in that dim matter, the others' guards staying in place.
    partial = {s.buffer.name for p, s in walk_paths(kernel.body) if _is_write(s)
               and s.buffer.name in set(tiles) - {name}
               and _edge_dims(kernel.body, p, s, tiles[s.buffer.name])
               & ({dim} if dim is not None else set(range(len(s.indices))))}
    guarded = [(p, s, _guards(alloc.body, p)) for p, s in walk_paths(alloc.body)
               if _is_write(s) and s.buffer.name == name and _guards(alloc.body, p)]
    if not guarded:
        _refuse(asked, f"there is nothing to pad: no store into {name} is guarded",
                f"Apply pad_local after split has guarded the stores into {name}.", kernel)
    kept, edges = {}, set()
    for path, store, guards in guarded:
        ranges = ranges_on_path(kernel, body_path + path)
        _check_store(kernel, asked, name, store, guards, ranges, partial)
        for guard_path, guard in guards:
            facts = sympy.And.make_args(guard.cond)
            edge = [_edge(_upper_bound(f), store.indices, outside) for f in facts]
            edge = [e if e is None or dim is None or e[0] == dim else None for e in edge]
            # A fact shared by several stores goes only if it is an edge for each of them.
            before = kept.get(guard_path, set())
            kept[guard_path] = before | {f for f, e in zip(facts, edge) if e is None}
            edges |= {e for e in edge if e is not None}
    if not edges:
        _refuse(asked, f"the guards on the stores into {name} bound no index of the tile",
                "Cache the tile at the outer loop of the split whose guard should go.", kernel)
    _check_readers(kernel, asked, alloc, {p for p, _, _ in guarded}, edges)
    variables = set()
    for guard_path, facts in kept.items():
        for fact in sympy.And.make_args(get_at(alloc.body, guard_path).cond):
            variables |= set() if fact in facts else fact.free_symbols - sizes
    body = alloc.body
    for path, store, _ in guarded:
        ranges = ranges_on_path(kernel, body_path + path)
        value = _clamp(store.value, variables, tiles, ranges)
        body = replace_at(body, path, dataclasses.replace(store, value=value))
    # Guards last and innermost first, so the paths found above still lead to them.
    for guard_path in sorted(kept, key=len, reverse=True):
        body = replace_at(body, guard_path, _unguarded(get_at(body, guard_path), kept[guard_path]))
    new_alloc = dataclasses.replace(alloc, body=body)
    return dataclasses.replace(kernel, body=replace_at(kernel.body, alloc_path, new_alloc)), []


def _unguarded(guard, kept):
    """`guard` with only the facts in `kept` (its body alone when none are kept)."""
    facts = [f for f in sympy.And.make_args(guard.cond) if f in kept]
    return ir.If(sympy.And(*facts), guard.then) if facts else guard.then
