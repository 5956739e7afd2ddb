"""Region inference: which part of a buffer one iteration of a loop reads or writes.

Each dimension of a region is an interval [start, start + extent). `start` is written in
the variables bound outside the loop's body (enclosing loops and sizes); `extent` is the
span that the loops inside the body cover, found by interval arithmetic (`bounds`).

    for j_o in range(ceil(M / 4)):             region of P read by one iteration of j_o:
        for j_i in range(4):                       start j_o*4, extent 5 (P has M + 1 columns,
            if j_o*4 + j_i < M:                    and j_o*4 + 5 may pass them: guard the
                C[j_o*4 + j_i] = P[j_o*4 + j_i] + P[j_o*4 + j_i + 1]          accesses)

Reads under guards count: a region may be larger than what is touched, never smaller.
compute_at computes such a region, cache_read and cache_write copy one; this module also
builds the loop nest that visits a region.
"""

from dataclasses import dataclass

import sympy

from ..ir import nodes as ir
from ..ir.errors import ScheduleError
from ..ir.index import bounds, proves, simplify, symbol
from ..ir.printer import render
from ..ir.walk import find_all
from .nest import fresh_name, guard_leaves, loops_on_path, walk_paths


@dataclass(frozen=True)
class Access:
    """One read or write of a buffer: its indices, the loops around it inside the
    statement searched (outermost first) and the statement's path there."""

    indices: tuple
    loops: tuple
    path: tuple


@dataclass(frozen=True)
class Interval:
    """Indices [start, start + extent) of one dimension, the extent clamped to the
    buffer's extent `limit` where the clamp simplifies; `needs_guard` when start + extent
    may still pass `limit`, so that code visiting the interval must test each index."""

    start: sympy.Expr
    extent: sympy.Expr
    limit: sympy.Expr
    needs_guard: bool

    @property
    def is_constant(self):
        """True when the extent is a number (what a local or shared buffer needs)."""
        return self.extent.is_Integer


@dataclass(frozen=True)
class Region:
    """The part of `buffer` accessed: one Interval per dimension."""

    buffer: ir.Buffer
    intervals: tuple

    @property
    def starts(self):
        """The first index of each dimension."""
        return tuple(interval.start for interval in self.intervals)

    @property
    def extents(self):
        """The extent of each dimension (a cache's shape)."""
        return tuple(interval.extent for interval in self.intervals)

    def symbolic_dimensions(self):
        """Positions of the dimensions whose extent is not a constant."""
        return [d for d, interval in enumerate(self.intervals) if not interval.is_constant]

    def __str__(self):
        parts = (f"{i.start}:{i.start}+{i.extent}" for i in self.intervals)
        return f"{self.buffer.name}[{', '.join(parts)}]"


def accesses(stmt, buffer_name, kind):
    """Every access to `buffer_name` under `stmt`: its loads for kind "read", the Store
    and Reduce statements writing it for kind "write"."""
    found = []
    for path, node in walk_paths(stmt):
        if not isinstance(node, (ir.Store, ir.Reduce)):
            continue
        loops = tuple(loops_on_path(stmt, path))
        if kind == "write" and node.buffer.name == buffer_name:
            found.append(Access(node.indices, loops, path))
        if kind == "read":
            loads = find_all(
                node.value, lambda v: isinstance(v, ir.Load) and v.buffer.name == buffer_name
            )
            found.extend(Access(load.indices, loops, path) for load in loads)
    return found


def _inner_ranges(access):
    return {loop.var: (sympy.Integer(0), loop.extent - 1) for loop in access.loops}


def _unbounded_error(primitive, buffer, dimension, names, stmt):
    return ScheduleError(
        primitive,
        f"find the region of {buffer.name} accessed inside a loop",
        f"dimension {dimension} of {buffer.name} is indexed through {names} in a way "
        "interval arithmetic cannot bound (a table lookup)",
        "Apply the primitive at a loop outside those loops, or before fusing them.",
        render(stmt),
    )


