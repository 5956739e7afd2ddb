"""Operators on ragged batches (ragged in, ragged out), each a scheduled C kernel.

Token-wise operators (elementwise, layer norm; linear layers in `dense.py`) do not care
which sequence a token belongs to, so they run as dense kernels over the flat `(total,
features)` values of a `qc.RaggedArray`: no padding at all. Only attention needs the
per-sequence structure (`quiltc.attention`); vgemm and trmm run matrices of different
sizes.

    from quiltc import ops
    x = qc.RaggedArray.from_list([np.ones((3, 64), np.float32), np.ones((5, 64), np.float32)])
    y = ops.bias_gelu(x, np.zeros(64, np.float32))     # a RaggedArray with x's lengths

Kernels are built once per configuration (sizes and flags) and cached; each operator has
a plain numpy per-sequence reference (`reference_*`) that the tests compare against.
"""

import functools

import numpy as np

from ..driver.build import build
from ..driver.schedule import Schedule
from ..ir.arrays import RaggedArray
from ..ir.errors import ShapeError
from ..lang import tensor as qc
from . import arguments

MAX_TOKENS = 1 << 22
MAX_BATCH = 4096
GELU_SCALE = np.float32(1.5957691216057308)  # 2 * sqrt(2 / pi)
GELU_CUBIC = np.float32(0.044715)


def _vectorize_rows(sch, tensor):
    """Rows on parallel threads, the feature loop SIMD."""
    loops = sch.loops(tensor)
    if len(loops) > 1:
        sch.vectorize(loops[-1])
    sch.parallel(loops[0])


@functools.cache
def _add_kernel(features):
    tokens = qc.var("T", 0, MAX_TOKENS)
    x = qc.placeholder((tokens, features), "float32", "X")
    y = qc.placeholder((tokens, features), "float32", "Y")
    out = qc.compute((tokens, features), lambda t, f: x[t, f] + y[t, f], "out")
    sch = Schedule(out, name="ragged_add")
    _vectorize_rows(sch, out)
    return build(sch)


def gelu_value(x):
    """tanh-GELU, `x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3))` (torch's approximate="tanh"),
    written with exp so the C kernel keeps it in SIMD registers."""
    return x / (np.float32(1.0) + qc.exp(-GELU_SCALE * (x + GELU_CUBIC * x * x * x)))


@functools.cache
def _bias_gelu_kernel(features):
    tokens = qc.var("T", 0, MAX_TOKENS)
    x = qc.placeholder((tokens, features), "float32", "X")
    bias = qc.placeholder((features,), "float32", "bias")
    out = qc.compute((tokens, features), lambda t, f: gelu_value(x[t, f] + bias[f]), "out")
    sch = Schedule(out, name="bias_gelu")
    _vectorize_rows(sch, out)
    return build(sch)


