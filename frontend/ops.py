"""Operators on ragged batches (ragged in, ragged out), each a scheduled C kernel.

Token-wise operators (elementwise, layer norm, linear layers) do not care which sequence a
token belongs to, so they run as dense kernels over the flat `(total, features)` values of
a `qc.RaggedArray`: no padding at all. Only attention needs the per-sequence structure; it
runs over `qc.ragged_dim` loops whose extents are each sequence's own length.

    from quiltc import ops
    x = qc.RaggedArray.from_list([np.ones((3, 64), np.float32), np.ones((5, 64), np.float32)])
    y = ops.bias_gelu(x, np.zeros(64, np.float32))     # a RaggedArray with x's lengths

Kernels are built once per configuration (sizes and flags) and cached; each operator has
a plain numpy per-sequence reference (`reference_*`) that the tests compare against.
"""

import functools

import numpy as np

from . import lang as qc
from .build import build
from .program import Schedule
from .ragged import RaggedArray

MAX_TOKENS = 1 << 22
MAX_BATCH = 4096
ROW_BLOCK = 8
# Rows per call of the linear kernel: its A block (1024 x features) stays in L2 while
# every column panel of the weight passes over it.
ROWS_PER_CALL = 1024
# Query-key pairs per head in one attention call: about 5 MB per L x L intermediate at
# 8 heads (measured best of 50k, 150k, 300k, 600k and the whole batch on race lengths).
GROUP_QUERY_KEY_PAIRS = 150_000
# Keys per register tile of attention scores, and float lanes per SIMD vector (AVX-512).
SCORE_TILE = 32
SIMD_WIDTH = 16
GELU_SCALE = np.float32(1.5957691216057308)  # 2 * sqrt(2 / pi)
GELU_CUBIC = np.float32(0.044715)


def _vectorize_rows(sch, tensor):
    """Rows on parallel threads, the feature loop SIMD."""
    loops = sch.loops(tensor)
    if len(loops) > 1:
        sch.vectorize(loops[-1])
    sch.parallel(loops[0])


@functools.lru_cache(maxsize=None)
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


@functools.lru_cache(maxsize=None)
def _bias_gelu_kernel(features):
    tokens = qc.var("T", 0, MAX_TOKENS)
    x = qc.placeholder((tokens, features), "float32", "X")
    bias = qc.placeholder((features,), "float32", "bias")
    out = qc.compute((tokens, features), lambda t, f: gelu_value(x[t, f] + bias[f]), "out")
    sch = Schedule(out, name="bias_gelu")
    _vectorize_rows(sch, out)
    return build(sch)


