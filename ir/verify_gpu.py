"""The checks a kernel with GPU bindings must pass on any GPU, and the facts a target
checks its own limits against.

    check_gpu(kernel)           # verify() runs it on every kernel

Bound loops nest legally (each axis once along a nest, no blockIdx loop inside a threadIdx
loop, no barrier inside a threadIdx loop, where only some threads would reach it), shared
buffers have constant sizes, and a shared buffer that one statement writes (or reads) is
not read (or overwritten) by a later one before a barrier. Each failure is a ScheduleError
naming the loop or buffer. The last kind is found by `SharedRaces`, a walk that the
insert_barriers schedule pass (quiltc.schedule.passes) reuses to repair what it finds.
How many threads a block may hold and how much shared memory it may use are the target's
limits (`block_threads`, `block_shared_bytes` measure them; the build checks them).
"""

import dataclasses

import sympy

from . import nodes as ir
from .errors import ScheduleError
from .index import bounds
from .printer import render
from .walk import children, find_all


def element_bytes(dtype):
    """Bytes one stored element of `dtype` takes (a bool is kept in one byte)."""
    return max(dtype.bits // 8, 1)


def _refuse(kernel, node, obstacle, hint):
    raise ScheduleError("verify", f"run kernel {kernel.name} on a GPU", obstacle, hint,
                        render(kernel, mark=node))


def _is_thread(loop):
    return loop.kind.startswith("threadIdx")


def _check_nesting(kernel, stmt, enclosing):
    """Each axis once per nest, blocks outside threads, barriers outside thread loops."""
    if isinstance(stmt, ir.Barrier):
        threads = [loop for loop in enclosing if _is_thread(loop)]
        if threads:
            _refuse(kernel, stmt,
                    f"a barrier stands inside loop {threads[-1].var}, bound to "
                    f"{threads[-1].kind}, where threads past a guard would never reach it",
                    "Place barriers between the thread loops, in code every thread runs.")
    if isinstance(stmt, ir.For) and stmt.kind in ir.GPU_AXES:
        for outer in enclosing:
            if outer.kind == stmt.kind:
                _refuse(kernel, stmt,
                        f"loops {outer.var} and {stmt.var} of one nest are both bound to "
                        f"{stmt.kind}",
                        "Bind each axis once per nest; fuse the two loops to bind both.")
            if _is_thread(outer) and not _is_thread(stmt):
                _refuse(kernel, stmt,
                        f"loop {stmt.var}, bound to {stmt.kind}, is nested inside loop "
                        f"{outer.var}, bound to {outer.kind}",
                        "Keep blockIdx loops outside the threadIdx loops (reorder them).")
    if isinstance(stmt, ir.For):
        enclosing = enclosing + (stmt,)
    for child in children(stmt):
        if isinstance(child, ir.Stmt):
            _check_nesting(kernel, child, enclosing)


def block_threads(kernel):
    """[(thread loop, largest number of threads its block may hold)] for the innermost
    threadIdx loop of every bound nest: the product of the thread extents around it, each
    at its largest (None where no bound is known)."""
    found = []

    def visit(stmt, enclosing, ranges):
        if isinstance(stmt, ir.For):
            ranges = {**ranges, stmt.var: (sympy.Integer(0), stmt.extent - 1)}
            enclosing = enclosing + (stmt,)
            if _is_thread(stmt):
                threads = sympy.Integer(1)
                for loop in enclosing:
                    if _is_thread(loop):
                        threads *= bounds(loop.extent, ranges)[1]
                found.append((stmt, int(threads) if threads.is_number else None))
        for child in children(stmt):
            if isinstance(child, ir.Stmt):
                visit(child, enclosing, ranges)

    visit(kernel.body, (), kernel.ranges())
    return found


def _shared_sizes(kernel, nest):
    """[(allocation, bytes)] of the shared buffers of one nest (one launch's blocks)."""
    sizes = []
    for alloc in find_all(nest, lambda n: isinstance(n, ir.Alloc) and n.scope == "shared"):
        size = sympy.sympify(alloc.buffer.size())
        if not size.is_Integer:
            _refuse(kernel, alloc,
                    f"shared buffer {alloc.buffer.name} has the symbolic size {size}",
                    "Shared memory needs a constant size: cache a tile of constant extent.")
        sizes.append((alloc, int(size) * element_bytes(alloc.buffer.dtype)))
    return sizes


def block_shared_bytes(kernel):
    """Bytes of shared memory a block of each launch (top-level nest) uses, in order."""
    return [sum(size for _, size in _shared_sizes(kernel, nest))
            for nest in launch_nests(kernel.body)[0]]


def shared_allocations(kernel):
    """[(launch nest, [(allocation, bytes)])] for every top-level nest (one launch)."""
    return [(nest, _shared_sizes(kernel, nest)) for nest in launch_nests(kernel.body)[0]]


def launch_nests(body):
    """(top-level nests, global buffers allocated around them) of a kernel body: a GPU
    runs each nest as one launch, with the buffers allocated before the first."""
    if isinstance(body, ir.Alloc) and body.scope == "global":
        nests, buffers = launch_nests(body.body)
        return nests, [body.buffer] + buffers
    if isinstance(body, ir.Seq):
        nests, buffers = [], []
        for stmt in body.stmts:
            inner_nests, inner_buffers = launch_nests(stmt)
            nests += inner_nests
            buffers += inner_buffers
        return nests, buffers
    return [body], []


def _shared_accesses(stmt, shared):
    """(names read, names written) of the buffers in `shared` anywhere under `stmt`."""
    reads, writes = set(), set()
    for node in find_all(stmt, lambda n: isinstance(n, (ir.Load, ir.Store, ir.Reduce))):
        if node.buffer.name in shared:
            (reads if isinstance(node, ir.Load) else writes).add(node.buffer.name)
            if isinstance(node, ir.Reduce):
                reads.add(node.buffer.name)
    return reads, writes


NO_ACCESSES = (frozenset(), frozenset())


class SharedRaces:
    """Walks a block's statements in the order every thread runs them, remembering the
    shared buffers written and read since the last barrier. A statement that reads what
    another wrote, or writes what another read, races with the other threads: `race`
    refuses it (a subclass may repair it instead).

        SharedRaces(kernel).walk(kernel.body, NO_ACCESSES)
    """

    def __init__(self, kernel):
        self.kernel = kernel
        self.shared = {n.buffer.name for n in find_all(
            kernel.body, lambda n: isinstance(n, ir.Alloc) and n.scope == "shared")}

    def walk(self, stmt, state):
        """(`stmt` as `race` leaves it; (written, read) since the last barrier after it)."""
        if isinstance(stmt, ir.Barrier):
            return stmt, NO_ACCESSES
        if isinstance(stmt, ir.Seq):
            stmts = []
            for child in stmt.stmts:
                child, state = self.walk(child, state)
                stmts.append(child)
            return ir.seq(*stmts), state
        if isinstance(stmt, ir.Alloc):
            body, state = self.walk(stmt.body, state)
            return dataclasses.replace(stmt, body=body), state
        if isinstance(stmt, ir.For) and stmt.kind.startswith("blockIdx"):
            body, _ = self.walk(stmt.body, NO_ACCESSES)
            return dataclasses.replace(stmt, body=body), NO_ACCESSES
        if isinstance(stmt, ir.For) and not _is_thread(stmt):
            # Twice: the second pass meets what the end of one iteration leaves for the next.
            body, state = self.walk(stmt.body, state)
            body, state = self.walk(body, state)
            return dataclasses.replace(stmt, body=body), state
        if isinstance(stmt, ir.If):
            then, state_then = self.walk(stmt.then, state)
            otherwise, state_else = (None, state) if stmt.otherwise is None else self.walk(
                stmt.otherwise, state)
            merged = (state_then[0] | state_else[0], state_then[1] | state_else[1])
            return dataclasses.replace(stmt, then=then, otherwise=otherwise), merged
        return self.leaf(stmt, state)

    def leaf(self, stmt, state):
        """A statement every thread runs as one step (a thread loop, a store)."""
        written, read = state
        reads, writes = _shared_accesses(stmt, self.shared)
        stale, overwritten = sorted(reads & written), sorted(writes & read)
        if stale or overwritten:
            return self.race(stmt, (frozenset(writes), frozenset(reads)), stale, overwritten)
        return stmt, (written | writes, read | reads)

    def race(self, stmt, accesses, stale, overwritten):
        """Refuse `stmt`, which reads the shared buffers `stale` that other threads wrote,
        or overwrites the ones in `overwritten` that they read, with no barrier between.
        (A repair returns the statement to put in its place and `accesses`, the
        statement's own (writes, reads), as the state after it.)"""
        if stale:
            obstacle = (f"shared buffer {stale[0]} is written by other threads and read here "
                        "with no barrier between, so a thread may read it before it is written")
        else:
            obstacle = (f"shared buffer {overwritten[0]} is read by other threads and "
                        "overwritten here with no barrier between, so a thread may overwrite "
                        "it before the others have read it")
        _refuse(self.kernel, stmt, obstacle,
                "Put a Barrier between the write and the read (cache_read and cache_write "
                "place them around their copies; the schedule pass sch.insert_barriers() "
                "adds missing ones).")


def check_gpu(kernel, barriers=True):
    """Raise ScheduleError when `kernel`'s GPU bindings, shared buffer sizes or barriers
    are illegal on any GPU. With `barriers=False` the missing barriers are let pass: a
    schedule may lack them until its insert_barriers pass, and the build checks them."""
    _check_nesting(kernel, kernel.body, ())
    block_shared_bytes(kernel)
    races = SharedRaces(kernel) if barriers else None
    if races and races.shared:
        races.walk(kernel.body, NO_ACCESSES)
    return kernel