@functools.cache
def _add_layer_norm_kernel(features, eps):
    """out = layer_norm(X + bias + residual) * gamma + beta over the feature axis. Every
    stage is computed in the token loop: the row's sum and sum of squares are SIMD
    reductions (the C target adds them in blocks of partial sums), 1 / sqrt(variance +
    eps) is computed once a row, the summed row and the row's statistics live in local
    storage (fold_storage) and the centred row in the output's row (share_storage).

    Before, the sums ran over lane-strided partial sums kept in memory and the division
    by the root ran once an element, with the summed and centred rows in whole-batch
    buffers: 10.9 ms for 11,200 tokens of 512, 2.1-2.3 ms after (2-core AVX2 host)."""
    tokens = qc.var("T", 0, MAX_TOKENS)
    x = qc.placeholder((tokens, features), "float32", "X")
    residual = qc.placeholder((tokens, features), "float32", "residual")
    bias, gamma, beta = (qc.placeholder((features,), "float32", n)
                         for n in ("bias", "gamma", "beta"))
    scale = np.float32(1.0 / features)
    summed = qc.compute((tokens, features), lambda t, f: x[t, f] + bias[f] + residual[t, f],
                        "summed")
    f_total = qc.reduce_axis(features, "f")
    total = qc.compute((tokens,), lambda t: qc.sum(summed[t, f_total], axis=f_total), "total")
    centered = qc.compute((tokens, features),
                          lambda t, f: summed[t, f] - total[t] * scale, "centered")
    f_squares = qc.reduce_axis(features, "f")
    squares = qc.compute((tokens,), lambda t: qc.sum(
        centered[t, f_squares] * centered[t, f_squares], axis=f_squares), "squares")
    spread = qc.compute((tokens,), lambda t: np.float32(1) / qc.sqrt(
        squares[t] * scale + np.float32(eps)), "spread")
    out = qc.compute((tokens, features),
                     lambda t, f: centered[t, f] * spread[t] * gamma[f] + beta[f], "out")
    sch = Schedule(out, name="add_layer_norm")
    row = sch.loops(out)[0]
    # Consumers first, as in recipes.schedule_softmax: one token's row stays in cache.
    for stage in (spread, squares, centered, total, summed):
        sch.compute_at(stage, row)
    for reduction in (total, squares):
        sch.decompose(reduction, sch.loops(reduction)[-1])
    for stage in (summed, total, centered, squares, out):
        loops = sch.loops(stage)
        if len(loops) > 1:  # one feature leaves the token loop alone
            sch.vectorize(loops[-1])
    for stage in (summed, total, squares, spread):
        sch.fold_storage(stage, row)
    sch.share_storage(centered, out)
    sch.parallel(row)
    return build(sch)


def sequence_runs(costs, budget, most=MAX_BATCH):
    """(first, last) bounds of runs of consecutive sequences, in order, covering every
    one: each run as long as its `costs` (one per sequence) add up to at most `budget`,
    one sequence at least, and at most `most` sequences."""
    first, spent = 0, 0
    for row, cost in enumerate(np.asarray(costs).tolist()):
        if row > first and (spent + cost > budget or row - first == most):
            yield first, row
            first, spent = row, 0
        spent += cost
    if first < len(costs):
        yield first, len(costs)


def _same_rows(x, values):
    return RaggedArray(values, x.lengths)


def _token_features(x, name="x"):
    """`x` checked as a RaggedArray of (total, features) float32 values, and features."""
    x = arguments.ragged(name, x, ("features",))
    return x, x.values.shape[1]


def _run_token_kernel(kernel, x, out, **inputs):
    """A token-wise kernel over `x`'s flat values, written into `out` when given (the
    kernel copies an input that shares memory with it); a RaggedArray with x's rows."""
    out = arguments.out(out, x.values.shape)
    target = arguments.direct(out)
    written = kernel(X=x.values, **inputs, out={} if target is None else {"out": target})
    return _same_rows(x, arguments.write(out, written))


def add(x, y):
    """x + y for two RaggedArrays with the same lengths and (total, features) values."""
    x, features = _token_features(x)
    y = arguments.ragged("y", y, (features,))
    x.check_same_rows(y, ("x", "y"))
    return _same_rows(x, _add_kernel(features)(X=x.values, Y=y.values))


def bias_gelu(x, bias, out=None):
    """tanh-GELU(x + bias) on a RaggedArray of (total, features) values; `out`, when
    given, is the flat array to write (it may be x.values itself)."""
    x, features = _token_features(x)
    bias = arguments.dense("bias", bias, (features,))
    return _run_token_kernel(_bias_gelu_kernel(features), x, out, bias=bias)


@functools.cache
def _bias_kernel(features):
    tokens = qc.var("T", 0, MAX_TOKENS)
    x = qc.placeholder((tokens, features), "float32", "X")
    bias = qc.placeholder((features,), "float32", "bias")
    out = qc.compute((tokens, features), lambda t, f: x[t, f] + bias[f], "out")
    sch = Schedule(out, name="add_bias")
    _vectorize_rows(sch, out)
    return build(sch)


def add_bias(x, bias, out=None):
    """x + bias (broadcast over tokens) on a RaggedArray of (total, features) values."""
    x, features = _token_features(x)
    bias = arguments.dense("bias", bias, (features,))
    return _run_token_kernel(_bias_kernel(features), x, out, bias=bias)


