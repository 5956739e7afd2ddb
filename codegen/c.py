"""The C target: C99 with `restrict`, OpenMP for parallel and SIMD loops, GCC unrolling.

    for (int64_t j_o = 0; ...)      <- #pragma omp parallel for   (kind parallel)
    for (int64_t b = 0; ...)        <- ... schedule(dynamic)      (parallel, ragged work)
    for (int64_t j_i = 0; ...)      <- #pragma omp simd           (kind vector)
    for (int64_t i_i = 0; ...)      <- #pragma GCC unroll 4       (kind unroll, extent 4)

`render_c` gives the source, `c_signature` the declaration cffi reads (`ffi.cdef`).
"""

import sympy
from sympy.core.function import AppliedUndef

from ..ir import dtypes
from ..ir import nodes as ir
from ..ir.dtypes import storage_type
from ..ir.verify_gpu import element_bytes
from ..ir.walk import children, exprs_of, find_all
from . import helpers, stream
from .base import CLikeRenderer
from .names import as_operand, strip_parentheses

# GCC refuses larger unroll factors.
_MAX_UNROLL = 65534
# AVX-512's 32 vector registers: a local array larger than this never lives in registers.
_REGISTER_FILE_BYTES = 2048
# A float sum over a SIMD loop adds each block of this many bytes of consecutive elements
# into as many partial sums, added together at the end: eight AVX2 vectors (four AVX-512
# ones) of independent additions. With the one vector accumulator OpenMP's reduction
# gives, each addition waited on the one before it (a layer norm's two row sums over 768
# floats took 53% of its time): layer norm [4096, 768] 1.31-1.37x, residual + layer norm
# 1.18x on a 2-core AVX2 host; softmax's 128-long rows and attention's rows unchanged.
_PARTIAL_SUM_BYTES = 256
# A sum over a known extent shorter than this many blocks takes narrower blocks, down to
# one cache line: adding the partial sums together costs as much as a block, so on a
# short row it outweighs the chains it breaks. Softmax [12288, 128] 1.04-1.06x with
# 32-float blocks, 1.05-1.07x with 16; layer norm's 768-long rows 0.94-0.99x with 32
# and 0.85-0.90x with 16 (2-core AVX2 host, the kernels' C timed side by side).
_BLOCKS_PER_SUM = 4
_NARROWEST_BLOCK_BYTES = 64


