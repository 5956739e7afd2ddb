"""Heap allocations checked before a kernel runs.

A kernel's intermediates are heap blocks sized from the call's symbolic sizes: a
float64 (N, N, N) buffer at N = 2**21 needs 2**66 bytes, a count that wraps to a small
number in C's 64-bit arithmetic (and the kernel then writes past the block), and one
that the allocator cannot give makes `quiltc_alloc` abort the process. So each call
first bounds every allocation in exact integers and refuses one larger than the
machine's memory with an AllocationError that names the buffer and the bytes. Ragged
sizes are bounded by the call's own rows: its longest row and its prefix sums' totals.
"""

import os

import numpy as np
import sympy

from ..ir import nodes as ir
from ..ir.errors import AllocationError
from ..ir.index import bounds, symbol, table

# Calls remembered as checked; a long run of calls at ever new ragged lengths starts over.
_REMEMBERED_CALLS = 4096


def memory_limit():
    """Bytes of physical memory: no single allocation of a kernel can exceed it."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _heap_allocations(stmt, loops=()):
    """(Alloc, enclosing loops) for every heap allocation under `stmt`."""
    found = []
    if isinstance(stmt, ir.Alloc) and stmt.scope == "global":
        found.append((stmt, loops))
    if isinstance(stmt, ir.For):
        loops = loops + (stmt,)
    for child in (getattr(stmt, name) for name in stmt.child_fields):
        for item in child if isinstance(child, tuple) else (child,):
            if isinstance(item, ir.Stmt):
                found.extend(_heap_allocations(item, loops))
    return found


def _longest(dim):
    """Stands for the longest row of ragged dim `dim` in a call."""
    return symbol(f"longest_{dim.name}")


def _total(entry):
    """Stands for the last entry of prefix-sum table `entry` in a call: its whole sum."""
    return symbol(f"total_{entry.table}")


def _ranges(kernel, loops):
    """Ranges that bound a size by the sizes and, per call, each ragged dim's longest row
    and each prefix sum's total (a prefix sum only grows, so its total bounds it)."""
    ranges = kernel.ranges()
    for dim in kernel.ragged_dims:
        ranges[table(dim.lengths_table)] = (sympy.Integer(0), _longest(dim))
    for entry in kernel.prelude:
        if isinstance(entry, ir.PrefixSum):
            ranges[table(entry.table)] = (sympy.Integer(0), _total(entry))
    for loop in loops:
        ranges[loop.var] = (sympy.Integer(0), loop.extent - 1)
    return ranges


def _call_values(kernel, sizes, lengths):
    """{symbol: value} of the sizes, longest rows and prefix-sum totals of one call."""
    values = {symbol: sympy.Integer(value) for symbol, value in sizes.items()}
    longest = {}
    for dim in kernel.ragged_dims:
        rows = np.asarray(lengths[dim.name], np.int64)
        longest[dim.lengths_table] = rows
        values[_longest(dim)] = sympy.Integer(int(rows.max()) if rows.size else 0)
    for entry in kernel.prelude:
        if isinstance(entry, ir.PrefixSum):
            values[_total(entry)] = sympy.Integer(int(entry.row_sizes(longest).sum()))
    return values


class AllocationCheck:
    """Bounds on a kernel's heap allocations, checked per call against memory_limit()."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.limit = memory_limit()
        self.bounds = []
        largest = {v.symbol: sympy.Integer(v.hi) for v in kernel.shape_vars}
        for dim in kernel.ragged_dims:
            largest[_longest(dim)] = sympy.Integer(dim.max)
        for entry in kernel.prelude:
            if isinstance(entry, ir.PrefixSum):
                longest_rows = {d.lengths_table: d.max for d in kernel.ragged_dims}
                largest[_total(entry)] = (entry.count.xreplace(largest)
                                          * entry.row_sizes(longest_rows))
        for alloc, loops in _heap_allocations(kernel.body):
            elements = bounds(sympy.expand(alloc.buffer.size()), _ranges(kernel, loops))[1]
            # Booleans are stored one per byte (dtypes.storage_type).
            bytes_bound = elements * max(alloc.buffer.dtype.bits // 8, 1)
            at_most = bytes_bound.xreplace(largest)
            # Sizes whose declared ranges keep the buffer small need no check per call.
            if not (at_most.is_number and at_most <= self.limit):
                self.bounds.append((alloc.buffer.name, bytes_bound))
        self._checked = set()

    def __call__(self, sizes, lengths):
        """Raise AllocationError when an allocation at `sizes` ({symbol: int}) and ragged
        `lengths` ({dim: lengths}) would exceed the machine's memory."""
        if not self.bounds:
            return
        values = _call_values(self.kernel, sizes, lengths)
        key = tuple(sorted((str(name), int(value)) for name, value in values.items()))
        if key in self._checked:
            return
        for name, bytes_bound in self.bounds:
            needed = bytes_bound.xreplace(values)
            if needed.is_number and needed > self.limit:
                shown = ", ".join(f"{s} = {v}" for s, v in sorted(
                    (str(s), v) for s, v in sizes.items()))
                raise AllocationError(
                    f"buffer {name} would need up to {int(needed):,} bytes at {shown}, more "
                    f"than this machine's {self.limit:,} bytes of memory; run smaller sizes, "
                    f"or schedule the producer of {name} inside its consumer's loop "
                    "(compute_at) so that it holds one tile")
        if len(self._checked) >= _REMEMBERED_CALLS:
            self._checked.clear()
        self._checked.add(key)
