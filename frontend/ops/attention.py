"""Masked multi-head self-attention over a ragged batch: each sequence attends over its
own length, with no padding. Scores, softmax and context are stages over
`qc.ragged_dim` loops whose extents are each sequence's length; the kernel runs a few
sequences per call so its length x length intermediates stay in cache.

    from quiltc import attention
    out = attention.attention(qkv, heads=8, head_size=64, max_length=512)   # RaggedArray
"""

import functools

import numpy as np

from ..driver.build import build
from ..driver.schedule import Schedule
from ..ir.arrays import RaggedArray
from ..lang import tensor as qc
from ..runtime_c.host import isa_for
from ..schedule.nest import loops_on_path, writer_paths
from . import arguments
from .ragged import MAX_BATCH, sequence_runs

# Query-key pairs per head in one attention call: about 38 MB per L x L intermediate at
# 8 heads. With the kernel's intermediates kept between calls, larger groups won: fewer
# calls, each waiting once on its last (sequence, head) pair. 1.2M against 150k: RACE
# 1.15x, wiki_512 1.09-1.12x, squadv2 1.12x, MRPC equal (32 and 128 sequences, 2-core
# AVX2 host; 2.4M no better). Before, 150k had measured best: each call mapped fresh pages.
GROUP_QUERY_KEY_PAIRS = 1_200_000
# Key vectors per register block of attention scores: 32 keys with AVX-512, 16 with AVX2.
SCORE_VECTORS = 2
# Keys per tile of the keys' transpose: 16 float32 fill a 64-byte cache line of keys_t.
# Against the whole key loop at once: RACE 1.07x, wiki_512 1.05x, squadv2 1.08x, MRPC
# 1.08x (whole attention, 32 sequences, 2-core AVX2 host, alternating A/B); 8 and 32 keys
# gained less (1.04-1.06x, 1.01-1.03x). Whole tiles and a remainder (split_op) rather
# than a guard on every element, which gcc copied one scalar at a time: another 1.05x
# on RACE and wiki_512, 1.11x on squadv2, 1.22x on MRPC.
KEY_TILE = 16
# Queries per register block of scores, at most: each key vector loaded serves every query
# of the block. 6 queries fill AVX2's 12 accumulators with their 2 key vectors and one
# broadcast beside them in its 16 registers; its earlier 3 x 32 keys reloaded every key
# vector for each query, and the 6 x 16 blocks measured 1.17x on RACE, 1.29x on wiki_512
# and 1.11-1.15x on squadv2 and MRPC (whole attention, 32 sequences, alternating A/B).
# With AVX-512, 6 x 32 keys: its earlier 4 x 32 measured 1.2x the one-query tiles on
# race; 6 rows (12 of its 16 accumulators) are not measured there.
SCORE_ROWS = 6
# Query rows per register block of context, at most: each key's value vectors loaded once
# for the block's rows (one row at a time waited on its accumulators). With a head of 64:
# 4 rows x 4 vectors with AVX-512 (1.17x one row on RACE, 1.12x on MRPC), 6 rows x 2
# vectors with AVX2 (_context_block; 1.08x its 3 x 4 with reloaded operands on RACE).
CONTEXT_ROWS = 6


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
                         lambda b, h, i: qc.nanmax(scores[b, h, i, j_max], axis=j_max),
                         "row_max")
    exps = qc.compute((batch, heads, length, length),
                      lambda b, h, i, j: qc.exp_nonpositive(
                          (scores[b, h, i, j] - row_max[b, h, i]) * scale),
                      "exps")
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


@functools.cache
def _attention_kernel(heads, head_size, max_length, causal, lanes=None):
    """One parallel loop over (sequence, head) pairs; inside it every stage of that pair in
    turn, inner loops in SIMD of `lanes` float32 lanes (default: the host's, 16 with
    AVX-512, 8 with AVX2).

    Scores come in register blocks of SCORE_ROWS queries x SCORE_VECTORS vectors of keys
    summed over the head's depth (see _schedule_scores); context in register blocks of
    CONTEXT_ROWS query rows summed over the keys (_schedule_context). The softmax stages
    are not computed inside a block of query rows: compute_at and fold_storage can, but one
    row at a time measured no faster (each row read its head's keys and values again from
    L2), and blocks of 4 rows 1.4x slower on RACE (the last block's row guard reaches the
    innermost loops of every block)."""
    stages, out = attention_program(heads, head_size, max_length, causal)
    sch = Schedule(out, name="ragged_attention")
    isa = isa_for(lanes)
    lanes = isa.float32_lanes
    # A pair's stages back to back, so its length x length scores and probabilities (1 MiB
    # at length 512) are still in L2 when the next stage reads them; one stage at a time
    # over every pair of the call sent them through L3 (1.2x the time on 32 sequences of
    # wiki_512, MRPC or RACE: alternating A/B, 2 threads, medians of 5 blocks).
    batch, query, head, _ = sch.loops(out)
    sch.reorder(head, query)
    for name in ("context", "values", "row_sum", "exps", "row_max", "masked", "scores",
                 "keys"):
        if name in stages:
            sch.compute_at(stages[name], head)
    schedule_keys(sch, stages["keys"])
    _schedule_scores(sch, stages, max_length, isa)
    _schedule_context(sch, stages["context"], head_size, isa)
    for name in ("exps", "values", "masked"):
        if name in stages:
            sch.vectorize(sch.loops(stages[name])[-1])
    # The row reductions in SIMD too, their start values set before the key loop: one
    # element a step, the max and the sum each waited on the step before (on 512-long
    # sequences the two stages took 34-47 ms of 160, and 16-18 ms in SIMD).
    for name in ("row_max", "row_sum"):
        keys = sch.loops(stages[name])[-1]
        sch.decompose(stages[name], keys)
        sch.vectorize(keys)
    sch.vectorize(sch.loops(out)[-1])
    # Parallel over the (sequence, head) pairs fused: a parallel loop inside the batch loop
    # would wake the threads once per sequence, which costs more than short rows compute.
    sch.parallel(sch.fuse(batch, head))
    return build(sch)


