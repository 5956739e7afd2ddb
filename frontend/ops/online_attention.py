"""Masked multi-head attention in one pass over the keys (flash-style): the program of
`attention.py`, scheduled so that each block of query rows walks its sequence's keys a
tile at a time, computing the tile's scores in registers, folding them into a running
max, and rescaling the row sums and the context it has accumulated so far whenever the
max grows (`online_softmax`). No length x length intermediate exists: scores and
probabilities live in one tile per block.

    from quiltc.ops import online_attention
    out = online_attention.attention(qkv, heads=8, head_size=64, max_length=512)
    print(online_attention.online_schedule(8, 64, 512).trace)   # the schedule, step by step

Same arguments and result as `quiltc.attention.attention`, which stays the faster one on
the 2-core AVX2 host: this schedule ran at 0.83x its speed over CoRa's eight datasets (32
sequences; RACE 0.88x, wiki_512 0.86x, wiki_128 0.79x; benchmarks/online_attention.py).
Per tile it loads the block's context, rescales it and stores it back (the three-pass
schedule keeps its context blocks in registers over all keys), and the last tile and
block run apart with their guards, which short sequences feel most.
"""

import functools

from ..driver.build import build
from ..driver.schedule import Schedule
from ..runtime_c.host import isa_for
from .attention import (
    attention_program,
    checked_arguments,
    run_in_groups,
    schedule_keys,
    writer_nests,
)

# Query rows per block and keys per tile: the tile's scores are ROWS x KEY_TILE
# accumulators (12 AVX2 registers). Measured on RACE (32 sequences, alternating A/B):
# 6 x 16 88 ms; 6 x 8 103; 4 x 16 108; 8 x 16 117; 6 x 32 (scores in two halves) 132,
# and once the context's rescaling moved into its cache 80 against 6 x 16's 80, with
# MRPC 1.07x slower (more of its last tiles are padding).
ROWS, KEY_TILE = 6, 16
# Vectors of the head per context block: 6 rows x 2 vectors accumulate in registers over
# the tile's keys, each key's value vectors loaded once for the 6 rows. A whole head per
# row (8 vectors, each loaded again for every row) took 1.1x the time, 4 vectors 1.3x.
CONTEXT_VECTORS = 2


def attention(qkv, heads, head_size, max_length, causal=False, out=None):
    """`quiltc.attention.attention` computed by the one-pass schedule: the (total, heads *
    head_size) attention of each sequence of RaggedArray `qkv`, as a RaggedArray."""
    heads, head_size, max_length, qkv, out = checked_arguments(
        qkv, heads, head_size, max_length, out)
    kernel = _online_kernel(heads, head_size, max_length, bool(causal))
    return run_in_groups(kernel, qkv, heads, head_size, out, 1)


@functools.cache
def _online_kernel(heads, head_size, max_length, causal):
    return build(online_schedule(heads, head_size, max_length, causal))


def online_schedule(heads, head_size, max_length, causal=False, lanes=None):
    """The one-pass schedule of attention over one (batch, L, 3 * heads * head_size) QKV
    buffer, parallel over (sequence, head) pairs, in SIMD of `lanes` float32 lanes (the
    host's by default)."""
    stages, out = attention_program(heads, head_size, max_length, causal)
    sch = Schedule(out, name="online_attention")
    lanes = isa_for(lanes).float32_lanes
    batch, query, head, _ = sch.loops(out)
    sch.reorder(head, query)
    block, _ = sch.split(query, ROWS)
    for name in ("context", "row_sum", "exps", "row_max"):
        sch.compute_at(stages[name], block)
    sch.compute_at(stages["values"], head)
    tile, key_lanes, cached = _tile_the_keys(sch, stages, head_size, lanes)
    # The sums over exp(scores - max) join the max's tile loop, rescaled as it grows.
    sch.online_softmax(stages["row_max"], tile)
    tiles = [name for name in ("masked", "scores", "exps") if name in stages]
    for name in tiles[:-1]:
        sch.compute_at(stages[name], tile)
    for name in tiles:
        sch.fold_storage(stages[name], tile)
    sch.compute_at(stages["keys"], head)
    # Room for a whole last tile of keys, so the score block reads no guard.
    sch.pad_storage(stages["keys"], 3, KEY_TILE)
    # Transposed a tile of keys at a time, as the three-pass schedule does: gathered one
    # key at a time across QKV's rows, the copy took a tenth of RACE's time.
    schedule_keys(sch, stages["keys"])
    _schedule_scores(sch, stages, tiles, lanes)
    _schedule_context(sch, stages["context"], cached, lanes)
    for loop in (sch.loops(stages["values"])[-1], sch.loops(out)[-1]):
        sch.vectorize(loop)
    # The last block of rows and the last tile of keys are the only partial ones: run
    # apart, every other block and tile is whole and its guards go (RACE 2.2x faster).
    sch.peel(block)
    sch.peel(tile)
    for key_lane in key_lanes:
        sch.vectorize(key_lane)
    sch.parallel(sch.fuse(batch, head))
    return sch


