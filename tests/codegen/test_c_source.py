"""The text of generated C: signatures, pragmas, the trace comment, helpers, names, and
the errors for IR the C target cannot express. Rendering needs no compiler."""

import pytest
import sympy

import quiltc as qc
from quiltc.codegen import CRenderer, c_signature, render_c
from quiltc.codegen.base import strip_parentheses
from quiltc.ir import nodes as ir
from quiltc.ir.errors import QuiltError
from quiltc.ir.index import symbol

from support import programs
from support.helpers import with_loop_kinds


def _matmul(name="matmul"):
    C = programs.matmul(qc.var("M", 1, 512), 64, qc.var("N", 1, 512))
    return qc.lower(C, name=name)



def test_signature_lists_restrict_buffers_then_sizes():
    source = render_c(_matmul())
    assert ("void matmul(float* restrict A, float* restrict B, float* restrict C, "
            "int64_t M, int64_t N)\n{") in source
    assert c_signature(_matmul()) == (
        "void matmul(float* A, float* B, float* C, int64_t M, int64_t N);"
    )


def test_naive_matmul_reads_as_the_loop_nest():
    body = render_c(_matmul()).split("{", 1)[1]
    assert body == """
    for (int64_t i = 0; i < M; ++i) {
        for (int64_t j = 0; j < N; ++j) {
            for (int64_t k = 0; k < 64; ++k) {
                if (k == 0) C[j + (N * i)] = 0.0f;
                C[j + (N * i)] += A[k + (64 * i)] * B[j + (N * k)];
            }
        }
    }
}
"""


def test_loop_kinds_become_openmp_and_unroll_pragmas():
    kernel = with_loop_kinds(_matmul(), {"i": "parallel", "j": "vector", "k": "unroll"})
    lines = render_c(kernel).splitlines()
    for pragma, loop in [("#pragma omp parallel for", "i"), ("#pragma omp simd", "j"),
                         ("#pragma GCC unroll 64", "k")]:
        position = next(n for n, line in enumerate(lines) if line.strip() == pragma)
        assert lines[position + 1].strip().startswith(f"for (int64_t {loop} = 0;")


def test_unroll_of_a_symbolic_extent_leaves_the_loop_to_the_compiler():
    source = render_c(with_loop_kinds(_matmul(), {"i": "unroll"}))
    assert "#pragma GCC unroll" not in source
    assert "for (int64_t i = 0; i < M; ++i) {" in source


def test_header_comment_holds_the_schedule_trace_and_sizes():
    trace = "i_o, i_i = sch.split('i', 8)\nsch.vectorize('j')  # a comment with */ inside"
    source = render_c(_matmul(), trace)
    header = source.split("*/\n", 1)[0]
    assert header.startswith("/*\n * quiltc kernel matmul (target c)\n")
    assert " * size M in [1, 512]\n" in header
    assert " *     i_o, i_i = sch.split('i', 8)\n" in header
    assert "with * / inside" in header
    assert "schedule: none (the naive loop nest)" in render_c(_matmul())


def test_only_helpers_that_are_called_are_defined():
    source = render_c(_matmul())
    assert "quiltc_" not in source
    x = qc.placeholder((qc.var("n", 1, 9),), "float32", "x")
    y = qc.compute(x.shape, lambda i: qc.maximum(x[i], 0.0), "y")
    relu = render_c(qc.lower(y, name="relu"))
    assert relu.count("static inline float quiltc_max_float32(float a, float b)") == 1
    assert "y[i] = quiltc_max_float32(x[i], 0.0f);" in relu
    assert "quiltc_min" not in relu and "quiltc_alloc" not in relu


def test_long_signatures_put_one_parameter_on_a_line():
    n = qc.var("n", 1, 9)
    inputs = [qc.placeholder((n,), "float32", f"input_number_{k}") for k in range(5)]
    total = qc.compute((n,), lambda i: sum(t[i] for t in inputs[1:]) + inputs[0][i], "total")
    source = render_c(qc.lower(total, name="wide"))
    assert "void wide(\n    float* restrict input_number_1,\n" in source
    assert "\n    float* restrict input_number_2,\n" in source
    assert "    int64_t n)\n{" in source


def test_names_that_c_reserves_or_that_collide_are_renamed():
    n = qc.var("n", 1, 9)
    x = qc.placeholder((n,), "float32", "i")
    exp = qc.compute((n,), lambda i: qc.exp(x[i]), "exp")
    source = render_c(qc.lower(exp, name="renamed"))
    assert "void renamed(float* restrict i_buffer, float* restrict exp_buffer, int64_t n)" in source
    assert "exp_buffer[i] = quiltc_expf(i_buffer[i]);" in source


