"""cache_read / cache_write: stage the region of a buffer that one iteration of a loop
touches in a small local (registers) or shared (GPU block) buffer.

cache_read copies the region read inside the loop in first, then reads the copy:

    for k_o in range(2):                   for k_o in range(2):
        for k_i in range(4):                   A_local = alloc[1, 4]  # local
            C[i, j] sum= A[i, 4*k_o + k_i]     for A_local_1 in range(4):
                * B[4*k_o + k_i, j]       ->       A_local[0, A_local_1] = A[i, 4*k_o + A_local_1]
                                               for k_i in range(4):
    cache_read("A", "local", at="k_o")             C[i, j] sum= A_local[0, k_i] * B[4*k_o + k_i, j]

cache_write accumulates the region written inside the loop in the cache and copies it
out at the end of the loop's body (register blocking of a matmul):

    for j_o in range(...):                   for j_o in range(...):
        for k in range(K):                       C_local = alloc[4, 16]  # local
            for i_i in range(4):                 for k in range(K):
                for j_i in range(16):                for i_i in range(4):
                    C[4*i_o + i_i,        ->             for j_i in range(16):
                      16*j_o + j_i] sum= ...                 C_local[i_i, j_i] sum= ...
                                                 for C_local_0 in range(4):
    cache_write("C", "local", at="j_o")              for C_local_1 in range(16):
                                                         C[4*i_o + C_local_0, 16*j_o + C_local_1] =
                                                             C_local[C_local_0, C_local_1]

Regions come from schedule/region.py; a cache's shape is the region's extents, which
must be constants. Copies are guarded where the region may run past the buffer. For
shared scope a barrier follows the copy-in (precedes the copy-out) and ends the loop's
body, so that the threads a GPU backend binds see each other's writes.
"""

import dataclasses

import sympy

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.index import proves, simplify
from ...ir.printer import render
from ...ir.walk import rewrite
from ..nest import (
    buffer_named,
    fresh_name,
    get_at,
    loops_on_path,
    ranges_on_path,
    replace_at,
    resolve_loop,
    with_body,
)
from ..region import accesses, fresh_symbols, infer_region, region_nest

CACHE_SCOPES = tuple(scope for scope in ir.SCOPES if scope != "global")


def _check_scope(primitive, buffer_name, scope, kernel):
    if scope not in CACHE_SCOPES:
        obstacle = (
            "a global cache would be another buffer in main memory, which gains nothing"
            if scope == "global" else f"{scope!r} is not a memory scope"
        )
        raise ScheduleError(
            primitive, f"cache {buffer_name} in scope {scope!r}", obstacle,
            f"Use one of {', '.join(map(repr, CACHE_SCOPES))}.", render(kernel),
        )


def _updates(body, access, buffer_name):
    """Whether read `access` is a store's read of the very element it writes (`C[x] =
    C[x] * f`), which a cache of the buffer can serve once loaded."""
    writer = get_at(body, access.path)
    return (isinstance(writer, ir.Store) and writer.buffer.name == buffer_name
            and writer.indices == access.indices)


def _check_constant(primitive, asked, region, loop, kernel):
    symbolic = region.symbolic_dimensions()
    if symbolic:
        d = symbolic[0]
        raise ScheduleError(
            primitive, asked,
            f"the region extent {region.extents[d]} of dimension {d} of {region.buffer.name} "
            f"inside loop {loop.var} is symbolic, and a local or shared buffer needs a "
            "constant shape",
            "Split the loops inside it that run over that dimension by a constant factor "
            "first, and cache at the outer loop of the split.",
            render(kernel, mark=loop),
        )


def _prepare(primitive, kernel, buffer_name, scope, at, kind):
    """(what was asked, loop path, loop, region of `kind` inside it, cache buffer)."""
    _check_scope(primitive, buffer_name, scope, kernel)
    buffer = buffer_named(kernel, buffer_name, primitive)
    path, loop = resolve_loop(kernel, at, primitive)
    asked = f"cache {buffer_name} in {scope} memory at loop {loop.var} (for its {kind}s)"
    region = infer_region(loop.body, buffer, ranges_on_path(kernel, path), kind, primitive)
    if region is None:
        raise ScheduleError(
            primitive, asked, f"nothing inside loop {loop.var} {kind}s {buffer_name}",
            f"Pick a loop around the statements that {kind} {buffer_name}.",
            render(kernel, mark=loop),
        )
    other = "write" if kind == "read" else "read"
    crossing = [access for access in accesses(loop.body, buffer_name, other)
                if not (kind == "write" and _updates(loop.body, access, buffer_name))]
    if crossing:
        raise ScheduleError(
            primitive, asked,
            f"loop {loop.var} also {other}s {buffer_name}, which the cache would hide",
            f"Cache at a loop that only {kind}s {buffer_name}.",
            render(kernel, mark=loop),
        )
    _check_constant(primitive, asked, region, loop, kernel)
    name = fresh_name(kernel, f"{buffer_name}_{scope}")
    cache = ir.Buffer(name, buffer.dtype, region.extents)
    return asked, path, loop, region, cache


