"""Streaming stores on the C target: how a "stream" loop (schedule/primitives/stream.py)
is written.

    Y_row = &Y[768 * i];
    head = quiltc_stream_head(Y_row, sizeof(float), 768);   <- elements before a line boundary
    for (j = 0; j < head; ++j) Y[...] = ...;                   stored plainly
    for (line = head; line < lines_end; line += 16) {
        float quiltc_line[16];                                 one 64-byte line in registers
        for (j = line; j < line + 16; ++j) quiltc_line[j - line] = ...;
        quiltc_stream_line(Y_row + line, quiltc_line);       <- movntdq, past the caches
    }
    for (j = lines_end; j < 768; ++j) Y[...] = ...;            the rest, stored plainly

Streaming stores are ordered with nothing but a fence: every thread that made them runs
`quiltc_stream_fence` before its parallel region ends (`#pragma omp for nowait`, so the
fence comes before the region's barrier), and the kernel runs it once more before it
returns. A fence after every row instead waits for each row's lines to reach memory:
softmax [12288, 128] ran 2.3x slower so.
"""

import dataclasses

import sympy

from ..ir import nodes as ir
from ..ir.dtypes import storage_type
from ..ir.streaming import stream_obstacle
from ..ir.verify_gpu import element_bytes
from ..ir.walk import find_all
from .names import strip_parentheses

LINE_BYTES = 64
# An output smaller than this is stored plainly even by a stream loop: it may still be in
# the caches when the caller reads it. Layer norm [4096, 768] (a 12 MiB output) with
# streaming stores, its C timed side by side on a 2-core AVX2 host: 0.58-0.72 ms cold
# against 0.77-0.88 plainly, and no slower hot.
STREAM_MIN_BYTES = 4 << 20

HELPERS = """#if defined(__SSE2__)
#include <immintrin.h>
#endif

static inline int64_t quiltc_stream_head(const void* row, int64_t element_bytes, int64_t extent)
{
    int64_t past_boundary = (int64_t)((uintptr_t)row % 64);
    int64_t head = past_boundary == 0 ? 0 : (64 - past_boundary) / element_bytes;
    return head < extent ? head : extent;
}

static inline void quiltc_stream_line(void* line, const void* values)
{
#if defined(__AVX__)
    _mm256_stream_si256((__m256i*)line, _mm256_load_si256((const __m256i*)values));
    _mm256_stream_si256((__m256i*)line + 1, _mm256_load_si256((const __m256i*)values + 1));
#elif defined(__SSE2__)
    for (int part = 0; part < 4; ++part) {
        _mm_stream_si128((__m128i*)line + part, _mm_load_si128((const __m128i*)values + part));
    }
#else
    memcpy(line, values, 64);
#endif
}

static inline void quiltc_stream_fence(void)
{
#if defined(__SSE2__)
    _mm_sfence();
#endif
}"""


def streams(kernel, stmt):
    """Whether a stream loop in `stmt`, a statement of `kernel`, may stream its stores."""
    return bool(find_all(stmt, lambda node: isinstance(node, ir.For) and node.kind == "stream"
                         and _may_stream(kernel, node)))


def _may_stream(kernel, loop):
    """Whether `loop` still keeps the rules of a stream loop (a later schedule step may
    have broken them: ir/streaming.py) and its output may reach STREAM_MIN_BYTES."""
    return (stream_obstacle(kernel, loop) is None
            and not _below_threshold(_output_bytes(loop)))


def _output_bytes(loop):
    buffer = loop.body.buffer
    return sympy.sympify(buffer.size() * element_bytes(buffer.dtype))


def _below_threshold(total):
    return bool(total.is_number and total < STREAM_MIN_BYTES)