def test_index_min_max_floor_division_and_tables_print_as_c():
    renderer = CRenderer(_matmul())
    i, n = symbol("i"), symbol("N")
    assert renderer.index(sympy.Min(i, n - 1)) == "quiltc_min_index(i, (N - 1))"
    assert renderer.index(sympy.floor((n + 7) / 8)) == "((7 + N) / 8)"
    assert renderer.index(sympy.Mod(i, 4)) == "(i % 4)"
    assert renderer.index(qc.ir.table("L_off")(i + 1)) == "L_off[(1 + i)]"
    assert "quiltc_min_index" in renderer.helpers_used


def test_strip_parentheses_only_removes_an_enclosing_pair():
    assert strip_parentheses("(a + b)") == "a + b"
    assert strip_parentheses("(a) + (b)") == "(a) + (b)"
    assert strip_parentheses("((a) + (b))") == "(a) + (b)"
    assert strip_parentheses("a") == "a"


@pytest.mark.parametrize("kind", ["blockIdx.x", "threadIdx.y"])
def test_gpu_loops_are_refused_on_the_c_target(kind):
    with pytest.raises(QuiltError, match=rf"loop i is bound to {kind}.*target='cuda'"):
        render_c(with_loop_kinds(_matmul(), {"i": kind}))


def _with_alloc(scope, shape, barrier=False):
    i = symbol("i")
    n = symbol("n")
    out = ir.Buffer("out", qc.float32, (n,))
    scratch = ir.Buffer("scratch", qc.float32, shape)
    inner = ir.seq(ir.Store(scratch, (0,), ir.Const(1.0, qc.float32)),
                   ir.Barrier() if barrier else None,
                   ir.Store(out, (i,), ir.Load(scratch, (0,))))
    body = ir.For(i, n, ir.Alloc(scratch, scope, inner))
    return ir.Kernel("scratchpad", (out,), body, ("out",), (ir.ShapeVar(n, 1, 8),))


def test_local_buffers_need_a_constant_size():
    assert "    float scratch[3];" in render_c(_with_alloc("local", (3,)))
    with pytest.raises(QuiltError, match=r"local buffer scratch has size n.*not a constant"):
        render_c(_with_alloc("local", (symbol("n"),)))


def test_a_local_buffer_too_large_for_the_registers_is_reached_through_a_restrict_pointer():
    source = render_c(_with_alloc("local", (600,)))
    assert ("float scratch_storage[600];\n"
            "        float* restrict scratch = scratch_storage;") in source
    assert "    float scratch[512];" in render_c(_with_alloc("local", (512,)))


def test_global_buffers_may_have_symbolic_sizes_and_keep_their_memory_between_calls():
    source = render_c(_with_alloc("global", (symbol("n"), 2)))
    assert ("static void* quiltc_kept_scratch = NULL;\n"
            "        float* restrict scratch = quiltc_take(&quiltc_kept_scratch, "
            "sizeof(float) * 2 * n);") in source
    assert "        quiltc_give(&quiltc_kept_scratch, scratch);\n    }" in source


def test_shared_memory_and_barriers_are_refused_on_the_c_target():
    with pytest.raises(QuiltError, match=r"scope 'shared'.*target='cuda'"):
        render_c(_with_alloc("shared", (4,)))
    with pytest.raises(QuiltError, match=r"barrier.*target='cuda'"):
        render_c(_with_alloc("local", (4,), barrier=True))


def test_float_and_integer_constants_are_exact_c_literals():
    renderer = CRenderer(_matmul())
    assert renderer.constant(0.1, qc.float32) == "0.1f"
    assert renderer.constant(0.1, qc.float64) == "0.1"
    assert renderer.constant(3.0, qc.float32) == "3.0f"
    assert renderer.constant(1e20, qc.float32) == "1e+20f"
    assert renderer.constant(-2.5, qc.float32) == "(-2.5f)"
    assert renderer.constant(float("inf"), qc.float32) == "INFINITY"
    assert renderer.constant(float("-inf"), qc.float64) == "(-INFINITY)"
    assert renderer.constant(float("nan"), qc.float32) == "NAN"
    assert renderer.constant(-2**31, qc.int32) == "INT32_MIN"
    assert renderer.constant(-2**63, qc.dtypes.int64) == "INT64_MIN"
    assert renderer.constant(2**40, qc.dtypes.int64) == "INT64_C(1099511627776)"
    assert renderer.constant(-5, qc.int8) == "(-5)"


def test_integer_arithmetic_is_written_to_wrap():
    n = qc.var("n", 1, 9)
    a = qc.placeholder((n,), "int8", "a")
    b = qc.placeholder((n,), "int32", "b")
    narrow = qc.compute((n,), lambda i: a[i] * a[i], "narrow")
    wide = qc.compute((n,), lambda i: b[i] + b[i], "wide")
    source = render_c(qc.lower([narrow, wide], name="wrap"))
    assert "narrow[i] = (int8_t)(a[i] * a[i]);" in source
    assert "wide[i_1] = (int32_t)((uint32_t)b[i_1] + (uint32_t)b[i_1]);" in source
