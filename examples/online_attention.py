"""Flash-style attention as a schedule: the masked multi-head attention of a ragged
batch (scores, row max, exponentials, row sum, context), scheduled so that each block of
query rows walks its keys a tile at a time and keeps running softmax statistics
(`online_softmax`), with no length x length intermediate. Prints the schedule's trace,
checks the result against numpy per sequence, and times it beside quiltc's three-pass
schedule.

    python examples/online_attention.py
"""

import pathlib
import time

import numpy as np

import quiltc as qc
from quiltc import attention
from quiltc.ops import online_attention

HEADS, HEAD_SIZE = 8, 64
SEQLENS = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "seqlens"


def lengths(batch=16):
    """The first `batch` RACE sequence lengths (CoRa's data), or lengths drawn like them."""
    path = SEQLENS / "race.txt"
    if path.exists():
        return np.loadtxt(path, dtype=np.int32)[:batch]
    return np.random.default_rng(0).integers(200, 512, size=batch).astype(np.int32)


def best_of(fn, repeats=5):
    """The fastest of `repeats` calls, in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def main():
    rows = lengths()
    longest = int(rows.max())
    print(online_attention.online_schedule(HEADS, HEAD_SIZE, longest).trace)
    rng = np.random.default_rng(0)
    sequences = [rng.standard_normal((n, 3 * HEADS * HEAD_SIZE)).astype(np.float32)
                 for n in rows]
    qkv = qc.RaggedArray.from_list(sequences)
    for causal in (False, True):
        result = online_attention.attention(qkv, HEADS, HEAD_SIZE, longest, causal)
        expected = attention.reference_attention(sequences, HEADS, HEAD_SIZE, causal)
        for got, want in zip(result, expected):
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    one_pass = best_of(lambda: online_attention.attention(qkv, HEADS, HEAD_SIZE, longest))
    three_pass = best_of(lambda: attention.attention(qkv, HEADS, HEAD_SIZE, longest))
    pairs = int((rows.astype(np.int64) ** 2).sum())
    print(f"{len(rows)} sequences of {rows.min()}..{rows.max()} tokens, {HEADS} heads x "
          f"{HEAD_SIZE}: matches numpy (causal too); one pass {one_pass:.1f} ms, three "
          f"passes {three_pass:.1f} ms. The three-pass schedule writes and reads back "
          f"{pairs * HEADS:,} scores and as many probabilities; the one-pass one holds a "
          f"{online_attention.ROWS} x {online_attention.KEY_TILE} tile per block of rows")


if __name__ == "__main__":
    main()
