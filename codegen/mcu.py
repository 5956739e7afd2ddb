"""The microcontroller target: CMSIS-style C99 for Cortex-M that also builds on a host.

What differs from the host C target, and why:

- sizes are constants (no shape variables, no ragged tables): the whole network is known
  when the source is written, and the compiler folds every index;
- loop counters and index helpers are int32_t: 64-bit arithmetic costs Cortex-M two
  instructions an operation;
- no heap: a kernel's intermediate buffers are `static` arrays at file scope, prefixed
  with the kernel's name, local ones stack arrays;
- `unroll` loops are written out iteration by iteration, so a local array indexed by the
  unrolled variable has constant indices and lives in registers at any optimisation level;
- `smlad` is the ACLE intrinsic `__smlad` where the core has the DSP extension
  (`#include <arm_acle.h>` only under `__ARM_FEATURE_DSP`) and portable C elsewhere;
- inputs are `const` pointers, so weight tables defined `const` at file scope stay in
  flash; there is no OpenMP or stdio, and libm's header only where a float kernel
  calls its functions or spells an infinity;
- a table read at a data-dependent row, `lut[p, idx[c]]`, goes through a row pointer
  declared at the top of the body of the innermost loop the row depends on
  (`const int16_t *quiltc_lut_row0 = &lut[64 * p];`, then `quiltc_lut_row0[idx[c]]`):
  gcc folds `lut[64 * p + idx[c]]` into one index and adds it again for every read,
  where a row pointer in a register makes each read one `ldrsh r, [row, idx, lsl #1]`;
  such a kernel carries gcc's `optimize` attribute that keeps its written-out table
  reads in order (`TABLE_KERNEL_ATTRIBUTE`);
- a buffer marked by `store_row_pointers` holds the rows' addresses
  (`planes[i] = &lut[64 * p];`), so a row pointer is one load (`planes[i]`).

`render_mcu_unit(kernels)` writes several kernels into one translation unit.
"""

from dataclasses import dataclass

import sympy

from ..ir import nodes as ir
from ..ir.dtypes import storage_type
from ..ir.errors import QuiltError
from ..ir.index import print_index
from ..ir.layout import Dense
from ..ir.walk import children, exprs_of, find_all, substitute
from . import helpers
from .base import CLikeRenderer, render_unit
from .names import strip_parentheses

PREAMBLE = "\n".join(["#include <stdint.h>", "#if defined(__ARM_FEATURE_DSP)",
                      "#include <arm_acle.h>", "#endif"])
# Unrolled loops longer than this stay loops: code size matters more than a branch.
_MAX_UNROLL = 64
# A kernel that reads table rows (the bit-serial conv) is written out in the order its
# registers allow: gcc's reassociation of the integer sums and its temporary expression
# replacement move the table reads ahead of their adds and spill them (bit-serial conv,
# 8-channel blocks, M4, b = 2: 2.16M -> 1.62M instructions). Only those kernels turn the
# two passes off: as global flags they cost the depthwise conv 8-15% and the int8 convs
# up to 2%.
TABLE_KERNEL_ATTRIBUTE = '__attribute__((optimize("no-tree-reassoc", "no-tree-ter"))) '