def _lane_sum(values, tokens, features, lanes, name):
    """Row sums of `values` (tokens, features) in two stages: `lanes` partial sums over
    strided features (a reduction SIMD can run: the lanes are independent), then their
    sum. Returns (partial, total)."""
    strided = qc.reduce_axis(features // lanes, "o")
    partial = qc.compute((tokens, lanes), lambda t, lane: qc.sum(
        values(t, strided * lanes + lane), axis=strided), f"{name}_lanes")
    lane = qc.reduce_axis(lanes, "lane")
    return partial, qc.compute((tokens,), lambda t: qc.sum(partial[t, lane], axis=lane), name)


@functools.lru_cache(maxsize=None)
def _add_layer_norm_kernel(features, eps):
    """out = layer_norm(X + bias + residual) * gamma + beta over the feature axis."""
    tokens = qc.var("T", 0, MAX_TOKENS)
    x = qc.placeholder((tokens, features), "float32", "X")
    residual = qc.placeholder((tokens, features), "float32", "residual")
    bias, gamma, beta = (qc.placeholder((features,), "float32", n) for n in ("bias", "gamma", "beta"))
    lanes = 16 if features % 16 == 0 else 1
    summed = qc.compute((tokens, features), lambda t, f: x[t, f] + bias[f] + residual[t, f], "summed")
    total_lanes, total = _lane_sum(lambda t, f: summed[t, f], tokens, features, lanes, "total")
    centered = qc.compute((tokens, features),
                          lambda t, f: summed[t, f] - total[t] * np.float32(1.0 / features), "centered")
    squares_lanes, squares = _lane_sum(lambda t, f: centered[t, f] * centered[t, f], tokens,
                                       features, lanes, "squares")
    out = qc.compute((tokens, features), lambda t, f: centered[t, f] * gamma[f] / qc.sqrt(
        squares[t] * np.float32(1.0 / features) + np.float32(eps)) + beta[f], "out")
    sch = Schedule(out, name="add_layer_norm")
    row = sch.loops(out)[0]
    # Consumers first, as in recipes.schedule_softmax: one token's row stays in cache.
    for stage in (squares, squares_lanes, centered, total, total_lanes, summed):
        sch.compute_at(stage, row)
    for reduction in (total, squares):
        sch.decompose(reduction, sch.loops(reduction)[-1])
    for partial in (total_lanes, squares_lanes) if lanes > 1 else ():
        lane, strided = sch.loops(partial)[-2:]
        sch.decompose(partial, lane)
        sch.reorder(strided, lane)
        sch.vectorize(lane)
    if features > 1:
        for stage in (summed, centered, out):
            sch.vectorize(sch.loops(stage)[-1])
    sch.parallel(row)
    return build(sch)


@functools.lru_cache(maxsize=None)
def _linear_kernel(in_features, out_features):
    """C[t, r, :] = A[t, r, :] @ W over blocks of ROW_BLOCK tokens, scheduled as
    recipes.schedule_matmul (8 x 32 register block, 16-wide SIMD, parallel column panels);
    the block dim being its own exact dim keeps every guard out of the inner loop."""
    blocks = qc.var("T8", 0, MAX_TOKENS // ROW_BLOCK)
    a = qc.placeholder((blocks, ROW_BLOCK, in_features), "float32", "A")
    w = qc.placeholder((in_features, out_features), "float32", "W")
    k = qc.reduce_axis(in_features, "k")
    c = qc.compute((blocks, ROW_BLOCK, out_features),
                   lambda t, r, j: qc.sum(a[t, r, k] * w[k, j], axis=k), "C")
    sch = Schedule(c, name="linear")
    block, row, col, reduction = sch.loops(c)
    panel, col_inner = sch.split(col, 32)
    sch.reorder(panel, block, reduction, row, col_inner)
    local = sch.cache_write(c, "local", at=block)
    sch.decompose(local, reduction)
    vectors, lanes = sch.split(col_inner, 16)
    sch.unroll(row)
    sch.unroll(vectors)
    sch.vectorize(lanes)
    sch.parallel(panel)
    return build(sch)


def padded_rows(tokens):
    """Rows to allocate for `tokens` rows of a linear layer's input: a multiple of 8."""
    return -(-tokens // ROW_BLOCK) * ROW_BLOCK


def linear(a, weight, out=None):
    """`a @ weight` for a flat (tokens, in) float32 array and an (in, out) weight.

    `a` may have rows beyond the real tokens up to a multiple of 8 (see `padded_rows`),
    which spares a copy; `out`, when given, has as many rows as `a`."""
    tokens, in_features = a.shape
    out_features = weight.shape[1]
    if tokens % ROW_BLOCK:
        grown = np.zeros((padded_rows(tokens), in_features), np.float32)
        grown[:tokens] = a
        return linear(grown, weight)[:tokens]
    if out is None:
        out = np.empty((tokens, out_features), np.float32)
    kernel = _linear_kernel(in_features, out_features)
    for start in range(0, tokens, ROWS_PER_CALL):
        stop = min(tokens, start + ROWS_PER_CALL)
        kernel(A=a[start:stop].reshape(-1, ROW_BLOCK, in_features), W=weight,
               out={"C": out[start:stop].reshape(-1, ROW_BLOCK, out_features)})
    return out


def _same_rows(x, values):
    return RaggedArray(values, x.lengths)


def add(x, y):
    """x + y for two RaggedArrays with the same lengths and (total, features) values."""
    x.check_same_rows(y, ("x", "y"))
    return _same_rows(x, _add_kernel(x.values.shape[1])(X=x.values, Y=y.values))


def bias_gelu(x, bias, out=None):
    """tanh-GELU(x + bias) on a RaggedArray of (total, features) values; `out`, when
    given, is the flat array to write (it may be x.values itself)."""
    written = _bias_gelu_kernel(x.values.shape[1])(X=x.values, bias=bias,
                                                   out={} if out is None else {"out": out})
    return _same_rows(x, written)


@functools.lru_cache(maxsize=None)
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
    written = _bias_kernel(x.values.shape[1])(X=x.values, bias=bias,
                                              out={} if out is None else {"out": out})
    return _same_rows(x, written)


def add_layer_norm(x, residual, gamma, beta, bias=None, eps=1e-5, out=None):
    """layer_norm(x + bias + residual) over the features of RaggedArrays (bias optional);
    `out`, when given, is the flat (total, features) array to write."""
    features = x.values.shape[1]
    bias = np.zeros(features, np.float32) if bias is None else bias
    kernel = _add_layer_norm_kernel(features, float(eps))
    written = kernel(X=x.values, residual=residual.values, bias=bias, gamma=gamma, beta=beta,
                     out={} if out is None else {"out": out})
    return _same_rows(x, written)


def reference_gelu(x):
    """numpy tanh-GELU in float32."""
    inner = GELU_SCALE * (x + GELU_CUBIC * x * x * x)
    return (x / (np.float32(1.0) + np.exp(-inner))).astype(np.float32)


def reference_layer_norm(x, gamma, beta, eps=1e-5):
    """numpy layer norm over the last axis."""
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return ((x - mean) / np.sqrt(variance + np.float32(eps)) * gamma + beta).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _vgemm_kernel(max_rows, inner, cols):
    batch = qc.var("B", 0, MAX_BATCH)
    rows = qc.ragged_dim("M", batch, max_rows)
    a = qc.placeholder((batch, rows, inner), "float32", "A")
    w = qc.placeholder((batch, inner, cols), "float32", "W")
    k = qc.reduce_axis(inner, "k")
    c = qc.compute((batch, rows, cols), lambda b, m, n: qc.sum(a[b, m, k] * w[b, k, n], axis=k), "C")
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
    return _vgemm_kernel(max_rows, weights.shape[1], weights.shape[2])(A=a, W=weights)


@functools.lru_cache(maxsize=None)
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
    return _trmm_kernel()(A=a, X=x)


def attention_program(heads, head_size, max_length, causal):
    """Stages (by name) and output of multi-head attention over one (batch, L, 3 * heads *
    head_size) QKV buffer: queries, keys and values side by side, as one fused projection
    writes them. With `causal`, "scores" are the raw products and "masked" the masked ones."""
    width = heads * head_size
    batch = qc.var("B", 0, MAX_BATCH)
    length = qc.ragged_dim("L", batch, max_length)
    qkv = qc.placeholder((batch, length, 3 * width), "float32", "QKV")
    scale = np.float32(1.0 / np.sqrt(head_size))
    # Keys transposed, so the score loop over keys is contiguous and runs in SIMD.
    keys = qc.compute((batch, heads, head_size, length),
                      lambda b, h, d, j: qkv[b, j, width + h * head_size + d], "keys_t")
    d = qc.reduce_axis(head_size, "d")

    def score(b, h, i, j):
        return qc.sum(qkv[b, i, h * head_size + d] * keys[b, h, d, j], axis=d)

    scores = qc.compute((batch, heads, length, length), score, "scores")
    if causal:
        raw = scores
        scores = qc.compute((batch, heads, length, length), lambda b, h, i, j: qc.where(
            j <= i, raw[b, h, i, j], np.float32(-np.inf)), "masked")
    j_max = qc.reduce_axis(length, "j")
    row_max = qc.compute((batch, heads, length),
                         lambda b, h, i: qc.max(scores[b, h, i, j_max], axis=j_max), "row_max")
    exps = qc.compute((batch, heads, length, length),
                      lambda b, h, i, j: qc.exp((scores[b, h, i, j] - row_max[b, h, i]) * scale), "exps")
    j_sum = qc.reduce_axis(length, "j")
    row_sum = qc.compute((batch, heads, length),
                         lambda b, h, i: qc.sum(exps[b, h, i, j_sum], axis=j_sum), "row_sum")
    j_value = qc.reduce_axis(length, "j")
    # Each head's values gathered contiguously: the context loop then streams them.
    values = qc.compute((batch, heads, length, head_size),
                        lambda b, h, j, e: qkv[b, j, 2 * width + h * head_size + e], "values")
    context = qc.compute((batch, heads, length, head_size), lambda b, h, i, e: qc.sum(
        exps[b, h, i, j_value] * values[b, h, j_value, e], axis=j_value), "context")
    out = qc.compute((batch, length, heads, head_size),
                     lambda b, i, h, e: context[b, h, i, e] / row_sum[b, h, i], "attention")
    stages = {"keys": keys, "scores": raw if causal else scores, "row_max": row_max,
              "exps": exps, "row_sum": row_sum, "values": values, "context": context}
    if causal:
        stages["masked"] = scores
    return stages, out


@functools.lru_cache(maxsize=None)
def _attention_kernel(heads, head_size, max_length, causal):
    """Each stage a loop nest of its own, parallel over (sequence, head) pairs, inner loops
    in SIMD.

    Scores come in whole tiles of SCORE_TILE keys summed in registers over the head's
    depth (split_op, then cache_write), the last keys of a row one vector pass per depth
    step; each query row's context sums in registers over the keys. The softmax stages are
    not computed inside the query-row loop (the way recipes.schedule_softmax does it):
    compute_at refuses a reduction whose initialisation stands apart."""
    stages, out = attention_program(heads, head_size, max_length, causal)
    sch = Schedule(out, name="ragged_attention")
    _schedule_scores(sch, stages["scores"], max_length)
    _schedule_context(sch, stages["context"], head_size)
    for name in ("keys", "exps", "values", "masked"):
        if name in stages:
            sch.vectorize(sch.loops(stages[name])[-1])
    sch.vectorize(sch.loops(out)[-1])
    # One parallel loop a stage over every (sequence, head) pair, or over every token for
    # the output (a ragged fusion): a parallel loop inside the batch loop would wake the
    # threads once per sequence and stage, which costs more than short rows compute.
    for tensor in (*stages.values(), out):
        outer, inner = sch.loops(tensor)[:2]
        sch.parallel(sch.fuse(outer, inner))
    return build(sch)


def _schedule_scores(sch, scores, max_length):
    """Query-key products: whole tiles of SCORE_TILE keys in registers, the rest (or every
    key, for rows shorter than a tile) accumulated in SIMD over contiguous keys."""
    batch, head, query, key, depth = sch.loops(scores)
    if max_length >= SCORE_TILE:
        key_tile, key_lane, key = sch.split_op(key, SCORE_TILE)
        sch.reorder(depth, key_lane)
        tile = sch.cache_write(scores, "local", at=key_tile)
        sch.decompose(tile, depth)
        vectors, lanes = sch.split(key_lane, SIMD_WIDTH)
        sch.unroll(vectors)
        sch.vectorize(lanes)
        depth = sch.loops(scores)[-1]
    sch.reorder(depth, key)
    sch.vectorize(key)


def _schedule_context(sch, context, head_size):
    """Probabilities times values: each query row's context sums over the keys, in
    registers when the head splits into whole SIMD vectors."""
    batch, head, query, value_depth, key = sch.loops(context)
    sch.reorder(key, value_depth)
    if head_size % SIMD_WIDTH == 0:
        row = sch.cache_write(context, "local", at=query)
        sch.decompose(row, key)
        vectors, value_depth = sch.split(value_depth, SIMD_WIDTH)
        sch.unroll(vectors)
    sch.vectorize(value_depth)


def attention(qkv, heads, head_size, max_length, causal=False, out=None):
    """Masked multi-head self-attention of each sequence of a RaggedArray whose values
    are (total, 3 * heads * head_size): queries, keys and values side by side. Returns a
    RaggedArray of (total, heads * head_size) values (written into `out` when given);
    `causal` lets token i see keys j <= i only."""
    kernel = _attention_kernel(heads, head_size, max_length, bool(causal))
    if out is None:
        out = np.empty((qkv.total, heads * head_size), np.float32)
    offsets, lengths = qkv.offsets, qkv.lengths
    for first, last in _sequence_groups(lengths):
        rows = slice(offsets[first], offsets[last])
        group_lengths = lengths[first:last]
        target = RaggedArray(out[rows].reshape(-1, heads, head_size), group_lengths)
        kernel(QKV=RaggedArray(qkv.values[rows], group_lengths), out={"attention": target})
    return RaggedArray(out, lengths)


def _sequence_groups(lengths):
    """(first, last) bounds of runs of consecutive sequences with at most
    GROUP_QUERY_KEY_PAIRS query-key pairs together (one sequence at least).

    One kernel call per group: the group's length x length intermediates then stay in
    cache, and malloc reuses their memory between calls instead of mapping fresh pages
    (a whole batch's scores run to hundreds of MB)."""
    first, pairs = 0, 0
    for row, length in enumerate(lengths.tolist()):
        if row > first and pairs + length * length > GROUP_QUERY_KEY_PAIRS:
            yield first, row
            first, pairs = row, 0
        pairs += length * length
    if first < len(lengths):
        yield first, len(lengths)


def reference_attention(rows, heads, head_size, causal=False):
    """Per-sequence numpy attention: for each (length, 3 * heads * head_size) row, the
    (length, heads * head_size) softmax(Q K^T / sqrt(head_size)) V of every head."""
    width = heads * head_size
    results = []
    for row in rows:
        length = row.shape[0]
        split = row.reshape(length, 3, heads, head_size).transpose(1, 2, 0, 3)
        queries, keys, values = split[0], split[1], split[2]
        scores = queries @ keys.transpose(0, 2, 1) * np.float32(1.0 / np.sqrt(head_size))
        if causal:
            scores = np.where(np.tril(np.ones((length, length), bool)), scores, np.float32(-np.inf))
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True, initial=-np.inf))
        weights = scores / scores.sum(axis=-1, keepdims=True)
        results.append((weights @ values).transpose(1, 0, 2).reshape(length, width).astype(np.float32))
    return results