def _tile_the_keys(sch, stages, head_size, lanes):
    """Split the key loops of the max, the exponentials, the row sum and the context into
    tiles of KEY_TILE keys, the tile loop outside the block's rows, and decompose the
    reductions at it. The context runs a part of CONTEXT_VECTORS vectors of the head at a
    time (when the head splits so), each part's keys inside it: online_softmax rescales
    each part just above its keys, where the part's cache takes the rescaling along.
    Returns the max's tile loop, the key loops of the max and the row sum (SIMD once the
    last tile is peeled) and the loop to cache the context at."""
    tiles, key_lanes = {}, []
    for name in ("row_max", "exps", "row_sum", "context"):
        block_row, *value, key = sch.loops(stages[name])[3:]
        key_tile, key_lane = sch.split(key, KEY_TILE)
        if name != "context":
            sch.reorder(key_tile, block_row, key_lane, *value)
        elif head_size % (CONTEXT_VECTORS * lanes) == 0:
            cached, value = sch.split(value[0], CONTEXT_VECTORS * lanes)
            sch.reorder(key_tile, cached, key_lane, block_row, value)
        else:
            sch.reorder(key_tile, block_row, key_lane, *value)
            cached = block_row
        if name != "exps":
            sch.decompose(stages[name], key_tile)
        if name in ("row_max", "row_sum"):
            key_lanes.append(key_lane)
        tiles[name] = key_tile
    return tiles["row_max"], key_lanes, cached


def _schedule_scores(sch, stages, tiles, lanes):
    """A tile's scores, ROWS queries x KEY_TILE keys summed over the head's depth in
    registers. The tiles of scores (masked) and exponentials are computed in full: keys
    past the sequence's end read the padded keys and are never used."""
    scores = stages["scores"]
    rows, keys, depth = sch.loops(scores)[-3:]
    sch.reorder(depth, rows, keys)
    sch.decompose(scores, depth)
    # In the order they are computed: a tile's padding needs its inputs' first.
    later = [name for name in tiles if name != "scores"]
    for name in ["scores", *later]:
        sch.pad_local(stages[name], dim=3)
    vectors, vector = sch.split(keys, lanes)
    sch.unroll(rows)
    sch.unroll(vectors)
    sch.vectorize(vector)
    for name in later:
        sch.vectorize(sch.loops(stages[name])[-1])


def _schedule_context(sch, context, cached, lanes):
    """The tile's context: the block's rows accumulate the part of the head inside loop
    `cached` over the tile's keys in a local block, loaded with the sums so far and
    rescaled there (cache_write of a decomposed sum), each key's value vectors loaded once
    for all the rows."""
    loops = sch.loops(context)
    # The rescaling (online_softmax put it inside `cached`) unrolled and in SIMD too, so
    # that every access to the block has constant indices and the block stays in registers.
    rescale = writer_nests(sch, context.name)[1]
    *rescale_rows, rescale_values = rescale[rescale.index(cached) + 1:]
    sch.cache_write(context, "local", at=cached)
    if loops[-4] == cached:  # (part, keys, rows, values), not (rows, keys, values)
        rescale_rows.append(loops[-2])
    for value in (loops[-1], rescale_values):
        vectors, vector = sch.split(value, lanes)
        sch.unroll(vectors)
        sch.vectorize(vector)
    for rows in rescale_rows:
        sch.unroll(rows)
