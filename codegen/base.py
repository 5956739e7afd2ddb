"""`CLikeRenderer`: the one renderer base for every C-like target.

It walks a kernel's statements and values and writes source a person can read: loops
keep the IR's names, the kernel starts with a comment holding its schedule trace, each
value is one expression, with no temporaries. Targets subclass it and override only what
differs: loop pragmas (`loop_pragmas`), GPU loops (`render_gpu_loop`), qualifiers
(`restrict`, `kernel_prefix`, `helper_prefix`), memory placement (`render_alloc_*`),
barriers (`render_barrier`) and math spellings (`MATH_FUNCTIONS`).
"""

import numpy as np
import sympy

from ..ir import dtypes
from ..ir import nodes as ir
from ..ir.dtypes import identity, storage_type
from ..ir.errors import QuiltError
from ..ir.index import print_index, proves
from ..ir.verify import value_range
from . import helpers, prelude
from .names import CIndexSpelling, as_operand, c_identifiers, strip_parentheses

_LINE_WIDTH = 100

# Integer types C promotes to int: compute, then cast back so the result wraps.
_PROMOTED = (dtypes.int8, dtypes.int16, dtypes.uint8, dtypes.boolean)
# Types as wide as int: signed overflow is undefined in C, so they wrap through unsigned.
_UNSIGNED = {dtypes.int32: "uint32_t", dtypes.int64: "uint64_t"}
_COMPARISONS = {"<", "<=", ">", ">=", "==", "!="}
_LOGICAL = {"and": "&&", "or": "||"}

