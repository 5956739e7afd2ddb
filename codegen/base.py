"""`CLikeRenderer`: the one renderer base for every C-like target.

It walks a kernel's statements and values and writes source a person can read: loops
keep the IR's names, the kernel starts with a comment holding its schedule trace, each
value is one expression, with no temporaries. Targets subclass it and override only what
differs: loop pragmas (`loop_pragmas`), GPU loops (`render_gpu_loop`), qualifiers
(`restrict`, `kernel_prefix`, `helper_prefix`), memory placement (`render_alloc_*`),
barriers (`render_barrier`) and math spellings (`MATH_FUNCTIONS`). How values are
spelled (arithmetic, helpers, casts) lives in values.py, which it inherits.
"""

import dataclasses

import sympy

from ..ir import nodes as ir
from ..ir.dtypes import identity, storage_type
from ..ir.errors import QuiltError
from ..ir.index import print_index
from . import helpers, prelude
from .names import CIndexSpelling, c_identifiers, strip_parentheses
from .values import ValueRenderer

_LINE_WIDTH = 100


class CLikeRenderer(ValueRenderer):
    """Renders one kernel as C-like source; subclasses override the attributes and hooks."""

    target = "c-like"
    restrict = "restrict"
    kernel_prefix = ""
    helper_prefix = "static inline "
    indent = "    "
    includes = ("math.h", "stdint.h", "stdio.h", "stdlib.h", "string.h")
    # {IR call: (float32 spelling, float64 spelling)}; quiltc_ names are helpers.
    MATH_FUNCTIONS = {
        "exp": ("quiltc_expf", "exp"), "exp_nonpositive": ("quiltc_expf", "exp"),
        "log": ("logf", "log"), "sqrt": ("sqrtf", "sqrt"),
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
        self.render_epilogue(1)
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

    def render_epilogue(self, depth):
        """Lines after the kernel's body (a target's fences); none here."""

    def loop_pragmas(self, loop):
        """Lines placed before `loop` (a serial, parallel, vector or unroll loop)."""
        return []

    def render_for(self, loop, depth):
        """`for (int64_t var = 0; var < extent; ++var)`, after the target's pragmas."""
        if loop.kind in ir.GPU_AXES:
            self.render_gpu_loop(loop, depth)
            return
        guard = loop.body
        if (isinstance(guard, ir.If) and guard.otherwise is None
                and loop.var not in sympy.sympify(guard.cond).free_symbols):
            # A guard the loop does not move (a tile's row test around its column loop)
            # is tested once, outside: inside, it is control flow that stops SIMD.
            self.emit(depth, f"if ({strip_parentheses(self.index(guard.cond))}) {{")
            self.render_for(dataclasses.replace(loop, body=guard.then), depth + 1)
            self.emit(depth, "}")
            return
        for pragma in self.loop_pragmas(loop):
            self.emit(depth, pragma)
        self.render_loop_body(loop, depth, lambda: self.statement(loop.body, depth + 1))

    def render_loop_body(self, loop, depth, body):
        """`for (...) {`, then `body()` (which emits the inside) with the loop's range known."""
        var = self.names[loop.var.name]
        extent = strip_parentheses(self.index(loop.extent))
        self.emit(depth, f"for (int64_t {var} = 0; {var} < {extent}; ++{var}) {{")
        self.loop_ranges[loop.var] = (sympy.Integer(0), loop.extent - 1)
        body()
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
        self.render_combine(stmt, target, depth)

    def render_combine(self, stmt, target, depth):
        """`target = combiner(target, value)` for the Reduce `stmt`, into C lvalue `target`."""
        dtype = stmt.buffer.dtype
        new = self.value(stmt.value)
        if stmt.combiner == "sum" and dtype.is_float:
            self.emit(depth, f"{target} += {strip_parentheses(new)};")
            return
        if stmt.combiner == "nanmax":
            # A NaN compares false, so it never replaces the target.
            self.emit(depth, "{")
            self.emit(depth + 1, f"{storage_type(dtype)} quiltc_value = {strip_parentheses(new)};")
            self.emit(depth + 1, f"{target} = quiltc_value > {target} ? quiltc_value : {target};")
            self.emit(depth, "}")
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
        """Dispatch on the scope: `render_alloc_global` (each target's own), `_local` or
        `_shared`."""
        getattr(self, f"render_alloc_{stmt.scope}")(stmt, depth)

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
        for line in self.local_array(stmt.buffer, name, length):
            self.emit(depth, line)
        self.statement(stmt.body, depth)

    def local_array(self, buffer, name, length):
        """The lines declaring local array `name` of `length` elements of `buffer`."""
        return [f"{storage_type(buffer.dtype)} {name}[{length}];"]

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
        for name, definition in helpers.index_helpers(text).items():
            self.use_helper(name, self.helper_prefix + definition)
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

_STATEMENT_HANDLERS = {
    ir.For: "render_for", ir.Store: "render_store", ir.Reduce: "render_reduce",
    ir.If: "render_if", ir.Seq: "render_seq", ir.Alloc: "render_alloc",
    ir.Barrier: "render_barrier",
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