def add_layer_norm(x, residual, gamma, beta, bias=None, eps=1e-5, out=None):
    """layer_norm(x + bias + residual) over the features of RaggedArrays (bias optional);
    `out`, when given, is the flat (total, features) array to write."""
    x, features = _token_features(x)
    residual = arguments.ragged("residual", residual, (features,))
    x.check_same_rows(residual, ("x", "residual"))
    gamma, beta = (arguments.dense(name, value, (features,))
                   for name, value in (("gamma", gamma), ("beta", beta)))
    bias = np.zeros(features, np.float32) if bias is None else arguments.dense(
        "bias", bias, (features,))
    kernel = _add_layer_norm_kernel(features, arguments.non_negative_real("eps", eps))
    return _run_token_kernel(kernel, x, out, residual=residual.values, bias=bias, gamma=gamma,
                             beta=beta)


def reference_gelu(x):
    """numpy tanh-GELU in float32."""
    inner = GELU_SCALE * (x + GELU_CUBIC * x * x * x)
    return (x / (np.float32(1.0) + np.exp(-inner))).astype(np.float32)


def reference_layer_norm(x, gamma, beta, eps=1e-5):
    """numpy layer norm over the last axis."""
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return ((x - mean) / np.sqrt(variance + np.float32(eps)) * gamma + beta).astype(np.float32)


@functools.cache
def _vgemm_kernel(max_rows, inner, cols):
    batch = qc.var("B", 0, MAX_BATCH)
    rows = qc.ragged_dim("M", batch, max_rows)
    a = qc.placeholder((batch, rows, inner), "float32", "A")
    w = qc.placeholder((batch, inner, cols), "float32", "W")
    k = qc.reduce_axis(inner, "k")
    c = qc.compute((batch, rows, cols), lambda b, m, n: qc.sum(a[b, m, k] * w[b, k, n], axis=k),
                   "C")
    sch = Schedule(c, name="vgemm")
    b, m, n, reduction = sch.loops(c)
    sch.decompose(c, m)
    sch.reorder(reduction, n)
    sch.vectorize(n)
    sch.parallel(b)
    return build(sch)


def vgemm(a, weights, max_rows):
    """A batch of matmuls of different sizes: row b of the result is a[b] @ weights[b],
    where `a` is a RaggedArray of (rows_b, inner) matrices (rows_b <= max_rows) and
    `weights` a (batch, inner, cols) array."""
    a = arguments.ragged("a", a, ("inner",))
    weights = arguments.dense("weights", weights, (a.batch, a.values.shape[1], "cols"))
    max_rows = arguments.positive_int("max_rows", max_rows)
    if a.max_length > max_rows:
        raise ShapeError(f"argument 'a' has a matrix of {a.max_length} rows, over max_rows="
                         f"{max_rows}; pass max_rows={a.max_length} or more")
    if a.batch > MAX_BATCH:
        raise ShapeError(f"argument 'a' holds {a.batch} matrices, over the {MAX_BATCH} one "
                         "call takes; split the batch")
    return _vgemm_kernel(max_rows, weights.shape[1], weights.shape[2])(A=a, W=weights)


@functools.cache
def _trmm_kernel():
    size = qc.var("N", 0, 1 << 16)
    cols = qc.var("M", 0, 1 << 16)
    a = qc.placeholder((size, size), "float32", "A")
    x = qc.placeholder((size, cols), "float32", "X")
    k = qc.reduce_axis(size, "k")
    c = qc.compute((size, cols), lambda i, j: qc.sum(
        qc.where(k <= i, a[i, k], np.float32(0.0)) * x[k, j], axis=k), "C")
    sch = Schedule(c, name="trmm")
    i, j, reduction = sch.loops(c)
    # N may be 0, so lowering already put the initialisation in a loop nest of its own.
    sch.reorder(reduction, j)
    sch.vectorize(j)
    sch.parallel(i)
    return build(sch)


def trmm(a, x):
    """tril(a) @ x: only the lower triangle of the square `a` is read."""
    a = arguments.dense("a", a, ("size", "size"))
    x = arguments.dense("x", x, (a.shape[0], "cols"))
    return _trmm_kernel()(A=a, X=x)
