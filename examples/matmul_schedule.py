"""Schedule a matmul for speed, one primitive at a time, and look at what each produces.

    python examples/matmul_schedule.py
"""
import numpy as np

import quiltc as qc

M, N, K = qc.var("M", 1, 4096), qc.var("N", 1, 4096), qc.var("K", 1, 4096)
A = qc.placeholder((M, K), "float32", "A")
B = qc.placeholder((K, N), "float32", "B")
k = qc.reduce_axis(K, "k")
C = qc.compute((M, N), lambda i, j: qc.sum(A[i, k] * B[k, j], axis=k), "C")

sch = qc.Schedule(C)
i, j, k = sch.loops(C)
i_o, i_i = sch.split(i, 8)          # guarded automatically: 8 need not divide M
j_o, j_i = sch.split(j, 32)
sch.reorder(j_o, i_o, k, i_i, j_i)
acc = sch.cache_write(C, "local", at=i_o)   # an 8 x 32 accumulator block
sch.decompose(acc, k)
lanes_o, lanes = sch.split(j_i, 16)
sch.unroll(i_i)
sch.unroll(lanes_o)
sch.vectorize(lanes)
sch.parallel(j_o)
print(sch)            # the scheduled IR as pseudo-code
print(sch.trace)      # the schedule as replayable Python

f = qc.build(sch, target="c")
a = np.random.rand(100, 300).astype(np.float32)
b = np.random.rand(300, 200).astype(np.float32)
np.testing.assert_allclose(f(A=a, B=b), a @ b, rtol=1e-4)
print(f.source)       # the generated C