def render_stream_loop(renderer, loop, depth):
    """The stream loop `loop`: streamed when it keeps the rules of one (ir/streaming.py)
    and its output holds at least STREAM_MIN_BYTES (tested at run time when the output's
    size is symbolic), else a plain SIMD loop."""
    plain = dataclasses.replace(loop, kind="vector")
    if not _may_stream(renderer.kernel, loop):
        renderer.render_for(plain, depth)
        return
    total = _output_bytes(loop)
    if total.is_number:
        _render_streamed(renderer, loop, depth)
        return
    renderer.emit(depth, f"if ({strip_parentheses(renderer.index(total))} >= "
                         f"{STREAM_MIN_BYTES}) {{")
    _render_streamed(renderer, loop, depth + 1)
    renderer.emit(depth, "} else {")
    renderer.render_for(plain, depth + 1)
    renderer.emit(depth, "}")


def _render_streamed(renderer, loop, depth):
    """The loop as whole lines streamed between a head and a tail stored plainly."""
    store = loop.body
    element = storage_type(store.buffer.dtype)
    per_line = LINE_BYTES // element_bytes(store.buffer.dtype)
    var = renderer.names[loop.var.name]
    renderer.use_helper("quiltc_stream_line", HELPERS)
    first = tuple(sympy.sympify(index).subs(loop.var, 0) for index in store.indices)
    renderer.emit(depth, "{")
    inner = depth + 1
    renderer.emit(inner, f"{element}* quiltc_row = &{renderer.access(store.buffer, first)};")
    renderer.emit(inner, "const int64_t quiltc_extent = "
                         f"{strip_parentheses(renderer.index(loop.extent))};")
    renderer.emit(inner, "const int64_t quiltc_head = quiltc_stream_head(quiltc_row, "
                         f"sizeof({element}), quiltc_extent);")
    renderer.emit(inner, "const int64_t quiltc_lines_end = quiltc_head + (quiltc_extent - "
                         f"quiltc_head) / {per_line} * {per_line};")
    renderer.loop_ranges[loop.var] = (sympy.Integer(0), loop.extent - 1)
    _plain_part(renderer, var, "0", "quiltc_head", store, inner)
    renderer.emit(inner, "for (int64_t quiltc_line_start = quiltc_head; quiltc_line_start < "
                         f"quiltc_lines_end; quiltc_line_start += {per_line}) {{")
    renderer.emit(inner + 1, f"{element} quiltc_line[{per_line}] "
                             f"__attribute__((aligned({LINE_BYTES})));")
    renderer.emit(inner + 1, "#pragma omp simd")
    renderer.emit(inner + 1, f"for (int64_t {var} = quiltc_line_start; {var} < "
                             f"quiltc_line_start + {per_line}; ++{var}) {{")
    renderer.emit(inner + 2, f"quiltc_line[{var} - quiltc_line_start] = "
                             f"{strip_parentheses(renderer.value(store.value))};")
    renderer.emit(inner + 1, "}")
    renderer.emit(inner + 1, "quiltc_stream_line(quiltc_row + quiltc_line_start, quiltc_line);")
    renderer.emit(inner, "}")
    _plain_part(renderer, var, "quiltc_lines_end", "quiltc_extent", store, inner)
    del renderer.loop_ranges[loop.var]
    renderer.emit(depth, "}")


def _plain_part(renderer, var, start, end, store, depth):
    """A SIMD loop over [start, end) storing plainly."""
    renderer.emit(depth, "#pragma omp simd")
    renderer.emit(depth, f"for (int64_t {var} = {start}; {var} < {end}; ++{var}) {{")
    renderer.statement(store, depth + 1)
    renderer.emit(depth, "}")


def render_streaming_region(renderer, loop, depth, pragma):
    """The parallel loop `loop`, which runs stream loops, as a parallel region whose
    threads each fence their streaming stores before the region's barrier; `pragma` is
    the loop's own (`#pragma omp parallel for ...`)."""
    renderer.use_helper("quiltc_stream_line", HELPERS)
    renderer.emit(depth, "#pragma omp parallel")
    renderer.emit(depth, "{")
    renderer.emit(depth + 1, pragma.replace("omp parallel for", "omp for nowait"))
    renderer.render_loop_body(loop, depth + 1,
                              lambda: renderer.statement(loop.body, depth + 2))
    renderer.emit(depth + 1, "quiltc_stream_fence();")
    renderer.emit(depth, "}")
