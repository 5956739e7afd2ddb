"""stream: a SIMD loop that writes an output row stores it past the caches.

    for j in range(768):  # vector              for j in range(768):  # stream
        Y[i, j] = (X[i, j] - m[0]) * r[0]  ->      Y[i, j] = (X[i, j] - m[0]) * r[0]

A plain store to a line that is not in cache first reads the line from memory (the
read-for-ownership), only to overwrite all of it: a kernel that reads one array and writes
another moves three bytes for every two it needs. A streaming store (x86's non-temporal
`movntdq`) writes whole lines without reading them and without evicting the inputs. The C
target computes each 64-byte line of the row in registers and streams it; elements before
the row's first line boundary and after its last whole line are stored plainly. Outputs
smaller than a few MiB are stored plainly even in a stream loop (see codegen/stream.py):
they may still be in cache when the caller reads them. The other targets store plainly.

The loop must be a SIMD loop whose whole body stores one output of the kernel (a buffer
the caller passes) at consecutive elements, and it must not read that output: a line it
reads is in cache already, and streaming it out only costs the next reader a miss
(ir/streaming.py holds these rules).
"""

import dataclasses

from ...ir.errors import ScheduleError
from ...ir.printer import render
from ...ir.streaming import stream_obstacle
from ..nest import replace_at, resolve_loop, with_body


def stream(kernel, loop):
    """Mark the SIMD loop `loop`, which stores one of the kernel's outputs at consecutive
    elements, to write it with streaming stores (kind "stream")."""
    path, node = resolve_loop(kernel, loop, "stream")
    asked = f"stream the stores of loop {node.var}"
    if node.kind != "vector":
        raise ScheduleError(
            "stream", asked, f"the loop is {node.kind}, not a SIMD loop",
            f"Vectorize loop {node.var} first; streaming stores write whole vectors.",
            render(kernel, mark=node))
    found = stream_obstacle(kernel, node)
    if found is not None:
        obstacle, hint, mark = found
        raise ScheduleError("stream", asked, obstacle, hint, render(kernel, mark=mark))
    marked = dataclasses.replace(node, kind="stream")
    return with_body(kernel, replace_at(kernel.body, path, marked)), []
