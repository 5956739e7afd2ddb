"""Tuning quiltc's own dense layers, whose row count is data: the linear layers of the
ragged encoder run on every token of a batch, and the total varies from batch to batch.

    layer = qc.encoder.EncoderLayer(weights, heads=12, max_length=128)
    qc.autotune.tune_encoder(layer, "encoder.db", row_counts=[512, 1536, 2560, 4096])
    y = layer(batch)                      # its linear layers now run the dispatchers
"""

from ..lang import tensor as qc
from .tune import load, tune
from .workload import Workload

# The row counts a tuned dense layer serves: one token up to a batch of 64 sequences of 128.
MAX_ROWS = 8192


def dense_workload(in_features, out_features, row_counts, max_rows=MAX_ROWS, weights=None):
    """Y[R, out] = X[R, in] @ W[in, out] over a row count R in 1..`max_rows`, tuned at
    `row_counts`."""
    rows = qc.var("R", 1, max_rows)
    x = qc.placeholder((rows, in_features), "float32", "X")
    w = qc.placeholder((in_features, out_features), "float32", "W")
    k = qc.reduce_axis(in_features, "k")
    y = qc.compute((rows, out_features), lambda i, j: qc.sum(x[i, k] * w[k, j], axis=k), "Y")
    return Workload(y, shapes={"R": list(row_counts)}, weights=weights,
                    name=f"dense_{in_features}x{out_features}")


def tune_encoder(layer, database, row_counts, trials=40, executor=None, measure=True,
                 progress=None):
    """Tune (or, with `measure=False`, load from `database`) one dispatcher per linear
    shape of the EncoderLayer `layer` at `row_counts` tokens, and make the layer use
    them; returns {(in, out): Dispatcher}."""
    kernels = {}
    for in_features, out_features in dict.fromkeys(layer.dense_shapes()):
        workload = dense_workload(in_features, out_features, row_counts)
        kernels[(in_features, out_features)] = (
            tune(workload, database, trials=trials, executor=executor, progress=progress)
            if measure else load(database, workload))
    layer.use_tuned(kernels)
    return kernels
