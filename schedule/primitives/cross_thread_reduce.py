"""cross_thread_reduce: the threads of a block share out one reduction, each accumulating
a partial result in shared memory, and a tree of barriers combines the partials.

    for i in range(R):  # blockIdx.x
        for j in range(C):
            M[i] max= X[i, j]  # init when j == 0

    cross_thread_reduce(M, j, 4)

    for i in range(R):  # blockIdx.x
        M_partial = alloc[4] float32  # shared
        for j_t in range(4):  # threadIdx.x
            M_partial[j_t] = -inf
            for j_o in range((C + 3) // 4):
                if 4*j_o + j_t < C:
                    M_partial[j_t] max= X[i, 4*j_o + j_t]
        barrier()
        for j_c in range(2):  # threadIdx.x
            M_partial[j_c] = max(M_partial[j_c], M_partial[j_c + 2])
        barrier()
        for j_c_1 in range(1):  # threadIdx.x
            M[i] = max(M_partial[j_c_1], M_partial[j_c_1 + 1])
        barrier()

This is TVM's rfactor followed by its cross-thread all-reduce, as one step. Thread t
visits j = 4*j_o + t, so neighbouring threads read neighbouring elements. Each level of
the tree halves the live partials; only the first thread writes the result. The barriers
after the partials and between levels keep each level from reading partials not yet
written; the last one makes the result, which may live in global memory, visible to the
block's other threads before they read it (the verifier's race check watches only shared
buffers, so the insert_barriers pass could not add that one).

The loop must hold nothing but the reduction, which must run over `loop` and the loops
inside it only (its element fixed by the loops outside), still with its initialisation
(before decompose). The threads start inside the loops around `loop`, so none of those
may be a thread, SIMD or parallel loop.
"""

import sympy

from ...ir import nodes as ir
from ...ir.dtypes import identity
from ...ir.errors import ScheduleError
from ...ir.index import floordiv
from ...ir.printer import render
from ...ir.walk import find_all, rewrite, substitute
from ..nest import (
    buffer_named,
    fresh_name,
    get_at,
    guard_leaves,
    loops_on_path,
    replace_at,
    resolve_loop,
    with_body,
    writer_paths,
)
from ..region import fresh_symbols
from .bind import MAX_THREADS_PER_BLOCK

PRIMITIVE = "cross_thread_reduce"
THREAD_AXIS = "threadIdx.x"
# How the tree combines two partials, for each reduction combiner (nanmax partials hold
# no NaN, so max combines them).
COMBINE = {"sum": "+", "max": "max", "min": "min", "nanmax": "max"}


def _check_threads(kernel, threads, asked, loop):
    """The tree halves the threads at every level, and one block holds them all."""
    if (isinstance(threads, bool) or not isinstance(threads, (int, sympy.Integer))
            or not 1 <= threads <= MAX_THREADS_PER_BLOCK or threads & (threads - 1)):
        raise ScheduleError(
            PRIMITIVE, asked,
            f"{threads!r} is not a power of two from 1 to {MAX_THREADS_PER_BLOCK}, and the "
            "tree halves the threads at each level within one block",
            f"Pass a power of two up to {MAX_THREADS_PER_BLOCK}, such as 32, 128 or 256.",
            render(kernel, mark=loop),
        )
    return int(threads)


def _check_placement(kernel, path, loop, asked):
    """Every thread must reach the tree's barriers, and each partial is one thread's."""
    if loop.kind != "serial":
        what = "bound to" if loop.kind in ir.GPU_AXES else "marked"
        raise ScheduleError(
            PRIMITIVE, asked, f"loop {loop.var} is already {what} {loop.kind}",
            "Cross-thread reduce a serial loop; annotate or bind the loops it leaves.",
            render(kernel, mark=loop),
        )
    for outer in loops_on_path(kernel.body, path)[:-1]:
        if outer.kind.startswith("threadIdx") or outer.kind in ("parallel", *ir.SIMD_KINDS):
            raise ScheduleError(
                PRIMITIVE, asked,
                f"it sits inside loop {outer.var}, marked {outer.kind}, and a block's threads "
                "with their barriers cannot start inside such a loop",
                "Reduce inside loops that are serial or bound to blockIdx.",
                render(kernel, mark=outer),
            )
    marked = find_all(loop.body, lambda n: isinstance(n, ir.For) and n.kind != "serial")
    if marked:
        inner = marked[0]
        raise ScheduleError(
            PRIMITIVE, asked,
            f"loop {inner.var} inside it is marked {inner.kind}, and each thread must "
            "accumulate its partial alone",
            "Cross-thread reduce before annotating or binding the loops inside.",
            render(kernel, mark=inner),
        )


def _symbols(expressions):
    return set().union(*(sympy.sympify(e).free_symbols for e in expressions))


def _reduction_loops(kernel, tensor):
    """Names of the loops that step the reductions into `tensor` (those `init_when` tests)."""
    names = []
    for path in writer_paths(kernel, tensor):
        writer = get_at(kernel.body, path)
        if isinstance(writer, ir.Reduce):
            stepped = _symbols(writer.init_when)
            names += [str(outer.var) for outer in loops_on_path(kernel.body, path)
                      if outer.var in stepped]
    return ", ".join(dict.fromkeys(names)) or "none (it is not reduced, or was decomposed)"