class CRenderer(CLikeRenderer):
    """C99 for the host CPU, built as a shared object and called through cffi."""

    target = "c"
    # libm's tanhf and erff are calls gcc cannot vectorize without -ffast-math; the helpers
    # are inline code it can. CUDA has its own, and Cortex-M keeps libm's (no float SIMD).
    # An exp of a non-positive argument drops quiltc_expf's overflow path.
    MATH_FUNCTIONS = {**CLikeRenderer.MATH_FUNCTIONS,
                      "tanh": ("quiltc_tanhf", "tanh"), "erf": ("quiltc_erff", "erf"),
                      "exp_nonpositive": ("quiltc_expf_nonpositive", "exp")}

    def __init__(self, kernel, trace_text=""):
        super().__init__(kernel, trace_text)
        # {table lookup: the local holding it} inside the SIMD loop being rendered, and
        # how many such locals the kernel has (each named once: sibling loops share a block).
        self.hoisted_reads = {}
        self.hoisted_count = 0

    def local_array(self, buffer, name, length):
        """A local array; one too large for the registers is read and written through a
        restrict pointer to it. gcc keeps a block of accumulators (a small local array) in
        registers, but with a second, larger local array read in the same loop (a packed
        panel of a matmul's right operand) it kept every accumulator on the stack, a load
        and a store around each multiply-add (a packed 8 x 32 dense kernel at 49 GFLOP/s
        instead of 116); through the pointer it knows the two do not overlap."""
        if length * element_bytes(buffer.dtype) <= _REGISTER_FILE_BYTES:
            return super().local_array(buffer, name, length)
        element = storage_type(buffer.dtype)
        return [f"{element} {name}_storage[{length}];",
                f"{element}* {self.restrict} {name} = {name}_storage;"]

    def render_alloc_global(self, stmt, depth):
        """A buffer for the whole call in memory kept between calls (helpers.KEPT_BLOCKS):
        a static slot per buffer, taken before its body and given back after."""
        name, element = self.buffer_names[stmt.buffer.name], storage_type(stmt.buffer.dtype)
        size = as_operand(strip_parentheses(self.index(stmt.buffer.size())))
        self.use_helper("quiltc_alloc", helpers.ALLOC)
        self.use_helper("quiltc_take", helpers.KEPT_BLOCKS)
        self.emit(depth, f"static void* quiltc_kept_{name} = NULL;")
        self.emit(depth, f"{element}* {self.restrict} {name} = "
                         f"quiltc_take(&quiltc_kept_{name}, sizeof({element}) * {size});")
        self.statement(stmt.body, depth)
        self.emit(depth, f"quiltc_give(&quiltc_kept_{name}, {name});")

    def math_function(self, function, dtype):
        """As the base spells it, also defining the tanh and erf helpers; a float32
        sigmoid goes through quiltc_expf_nonpositive (helpers.SIGMOIDF)."""
        if function == "sigmoid" and dtype == dtypes.float32:
            self.use_helper("quiltc_expf_nonpositive",
                            self.helper_prefix + helpers.EXPF_NONPOSITIVE)
            return self.use_helper("quiltc_sigmoidf", self.helper_prefix + helpers.SIGMOIDF)
        name = super().math_function(function, dtype)
        text = helpers.FLOAT_HELPERS.get(name)
        if text is not None:
            self.use_helper(name, self.helper_prefix + text)
        return name

    def index(self, expr):
        """As the base prints it, each table lookup hoisted out of the SIMD loop around
        it spelled as its local."""
        if self.hoisted_reads:
            expr = sympy.sympify(expr).xreplace(self.hoisted_reads)
        return super().index(expr)

    def render_for(self, loop, depth):
        """A SIMD loop after its invariant table lookups (ragged rows' offsets and
        lengths), each read once into a local: gcc left a row offset read inside the
        loop and, taking the row's elements for scattered ones, gathered them (a row max
        of attention scores in vgatherqps, 10% of the kernel's time on RACE). A parallel
        loop that runs stream loops fences their stores in each thread (codegen/stream.py)."""
        if loop.kind == "parallel" and stream.streams(self.kernel, loop.body):
            stream.render_streaming_region(self, loop, depth, self.loop_pragmas(loop)[0])
            return
        if loop.kind not in ir.SIMD_KINDS:
            super().render_for(loop, depth)
            return
        hoisted = {}
        for read in _invariant_table_reads(loop):
            if read in self.hoisted_reads:  # a SIMD loop around this one read it already
                continue
            # as nonnegative as the table it reads, so its quotients print as plain `/`
            local = sympy.Symbol(f"quiltc_{read.func.__name__}_{self.hoisted_count}",
                                 integer=True, nonnegative=bool(read.is_nonnegative))
            self.hoisted_count += 1
            self.emit(depth, f"const int64_t {local.name} = {self.index(read)};")
            hoisted[read] = local
        self.hoisted_reads.update(hoisted)
        self._render_vector_loop(loop, depth)
        for read in hoisted:
            del self.hoisted_reads[read]

    def _render_vector_loop(self, loop, depth):
        """A SIMD reduction (For.is_scalar_reduction) accumulates in a local that
        OpenMP gives each lane a copy of, combined when the loop ends; other loops as
        the base renders them, stream loops as codegen/stream.py does."""
        if loop.kind == "stream":
            stream.render_stream_loop(self, loop, depth)
            return
        if not loop.is_scalar_reduction():
            super().render_for(loop, depth)
            return
        stmt = loop.body
        target = self.access(stmt.buffer, stmt.indices)
        if stmt.combiner in ("max", "min") and stmt.buffer.dtype.is_float:
            self._render_float_extremum(loop, target, depth)
            return
        width = _partial_sum_width(loop.extent, element_bytes(stmt.buffer.dtype))
        if stmt.combiner == "sum" and stmt.buffer.dtype.is_float and not (
                loop.extent.is_number and loop.extent < 2 * width):
            self._render_blocked_sum(loop, target, width, depth)
            return
        self.emit(depth, "{")
        self.emit(depth + 1, f"{storage_type(stmt.buffer.dtype)} quiltc_accumulator = {target};")
        clause = {"sum": "+", "max": "max", "min": "min", "nanmax": "max"}[stmt.combiner]
        self.emit(depth + 1, f"#pragma omp simd reduction({clause}:quiltc_accumulator)")
        self.render_loop_body(loop, depth + 1, lambda: self.render_combine(
            stmt, "quiltc_accumulator", depth + 2))
        self.emit(depth + 1, f"{target} = quiltc_accumulator;")
        self.emit(depth, "}")

    def _render_blocked_sum(self, loop, target, width, depth):
        """A float sum in blocks of `width` consecutive elements, each block added lane by
        lane into `width` partial sums (registers: independent SIMD additions), then the
        partial sums and the elements after the last whole block into the target."""
        stmt = loop.body
        element = storage_type(stmt.buffer.dtype)
        var = self.names[loop.var.name]
        extent = strip_parentheses(self.index(loop.extent))
        self.loop_ranges[loop.var] = (sympy.Integer(0), loop.extent - 1)
        value = strip_parentheses(self.value(stmt.value))
        del self.loop_ranges[loop.var]
        self.emit(depth, "{")
        self.emit(depth + 1, f"{element} quiltc_partial[{width}] = {{0}};")
        self.emit(depth + 1, f"const int64_t quiltc_whole = ({extent}) / {width} * {width};")
        self.emit(depth + 1, "for (int64_t quiltc_block = 0; quiltc_block < quiltc_whole; "
                             f"quiltc_block += {width}) {{")
        self.emit(depth + 2, "#pragma omp simd")
        self.emit(depth + 2, f"for (int64_t {var} = quiltc_block; {var} < quiltc_block + "
                             f"{width}; ++{var}) {{")
        self.emit(depth + 3, f"quiltc_partial[{var} - quiltc_block] += {value};")
        self.emit(depth + 2, "}")
        self.emit(depth + 1, "}")
        self.emit(depth + 1, f"{element} quiltc_accumulator = {target};")
        self.emit(depth + 1, "#pragma omp simd reduction(+:quiltc_accumulator)")
        self.emit(depth + 1, f"for (int64_t {var} = quiltc_whole; {var} < {extent}; ++{var}) {{")
        self.emit(depth + 2, f"quiltc_accumulator += {value};")
        self.emit(depth + 1, "}")
        # A row shorter than a block (a ragged one) skips adding the untouched zeros.
        self.emit(depth + 1, "if (quiltc_whole > 0) {")
        self.emit(depth + 2, "#pragma omp simd reduction(+:quiltc_accumulator)")
        self.emit(depth + 2, f"for (int64_t quiltc_lane = 0; quiltc_lane < {width}; "
                             "++quiltc_lane) {")
        self.emit(depth + 3, "quiltc_accumulator += quiltc_partial[quiltc_lane];")
        self.emit(depth + 2, "}")
        self.emit(depth + 1, "}")
        self.emit(depth + 1, f"{target} = quiltc_accumulator;")
        self.emit(depth, "}")

    def _render_float_extremum(self, loop, target, depth):
        """A float max or min over SIMD lanes, NaN kept as numpy keeps it. OpenMP combines
        the lanes' partial results with its own max, which drops a NaN that one lane
        holds (quiltc's NaN-aware helper inside the loop did not save it: max over
        0..999 with one NaN came out 998), so the lanes compare plainly (one vmaxps each)
        and a second reduction ORs together whether any value was NaN."""
        stmt = loop.body
        element = storage_type(stmt.buffer.dtype)
        pick = ">" if stmt.combiner == "max" else "<"
        self.emit(depth, "{")
        self.emit(depth + 1, f"{element} quiltc_accumulator = {target};")
        self.emit(depth + 1, "int quiltc_unordered = quiltc_accumulator != quiltc_accumulator;")
        self.emit(depth + 1, f"#pragma omp simd reduction({stmt.combiner}:quiltc_accumulator) "
                  "reduction(|:quiltc_unordered)")

        def combine():
            value = strip_parentheses(self.value(stmt.value))
            self.emit(depth + 2, f"{element} quiltc_value = {value};")
            self.emit(depth + 2, f"quiltc_accumulator = quiltc_accumulator {pick} quiltc_value "
                      "? quiltc_accumulator : quiltc_value;")
            self.emit(depth + 2, "quiltc_unordered |= quiltc_value != quiltc_value;")

        self.render_loop_body(loop, depth + 1, combine)
        self.emit(depth + 1, f"{target} = quiltc_unordered ? NAN : quiltc_accumulator;")
        self.emit(depth, "}")

    def render_epilogue(self, depth):
        """A fence after the body of a kernel that streams stores (codegen/stream.py)."""
        if stream.streams(self.kernel, self.kernel.body):
            self.use_helper("quiltc_stream_line", stream.HELPERS)
            self.emit(depth, "quiltc_stream_fence();")

    def loop_pragmas(self, loop):
        """OpenMP for parallel and vector loops, GCC's unroll pragma for constant unrolls."""
        if loop.kind == "parallel":
            if _ragged_work(loop):
                # Iterations of unequal length (rows of a ragged batch): threads take the
                # next one as they finish, instead of fixed halves of unequal work.
                return ["#pragma omp parallel for schedule(dynamic)"]
            return ["#pragma omp parallel for"]
        if loop.kind == "vector":
            return ["#pragma omp simd"]
        if loop.kind == "unroll" and loop.extent.is_Integer:
            return [f"#pragma GCC unroll {min(int(loop.extent), _MAX_UNROLL)}"]
        return []