class CLikeRenderer:
    """Renders one kernel as C-like source; subclasses override the attributes and hooks."""

    target = "c-like"
    restrict = "restrict"
    kernel_prefix = ""
    helper_prefix = "static inline "
    indent = "    "
    includes = ("math.h", "stdint.h", "stdio.h", "stdlib.h", "string.h")
    # {IR call: (float32 spelling, float64 spelling)}; quiltc_ names are helpers.
    MATH_FUNCTIONS = {
        "exp": ("quiltc_expf", "exp"), "log": ("logf", "log"), "sqrt": ("sqrtf", "sqrt"),
        "tanh": ("tanhf", "tanh"), "abs": ("fabsf", "fabs"), "erf": ("erff", "erf"),
        "sigmoid": ("quiltc_sigmoidf", "quiltc_sigmoid"),
    }

    def __init__(self, kernel, trace_text=""):
        self.kernel = kernel
        self.trace_text = trace_text
        self.names, self.buffer_names = c_identifiers(kernel)
        self.spelling = CIndexSpelling(self.names)
        self.lines = []
        self.helpers_used = {}
        # The ranges of the loops around the statement being rendered, outermost first.
        self.loop_ranges = dict(kernel.ranges())

    # ------------------------------------------------------------------ the whole kernel

    def render(self):
        """The complete source: a translation unit holding this one kernel."""
        return render_unit([self])

    def function(self):
        """The kernel's definition (helpers it calls are collected in `helpers_used`)."""
        self.lines = []
        self.emit(0, self.signature(width=_LINE_WIDTH) + "\n{")
        self.render_prelude(1)
        self.statement(self.kernel.body, 1)
        prelude.free_tables(self, 1)
        self.emit(0, "}")
        return "\n".join(self.lines)

    def declaration(self):
        """The kernel's entry points as C declarations, for `ffi.cdef` (cffi's parser takes
        no `restrict`) or a header."""
        return self.signature(restrict=False, prefix=False) + ";"

    def header_comment(self):
        """A comment naming the kernel, its sizes and the schedule that shaped it."""
        lines = [f"quiltc kernel {self.kernel.name} (target {self.target})"]
        lines += [f"size {v.symbol} in [{v.lo}, {v.hi}]" for v in self.kernel.shape_vars]
        trace = self.trace_text.strip()
        if trace:
            lines += ["", "schedule:"] + ["    " + line for line in trace.splitlines()]
        else:
            lines += ["", "schedule: none (the naive loop nest)"]
        text = "\n".join((" * " + line).rstrip() for line in lines).replace("*/", "* /")
        return "/*\n" + text + "\n */"

    def preamble(self):
        """Feature macros and includes (`-std=c99` hides posix_memalign without the macro)."""
        includes = [f"#include <{name}>" for name in self.includes]
        return "\n".join(["#define _POSIX_C_SOURCE 200112L"] + includes)

    def parameters(self, restrict=True):
        """Parameter declarations: buffers in `kernel.params` order, the sizes, then each
        ragged dim's lengths table."""
        qualifier = f" {self.restrict}" if restrict and self.restrict else ""
        buffers = [f"{storage_type(p.dtype)}*{qualifier} {self.buffer_names[p.name]}"
                   for p in self.kernel.params]
        sizes = [f"int64_t {self.names[v.symbol.name]}" for v in self.kernel.shape_vars]
        lengths = [f"const int32_t*{qualifier} {d.lengths_table}" for d in self.kernel.ragged_dims]
        return buffers + sizes + lengths

    def render_prelude(self, depth):
        """The tables of the kernel's prelude, computed once at the top of the call."""
        prelude.render_tables(self, depth)

    def signature(self, restrict=True, width=None, prefix=True):
        """The kernel's function head (no semicolon), one parameter a line past `width`;
        `prefix=False` leaves out the target's qualifiers (`extern "C"`, `static`)."""
        head = f"{self.kernel_prefix if prefix else ''}void {self.kernel.name}("
        params = self.parameters(restrict) or ["void"]
        one_line = head + ", ".join(params) + ")"
        if width is None or len(one_line) <= width:
            return one_line
        return head + "\n" + ",\n".join(self.indent + p for p in params) + ")"

    # ------------------------------------------------------------------------ statements

    def emit(self, depth, text):
        """Append `text` (one or more lines) indented to `depth`."""
        for line in text.split("\n"):
            self.lines.append(self.indent * depth + line if line else "")

    def statement(self, stmt, depth):
        """Append the lines of `stmt` at nesting `depth`."""
        handler = _STATEMENT_HANDLERS.get(type(stmt))
        if handler is None:
            raise QuiltError(f"the {self.target} renderer cannot print {type(stmt).__name__}")
        getattr(self, handler)(stmt, depth)

    def loop_pragmas(self, loop):
        """Lines placed before `loop` (a serial, parallel, vector or unroll loop)."""
        return []

    def render_for(self, loop, depth):
        """`for (int64_t var = 0; var < extent; ++var)`, after the target's pragmas."""
        if loop.kind in ir.GPU_AXES:
            self.render_gpu_loop(loop, depth)
            return
        for pragma in self.loop_pragmas(loop):
            self.emit(depth, pragma)
        var = self.names[loop.var.name]
        extent = strip_parentheses(self.index(loop.extent))
        self.emit(depth, f"for (int64_t {var} = 0; {var} < {extent}; ++{var}) {{")
        self.loop_ranges[loop.var] = (sympy.Integer(0), loop.extent - 1)
        self.statement(loop.body, depth + 1)
        del self.loop_ranges[loop.var]
        self.emit(depth, "}")

    def render_gpu_loop(self, loop, depth):
        """A loop bound to a GPU axis: only GPU targets can run one."""
        raise QuiltError(
            f"loop {loop.var} is bound to {loop.kind}, which the {self.target} target cannot "
            "run: GPU axes need target='cuda'; build for cuda or schedule without bind()"
        )

    def render_store(self, stmt, depth):
        """`buffer[offset] = value;`."""
        target = self.access(stmt.buffer, stmt.indices)
        self.emit(depth, f"{target} = {strip_parentheses(self.value(stmt.value))};")

    def render_reduce(self, stmt, depth):
        """The identity on the first iteration (when `init_when` asks), then the combine."""
        target, dtype = self.access(stmt.buffer, stmt.indices), stmt.buffer.dtype
        if stmt.init_when:
            test = " && ".join(f"{strip_parentheses(self.index(e))} == 0" for e in stmt.init_when)
            start = strip_parentheses(self.constant(identity(stmt.combiner, dtype), dtype))
            self.emit(depth, f"if ({test}) {target} = {start};")
        new = self.value(stmt.value)
        if stmt.combiner == "sum" and dtype.is_float:
            self.emit(depth, f"{target} += {strip_parentheses(new)};")
            return
        operator = "+" if stmt.combiner == "sum" else stmt.combiner
        combined = self.arithmetic(operator, dtype, target, new)
        self.emit(depth, f"{target} = {strip_parentheses(combined)};")

    def render_if(self, stmt, depth):
        """`if (cond) { ... } else { ... }`."""
        self.emit(depth, f"if ({strip_parentheses(self.index(stmt.cond))}) {{")
        self.statement(stmt.then, depth + 1)
        if stmt.otherwise is not None:
            self.emit(depth, "} else {")
            self.statement(stmt.otherwise, depth + 1)
        self.emit(depth, "}")

    def render_seq(self, stmt, depth):
        """Each statement in order."""
        for child in stmt.stmts:
            self.statement(child, depth)

    def render_alloc(self, stmt, depth):
        """Dispatch on the scope: `render_alloc_global`, `_local` or `_shared`."""
        getattr(self, f"render_alloc_{stmt.scope}")(stmt, depth)

    def render_alloc_global(self, stmt, depth):
        """A buffer for the whole call: 64-byte aligned heap memory, freed after its body."""
        name, element = self.buffer_names[stmt.buffer.name], storage_type(stmt.buffer.dtype)
        size = as_operand(strip_parentheses(self.index(stmt.buffer.size())))
        self.use_helper("quiltc_alloc", helpers.ALLOC)
        self.emit(depth, f"{element}* {self.restrict} {name} = "
                         f"quiltc_alloc(sizeof({element}) * {size});")
        self.statement(stmt.body, depth)
        self.emit(depth, f"free({name});")

    def render_alloc_local(self, stmt, depth):
        """A fixed-size array in the enclosing block (registers or stack)."""
        size = sympy.sympify(stmt.buffer.size())
        if not size.is_Integer:
            raise QuiltError(
                f"local buffer {stmt.buffer.name} has size {size}, which is not a constant; "
                "a local buffer must have a fixed size: cache a tile of constant extent "
                "(split the loops by constant factors first) or use scope 'global'"
            )
        name = self.buffer_names[stmt.buffer.name]
        length = max(int(size), 1)  # C has no zero-length arrays
        self.emit(depth, f"{storage_type(stmt.buffer.dtype)} {name}[{length}];")
        self.statement(stmt.body, depth)

    def render_alloc_shared(self, stmt, depth):
        """GPU block memory: only GPU targets have it."""
        raise QuiltError(
            f"buffer {stmt.buffer.name} has scope 'shared' (GPU block memory), which the "
            f"{self.target} target does not have; use scope 'local' or build with target='cuda'"
        )

    def render_barrier(self, stmt, depth):
        """A GPU block barrier: only GPU targets synchronise threads."""
        raise QuiltError(
            f"the kernel has a barrier, which the {self.target} target cannot run: barriers "
            "synchronise GPU threads; build with target='cuda'"
        )

    # ---------------------------------------------------------------------------- values

    def index(self, expr):
        """C text of an index expression or condition (int64_t arithmetic)."""
        text = print_index(expr, self.spelling)
        for operation, pick in (("min", "<"), ("max", ">")):
            name = f"quiltc_{operation}_index"
            if name + "(" in text:
                self.use_helper(name, self.helper_prefix + helpers.index_extremum(name, pick))
        return text

    def access(self, buffer, indices):
        """`name[flat offset]` for an element of `buffer`."""
        offset = strip_parentheses(self.index(buffer.offset(indices)))
        return f"{self.buffer_names[buffer.name]}[{offset}]"

    def render_load(self, load):
        """An element read; a gather spells each gathered index as its value."""
        if not load.gather:
            return self.access(load.buffer, load.indices)
        flat, stand_ins = load.offset_parts()
        offset = strip_parentheses(self.index(flat))
        for stand_in, (_, value) in stand_ins.items():
            offset = offset.replace(stand_in.name, f"(int32_t){self.value(value)}")
        return f"{self.buffer_names[load.buffer.name]}[{offset}]"

    def use_helper(self, name, definition):
        """Record that the kernel calls helper `name` (defined by `definition`); returns it."""
        self.helpers_used[name] = definition
        return name

    def scalar_helper(self, operation, dtype):
        """A helper for max, min, abs, integer division or shifts on `dtype`.

        Float max/min propagate NaN like numpy's maximum/minimum (fmaxf drops NaN, and is
        a library call that keeps gcc from vectorizing); integer abs of the minimum wraps.
        """
        name, c = f"quiltc_{operation}_{dtype.name}", dtype.c
        if operation == "abs":
            definition = helpers.scalar_abs(name, c, _UNSIGNED.get(dtype))
        elif operation == "div":
            definition = helpers.scalar_divide(name, c, dtype.is_signed, _UNSIGNED.get(dtype))
        elif operation in ("shl", "shr"):
            definition = helpers.scalar_shift(name, c, operation, max(dtype.bits, 32),
                                              dtype.is_signed)
        else:
            pick = ">" if operation == "max" else "<"
            definition = helpers.scalar_extremum(name, c, pick, dtype.is_float)
        return self.use_helper(name, self.helper_prefix + definition)

    def integer_helper(self, function):
        """The helper computing integer call `function` (requantize, smlad), defined once."""
        name = f"quiltc_{function}"
        return self.use_helper(name, self.helper_prefix + helpers.INTEGER_CALLS[function])

    def math_function(self, function, dtype):
        """The spelling of math `function` on `dtype`, defining the helper it needs."""
        name = self.MATH_FUNCTIONS[function][dtype == dtypes.float64]
        if name == "quiltc_expf":
            self.use_helper(name, self.helper_prefix + helpers.EXPF)
        elif function == "sigmoid":
            one, exp = self.constant(1.0, dtype), self.math_function("exp", dtype)
            self.use_helper(name, self.helper_prefix + helpers.sigmoid(name, dtype.c, one, exp))
        return name

    def value(self, value):
        """C text of a Value, parenthesised where it is not a single term."""
        handler = _VALUE_HANDLERS.get(type(value))
        if handler is None:
            raise QuiltError(f"the {self.target} renderer cannot print {type(value).__name__}")
        return handler(self, value)

    def constant(self, number, dtype):
        """A literal of `dtype`: exact float spellings, INFINITY/NAN, wide integer macros."""
        if dtype.is_float:
            number = float(number)
            if np.isnan(number):
                return "NAN"
            if np.isinf(number):
                return "INFINITY" if number > 0 else "(-INFINITY)"
            # The shortest text that reads back as the same float32 or float64 value.
            text = str(np.float32(number)) if dtype == dtypes.float32 else repr(number)
            text += "" if any(mark in text for mark in ".e") else ".0"
            text += "f" if dtype == dtypes.float32 else ""
            return f"({text})" if text.startswith("-") else text
        number = int(number)
        if dtype in _UNSIGNED and number == int(np.iinfo(dtype.numpy).min):
            return f"INT{dtype.bits}_MIN"
        text = f"INT64_C({number})" if abs(number) >= 2**31 else str(number)
        return f"({text})" if number < 0 else text

    def arithmetic(self, operator, dtype, a, b):
        """`a operator b` on C texts of `dtype`, with integer results wrapping like numpy."""
        if operator in ("max", "min"):
            function = self.scalar_helper(operator, dtype)
            return f"{function}({strip_parentheses(a)}, {strip_parentheses(b)})"
        if dtype.is_float or operator == "/" and dtype not in _PROMOTED:
            return f"({a} {operator} {b})"
        if operator in (">>", "&", "|"):
            # Exact in every integer type; >> of a negative value is arithmetic on gcc.
            text = f"({a} {operator} {b})"
            return text if dtype not in _PROMOTED else f"(({dtype.c}){text})"
        if operator == "<<" and dtype in _PROMOTED:
            # Shift through unsigned: a left shift of a negative int is undefined in C.
            return f"(({dtype.c})((uint32_t){a} << {b}))"
        if dtype in _UNSIGNED:
            unsigned = _UNSIGNED[dtype]
            return f"(({dtype.c})(({unsigned}){a} {operator} ({unsigned}){b}))"
        return f"(({dtype.c})({a} {operator} {b}))"

    def render_bin(self, value):
        """Comparisons and logic as C operators; arithmetic through `arithmetic`."""
        a, b = self.value(value.a), self.value(value.b)
        if value.op in _COMPARISONS:
            return f"({a} {value.op} {b})"
        if value.op in _LOGICAL:
            return f"({a} {_LOGICAL[value.op]} {b})"
        dtype = value.a.dtype
        if value.op == "/" and not dtype.is_float and not (
                isinstance(value.b, ir.Const) and int(value.b.value) not in (0, -1)):
            # C leaves x / 0 and MIN / -1 undefined (a SIGFPE on x86); a divisor known
            # to be neither keeps the plain operator, which gcc strength-reduces.
            function = self.scalar_helper("div", dtype)
            return f"{function}({strip_parentheses(a)}, {strip_parentheses(b)})"
        if value.op in ("<<", ">>") and not self._count_in_range(value.b, dtype):
            # C leaves a count outside [0, width) undefined; numpy's result is defined.
            function = self.scalar_helper("shl" if value.op == "<<" else "shr", dtype)
            return f"{function}({strip_parentheses(a)}, {strip_parentheses(b)})"
        return self.arithmetic(value.op, value.a.dtype, a, b)

    def _count_in_range(self, count, dtype):
        """Whether shift `count` provably lies in [0, width) of `dtype` promoted to int."""
        lo, hi = value_range(count, self.loop_ranges)
        width = max(dtype.bits, 32)
        return proves(sympy.Ge(lo, 0), self.loop_ranges) and proves(
            sympy.Lt(hi, width), self.loop_ranges)

    def render_un(self, value):
        """Negation (wrapping on integers) and logical not."""
        a, dtype = self.value(value.a), value.dtype
        if value.op == "not":
            return f"(!{a})"
        if dtype.is_float:
            return f"(-{a})"
        if dtype in _UNSIGNED:
            return f"(({dtype.c})(0u - ({_UNSIGNED[dtype]}){a}))"
        return f"(({dtype.c})(-{a}))"

    def render_call(self, value):
        """A math function on floats; integer abs through a helper."""
        dtype = value.dtype
        arguments = ", ".join(strip_parentheses(self.value(a)) for a in value.args)
        if dtype.is_float:
            return f"{self.math_function(value.fn, dtype)}({arguments})"
        if value.fn in ir.INTEGER_CALLS:
            return f"{self.integer_helper(value.fn)}({arguments})"
        if value.fn != "abs":
            raise QuiltError(f"{value.fn} needs a float argument, got {dtype}; cast it first")
        return f"{self.scalar_helper('abs', dtype)}({arguments})"

    def render_cast(self, value):
        """A conversion with numpy's semantics: nonzero test to bool, truncation to ints."""
        source, target = value.value.dtype, value.dtype
        inner = self.value(value.value)
        if source == target:
            return inner
        if target == dtypes.boolean:
            return f"({inner} != 0)"
        if source.is_float and not target.is_float and target.bits < 64:
            # Truncate toward zero into 64 bits, then wrap into the narrow type as numpy
            # does: converting an out-of-range float straight to it is undefined in C.
            return f"(({target.c})(int64_t){inner})"
        return f"(({target.c}){inner})"