def _the_reduction(kernel, tensor, loop, asked):
    """The Reduce into `tensor`: the only statement that writes anything inside `loop`."""
    writes = find_all(loop.body, lambda n: isinstance(n, (ir.Store, ir.Reduce)))
    reduces = [s for s in writes if isinstance(s, ir.Reduce) and s.buffer.name == tensor]
    if not reduces:
        raise ScheduleError(
            PRIMITIVE, asked, f"no reduction into {tensor} stands inside loop {loop.var}",
            f"Pass a loop that steps the reduction into {tensor}; its reduction loops: "
            f"{_reduction_loops(kernel, tensor)}.",
            render(kernel, mark=loop),
        )
    others = [s for s in writes if s is not reduces[0]]
    if others:
        raise ScheduleError(
            PRIMITIVE, asked,
            f"loop {loop.var} also writes {others[0].buffer.name}, and the threads would "
            "share out that statement's iterations too",
            "Cross-thread reduce a loop that holds only the reduction (compute the other "
            "statement in a loop of its own first).",
            render(kernel, mark=others[0]),
        )
    return reduces[0]


def _check_reduction_loops(kernel, loop, reduce, asked):
    """`loop` steps the reduction, which ends inside it and writes one element there."""
    tensor = reduce.buffer.name
    if not reduce.init_when:
        raise ScheduleError(
            PRIMITIVE, asked,
            f"the reduction into {tensor} has no initialisation left (decompose moved it "
            "into a nest of its own), so the tree would not know where the result starts",
            "Apply cross_thread_reduce before decompose.", render(kernel, mark=reduce),
        )
    stepped, indexing = _symbols(reduce.init_when), _symbols(reduce.indices)
    inner_loops = find_all(loop.body, lambda n: isinstance(n, ir.For))
    inside = {loop.var} | {inner.var for inner in inner_loops}
    if loop.var not in stepped:
        role = (f"picks the element of {tensor} written (a spatial loop)"
                if loop.var in indexing else f"does not step the reduction into {tensor}")
        raise ScheduleError(
            PRIMITIVE, asked, f"loop {loop.var} {role}, so there is nothing to combine across it",
            f"Pass a reduction loop of {tensor}: {_reduction_loops(kernel, tensor)}.",
            render(kernel, mark=loop),
        )
    outside = sorted(str(v) for v in stepped - inside)
    if outside:
        raise ScheduleError(
            PRIMITIVE, asked,
            f"the reduction into {tensor} also runs over loop {outside[0]}, outside loop "
            f"{loop.var}, so the tree would combine partial results before it ends",
            f"Pass the outermost reduction loop, {outside[0]}, or reorder it inside.",
            render(kernel, mark=reduce),
        )
    spatial = sorted(str(v) for v in indexing & inside)
    if spatial:
        raise ScheduleError(
            PRIMITIVE, asked,
            f"loop {spatial[0]} inside loop {loop.var} picks the element of {tensor} written, "
            "and one tree combines partials of one element",
            f"Reorder so that loop {spatial[0]} runs outside loop {loop.var}.",
            render(kernel, mark=reduce),
        )


def _tree(partial, reduce, levels):
    """The combining levels: at width w, thread t < w combines partials t and t + w; the
    last level (width 1) writes the reduction's element. A barrier follows each level."""
    operator, stmts = COMBINE[reduce.combiner], []
    for level, var in enumerate(levels):
        width = 1 << (len(levels) - 1 - level)
        mine = ir.Load(partial, (var,))
        value = mine if partial.shape[0] == 1 else ir.Bin(
            operator, mine, ir.Load(partial, (var + width,)))
        last = level == len(levels) - 1
        target = ir.Store(reduce.buffer, reduce.indices, value) if last else ir.Store(
            partial, (var,), value)
        stmts += [ir.For(var, width, target, THREAD_AXIS), ir.Barrier()]
    return stmts


def cross_thread_reduce(kernel, tensor, loop, threads):
    """Share out the reduction into `tensor` over `loop` among `threads` threads of a
    block (a power of two, bound to threadIdx.x): each accumulates a strided part in a
    shared partial, then a tree of barriers combines them into the element. Returns
    (kernel, [thread loop, loop over each thread's part])."""
    path, node = resolve_loop(kernel, loop, PRIMITIVE)
    buffer_named(kernel, tensor, PRIMITIVE)
    asked = f"reduce {tensor} over loop {node.var} across {threads!r} threads"
    threads = _check_threads(kernel, threads, asked, node)
    _check_placement(kernel, path, node, asked)
    reduce = _the_reduction(kernel, tensor, node, asked)
    _check_reduction_loops(kernel, node, reduce, asked)
    levels = max(threads.bit_length() - 1, 1)
    thread, stride, *tree = fresh_symbols(
        kernel, [f"{node.var}_t", f"{node.var}_o"] + [f"{node.var}_c"] * levels)
    dtype = reduce.buffer.dtype
    partial = ir.Buffer(fresh_name(kernel, f"{tensor}_partial"), dtype, (threads,))
    position = stride * threads + thread

    def accumulate(stmt):
        # The only statement writing inside the loop (checked above) is the reduction.
        if isinstance(stmt, ir.Reduce):
            return ir.Reduce(partial, (thread,), reduce.combiner, stmt.value)
        return stmt

    body = rewrite(substitute(node.body, {node.var: position}), accumulate)
    if sympy.Mod(node.extent, threads) != 0:
        body = guard_leaves(body, sympy.Lt(position, node.extent))
    start = ir.Store(partial, (thread,), ir.as_value(identity(reduce.combiner, dtype), dtype))
    strides = floordiv(node.extent + threads - 1, threads)
    partials = ir.For(thread, threads, ir.seq(start, ir.For(stride, strides, body)), THREAD_AXIS)
    combined = ir.Alloc(partial, "shared",
                        ir.seq(partials, ir.Barrier(), *_tree(partial, reduce, tree)))
    return with_body(kernel, replace_at(kernel.body, path, combined)), [thread, stride]