def _invariant_table_reads(loop):
    """The table lookups in `loop`, outside any condition in it (which may be what keeps
    a lookup in its table), whose arguments no loop in it moves."""
    moving = {node.var for node in find_all(loop, lambda node: isinstance(node, ir.For))}
    reads = set()
    for expr in _unguarded_exprs(loop):
        reads |= {read for read in sympy.sympify(expr).atoms(AppliedUndef)
                  if not read.free_symbols & moving}
    return sorted(reads, key=str)


def _unguarded_exprs(node):
    """The index expressions of `node` and the nodes under it outside any `If`, each
    access's flat offset included (where a ragged layout puts its row offsets)."""
    if isinstance(node, ir.If):
        return []
    exprs = exprs_of(node)
    if isinstance(node, (ir.Load, ir.Store, ir.Reduce)):
        exprs.append(node.buffer.offset(node.indices))
    for child in children(node):
        exprs.extend(_unguarded_exprs(child))
    return exprs


def _partial_sum_width(extent, element_size):
    """Elements per block of a blocked SIMD sum over `extent` elements of `element_size`
    bytes (_PARTIAL_SUM_BYTES, narrower for short known extents: _BLOCKS_PER_SUM)."""
    width = _PARTIAL_SUM_BYTES // element_size
    while (extent.is_number and extent < _BLOCKS_PER_SUM * width
           and width * element_size > _NARROWEST_BLOCK_BYTES):
        width //= 2
    return width


def _ragged_work(loop):
    """Whether some loop inside `loop` runs a number of times that depends on its variable."""
    inner = find_all(loop.body, lambda node: isinstance(node, ir.For))
    return any(loop.var in sympy.sympify(node.extent).free_symbols for node in inner)


def render_c(kernel, trace_text=""):
    """C99 source of `kernel`, headed by a comment holding `trace_text` (the schedule)."""
    return CRenderer(kernel, trace_text).render()


def c_signature(kernel):
    """The kernel's C declaration for `ffi.cdef` (cffi's parser takes no `restrict`)."""
    return CRenderer(kernel).declaration()