def schedule_keys(sch, keys):
    """The head's keys transposed a tile of KEY_TILE keys at a time: the tile's rows of QKV
    stay in L1 while the loop over the head's depth gathers from them, and each depth step
    writes one whole line of keys_t. Over every key at once, the rows of a 512-long
    sequence (a line each, 32 KiB) fell out of L1 between depth steps. The last keys,
    fewer than a tile, are copied a row at a time."""
    depth, key = sch.loops(keys)[-2:]
    sch.reorder(key, depth)
    _key_tile, key_lane, _rest = sch.split_op(key, KEY_TILE)
    sch.reorder(depth, key_lane)
    sch.vectorize(key_lane)


def _block_rows(most, vectors_per_row, isa):
    """Rows of a register block whose rows hold `vectors_per_row` accumulator vectors
    each: `most`, or as many as fit the ISA's accumulator registers and, beside them, the
    row's operand vectors and one broadcast (a spilled accumulator costs a load and a
    store around every multiply-add, an operand that does not fit a load for every row)."""
    beside_operands = (isa.vector_registers - 1) // vectors_per_row - 1
    return max(1, min(most, isa.accumulator_registers // vectors_per_row, beside_operands))


def _schedule_scores(sch, stages, max_length, isa):
    """Query-key products in register blocks of SCORE_ROWS queries (_block_rows) x
    SCORE_VECTORS vectors of keys summed over the head's depth: each key vector loaded
    serves every query of the block. The key loop is padded to whole blocks (keys_t and
    scores get storage for them, so no key block has a tail: the last keys of a row, run
    one vector at a time from memory, had taken a tenth of RACE's attention). The last
    queries of a sequence, fewer than a block, run one query at a time over the same
    padded key blocks. The padded columns of scores are never read."""
    scores = stages["scores"]
    lanes = isa.float32_lanes
    key_tile_size = _key_block(max_length, isa)
    batch, head, query, key, depth = sch.loops(scores)
    if key_tile_size is None:
        sch.reorder(depth, key)
        sch.vectorize(key)
        return
    sch.pad_storage(stages["keys"], 3, key_tile_size)
    sch.pad_storage(scores, 3, key_tile_size)
    sch.pad_loop(key, key_tile_size)
    rows = _block_rows(SCORE_ROWS, SCORE_VECTORS, isa)
    _query_tile, query_lane, _rest_queries = sch.split_op(query, rows)
    for nest, block_rows in zip(writer_nests(sch, scores.name), (query_lane, None)):
        key, depth = nest[-2:]
        key_tile, key_lane = sch.split(key, key_tile_size)
        inner = (depth, key_lane) if block_rows is None else (depth, block_rows, key_lane)
        sch.reorder(key_tile, *inner)
        _sum_in_registers(sch, scores, key_tile, depth, key_lane, lanes, rows=block_rows)


def _key_block(max_length, isa):
    """Keys per register block of scores, the multiple the key loop and its storage are
    padded to; None when rows of `max_length` are shorter than one block (each row's
    scores are then one SIMD loop over its keys, unpadded)."""
    keys = SCORE_VECTORS * isa.float32_lanes
    return None if max_length < keys else keys


def _sum_in_registers(sch, tensor, at, reduction, vector_loop, lanes, rows=None):
    """The block of `tensor` written inside loop `at` summed over `reduction` in a local
    array (registers, once the rows loop if any is unrolled), its `vector_loop` in unrolled
    SIMD vectors of `lanes`."""
    block = sch.cache_write(tensor, "local", at=at)
    sch.decompose(block, reduction)
    if rows is not None:
        sch.unroll(rows)
    vectors, vector = sch.split(vector_loop, lanes)
    sch.unroll(vectors)
    sch.vectorize(vector)


def writer_nests(sch, name):
    """The loops around each statement that writes `name`, in program order."""
    return [[loop.var for loop in loops_on_path(sch.kernel.body, path)]
            for path in writer_paths(sch.kernel, name)]


def _context_block(head_vectors, isa):
    """(rows, vectors) of a context register block: at most CONTEXT_ROWS query rows by a
    part of the head's `head_vectors` vectors that divides it, filling as many of the ISA's
    accumulator registers as can be (more rows first): 4 x 4 with AVX-512 and a head of
    64; 6 x 2 with AVX2, the head in quarters, so each key's 2 value vectors are loaded
    once for 6 rows (a half head's 4 vectors leave room for 2 rows beside them)."""
    shapes = [(_block_rows(CONTEXT_ROWS, vectors, isa), vectors)
              for vectors in range(1, head_vectors + 1)
              if head_vectors % vectors == 0 and vectors <= isa.accumulator_registers]
    return max(shapes, key=lambda shape: (shape[0] * shape[1], shape[0]))


def _schedule_context(sch, context, head_size, isa):
    """Probabilities times values, in registers when the head splits into whole SIMD
    vectors: blocks of query rows by value vectors (_context_block) sum over the keys,
    each key's value vectors loaded once for the block's rows; a sequence's last rows
    sum one at a time over the whole head."""
    lanes = isa.float32_lanes
    batch, head, query, value_depth, key = sch.loops(context)
    sch.reorder(key, value_depth)
    if head_size % lanes != 0:
        sch.vectorize(value_depth)
        return
    rows, vectors = _context_block(head_size // lanes, isa)
    query_tile, query_lane, _rest_queries = sch.split_op(query, rows)
    at = query_tile
    if vectors * lanes < head_size:
        at, value_depth = sch.split(value_depth, vectors * lanes)
        sch.reorder(query_tile, at, key, query_lane, value_depth)
    else:
        sch.reorder(key, query_lane)
    _sum_in_registers(sch, context, at, key, value_depth, lanes, rows=query_lane)
    last_query, key, value_depth = writer_nests(sch, context.name)[-1][-3:]
    _sum_in_registers(sch, context, last_query, key, value_depth, lanes)


def attention(qkv, heads, head_size, max_length, causal=False, out=None):
    """Masked multi-head self-attention of each sequence of a RaggedArray whose values
    are (total, 3 * heads * head_size): queries, keys and values side by side. Returns a
    RaggedArray of (total, heads * head_size) values (written into `out` when given, in
    any memory order); `causal` lets token i see keys j <= i only."""
    heads, head_size, max_length, qkv, out = checked_arguments(
        qkv, heads, head_size, max_length, out)
    kernel = _attention_kernel(heads, head_size, max_length, bool(causal))
    return run_in_groups(kernel, qkv, heads, head_size, out,
                         _key_block(max_length, isa_for(None)) or 1)


def checked_arguments(qkv, heads, head_size, max_length, out):
    """(heads, head_size, max_length, qkv, out) of an attention call, checked."""
    heads = arguments.positive_int("heads", heads)
    head_size = arguments.positive_int("head_size", head_size)
    max_length = arguments.positive_int("max_length", max_length)
    qkv = arguments.ragged("qkv", qkv, (3 * heads * head_size,))
    qkv.check_max(max_length, "L (max_length)")
    return heads, head_size, max_length, qkv, arguments.out(out, (qkv.total, heads * head_size))


def run_in_groups(kernel, qkv, heads, head_size, out, multiple):
    """Run attention `kernel` over checked `qkv` a group of sequences at a time (their
    lengths rounded up to `multiple` as the kernel's storage rounds them), writing the
    (total, heads * head_size) result into `out` when given; returns a RaggedArray."""
    # One kernel call per group of sequences: an out that overlaps qkv would overwrite
    # rows a later call still reads.
    result = arguments.direct(out, qkv.values)
    result = np.empty((qkv.total, heads * head_size), np.float32) if result is None else result
    offsets, lengths = qkv.offsets, qkv.lengths
    for first, last in _sequence_groups(lengths, multiple):
        rows = slice(offsets[first], offsets[last])
        group_lengths = lengths[first:last]
        target = RaggedArray(result[rows].reshape(-1, heads, head_size), group_lengths)
        kernel(QKV=RaggedArray(qkv.values[rows], group_lengths), out={"attention": target})
    return RaggedArray(arguments.write(out, result), lengths)


def _sequence_groups(lengths, multiple=1):
    """(first, last) bounds of runs of consecutive sequences with at most
    GROUP_QUERY_KEY_PAIRS query-key pairs together (one sequence at least), each length
    rounded up to `multiple` as the scores' storage is, and at most MAX_BATCH sequences
    (the kernel's batch range).

    One kernel call per group: a whole batch's length x length intermediates would run to
    hundreds of MB, and the kernel keeps them between calls."""
    padded = -(-np.asarray(lengths, np.int64) // multiple) * multiple
    return sequence_runs(padded * padded, GROUP_QUERY_KEY_PAIRS, MAX_BATCH)


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
        attended = (weights @ values).transpose(1, 0, 2).reshape(length, width)
        results.append(attended.astype(np.float32))
    return results
