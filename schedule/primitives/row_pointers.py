"""store_row_pointers: an intermediate buffer whose values only pick rows of a table
holds the rows' addresses instead, on targets that can (mcu).

    planes = alloc[18, 18, 4, 2] uint8           planes = alloc[...] uint8  # rows of lut
    planes[y, x, g, k] = bits(...)         ->    planes[y, x, g, k] = bits(...)
    ... lut[planes[oy + ky, ...], index[...]]    ... lut[planes[oy + ky, ...], index[...]]

The loop nest and its meaning do not change (the interpreter and the host targets still
store the values); the microcontroller target stores `&lut[64 * value]` where the value
was stored and reads each table row through the stored pointer. A row pointer then costs
one load (`ldr r, [planes, #off]`) where it cost a byte load and a shifted add, for four
bytes of RAM an element where the value took one (bit-serial conv, 8-channel blocks, M4,
b = 2: 1.62M -> 1.47M instructions under unicorn).

Sound when every read of the buffer is the row of a read of the table (`table[buffer[...],
column]`, the table a parameter with two dims): nothing else sees the stored addresses,
and the verifier proves every value the buffer can hold (its type's or declared range) a
row of the table before any schedule runs.
"""

import dataclasses

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.layout import Dense
from ...ir.printer import render
from ...ir.walk import find_all, rewrite
from ..nest import allocation


def _fail(asked, obstacle, hint, kernel, mark=None):
    raise ScheduleError("store_row_pointers", asked, obstacle, hint, render(kernel, mark=mark))


def _check_table(kernel, table, asked):
    """`table` must be a parameter the kernel only reads, with two dense dims."""
    if table not in {buffer.name for buffer in kernel.params} or table in kernel.outputs:
        _fail(asked, f"{table} is not a table the kernel reads from its caller", "Pass a "
              "parameter the kernel only reads: its address stays put for the whole call.",
              kernel)
    buffer = kernel.param(table)
    if len(buffer.shape) != 2 or not isinstance(buffer.layout, Dense):
        _fail(asked, f"{table} is not a dense two-dim table (shape {buffer.shape})",
              "Store pointers to the rows of a dense (rows, columns) table.", kernel)


def _check_reads(kernel, name, table, asked):
    """Every read of `name` is the row of a read of `table`."""
    reads = find_all(kernel.body, lambda node: isinstance(node, ir.Load)
                     and node.buffer.name == name)
    rows = [load.gather[0] for load in find_all(
        kernel.body, lambda node: isinstance(node, ir.Load) and node.buffer.name == table
        and node.gather)
        if isinstance(load.gather[0], ir.Load) and load.gather[0].buffer.name == name]
    row_reads = {id(row) for row in rows}
    other = next((read for read in reads if id(read) not in row_reads), None)
    if not reads or other is not None:
        obstacle = (f"the kernel never reads {name}" if not reads else
                    f"{render(other)} reads {name} other than as the row of a read of {table}")
        _fail(asked, obstacle, f"Store row pointers in a buffer read only as "
              f"{table}[{name}[...], column]; compute the other uses in a buffer of their own.",
              kernel)


def store_row_pointers(kernel, tensor, table):
    """`kernel` with intermediate buffer `tensor`, read only as the row of `table`
    (`table[tensor[...], column]`), marked to hold the rows' addresses where the target
    can (mcu); returns (kernel, [])."""
    asked = f"store pointers to rows of {table} in {tensor}"
    alloc = allocation(kernel, tensor)
    if alloc is None:
        _fail(asked, f"{tensor} is not an intermediate buffer of the kernel",
              "Store row pointers in a buffer the kernel allocates, not a parameter.", kernel)
    if alloc.buffer.rows_of is not None:
        _fail(asked, f"{tensor} already holds rows of {alloc.buffer.rows_of}",
              "Mark a buffer once.", kernel, alloc)
    _check_table(kernel, table, asked)
    reduction = next(iter(find_all(alloc.body, lambda node: isinstance(node, ir.Reduce)
                                   and node.buffer.name == tensor)), None)
    if reduction is not None:
        _fail(asked, f"{tensor} is accumulated into, and a row's address cannot be",
              f"Accumulate in another buffer and store the finished rows into {tensor}.",
              kernel, reduction)
    _check_reads(kernel, tensor, table, asked)
    marked = dataclasses.replace(alloc.buffer, rows_of=table)

    def mark(node):
        if isinstance(node, (ir.Load, ir.Store, ir.Alloc)) and node.buffer.name == tensor:
            return dataclasses.replace(node, buffer=marked)
        return node

    return dataclasses.replace(kernel, body=rewrite(kernel.body, mark)), []