def _clamp(span, limit, outer_ranges):
    """`span` clamped to the buffer's `limit` where that helps: a constant stays a constant
    (a cache needs one), and an unresolved Min would hide the range from the verifier
    (the guards that `needs_guard` asks for cover both cases)."""
    clamped = simplify(sympy.Min(span, limit), outer_ranges)
    if clamped.is_Integer or not (span.is_Integer or isinstance(clamped, sympy.Min)):
        return clamped
    return span


def _row_limit(buffer, dimension, found, outer_ranges):
    """The extent of `dimension` where every access points, as the verifier bounds it
    (`L_len(b)` in row b of a ragged dim), or None when the accesses disagree or it
    depends on a loop inside the statement. A ragged dim's shape extent is the longest
    row's: a region that fits it may still pass the end of a shorter row."""
    limits = {buffer.extent(dimension, access.indices) for access in found}
    if len(limits) != 1:
        return None
    limit = limits.pop()
    return limit if limit.free_symbols <= set(outer_ranges) else None


def infer_region(stmt, buffer, outer_ranges, kind, primitive):
    """The Region of `buffer` that `stmt` reads (kind "read") or writes ("write"), or None
    when it does not access the buffer.

    `outer_ranges` holds the ranges of the variables bound outside `stmt` (as
    nest.ranges_on_path gives them). Raises ScheduleError for `primitive` when an index
    depends on an inner loop in a way interval arithmetic cannot bound (a table lookup).
    """
    found = accesses(stmt, buffer.name, kind)
    if not found:
        return None
    intervals = []
    for dimension, limit in enumerate(buffer.shape):
        lows, highs = [], []
        for access in found:
            inner = _inner_ranges(access)
            low, high = bounds(access.indices[dimension], inner)
            left = (low.free_symbols | high.free_symbols) & set(inner)
            if left:
                names = ", ".join(sorted(str(v) for v in left))
                raise _unbounded_error(primitive, buffer, dimension, names, stmt)
            lows.append(low)
            highs.append(high)
        start = simplify(sympy.Min(*lows), outer_ranges)
        end = simplify(sympy.Max(*highs), outer_ranges)
        span = simplify(sympy.expand(end - start + 1), outer_ranges)
        limit = _row_limit(buffer, dimension, found, outer_ranges) or sympy.sympify(limit)
        extent = _clamp(span, limit, outer_ranges)
        needs_guard = not proves(sympy.Le(start + extent, limit), outer_ranges)
        intervals.append(Interval(start, extent, limit, needs_guard))
    return Region(buffer, tuple(intervals))


def fresh_symbols(kernel, bases):
    """New loop variables named after `bases`, unused in `kernel` and distinct."""
    names = []
    for base in bases:
        name, n = fresh_name(kernel, base), 0
        while name in names:
            n += 1
            name = fresh_name(kernel, f"{base}_{n}")
        names.append(name)
    return [symbol(name) for name in names]


def _region_guard(region, offsets):
    """The condition that each start + offset stays inside the buffer, for the dimensions
    that need it (sympy.true when none does)."""
    facts = [
        sympy.Lt(interval.start + offset, interval.limit)
        for interval, offset in zip(region.intervals, offsets)
        if interval.needs_guard
    ]
    return sympy.And(*facts)


def region_nest(region, variables, body):
    """Loops visiting every element of `region`, outermost dimension first.

    `variables` names one loop per dimension; `body(offsets)` builds the statement for
    the element start + offsets. A dimension of extent 1 gets no loop (offset 0). The
    statements of the body are guarded where an element may lie past the buffer.
    """
    offsets = [
        sympy.Integer(0) if interval.extent == 1 else variable
        for interval, variable in zip(region.intervals, variables)
    ]
    stmt = body(offsets)
    guard = _region_guard(region, offsets)
    if guard is not sympy.true:
        stmt = guard_leaves(stmt, guard)
    for interval, variable in reversed(list(zip(region.intervals, variables))):
        if interval.extent != 1:
            stmt = ir.For(variable, interval.extent, stmt)
    return stmt
