"""Producer/consumer scheduling on a four-stage row softmax: compute_at moves each
stage into the row loop of the output, so one row's exponentials stay in cache.

    python examples/softmax_stages.py
"""

import numpy as np

import quiltc as qc

rows, cols = qc.var("rows", 1, 8192), qc.var("cols", 1, 8192)
X = qc.placeholder((rows, cols), "float32", "X")
j = qc.reduce_axis(cols, "j")
row_max = qc.compute((rows,), lambda i: qc.max(X[i, j], axis=j), "row_max")
exps = qc.compute((rows, cols), lambda i, c: qc.exp(X[i, c] - row_max[i]), "exps")
k = qc.reduce_axis(cols, "k")
row_sum = qc.compute((rows,), lambda i: qc.sum(exps[i, k], axis=k), "row_sum")
out = qc.compute((rows, cols), lambda i, c: exps[i, c] / row_sum[i], "out")

sch = qc.Schedule(out, name="softmax")
print("before scheduling:\n", sch, sep="")
row = sch.loops(out)[0]
for stage in (row_sum, exps, row_max):  # consumers first
    sch.compute_at(stage, row)
sch.decompose(row_max, sch.loops(row_max)[-1])
sch.decompose(row_sum, sch.loops(row_sum)[-1])
sch.vectorize(sch.loops(exps)[-1])
sch.vectorize(sch.loops(out)[-1])
sch.parallel(row)
print("\nafter:\n", sch, sep="")

fn = qc.build(sch, target="c")
x = np.random.default_rng(0).standard_normal((300, 77)).astype(np.float32)
shifted = np.exp(x - x.max(axis=1, keepdims=True))
np.testing.assert_allclose(fn(X=x), shifted / shifted.sum(axis=1, keepdims=True), rtol=1e-5)
print("\nmatches numpy on a 300 x 77 input")
