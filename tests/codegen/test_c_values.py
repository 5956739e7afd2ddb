"""Every value and statement kind, compiled to C and compared with the interpreter (the
oracle) and numpy on random inputs. Sizes are symbolic, so each kernel compiles once and
hypothesis draws shapes (1 and primes included) and data against the same object."""

import dataclasses
import functools
import math
import re

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc import recipes
from quiltc.ir import interp
from quiltc.ir import nodes as ir
from quiltc.ir.index import symbol
from quiltc.ir.walk import rewrite

from support.helpers import random_array, require_cc, tolerance
from support.tiers import examples

EXTENTS = st.sampled_from([1, 2, 3, 5, 7, 8, 13])
SEEDS = st.integers(0, 2**32 - 1)


@pytest.fixture(autouse=True)
def _compiler():
    require_cc()


def _compare(kernel, arrays, reference=None):
    """Compile `kernel`, run it and the interpreter on `arrays`; check both (and numpy)."""
    expected = interp.run(kernel, **arrays)
    got = qc.build(kernel)(**arrays)
    got = got if isinstance(got, dict) else {kernel.outputs[0]: got}
    assert set(got) == set(kernel.outputs)
    for name, want in expected.items():
        rtol, atol = tolerance(want.dtype)
        assert got[name].dtype == want.dtype
        np.testing.assert_allclose(got[name], want, rtol=rtol, atol=atol,
                                   err_msg=f"C differs from the interpreter on {name}")
        if reference is not None and name in reference:
            np.testing.assert_allclose(got[name], reference[name], rtol=rtol, atol=atol,
                                       err_msg=f"C differs from numpy on {name}")
    return got


def _call_kernel(function, dtype):
    n = qc.var("n", 1, 64)
    x = qc.placeholder((n,), dtype, "x")
    y = qc.compute((n,), lambda i: ir.Call(function, (x[i],)), "y")
    return qc.lower(y, name=f"call_{function}_{dtype}")


NUMPY_CALLS = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh, "abs": np.abs,
    "sigmoid": lambda x: x.dtype.type(1) / (x.dtype.type(1) + np.exp(-x)),
    "erf": np.vectorize(lambda x: type(x)(math.erf(x)), otypes=[None]),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("function", sorted(NUMPY_CALLS))
@settings(max_examples=examples(10))
@given(n=EXTENTS, seed=SEEDS)
def test_every_call_matches_interpreter_and_numpy(function, dtype, n, seed):
    x = random_array(np.random.default_rng(seed), (n,), dtype) * 3
    if function in ("log", "sqrt"):
        x = np.abs(x) + x.dtype.type(0.01)
    reference = NUMPY_CALLS[function](x).astype(dtype)
    _compare(_call_kernel(function, dtype), {"x": x}, {"y": reference})


def _casts_kernel():
    n = qc.var("n", 1, 64)
    x = qc.placeholder((n,), "float32", "x")
    small = qc.placeholder((n,), "int8", "small")
    outputs = [
        qc.compute((n,), lambda i: qc.cast(x[i], "int8"), "to_int8"),
        qc.compute((n,), lambda i: qc.cast(x[i], "uint8"), "to_uint8"),
        qc.compute((n,), lambda i: qc.cast(x[i], "int32"), "to_int32"),
        qc.compute((n,), lambda i: qc.cast(small[i], "float64"), "to_float64"),
        qc.compute((n,), lambda i: small[i] * small[i] + small[i], "wrapped"),
        qc.compute((n,), lambda i: -small[i], "negated"),
        qc.compute((n,), lambda i: qc.abs(small[i]), "absolute"),
        qc.compute((n,), lambda i: qc.cast(qc.cast(x[i], "int8"), "bool"), "nonzero"),
    ]
    return qc.lower(outputs, name="casts")


@settings(max_examples=examples(25))
@given(n=EXTENTS, seed=SEEDS)
def test_casts_truncate_and_int8_arithmetic_wraps(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-300, 300, size=n).astype(np.float32)
    small = rng.integers(-128, 128, size=n).astype(np.int8)
    small[0] = -128
    truncated = np.trunc(x).astype(np.int64)
    wide = small.astype(np.int32)
    reference = {
        "to_int8": truncated.astype(np.int8),
        "to_uint8": truncated.astype(np.uint8),
        "to_int32": truncated.astype(np.int32),
        "to_float64": small.astype(np.float64),
        "wrapped": (wide * wide + wide).astype(np.int8),
        "negated": (-wide).astype(np.int8),
        "absolute": np.abs(wide).astype(np.int8),
        "nonzero": truncated.astype(np.int8) != 0,
    }
    _compare(_casts_kernel(), {"x": x, "small": small}, reference)


