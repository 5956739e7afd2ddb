"""Ragged attention maps as results: the per-head probabilities softmax(Q K^T / sqrt(d))
of a batch of sequences, (B, H, L, L) with each row's L its own, returned as a
RaggedArray; then the causal version, (B, H, L, causal(L)), which stores only each map's
lower triangle. Prints the storage each takes against the batch padded to its longest
sequence, and checks both against numpy.

    python examples/attention_probabilities.py
"""

import pathlib

import numpy as np

import quiltc as qc

HEADS, HEAD_SIZE = 4, 16
SEQLENS = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "seqlens"


def lengths(batch=16):
    """The first `batch` MRPC sequence lengths (CoRa's data), or lengths drawn like them."""
    path = SEQLENS / "mrpc.txt"
    if path.exists():
        return np.loadtxt(path, dtype=np.int32)[:batch]
    return np.random.default_rng(0).integers(20, 113, size=batch).astype(np.int32)


def probabilities(causal):
    """The kernel computing P[b, h, i, j] over keys j < L_len[b] (j <= i when causal)."""
    batch = qc.var("B", 1, 64)
    length = qc.ragged_dim("L", batch, 128)
    keys = qc.causal_dim(length) if causal else length
    q = qc.placeholder((batch, length, HEADS * HEAD_SIZE), "float32", "Q")
    k = qc.placeholder((batch, length, HEADS * HEAD_SIZE), "float32", "K")
    d = qc.reduce_axis(HEAD_SIZE, "d")
    scale = np.float32(1 / np.sqrt(HEAD_SIZE))
    scores = qc.compute((batch, HEADS, length, keys), lambda b, h, i, j: qc.sum(
        q[b, i, h * HEAD_SIZE + d] * k[b, j, h * HEAD_SIZE + d] * scale, axis=d), "S")
    j = qc.reduce_axis(keys, "j")
    top = qc.compute((batch, HEADS, length), lambda b, h, i: qc.max(scores[b, h, i, j], axis=j),
                     "M")
    exps = qc.compute((batch, HEADS, length, keys),
                      lambda b, h, i, j: qc.exp(scores[b, h, i, j] - top[b, h, i]), "E")
    j2 = qc.reduce_axis(keys, "j2")
    total = qc.compute((batch, HEADS, length), lambda b, h, i: qc.sum(exps[b, h, i, j2], axis=j2),
                       "Z")
    probs = qc.compute((batch, HEADS, length, keys),
                       lambda b, h, i, j: exps[b, h, i, j] / total[b, h, i], "P")
    return qc.build(qc.Schedule(probs, name="causal_probabilities" if causal else "probabilities"))


def reference(q, k, causal):
    """numpy's probabilities of one sequence, (H, n, n), zero above the diagonal if causal."""
    n = len(q)
    heads_q = q.reshape(n, HEADS, HEAD_SIZE).transpose(1, 0, 2)
    heads_k = k.reshape(n, HEADS, HEAD_SIZE).transpose(1, 0, 2)
    scores = heads_q @ heads_k.transpose(0, 2, 1) * np.float32(1 / np.sqrt(HEAD_SIZE))
    if causal:
        scores = np.where(np.tri(n, dtype=bool), scores, np.float32(-np.inf))
    exps = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exps / exps.sum(axis=-1, keepdims=True)


def main():
    rng = np.random.default_rng(1)
    rows = lengths()
    qs, ks = ([rng.standard_normal((n, HEADS * HEAD_SIZE)).astype(np.float32) for n in rows]
              for _ in range(2))
    q, k = qc.RaggedArray.from_list(qs), qc.RaggedArray.from_list(ks)
    padded = len(rows) * HEADS * int(rows.max()) ** 2
    for causal in (False, True):
        result = probabilities(causal)(Q=q, K=k)
        for got, q_row, k_row in zip(result, qs, ks):
            np.testing.assert_allclose(got, reference(q_row, k_row, causal), rtol=1e-4,
                                       atol=1e-6)
        kind = "causal (B, H, L, causal(L))" if causal else "full (B, H, L, L)"
        print(f"{kind}: {result.values.size:,} floats stored against {padded:,} padded to "
              f"the longest of {len(rows)} sequences ({rows.min()}..{rows.max()} tokens): "
              f"{1 - result.values.size / padded:.0%} saved; matches numpy")
    print(result)


if __name__ == "__main__":
    main()
