"""The C text of a kernel's prelude: the auxiliary tables ragged kernels read, computed
from the lengths once at the top of every call and freed at its end.

    L_off1[b]          prefix sums of the row lengths (where row b's storage starts)
    L_order_desc[k]    the k-th longest row (a remapped loop's order)
    L_row[f], L_pos[f] the row and the place in it of flat position f (a fused ragged loop),
                       run on past the last row to a multiple of a tile when bulk padded

Every table is int64_t heap memory from quiltc_alloc; the renderer passed in supplies
`emit`, `index`, `use_helper` and its `restrict` spelling.
"""

from ..ir import nodes as ir
from . import helpers
from .names import strip_parentheses


def render_tables(renderer, depth):
    """Emit the code that fills every table of `renderer.kernel.prelude`."""
    for entry in renderer.kernel.prelude:
        renderer.use_helper("quiltc_alloc", helpers.ALLOC)
        count = strip_parentheses(renderer.index(entry.count))
        if isinstance(entry, ir.RowOrder):
            _row_order(renderer, entry, count, depth)
        elif isinstance(entry, ir.FlatRows):
            _flat_rows(renderer, entry, count, depth)
        else:
            _prefix_sum(renderer, entry, count, depth)


def free_tables(renderer, depth):
    """Emit the frees of every prelude table, last allocated first."""
    for entry in reversed(renderer.kernel.prelude):
        renderer.emit(depth, f"free({entry.table});")
        if isinstance(entry, ir.FlatRows):
            renderer.emit(depth, f"free({entry.positions});")


def _allocate(renderer, name, elements, depth):
    renderer.emit(depth, f"int64_t* {renderer.restrict} {name} = "
                         f"quiltc_alloc(sizeof(int64_t) * ({elements}));")


def _prefix_sum(renderer, entry, count, depth):
    """`table[b + 1] = table[b] + size(b)`: the product of the row's lengths (rounded up
    to `pad`), a causal triangle's n (n + 1) / 2."""
    factors = []
    for lengths, triangular in entry.factors:
        length = f"(int64_t){lengths}[quiltc_row]"
        if entry.pad != 1:
            length = f"(({length} + {entry.pad - 1}) / {entry.pad} * {entry.pad})"
        factors.append(f"({length} * ({length} + 1) / 2)" if triangular else length)
    term = " * ".join(factors)
    _allocate(renderer, entry.table, f"{count} + 1", depth)
    renderer.emit(depth, f"{entry.table}[0] = 0;")
    renderer.emit(depth, f"for (int64_t quiltc_row = 0; quiltc_row < {count}; ++quiltc_row) {{")
    renderer.emit(depth + 1, f"{entry.table}[quiltc_row + 1] = {entry.table}[quiltc_row] + {term};")
    renderer.emit(depth, "}")


def _row_order(renderer, entry, count, depth):
    """The rows bucketed by length, longest first, each bucket in row order (lengths are
    at most `entry.max`, so one pass per length)."""
    _allocate(renderer, entry.table, f"{count} + 1", depth)
    renderer.emit(depth, "{")
    renderer.emit(depth + 1, "int64_t quiltc_next = 0;")
    renderer.emit(depth + 1, f"for (int64_t quiltc_length = {entry.max}; quiltc_length >= 0; "
                             "--quiltc_length) {")
    renderer.emit(depth + 2, f"for (int64_t quiltc_row = 0; quiltc_row < {count}; ++quiltc_row) {{")
    renderer.emit(depth + 3, f"if ({entry.lengths}[quiltc_row] == quiltc_length) "
                             f"{entry.table}[quiltc_next++] = quiltc_row;")
    renderer.emit(depth + 2, "}")
    renderer.emit(depth + 1, "}")
    renderer.emit(depth, "}")


def _flat_rows(renderer, entry, count, depth):
    """The row and the place in it of each flat position, rows back to back."""
    total = f"quiltc_total_{entry.rows}"
    renderer.emit(depth, f"int64_t {total} = 0;")
    renderer.emit(depth, f"for (int64_t quiltc_row = 0; quiltc_row < {count}; ++quiltc_row) "
                         f"{total} += {entry.lengths}[quiltc_row];")
    if entry.pad != 1:
        renderer.emit(depth, f"int64_t quiltc_used_{entry.rows} = {total};")
        renderer.emit(depth, f"{total} = ({total} + {entry.pad - 1}) / {entry.pad} * {entry.pad};")
    for name in (entry.rows, entry.positions):
        _allocate(renderer, name, f"{total} + 1", depth)
    renderer.emit(depth, "{")
    renderer.emit(depth + 1, "int64_t quiltc_next = 0;")
    renderer.emit(depth + 1, f"for (int64_t quiltc_row = 0; quiltc_row < {count}; ++quiltc_row) {{")
    renderer.emit(depth + 2, "for (int64_t quiltc_place = 0; quiltc_place < "
                             f"{entry.lengths}[quiltc_row]; ++quiltc_place, ++quiltc_next) {{")
    renderer.emit(depth + 3, f"{entry.rows}[quiltc_next] = quiltc_row;")
    renderer.emit(depth + 3, f"{entry.positions}[quiltc_next] = quiltc_place;")
    renderer.emit(depth + 2, "}")
    renderer.emit(depth + 1, "}")
    if entry.pad != 1:
        used = f"quiltc_used_{entry.rows}"
        renderer.emit(depth + 1, f"for (; quiltc_next < {total}; ++quiltc_next) {{")
        renderer.emit(depth + 2, f"{entry.rows}[quiltc_next] = {count} - 1;")
        renderer.emit(depth + 2, f"{entry.positions}[quiltc_next] = quiltc_next - {used} + "
                                 f"{entry.lengths}[{count} - 1];")
        renderer.emit(depth + 1, "}")
    renderer.emit(depth, "}")