def _barrier(scope):
    return ir.Barrier() if scope == "shared" else None


def _relative(indices, region):
    return tuple(sympy.expand(index - start) for index, start in zip(indices, region.starts))


def _absolute(offsets, region):
    return tuple(start + offset for start, offset in zip(region.starts, offsets))


def _copy_nest(kernel, region, cache, direction, base=None):
    """The loop nest copying `region` into the cache ("in") or back out of it ("out"),
    its loops named after `base` (the cache's name by default)."""
    base = base or cache.name
    variables = fresh_symbols(kernel, [f"{base}_{d}" for d in range(len(cache.shape))])

    def copy(offsets):
        inside = ir.Load(cache, tuple(offsets))
        outside = ir.Load(region.buffer, _absolute(offsets, region))
        if direction == "in":
            return ir.Store(cache, tuple(offsets), outside)
        return ir.Store(region.buffer, outside.indices, inside)

    return region_nest(region, variables, copy)


def _in_cache(loop, scope, cache, stmts):
    """`loop` whose body is `stmts` with `cache` allocated around them."""
    body = ir.Alloc(cache, scope, ir.seq(*stmts))
    return dataclasses.replace(loop, body=body)


def cache_read(kernel, buffer_name, scope, at):
    """Copy the region of `buffer_name` read inside loop `at` into a new `scope` buffer at
    the top of the loop's body, and read the copy there. Returns (kernel, [cache name]).

    `scope` is "local" or "shared"; the region's extents must be constants (split the
    loops inside `at` first), and nothing inside `at` may write the buffer.
    """
    _, path, loop, region, cache = _prepare("cache_read", kernel, buffer_name, scope, at, "read")

    def read_cache(node):
        if isinstance(node, ir.Load) and node.buffer.name == buffer_name:
            return ir.Load(cache, _relative(node.indices, region))
        return node

    stmts = [
        _copy_nest(kernel, region, cache, "in"),
        _barrier(scope),
        rewrite(loop.body, read_cache),
        _barrier(scope),
    ]
    new_loop = _in_cache(loop, scope, cache, stmts)
    return with_body(kernel, replace_at(kernel.body, path, new_loop)), [cache.name]


def _check_reductions(kernel, asked, buffer_name, path, loop, found):
    """Each accumulation must finish inside one iteration of `loop`, else the copy-out
    would store (and the next iteration restart from) a partial result."""
    writes = [get_at(loop.body, access.path) for access in found]
    for access, writer in zip(found, writes):
        if not isinstance(writer, ir.Reduce):
            continue
        inner = {inner_loop.var for inner_loop in access.loops}
        reduction = set().union(*(sympy.sympify(e).free_symbols for e in writer.init_when))
        outside = sorted(str(v) for v in reduction - inner)
        if outside:
            writer_path = path + (("body", None),) + access.path
            enclosing = loops_on_path(kernel.body, writer_path)
            legal = []
            for candidate in enclosing:
                if candidate.var in reduction:
                    break
                legal.append(str(candidate.var))
            raise ScheduleError(
                "cache_write", asked,
                f"the reduction into {buffer_name} runs over {', '.join(outside)} outside loop "
                f"{loop.var}: the cache would be copied out (and restarted) with partial "
                "sums that are then lost",
                "Cache at a loop outside the reduction loops"
                + (f", such as {', '.join(legal)}." if legal else "."),
                render(kernel, mark=writer),
            )


def _upper_limit(fact):
    """(expression, limit) when `fact` says expression < limit, else None."""
    if isinstance(fact, sympy.StrictLessThan):
        return fact.lhs, fact.rhs
    if isinstance(fact, sympy.LessThan):
        return fact.lhs, fact.rhs + 1
    if isinstance(fact, sympy.StrictGreaterThan):
        return fact.rhs, fact.lhs
    if isinstance(fact, sympy.GreaterThan):
        return fact.rhs, fact.lhs + 1
    return None