class MCURenderer(CLikeRenderer):
    """C99 for Cortex-M: constant sizes, static buffers, ACLE intrinsics."""

    target = "mcu"

    def __init__(self, kernel, trace_text="", static=False, constants=None):
        if not takes(kernel):
            raise QuiltError(
                f"kernel {kernel.name} has symbolic sizes or ragged dims, which the mcu target "
                "does not take: fix every size to a constant before emitting microcontroller C"
            )
        super().__init__(kernel, trace_text)
        self.kernel_prefix = "static " if static else ""
        # {parameter name: numpy array} of tables known when the code is generated: a
        # read of one at a constant offset becomes its value (an immediate in the code).
        self.constants = dict(constants or {})
        unknown = sorted(set(self.constants) - {buffer.name for buffer in kernel.params})
        if unknown:
            raise QuiltError(f"constants {unknown} name no parameter of kernel {kernel.name}; "
                             f"its parameters are {[b.name for b in kernel.params]}")
        # Loop variables of the loops being rendered, and the row pointers in scope
        # ({(buffer, row offset text): pointer name}).
        self.bound, self.rows, self.row_count = [], {}, 0
        # The written-out iterations being rendered ((loop variable, iteration) pairs,
        # outermost first), and the row reads waiting for the iteration they belong to.
        self.iteration_path, self.waiting_rows = [], {}
        self.kernel_prefix = ((TABLE_KERNEL_ATTRIBUTE if self.reads_table_rows() else "")
                              + self.kernel_prefix)

    def reads_table_rows(self):
        """Whether the kernel reads a table at data-dependent rows (through row pointers)."""
        return bool(find_all(self.kernel.body, lambda node: isinstance(node, ir.Load)
                             and node.gather and self.gathered_row(node) is not None))

    def preamble(self):
        """Fixed-width types, and the ACLE header only where the core has DSP instructions."""
        return PREAMBLE

    def math_function(self, function, dtype):
        """As the base spells it, with the headers of libm's functions (and of memcpy,
        which quiltc_expf's bit moves call), which only a float kernel needs."""
        self.include("math.h")
        self.include("string.h")
        return super().math_function(function, dtype)

    def constant(self, number, dtype):
        """As the base spells it, with <math.h> where that is INFINITY or NAN."""
        text = super().constant(number, dtype)
        if "INFINITY" in text or "NAN" in text:
            self.include("math.h")
        return text

    def include(self, header):
        """Include `header` once, after the preamble: a helper named by its own #include
        line, which sorts before every quiltc_ helper."""
        line = f"#include <{header}>"
        self.use_helper(line, line)

    def parameters(self, restrict=True):
        """Buffers in `kernel.params` order; those the kernel only reads are const."""
        qualifier = f" {self.restrict}" if restrict else ""
        declarations = []
        for buffer in self.kernel.params:
            const = "" if buffer.name in self.kernel.outputs else "const "
            declarations.append(f"{const}{storage_type(buffer.dtype)}*{qualifier} "
                                f"{self.buffer_names[buffer.name]}")
        return declarations

    def function(self):
        """The kernel's scratch buffers and function definition (helpers are collected
        separately)."""
        self.lines, self.statics = [], []
        self.emit(0, self.signature(width=100) + "\n{")
        for name in self.constants:
            # Every read may have become a value; the parameter stays in the signature.
            self.emit(1, f"(void){self.buffer_names[name]};")
        self.statement(self.kernel.body, 1)
        self.emit(0, "}")
        return "\n".join(self.statics + ["\n".join(self.lines)])

    def index(self, expr):
        """Index arithmetic in int32_t (sizes on a microcontroller stay far below 2**31)."""
        text = print_index(expr, self.spelling)
        for name, definition in helpers.index_helpers(text, "int32_t").items():
            self.use_helper(name, self.helper_prefix + definition)
        return text

    def integer_helper(self, function):
        """requantize as on every target; smlad through ACLE where the core has DSP."""
        if function == "smlad":
            return self.use_helper("quiltc_smlad", self.helper_prefix + helpers.SMLAD_ACLE)
        return super().integer_helper(function)

    def render_for(self, loop, depth):
        """int32_t counters; constant `unroll` loops written out iteration by iteration;
        the body (or the iteration) starts with the row pointers it can use (see
        `declare_rows`)."""
        if _written_out_loop(loop):
            # An iteration that declares storage gets a block of its own: the copies'
            # declarations would otherwise collide in one scope.
            scoped = bool(find_all(loop.body, lambda node: isinstance(node, ir.Alloc)))
            for iteration in range(int(loop.extent)):
                self.emit(depth, f"/* {loop.var} = {iteration} */" + (" {" if scoped else ""))
                outer_rows = dict(self.rows)
                self.iteration_path.append((loop.var.name, iteration))
                for load in self.waiting_rows.pop(tuple(self.iteration_path), ()):
                    self.declare_row(load, depth + scoped)
                self.statement(substitute(loop.body, {loop.var: sympy.Integer(iteration)}),
                               depth + scoped)
                self.iteration_path.pop()
                self.rows = outer_rows
                if scoped:
                    self.emit(depth, "}")
            return
        if loop.kind in ir.GPU_AXES:
            self.render_gpu_loop(loop, depth)
            return
        var = self.names[loop.var.name]
        extent = strip_parentheses(self.index(loop.extent))
        self.emit(depth, f"for (int32_t {var} = 0; {var} < {extent}; ++{var}) {{")
        outer_rows = dict(self.rows)
        self.bound.append(loop.var)
        self.declare_rows(loop.body, depth + 1)
        self.statement(loop.body, depth + 1)
        self.bound.pop()
        self.rows = outer_rows
        self.emit(depth, "}")

    def declare_rows(self, body, depth):
        """Row pointers for the gathered rows the loop body `body` reads on every
        iteration that the enclosing loops fix, whose row index reads no buffer `body`
        writes. Each is declared where all its reads are: at the head of `body`, or of
        the one written-out iteration inside it that holds them all. Hoisted above a
        written-out window, every row pointer of the window would be live at once, more
        than Cortex-M's registers hold, and gcc spills them (measured on the bit-serial
        conv with its accumulators in registers)."""
        written = {node.buffer.name for node in find_all(
            body, lambda node: isinstance(node, (ir.Store, ir.Reduce)))}
        places = {}
        for load, path in _loads_by_iteration(body):
            row = self.gathered_row(load)
            if (row is None or row.key in self.rows or not row.symbols <= set(self.bound)
                    or row.reads & written):
                continue
            first, common = places.get(row.key, (load, path))
            places[row.key] = (first, _common_prefix(common, path))
        for first, path in places.values():
            if path:
                self.waiting_rows.setdefault(tuple(self.iteration_path) + path, []).append(first)
            else:
                self.declare_row(first, depth)

    def declare_row(self, load, depth):
        """A row pointer for the row `load` reads, unless one is in scope."""
        row = self.gathered_row(load)
        if row.key in self.rows:
            return
        name = f"quiltc_{self.buffer_names[load.buffer.name].lstrip('_')}_row{self.row_count}"
        self.row_count += 1
        self.emit(depth, f"const {storage_type(load.buffer.dtype)} *{name} = {row.key[1]};")
        self.rows[row.key] = name

    def gathered_row(self, load):
        """The GatheredRow of a read from a dense table at a data-dependent row, or None."""
        last = len(load.indices) - 1
        row_gathers = [value for dim, value in enumerate(load.gather)
                       if value is not None and dim < last]
        if not row_gathers or not isinstance(load.buffer.layout, Dense):
            return None
        flat, stand_ins = load.offset_parts()
        column_stand_in = next((s for s, (dim, _) in stand_ins.items() if dim == last), None)
        column = column_stand_in if column_stand_in is not None else load.indices[last]
        # Row-major: the offset is the row's start plus the column.
        start = sympy.expand(flat - column)
        symbols = frozenset(start.free_symbols - set(stand_ins)).union(
            *(_free_symbols(value) for value in row_gathers))
        reads = frozenset(node.buffer.name for value in row_gathers
                          for node in find_all(value, lambda node: isinstance(node, ir.Load)))
        stored = next((value for value in row_gathers if isinstance(value, ir.Load)
                       and value.buffer.rows_of == load.buffer.name), None)
        address = (self.value(stored) if stored is not None else
                   f"&{self.buffer_names[load.buffer.name]}"
                   f"[{self.gathered_offset(start, stand_ins)}]")
        return GatheredRow((load.buffer.name, address), self.gathered_offset(column, stand_ins),
                           symbols, reads, stored is not None)

    def gathered_offset(self, expr, stand_ins):
        """C text of an offset in which stand-in symbols stand for gathered values."""
        text = strip_parentheses(self.index(expr))
        for stand_in, (_, value) in stand_ins.items():
            text = text.replace(stand_in.name, f"(int32_t){self.value(value)}")
        return text

    def render_load(self, load):
        """A constant table's value at a constant offset, a read through a row pointer in
        scope, else as on every target."""
        table = self.constants.get(load.buffer.name)
        if table is not None and not load.gather:
            offset = load.offset_parts()[0]
            # An offset past the table belongs to a guarded remainder that never runs.
            if offset.is_Integer and 0 <= int(offset) < table.size:
                return str(int(table.reshape(-1)[int(offset)]))
        row = self.gathered_row(load) if load.gather else None
        if row is not None and row.key in self.rows:
            return f"{self.rows[row.key]}[{row.column}]"
        if row is not None and row.stored:
            return f"{row.key[1]}[{row.column}]"
        return super().render_load(load)

    def render_store(self, stmt, depth):
        """A buffer of row pointers stores the address of the row its value picks."""
        table = stmt.buffer.rows_of
        if table is None:
            super().render_store(stmt, depth)
            return
        stand_in = sympy.Symbol("quiltc_row", integer=True)
        start = sympy.expand(self.kernel.param(table).offset((stand_in, 0)))
        offset = self.gathered_offset(start, {stand_in: (0, stmt.value)})
        self.emit(depth, f"{self.access(stmt.buffer, stmt.indices)} = "
                         f"&{self.buffer_names[table]}[{offset}];")

    def declarator(self, buffer, name):
        """`type name` for the elements of `buffer`: row pointers for one that holds rows."""
        if buffer.rows_of is None:
            return f"{storage_type(buffer.dtype)} {name}"
        return f"const {storage_type(self.kernel.param(buffer.rows_of).dtype)} *{name}"

    def local_array(self, buffer, name, length):
        """A local array of `buffer`'s elements (row pointers for one that holds rows)."""
        return [f"{self.declarator(buffer, name)}[{length}];"]

    def render_select(self, value):
        """A plain `?:`: Cortex-M has no masked vector loads to miscompile (see the base),
        and a conditional load skips the read of padding."""
        parts = (self.value(part) for part in (value.cond, value.then, value.otherwise))
        return "({} ? {} : {})".format(*parts)

    def render_alloc_global(self, stmt, depth):
        """A scratch buffer for the whole call: a static array at file scope (named after
        the kernel, so RAM use shows in the source), never the heap."""
        size = stmt.buffer.size()
        if not getattr(size, "is_Integer", False):
            raise QuiltError(f"buffer {stmt.buffer.name} has size {size}; the mcu target needs "
                             "constant sizes")
        name = f"{self.kernel.name}_{self.buffer_names[stmt.buffer.name].lstrip('_')}"
        self.buffer_names[stmt.buffer.name] = name
        self.statics.append(f"static {self.declarator(stmt.buffer, name)}[{max(int(size), 1)}];")
        self.statement(stmt.body, depth)

    def render_reduce(self, stmt, depth):
        """A sum of `smlad(a, b, 0)` feeds the accumulator into the instruction itself
        (acc + smlad(a, b, 0) == smlad(a, b, acc) with int32 wraparound)."""
        value = stmt.value
        is_dual_mac = (isinstance(value, ir.Call) and value.fn == "smlad"
                       and isinstance(value.args[2], ir.Const) and value.args[2].value == 0)
        if stmt.combiner != "sum" or stmt.init_when or not is_dual_mac:
            super().render_reduce(stmt, depth)
            return
        target = self.access(stmt.buffer, stmt.indices)
        a, b = (strip_parentheses(self.value(arg)) for arg in value.args[:2])
        self.emit(depth, f"{target} = {self.integer_helper('smlad')}({a}, {b}, {target});")


