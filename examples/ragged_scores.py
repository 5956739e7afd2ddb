"""Ragged tensors: len x len attention-style scores per sequence with no padding, then a
ragged row max; the batch is one flat buffer plus lengths.

    python examples/ragged_scores.py
"""

import numpy as np

import quiltc as qc

B = qc.var("B", 1, 256)
L = qc.ragged_dim("L", B, 512)                 # row b holds lengths[b] <= 512 tokens
X = qc.placeholder((B, L, 64), "float32", "X")
h = qc.reduce_axis(64, "h")
scores = qc.compute((B, L, L), lambda b, i, k: qc.sum(X[b, i, h] * X[b, k, h], axis=h),
                    "scores")                  # lengths[b] x lengths[b] per row, no padding
j = qc.reduce_axis(L, "j")
best = qc.compute((B, L), lambda b, i: qc.max(scores[b, i, j], axis=j), "best")
f = qc.build(qc.Schedule(best))
x = qc.RaggedArray.from_list([np.ones((n, 64), np.float32) for n in (3, 0, 7)])
print(f(X=x).to_list())                        # rows of 3, 0 and 7 values, each 64.0
