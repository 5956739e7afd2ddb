"""pad_storage: an intermediate buffer's rows round up to a multiple of m along a dim.

    alloc T: float32[B, L]                  alloc T: float32[B, L]   # rows padded to 4
    # row b starts at L_off1[b]      ->     # row b starts at L_off1_pad4[b]
    for l in range(L_len(b)): ...           for l in range(L_len(b)): ...

A dense dim's extent N becomes round_up(N, m) = ((N + m - 1) // m) * m. A ragged buffer's
rows are padded along its ragged dims (they share the row length): its layout reads the
row starts from a new prelude table, the prefix sums of round_up(L_len[r], m). The
padding is storage only: the loops keep their extents, and a loop padded with
`pad_loop(l, m)` may then write the padded elements without a guard.

Only intermediates (allocated buffers) can be padded: a parameter's layout is the
caller's (a RaggedArray holds its rows back to back).
"""

import dataclasses

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.layout import Dense, Ragged, round_up
from ...ir.printer import render
from ...ir.walk import rewrite
from ..nest import allocation, buffer_named, with_body
from .pad_loop import check_multiple


def _padded_buffer(kernel, buffer, dim, multiple, asked, alloc):
    """The buffer with `dim` padded, and the prelude entry its layout needs (or None)."""
    if isinstance(buffer.layout, Dense):
        shape = list(buffer.shape)
        shape[dim] = round_up(shape[dim], multiple)
        return dataclasses.replace(buffer, shape=tuple(shape)), None
    layout = buffer.layout
    if (not isinstance(layout, Ragged) or dim not in layout.ragged or layout.pad != 1
            or layout.causal):
        obstacle = (f"{buffer.name} holds a causal triangle, whose rows a padding would not "
                    "keep triangular" if isinstance(layout, Ragged) and layout.causal
                    else f"dim {dim} of {buffer.name} is dense inside ragged rows"
                    if isinstance(layout, Ragged) and layout.pad == 1
                    else f"{buffer.name} is already padded or not row-major")
        raise ScheduleError(
            "pad_storage", asked, obstacle,
            f"Pad one of the ragged dims {list(getattr(layout, 'ragged', ()))} of a buffer "
            "without a causal dim (each row pads along all of them), once.",
            render(kernel, mark=alloc),
        )
    padded = dataclasses.replace(layout, pad=multiple)
    ragged_dim = next(d for d in kernel.ragged_dims if d.name == layout.dim)
    return dataclasses.replace(buffer, layout=padded), padded.prefix_sum(ragged_dim.batch)


def pad_storage(kernel, buffer, dim, multiple):
    """Pad the rows of allocated buffer `buffer` along `dim` to a multiple of `multiple`;
    returns (kernel, []): the buffer keeps its name."""
    name = buffer if isinstance(buffer, str) else buffer.name
    asked = f"pad the storage of {name} along dim {dim} to a multiple of {multiple!r}"
    found = buffer_named(kernel, name, "pad_storage")
    alloc = allocation(kernel, name)
    if alloc is None:
        raise ScheduleError(
            "pad_storage", asked,
            f"{name} is a parameter of the kernel, whose layout the caller fixes "
            "(a RaggedArray stores its rows unpadded)",
            "Pad an intermediate buffer instead, such as one made by cache_read or "
            "cache_write of this tensor.",
            render(kernel),
        )
    multiple = check_multiple("pad_storage", asked, multiple, kernel, alloc)
    if isinstance(dim, bool) or not isinstance(dim, int) or not 0 <= dim < len(found.shape):
        raise ScheduleError(
            "pad_storage", asked, f"{name} has dims 0 to {len(found.shape) - 1}",
            "Name one of its dims by position.", render(kernel, mark=alloc),
        )
    padded, entry = _padded_buffer(kernel, found, dim, multiple, asked, alloc)

    def replace(node):
        if isinstance(node, (ir.Load, ir.Store, ir.Reduce, ir.Alloc)) and node.buffer.name == name:
            return dataclasses.replace(node, buffer=padded)
        return node

    kernel = with_body(kernel, rewrite(kernel.body, replace))
    if entry is not None and entry not in kernel.prelude:
        prelude = tuple(sorted(kernel.prelude + (entry,), key=lambda e: e.table))
        kernel = dataclasses.replace(kernel, prelude=prelude)
    return kernel, []