def _guards_on_path(stmt, path):
    """Conditions of the Ifs on `path` under `stmt` (None for an else branch)."""
    conditions = []
    node = stmt
    for name, position in path:
        if isinstance(node, ir.If):
            conditions.append(node.cond if name == "then" else None)
        value = getattr(node, name)
        node = value if position is None else value[position]
    return conditions


def _covers(access, region, guards, outer_ranges):
    """True when the write `access` stores every element of `region` that lies inside the
    buffer: each index is start + one inner loop spanning the extent, and its guards only
    leave out elements past the buffer's end (or, in a ragged dim, past the row's end)."""
    ranges = dict(outer_ranges)
    ranges.update({loop.var: (sympy.Integer(0), loop.extent - 1) for loop in access.loops})
    loops = {loop.var: loop for loop in access.loops}
    used = set()
    for index, interval in zip(access.indices, region.intervals):
        offset = simplify(sympy.expand(index - interval.start), ranges)
        if interval.extent == 1 and offset == 0:
            continue
        if offset not in loops or offset in used:
            return False
        if not proves(sympy.Ge(loops[offset].extent, interval.extent), outer_ranges):
            return False
        used.add(offset)
    for condition in guards:
        if condition is None:
            return False
        for fact in sympy.And.make_args(condition):
            bound = _upper_limit(fact)
            if bound is None or not any(
                sympy.expand(bound[0] - index) == 0 and proves(sympy.Ge(bound[1], limit), ranges)
                for index, limit in zip(access.indices,
                                        (interval.limit for interval in region.intervals))
            ):
                return False
    return True


def _check_dense(kernel, asked, path, loop, region, found):
    outer_ranges = ranges_on_path(kernel, path)
    for access in found:
        guards = _guards_on_path(loop.body, access.path)
        if not _covers(access, region, guards, outer_ranges):
            writer = get_at(loop.body, access.path)
            raise ScheduleError(
                "cache_write", asked,
                f"the writes inside loop {loop.var} may not cover the region {region} "
                f"element by element (the store writes [{', '.join(map(str, access.indices))}]"
                "), so copying the whole region out would overwrite elements never written",
                "Cache at a loop whose inner loops each run over one whole dimension of the "
                "region (index = start + inner loop), as split and reorder leave them: "
                "apply cache_write before fusing them.",
                render(kernel, mark=writer),
            )


def cache_write(kernel, buffer_name, scope, at):
    """Let the statements inside loop `at` that write `buffer_name` write a new `scope`
    buffer covering the region they write, and copy it back at the end of the loop's
    body. Returns (kernel, [cache name]).

    A reduction keeps its initialisation (now on the cache) and must run all its
    reduction loops inside `at`; a decomposed one (its start values set before `at`) may
    run some outside: the cache is then first loaded with the partial sums so far, as it
    is for stores that update their own element (`C[x] = C[x] * f`). The region's
    extents must be constants, the writes must cover it element by element (unless the
    cache was loaded), and nothing inside `at` may read the buffer otherwise.
    """
    asked, path, loop, region, cache = _prepare(
        "cache_write", kernel, buffer_name, scope, at, "write"
    )
    found = accesses(loop.body, buffer_name, "write")
    _check_reductions(kernel, asked, buffer_name, path, loop, found)
    updates = {access.path for access in accesses(loop.body, buffer_name, "read")}
    writers = [(access.path in updates, get_at(loop.body, access.path)) for access in found]
    # Sums decomposed outside `at`, and stores that update their own element (a sum's
    # rescaling), carry on from what the buffer holds; loaded whole, the cache then
    # copies out right whatever elements they leave alone.
    continues = (not any(isinstance(w, ir.Store) and not update for update, w in writers)
                 and any(update or not w.init_when for update, w in writers))
    if not continues:
        _check_dense(kernel, asked, path, loop, region, found)

    def write_cache(node):
        if isinstance(node, (ir.Store, ir.Reduce, ir.Load)) and node.buffer.name == buffer_name:
            return dataclasses.replace(
                node, buffer=cache, indices=_relative(node.indices, region)
            )
        return node

    stmts = [
        _copy_nest(kernel, region, cache, "in", f"{cache.name}_in") if continues else None,
        rewrite(loop.body, write_cache),
        _barrier(scope),
        _copy_nest(kernel, region, cache, "out"),
        _barrier(scope),
    ]
    new_loop = _in_cache(loop, scope, cache, stmts)
    return with_body(kernel, replace_at(kernel.body, path, new_loop)), [cache.name]