def _integer_kernel(dtype):
    n = qc.var("n", 1, 64)
    a = qc.placeholder((n,), dtype, "a")
    b = qc.placeholder((n,), dtype, "b")
    outputs = [
        qc.compute((n,), lambda i: a[i] * b[i] - a[i], "product"),
        qc.compute((n,), lambda i: a[i] / b[i], "quotient"),
        qc.compute((n,), lambda i: qc.maximum(a[i], b[i]), "larger"),
        qc.compute((n,), lambda i: qc.minimum(a[i], b[i]), "smaller"),
        qc.compute((n,), lambda i: a[i] > b[i], "greater"),
    ]
    return qc.lower(outputs, name=f"integers_{dtype}")


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8"])
@settings(max_examples=examples(15))
@given(n=EXTENTS, seed=SEEDS)
def test_integer_arithmetic_wraps_and_divides_toward_zero(dtype, n, seed):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    a = rng.integers(info.min, int(info.max) + 1, size=n, dtype=dtype)
    b = rng.integers(info.min, int(info.max) + 1, size=n, dtype=dtype)
    b[b == 0] = 3
    if info.min < 0:
        a[(a == info.min) & (b == -1)] = 5  # min / -1 overflows in C and numpy alike
    with np.errstate(over="ignore"):
        product = a * b - a
    quotient = (np.sign(a.astype(np.int64)) * np.sign(b.astype(np.int64))
                * (np.abs(a.astype(np.int64)) // np.abs(b.astype(np.int64)))).astype(dtype)
    reference = {"product": product, "quotient": quotient, "larger": np.maximum(a, b),
                 "smaller": np.minimum(a, b), "greater": a > b}
    _compare(_integer_kernel(dtype), {"a": a, "b": b}, reference)


def _select_kernel():
    n, m = qc.var("n", 1, 64), qc.var("m", 1, 64)
    x = qc.placeholder((n, m), "float32", "x")
    y = qc.compute(
        (n, m),
        lambda i, j: qc.where(
            i < j, x[i, j] * 2.5,
            qc.where(x[i, j] > 0.25, qc.cast(i + 2 * j, "float32"), qc.maximum(x[i, j], -0.5)),
        ),
        "y",
    )
    return qc.lower(y, name="select")


@settings(max_examples=examples(25))
@given(n=EXTENTS, m=EXTENTS, seed=SEEDS)
def test_where_with_index_and_value_conditions(n, m, seed):
    x = random_array(np.random.default_rng(seed), (n, m))
    i, j = np.indices((n, m))
    reference = np.where(
        i < j, x * np.float32(2.5),
        np.where(x > np.float32(0.25), (i + 2 * j).astype(np.float32),
                 np.maximum(x, np.float32(-0.5))),
    )
    _compare(_select_kernel(), {"x": x}, {"y": reference})


def _reductions_kernel():
    rows, cols = qc.var("rows", 1, 64), qc.var("cols", 1, 64)
    x = qc.placeholder((rows, cols), "float32", "x")

    def row_reduction(combiner):
        axis = qc.reduce_axis(cols, "k")
        return qc.compute((rows,), lambda i: combiner(x[i, axis], axis=axis),
                          f"row_{combiner.__name__}")

    outputs = [row_reduction(combiner) for combiner in (qc.sum, qc.max, qc.min)]
    r, c = qc.reduce_axis(rows, "r"), qc.reduce_axis(cols, "c")
    total = qc.compute((1,), lambda t: qc.sum(x[r, c] + qc.cast(t, "float32"), axis=(r, c)),
                       "total")
    outputs.append(total)
    return qc.lower(outputs, name="reductions")


@settings(max_examples=examples(25))
@given(rows=EXTENTS, cols=EXTENTS, seed=SEEDS)
def test_sum_max_min_reductions_with_symbolic_sizes(rows, cols, seed):
    x = random_array(np.random.default_rng(seed), (rows, cols))
    reference = {"row_sum": x.sum(axis=1), "row_max": x.max(axis=1), "row_min": x.min(axis=1),
                 "total": np.array([x.sum()], np.float32)}
    _compare(_reductions_kernel(), {"x": x}, reference)


def test_reduction_identities_are_infinities_and_integer_extremes():
    n = qc.var("n", 0, 8)
    x = qc.placeholder((n,), "float32", "x")
    q = qc.placeholder((n,), "int32", "q")
    axis_x, axis_q = qc.reduce_axis(n, "k"), qc.reduce_axis(n, "l")
    outputs = [qc.compute((1,), lambda t: qc.max(x[axis_x], axis=axis_x), "largest"),
               qc.compute((1,), lambda t: qc.min(q[axis_q], axis=axis_q), "smallest")]
    kernel = qc.lower(outputs, name="identities")
    source = qc.build(kernel).source
    assert "= -INFINITY;" in source and "= 2147483647;" in source
    got = qc.build(kernel)(x=np.array([-np.inf, -3.0], np.float32), q=np.array([7, -2], np.int32))
    assert got["largest"][0] == np.float32(-3.0) and got["smallest"][0] == -2


def _pipeline_kernel():
    """The recipes' float64 row softmax, returning its row sums too: three intermediates
    (row_max, exps, row_sum), one of them also an output."""
    _, (_, _, row_sum), softmax = recipes.softmax_program(
        qc.var("n", 1, 64), qc.var("m", 1, 64), "float64"
    )
    return qc.lower([softmax, row_sum], name="pipeline")


@settings(max_examples=examples(25))
@given(n=EXTENTS, m=EXTENTS, seed=SEEDS)
def test_intermediates_are_allocated_and_outputs_returned_by_name(n, m, seed):
    # One compiled kernel for every drawn size: its intermediates' kept blocks are reused
    # by smaller calls and replaced for larger ones.
    kernel = _pipeline_kernel()
    source = qc.build(kernel).source
    assert ("double* restrict row_max = quiltc_take(&quiltc_kept_row_max, sizeof(double) * "
            in source)
    assert "quiltc_give(&quiltc_kept_exps, exps);" in source
    x = random_array(np.random.default_rng(seed), (n, m), "float64")
    exps = np.exp(x - x.max(axis=1, keepdims=True))
    row_sum = exps.sum(axis=1)
    _compare(kernel, {"X": x}, {"softmax": exps / row_sum[:, None], "row_sum": row_sum})


def _local_buffer_kernel():
    """out[i] = 2 * sum_j x[i, j], with the 4-wide row staged in a local array (by hand)."""
    n = symbol("n")
    i, j, jj = symbol("i"), symbol("j"), symbol("jj")
    x = ir.Buffer("x", qc.float32, (n, 4))
    out = ir.Buffer("out", qc.float32, (n,))
    row = ir.Buffer("row", qc.float32, (4,))
    fill = ir.For(j, 4, ir.Store(row, (j,), ir.Load(x, (i, j)) * 2.0))
    total = ir.For(jj, 4, ir.Reduce(out, (i,), "sum", ir.Load(row, (jj,)), (jj,)))
    body = ir.For(i, n, ir.Alloc(row, "local", ir.seq(fill, total)), "parallel")
    return ir.Kernel("local_rows", (x, out), body, ("out",), (ir.ShapeVar(n, 1, 100),))


@given(n=EXTENTS, seed=SEEDS)
def test_local_allocation_is_a_fixed_array_in_its_block(n, seed):
    kernel = _local_buffer_kernel()
    source = qc.build(kernel).source
    assert "        float row[4];" in source
    x = random_array(np.random.default_rng(seed), (n, 4))
    _compare(kernel, {"x": x}, {"out": x.sum(axis=1) * np.float32(2)})


def _hand_built_values_kernel():
    """Values the tensor language does not spell: not, or/and, float64 constants, if/else."""
    n = symbol("n")
    i = symbol("i")
    a = ir.Buffer("a", qc.float64, (n,))
    flags = ir.Buffer("flags", qc.dtypes.boolean, (n,))
    out = ir.Buffer("out", qc.float64, (n,))
    positive = ir.Bin(">", ir.Load(a, (i,)), ir.Const(0.0, qc.float64))
    keep = ir.Bin("or", ir.Un("not", ir.Load(flags, (i,))),
                  ir.Bin("and", positive, ir.Index(i < 3)))
    value = ir.Select(keep, ir.Load(a, (i,)) * ir.Const(0.1, qc.float64),
                      ir.Const(float("inf"), qc.float64))
    branch = ir.If(i < 2, ir.Store(out, (i,), ir.Const(float("-inf"), qc.float64)),
                   ir.Store(out, (i,), value))
    return ir.Kernel("hand_built", (a, flags, out), ir.For(i, n, branch), ("out",),
                     (ir.ShapeVar(n, 1, 100),))


@given(n=EXTENTS, seed=SEEDS)
def test_logical_values_if_else_and_special_constants(n, seed):
    rng = np.random.default_rng(seed)
    a = random_array(rng, (n,), "float64")
    flags = rng.integers(0, 2, size=n).astype(bool)
    keep = ~flags | ((a > 0) & (np.arange(n) < 3))
    reference = np.where(keep, a * 0.1, np.inf)
    reference[:2] = -np.inf
    _compare(_hand_built_values_kernel(), {"a": a, "flags": flags}, {"out": reference})


def test_float_constants_round_trip_exactly():
    """Compared with numpy alone: the interpreter has no spelling for a NaN constant."""
    n = qc.var("n", 1, 8)
    x = qc.placeholder((n,), "float32", "x")
    constants = [0.1, 1 / 3, 1e-8, 3.4028234663852886e38, -2.5, 16777217.0, float("nan")]
    y = qc.compute(
        (n, len(constants)),
        lambda i, c: x[i] * 0.0 + sum(
            (qc.where(sympy.Eq(c, place), value, 0.0) for place, value in enumerate(constants)),
            start=qc.cast(c, "float32") * 0.0,
        ),
        "y",
    )
    fn = qc.build(qc.lower(y, name="constants"))
    assert "0.1f" in fn.source and "NAN" in fn.source and "-2.5f" in fn.source
    got = fn(x=np.ones(1, np.float32))
    expected = np.array([[np.float32(v) for v in constants]], np.float32)
    np.testing.assert_array_equal(got, expected)


def test_loop_kinds_change_pragmas_not_results():
    kernel = _pipeline_kernel()

    def annotate(node):
        if isinstance(node, ir.For) and node.var.name in ("j_1", "j_3"):
            return dataclasses.replace(node, kind="vector")
        if isinstance(node, ir.For) and node.var.name == "i_1":
            return dataclasses.replace(node, kind="parallel")
        return node

    annotated = dataclasses.replace(kernel, body=rewrite(kernel.body, annotate))
    source = qc.build(annotated).source
    assert source.count("#pragma omp simd") == 2 and source.count("#pragma omp parallel for") == 1
    x = random_array(np.random.default_rng(0), (13, 7), "float64")
    want = qc.build(kernel)(X=x)
    got = qc.build(annotated)(X=x)
    np.testing.assert_allclose(got["softmax"], want["softmax"], rtol=1e-12)


def _nan_kernel():
    n = qc.var("n", 1, 64)
    x = qc.placeholder((n,), "float32", "x")
    y = qc.placeholder((n,), "float32", "y")
    k = qc.reduce_axis(n, "k")
    outputs = [qc.compute((n,), lambda i: qc.maximum(x[i], y[i]), "larger"),
               qc.compute((n,), lambda i: qc.minimum(x[i], y[i]), "smaller"),
               qc.compute((1,), lambda t: qc.max(x[k], axis=k), "largest"),
               qc.compute((1,), lambda t: qc.nanmax(x[k], axis=k), "largest_number")]
    return qc.lower(outputs, name="nan_propagation")


@given(n=EXTENTS, seed=SEEDS)
def test_float_max_and_min_propagate_nan_like_numpy(n, seed):
    rng = np.random.default_rng(seed)
    x, y = random_array(rng, (n,)), random_array(rng, (n,))
    x[rng.random(n) < 0.3] = np.nan
    y[rng.random(n) < 0.3] = np.nan
    reference = {"larger": np.maximum(x, y), "smaller": np.minimum(x, y),
                 "largest": np.array([x.max()], np.float32),
                 "largest_number": np.array([np.fmax.reduce(x, initial=-np.inf)], np.float32)}
    _compare(_nan_kernel(), {"x": x, "y": y}, reference)


@functools.cache
def _simd_extremum(combiner):
    """max or min over each row of x, its column loop a SIMD reduction."""
    rows, n = qc.var("rows", 1, 4), qc.var("n", 1, 300)
    x = qc.placeholder((rows, n), "float32", "x")
    k = qc.reduce_axis(n, "k")
    reduce = {"max": qc.max, "min": qc.min, "nanmax": qc.nanmax}[combiner]
    out = qc.compute((rows,), lambda r: reduce(x[r, k], axis=k), "out")
    sch = qc.Schedule(out)
    sch.decompose(out, sch.loops(out)[-1])
    sch.vectorize(sch.loops(out)[-1])
    return qc.build(sch)


@given(rows=st.integers(1, 4), n=st.integers(1, 300),
       combiner=st.sampled_from(["max", "min", "nanmax"]),
       nan_share=st.sampled_from([0.0, 0.003, 0.1, 1.0]), seed=SEEDS)
def test_simd_max_and_min_reductions_propagate_nan_like_numpy(rows, n, combiner, nan_share,
                                                              seed):
    """Each SIMD lane keeps a partial max; a NaN that one lane holds must reach the result
    (OpenMP's own combine of the lanes dropped it) and infinities must not turn into NaN.
    nanmax passes over every NaN, as numpy's fmax does (-inf for a row of NaN only)."""
    rng = np.random.default_rng(seed)
    x = random_array(rng, (rows, n))
    x[rng.random((rows, n)) < 0.02] = np.inf
    x[rng.random((rows, n)) < 0.02] = -np.inf
    x[rng.random((rows, n)) < nan_share] = np.nan
    expected = {"max": x.max(axis=1), "min": x.min(axis=1),
                "nanmax": np.fmax.reduce(x, axis=1, initial=-np.inf)}[combiner]
    np.testing.assert_array_equal(_simd_extremum(combiner)(x=x), expected)


def test_a_select_between_a_value_and_a_nan_aware_minimum_computes_right():
    """Found by the random-program campaign: built with -fno-trapping-math, gcc 12's loop
    if-conversion miscompiled this select at -O3 (about one element in nine wrong, 0
    instead of 0.137); the flags leave that option out."""
    x0 = qc.placeholder((7, 7), "float32", "X0")
    x2 = qc.placeholder((7, 7), "float32", "X2")
    negated = qc.compute((7, 7), lambda i, p: -x0[i, p], "T0")
    threshold = np.float32(0.04355684)
    chosen = qc.compute((7, 7), lambda i, p: qc.where(
        x0[i, p] > threshold, negated[i, p], qc.minimum(x2[i, p], negated[i, p])), "T1")
    fn = qc.build(qc.Schedule(chosen))
    rng = np.random.default_rng(1010)
    for _ in range(20):
        a, b = (rng.uniform(-1, 1, (7, 7)).astype(np.float32) for _ in range(2))
        np.testing.assert_array_equal(fn(X0=a, X2=b), np.where(a > threshold, -a,
                                                                np.minimum(b, -a)))


def test_a_padded_buffer_of_symbolic_size_is_allocated_whole():
    """Found by the random-program campaign: the byte count of T1's allocation printed as
    `sizeof(int32_t) * (16 * M) + (16 * ((2 * M) % 3))`, so the block was a quarter too
    small and the writes past it corrupted the heap."""
    m = qc.var("M", 1, 16)
    x = qc.placeholder((m, 16), "int32", "X0")
    transposed = qc.compute((16, m), lambda j, i: x[i, j], "T1")
    k = qc.reduce_axis(16, "k")
    smallest = qc.compute((m,), lambda i: qc.min(transposed[k, i], axis=k), "T2")
    sch = qc.Schedule(smallest)
    sch.pad_storage("T1", 1, 3)
    fn = qc.build(sch)
    assert "sizeof(int32_t) * ((16 * M) + (16 * ((2 * M) % 3)))" in fn.source
    rng = np.random.default_rng(160)
    for rows in (1, 2, 16):
        values = rng.integers(-8, 8, (rows, 16)).astype(np.int32)
        np.testing.assert_array_equal(fn(X0=values), values.min(axis=1))


def test_a_select_with_a_load_in_one_arm_computes_right():
    """Found by the random-program campaign: written as a plain `?:`, the load in the
    arm was conditional, and gcc 12 vectorized it into masked loads that it miscompiled
    at -O3 (311 of 1950 elements wrong); selects now take both arms as computed values."""
    x0 = qc.placeholder((13, 3), "float32", "X0")
    x1 = qc.placeholder((13, 3), "float32", "X1")
    threshold, constant = np.float32(-0.06721856), np.float32(-1.0407386)
    chosen = qc.compute((13, 3), lambda p, j: qc.where(x0[p, j] > threshold, constant,
                                                       x1[p, j]), "T2")
    sch = qc.Schedule(chosen)
    sch.fuse(*sch.split(sch.loops("T2")[1], 3))
    fn = qc.build(sch)
    rng = np.random.default_rng(1384)
    for _ in range(50):
        a, b = (rng.uniform(-1, 1, (13, 3)).astype(np.float32) for _ in range(2))
        np.testing.assert_array_equal(fn(X0=a, X1=b), np.where(a > threshold, constant, b))


@functools.cache
def _ragged_row_max():
    """Each row's max over its own sequence's products, vectorized over the keys: the
    products' row offsets are table lookups that the key loop does not move."""
    batch = qc.var("B", 0, 8)
    length = qc.ragged_dim("L", batch, 40)
    x = qc.placeholder((batch, length), "float32", "X")
    products = qc.compute((batch, length, length),
                          lambda b, i, j: x[b, i] * x[b, j], "products")
    key = qc.reduce_axis(length, "j")
    row_max = qc.compute((batch, length),
                         lambda b, i: qc.max(products[b, i, key], axis=key), "row_max")
    sch = qc.Schedule(row_max)
    sch.compute_at(products, sch.loops(row_max)[0])
    sch.vectorize(sch.loops(products)[-1])
    sch.decompose(row_max, sch.loops(row_max)[-1])
    sch.vectorize(sch.loops(row_max)[-1])
    return qc.build(sch)


@settings(max_examples=examples(20), deadline=None)
@given(lengths=st.lists(st.sampled_from([0, 1, 40]) | st.integers(0, 40), min_size=1,
                        max_size=4), seed=SEEDS)
def test_table_lookups_a_simd_loop_does_not_move_are_read_once_before_it(lengths, seed):
    # Left inside the loop, a row offset made gcc gather the row's contiguous elements.
    built = _ragged_row_max()
    row_max_loop = built.source.split("reduction(|:quiltc_unordered)", 1)[1].split("}", 1)[0]
    assert re.search(r"products\[[^\]]*quiltc_L_off2_\d+", row_max_loop)
    assert "L_off2[" not in row_max_loop
    assert re.search(r"const int64_t quiltc_L_off2_\d+ = L_off2\[b_1\];", built.source)
    rng = np.random.default_rng(seed)
    rows = [rng.standard_normal(length).astype(np.float32) for length in lengths]
    got = built(X=qc.RaggedArray.from_list(rows))
    for row, maxima in zip(rows, got):
        np.testing.assert_array_equal(maxima, np.outer(row, row).max(axis=1, initial=-np.inf))



def test_a_lookup_two_nested_simd_loops_share_is_read_once_before_the_outer():
    # The inner loop once hoisted the outer one's lookup again and, leaving, forgot the
    # outer's local: the outer loop's exit then failed with a KeyError (a fuzz finding).
    batch = qc.var("B", 1, 6)
    length = qc.ragged_dim("L", batch, 9)
    x = qc.placeholder((batch, length, 2), "float32", "X")
    doubled = qc.compute((batch, length, 2), lambda b, l, h: x[b, l, h] * np.float32(2.0),
                         "doubled")
    sch = qc.Schedule(doubled)
    sch.vectorize("l")
    sch.split_op("b", 8)
    sch.vectorize("h_r")
    built = qc.build(sch)
    outer_body = built.source.split("for (int64_t l_r = 0;", 1)[1]
    assert "const int64_t" not in outer_body and "L_off1[" not in outer_body
    rows = [np.full((n, 2), n, np.float32) for n in (0, 0, 1, 0, 3)]
    got = built(X=qc.RaggedArray.from_list(rows))
    for row, result in zip(rows, got):
        np.testing.assert_array_equal(result, row * np.float32(2.0))


@settings(max_examples=examples(10), deadline=None)
@given(seed=SEEDS)
def test_a_quotient_of_a_negative_dividend_is_floored_as_the_interpreter_does(seed):
    # C's / and % truncate toward zero; an index whose dividend goes negative (here by the
    # program's own arithmetic) must still floor, as the interpreter and numpy do.
    x = qc.placeholder((8,), "int32", "X")
    picked = qc.compute((8,), lambda i: x[4 + (-i) // 2] * 100 + x[(3 - i) % 8], "picked")
    sch = qc.Schedule(picked)
    built = qc.build(sch)
    assert "quiltc_floordiv_index(" in built.source and "quiltc_mod_index(" in built.source
    values = np.random.default_rng(seed).integers(-9, 9, 8).astype(np.int32)
    positions = np.arange(8)
    expected = values[4 + (-positions) // 2] * 100 + values[(3 - positions) % 8]
    np.testing.assert_array_equal(built(X=values), expected)
    np.testing.assert_array_equal(interp.run(sch.kernel, X=values)["picked"], expected)

@functools.cache
def _row_sums(dtype):
    """Each row's sum and sum of squares over a size that may be shorter than, equal to or
    longer than a block of partial sums, vectorized over the row."""
    rows, columns = qc.var("R", 1, 8), qc.var("C", 0, 300)
    x = qc.placeholder((rows, columns), dtype, "X")
    column = qc.reduce_axis(columns, "c")
    sums = qc.compute((rows,), lambda r: qc.sum(x[r, column] * x[r, column], axis=column), "S")
    sch = qc.Schedule(sums)
    sch.vectorize(sch.loops(sums)[-1])
    return qc.build(sch)


@pytest.mark.parametrize(("columns", "dtype", "width"), [
    (768, "float32", 64), (256, "float32", 64), (128, "float32", 32), (64, "float32", 16),
    (40, "float32", 16), (24, "float32", None), (64, "float64", 16), (768, "float64", 32)])
def test_a_known_short_row_is_summed_in_narrower_blocks(columns, dtype, width):
    # Adding the partial sums together costs as much as one block, so a row of fewer than
    # four 256-byte blocks takes narrower ones, down to a cache line (none for a row
    # shorter than two of those).
    x = qc.placeholder((8, columns), dtype, "X")
    column = qc.reduce_axis(columns, "c")
    sums = qc.compute((8,), lambda r: qc.sum(x[r, column], axis=column), "S")
    sch = qc.Schedule(sums)
    sch.decompose(sums, sch.loops(sums)[-1])
    sch.vectorize(sch.loops(sums)[-1])
    built = qc.build(sch)
    blocks = re.findall(r"quiltc_partial\[(\d+)\] = \{0\}", built.source)
    assert blocks == ([] if width is None else [str(width)])
    values = random_array(np.random.default_rng(0), (8, columns), dtype)
    rtol, atol = tolerance(np.dtype(dtype))
    np.testing.assert_allclose(built(X=values), values.astype(np.float64).sum(axis=1),
                               rtol=rtol, atol=atol * columns)


@settings(max_examples=examples(20), deadline=None)
@given(columns=st.sampled_from([0, 1, 63, 64, 65, 127, 128, 129, 300]) | st.integers(0, 300),
       dtype=st.sampled_from(["float32", "float64"]), seed=SEEDS)
def test_a_simd_float_sum_adds_blocks_into_partial_sums(columns, dtype, seed):
    # One vector accumulator made every addition wait on the one before it.
    built = _row_sums(dtype)
    assert "quiltc_partial[c - quiltc_block] +=" in built.source
    x = random_array(np.random.default_rng(seed), (3, columns), dtype)
    rtol, atol = tolerance(np.dtype(dtype))
    np.testing.assert_allclose(built(X=x), (x.astype(np.float64) ** 2).sum(axis=1),
                               rtol=rtol, atol=atol * max(columns, 1))
