"""Heap allocations checked before a kernel runs.

A kernel's intermediates are heap blocks sized from the call's symbolic sizes: a
float64 (N, N, N) buffer at N = 2**21 needs 2**66 bytes, a count that wraps to a small
number in C's 64-bit arithmetic (and the kernel then writes past the block), and one
that the allocator cannot give makes `quiltc_alloc` abort the process. So each call
first bounds every allocation in exact integers and refuses one larger than the
machine's memory with an AllocationError that names the buffer and the bytes.
"""

import os

import sympy

from ..ir import nodes as ir
from ..ir.dtypes import storage_type
from ..ir.errors import AllocationError
from ..ir.index import TABLE_ARGUMENT, bounds, table

_ITEM_BYTES = {"float": 4, "double": 8, "int8_t": 1, "uint8_t": 1, "int16_t": 2,
               "int32_t": 4, "int64_t": 8, "int": 4}


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


def _ranges(kernel, loops):
    """Ranges that bound a size by the shape variables alone: each loop's, each table's
    (a prefix sum of lengths ** k over b rows is at most b * max ** k)."""
    ranges = kernel.ranges()
    longest = {dim.lengths_table: dim.max for dim in kernel.ragged_dims}
    for entry in kernel.prelude:
        if isinstance(entry, ir.PrefixSum):
            row = -(-longest[entry.lengths] // entry.pad) * entry.pad
            ranges[table(entry.table)] = (sympy.Integer(0), TABLE_ARGUMENT * row ** entry.power)
    for loop in loops:
        ranges[loop.var] = (sympy.Integer(0), loop.extent - 1)
    return ranges


class AllocationCheck:
    """Bounds on a kernel's heap allocations, checked per call against memory_limit()."""

    def __init__(self, kernel):
        self.limit = memory_limit()
        self.bounds = []
        largest = {v.symbol: sympy.Integer(v.hi) for v in kernel.shape_vars}
        for alloc, loops in _heap_allocations(kernel.body):
            elements = bounds(sympy.expand(alloc.buffer.size()), _ranges(kernel, loops))[1]
            item = _ITEM_BYTES[storage_type(alloc.buffer.dtype)]
            bytes_bound = elements * item
            # Sizes whose declared ranges keep the buffer small need no check per call.
            if not (bytes_bound.xreplace(largest).is_number
                    and bytes_bound.xreplace(largest) <= self.limit):
                self.bounds.append((alloc.buffer.name, bytes_bound))
        self._checked = set()

    def __call__(self, sizes):
        """Raise AllocationError when an allocation at `sizes` ({symbol: int}) would
        exceed the machine's memory."""
        if not self.bounds:
            return
        key = tuple(sorted((str(symbol), value) for symbol, value in sizes.items()))
        if key in self._checked:
            return
        values = {symbol: sympy.Integer(value) for symbol, value in sizes.items()}
        for name, bytes_bound in self.bounds:
            needed = bytes_bound.xreplace(values)
            if needed.is_number and needed > self.limit:
                raise AllocationError(
                    f"buffer {name} would need up to {int(needed):,} bytes at "
                    f"{', '.join(f'{s} = {v}' for s, v in key)}, more than this machine's "
                    f"{self.limit:,} bytes of memory; run smaller sizes, or schedule the "
                    f"producer of {name} inside its consumer's loop (compute_at) so that "
                    "it holds one tile")
        self._checked.add(key)