@dataclass(frozen=True)
class GatheredRow:
    """A table read split at its row: `key` (buffer name, C text of the row's address),
    the C text of the column, the loop variables the row depends on, the buffers its index
    reads, and whether the address is read from a buffer of row pointers (`stored`)."""

    key: tuple
    column: str
    symbols: frozenset
    reads: frozenset
    stored: bool


def _written_out_loop(loop):
    """True for a loop MCURenderer writes out iteration by iteration."""
    return (isinstance(loop, ir.For) and loop.kind == "unroll" and loop.extent.is_Integer
            and int(loop.extent) <= _MAX_UNROLL)


def _loads_by_iteration(stmt):
    """(load, path) for each read `stmt` makes on every run, with the loops MCURenderer
    writes out expanded: `path` names the written-out iterations it lies in, outermost
    first, as (loop variable, iteration) pairs. Reads under an If, a Select, or a loop
    that may run zero times are left out."""
    found, stack = [], [(stmt, {}, ())]
    while stack:
        node, values, path = stack.pop()
        if isinstance(node, (ir.If, ir.Select)):
            continue
        if isinstance(node, ir.For):
            if _written_out_loop(node):
                for iteration in reversed(range(int(node.extent))):
                    stack.append((node.body, {**values, node.var: sympy.Integer(iteration)},
                                  path + ((node.var.name, iteration),)))
                continue
            extent = node.extent.subs(values)
            if not (extent.is_Integer and extent > 0):
                continue
        if isinstance(node, ir.Load):
            found.append((substitute(node, values) if values else node, path))
        stack.extend((child, values, path) for child in reversed(children(node)))
    return found