_STATEMENT_HANDLERS = {
    ir.For: "render_for", ir.Store: "render_store", ir.Reduce: "render_reduce",
    ir.If: "render_if", ir.Seq: "render_seq", ir.Alloc: "render_alloc",
    ir.Barrier: "render_barrier",
}
_VALUE_HANDLERS = {
    ir.Const: lambda renderer, v: renderer.constant(v.value, v.dtype),
    ir.Index: lambda renderer, v: renderer.index(v.expr),
    ir.Load: lambda renderer, v: renderer.render_load(v),
    ir.Bin: lambda renderer, v: renderer.render_bin(v),
    ir.Un: lambda renderer, v: renderer.render_un(v),
    ir.Call: lambda renderer, v: renderer.render_call(v),
    ir.Cast: lambda renderer, v: renderer.render_cast(v),
    ir.Select: lambda renderer, v: "({} ? {} : {})".format(
        *(renderer.value(part) for part in (v.cond, v.then, v.otherwise))),
}


def render_unit(renderers, comment=None):
    """One translation unit defining the kernel of every renderer in `renderers` (all of
    one target): the head comment, the target's preamble once, each helper once, then the
    functions, each headed by its schedule. A unit of one kernel and no `comment` is that
    kernel: its own header comment heads the file."""
    helpers_used, functions = {}, []
    for renderer in renderers:
        renderer.helpers_used = helpers_used
        functions.append(renderer.function())
    if comment is None and len(renderers) == 1:
        head = [renderers[0].header_comment()]
    else:
        head = [f"/* {comment or f'quiltc kernels (target {renderers[0].target})'} */"]
        functions = [renderer.header_comment() + "\n" + function
                     for renderer, function in zip(renderers, functions)]
    parts = head + [renderers[0].preamble()]
    parts += [helpers_used[name] for name in sorted(helpers_used)]
    return "\n\n".join(parts + functions) + "\n"
