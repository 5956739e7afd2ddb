"""The static memory plan of a fused graph: every intermediate tensor (a partition's
output that another partition reads) gets an offset in one workspace, and tensors whose
lifetimes do not overlap share bytes.

    slot 0: t3 (partitions 0-1), t9 (partitions 2-4)     size max(bytes(t3), bytes(t9))
    slot 1: t5 (partitions 1-3)

Sizes are sympy expressions over the graph's symbolic dims, so one plan serves every
call: a slot's size is the Max of its tenants', its offset the sum of the slots before
it, each rounded up to 64 bytes (a cache line, and AVX-512's alignment). A tenant joins
the free slot whose size grows least, comparing sizes at the dims' largest values.
"""

from dataclasses import dataclass

import sympy

from ..ir.dtypes import as_dtype, storage_type
from .primitives import at_largest, element_count

ALIGNMENT = 64
_BYTES = {"float": 4, "double": 8, "int8_t": 1, "int16_t": 2, "int32_t": 4, "int64_t": 8,
          "uint8_t": 1}


def value_bytes(value):
    """The bytes of `value` (a graph Value) as an expression over the sizes."""
    itemsize = _BYTES[storage_type(as_dtype(value.dtype))]
    return element_count(value.shape) * itemsize


def _aligned(expr):
    return sympy.floor((sympy.sympify(expr) + ALIGNMENT - 1) / ALIGNMENT) * ALIGNMENT


@dataclass(frozen=True)
class MemoryPlan:
    """`offsets` ({value name: byte offset expression}), `total` (workspace bytes, an
    expression) and `unshared` (the bytes every intermediate would take without reuse)."""

    offsets: dict
    total: sympy.Expr
    unshared: sympy.Expr
    slots: tuple

    def bytes_at(self, expr, sizes):
        """`expr` (an expression of this plan) at `sizes` ({size symbol: int})."""
        return int(sympy.sympify(expr).xreplace(sizes))

    def __str__(self):
        lines = [f"workspace: {self.total} bytes ({len(self.slots)} slots for "
                 f"{len(self.offsets)} intermediates, {self.unshared} bytes unshared)"]
        for number, tenants in enumerate(self.slots):
            lines.append(f"  slot {number}: {', '.join(tenants)}")
        return "\n".join(lines)


def plan_memory(regions, graph):
    """The memory plan for `graph`'s intermediates of `regions` (lists of partitions that
    run at once, in run order)."""
    graph_outputs = {value.name for value in graph.outputs}
    defined, last_use, values = {}, {}, {}
    steps = [(position, partition) for position, region in enumerate(regions)
             for partition in region]
    for position, partition in steps:
        for value in partition.outputs:
            if value.name not in graph_outputs:
                defined[value.name], values[value.name] = position, value
                last_use.setdefault(value.name, position)
    for position, partition in steps:
        for value in partition.inputs:
            if value.name in defined:
                last_use[value.name] = max(last_use[value.name], position)
    slots = []  # [size expression, free from position, tenant names]
    placement = {}
    for name in sorted(defined, key=lambda name: defined[name]):
        size = _aligned(value_bytes(values[name]))
        free = [slot for slot in slots if slot[1] < defined[name]]
        if free:
            chosen = min(free, key=lambda slot: max(at_largest(size) - at_largest(slot[0]), 0))
            chosen[0] = sympy.Max(chosen[0], size) if chosen[0] != size else size
        else:
            chosen = [size, 0, []]
            slots.append(chosen)
        chosen[1] = last_use[name]
        chosen[2].append(name)
        placement[name] = chosen
    offsets, start = {}, sympy.Integer(0)
    for slot in slots:
        for name in slot[2]:
            offsets[name] = start
        start = start + slot[0]
    unshared = sum((_aligned(value_bytes(values[name])) for name in defined), sympy.Integer(0))
    return MemoryPlan(offsets, start, unshared, tuple(tuple(slot[2]) for slot in slots))