def _common_prefix(first, second):
    """The longest tuple both tuples start with."""
    length = next((at for at, (a, b) in enumerate(zip(first, second)) if a != b),
                  min(len(first), len(second)))
    return first[:length]


def _free_symbols(value):
    return frozenset().union(*(expr.free_symbols for node in find_all(value, lambda n: True)
                               for expr in exprs_of(node)))


def takes(kernel):
    """Whether the mcu target takes `kernel`: every size a constant, no ragged dims and no
    prelude tables."""
    return not (kernel.shape_vars or kernel.ragged_dims or kernel.prelude)


def render_mcu(kernel, trace_text="", constants=None):
    """Microcontroller C source of one kernel, as a translation unit of its own (with the
    tables in `constants` folded in where read at constant offsets)."""
    return MCURenderer(kernel, trace_text, constants=constants).render()


def render_mcu_unit(kernels, static=False, comment="quiltc kernels (target mcu)"):
    """One translation unit defining every kernel in `kernels` ((kernel, trace text)
    pairs), `static` ones for a model whose only entry point is defined after them."""
    return render_unit([MCURenderer(kernel, trace_text, static=static)
                        for kernel, trace_text in kernels], comment)


def mcu_signature(kernel):
    """The kernel's C declaration (for a header, or for cffi on a host build)."""
    return MCURenderer(kernel).declaration()
