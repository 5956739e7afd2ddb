"""Tuned dense layers inside quiltc's own ragged encoder."""

import numpy as np
import pytest

import quiltc as qc
from quiltc import encoder


def test_a_tuned_encoder_layer_matches_the_reference(tmp_path):
    hidden, ffn, heads = 32, 64, 2
    weights = encoder.random_weights(hidden, ffn)
    layer = encoder.EncoderLayer(weights, heads, max_length=16)
    database = str(tmp_path / "encoder.db")
    kernels = qc.autotune.tune_encoder(layer, database, row_counts=[8, 40], trials=3,
                                       executor="serial", progress=False)
    assert set(kernels) == {(32, 96), (32, 32), (32, 64), (64, 32)}
    rng = np.random.default_rng(0)
    rows = [rng.standard_normal((length, hidden)).astype(np.float32) for length in (3, 16, 9)]
    result = layer(qc.RaggedArray.from_list(rows))
    for got, expected in zip(result.to_list(), encoder.reference_encoder_layer(rows, weights,
                                                                              heads)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # The records alone rebuild the same dispatchers.
    fresh = encoder.EncoderLayer(weights, heads, max_length=16)
    loaded = qc.autotune.tune_encoder(fresh, database, row_counts=[8, 40], measure=False)
    assert {shape: k.traces for shape, k in loaded.items()} == {
        shape: k.traces for shape, k in kernels.items()}


def test_a_dispatcher_of_another_shape_is_refused():
    layer = encoder.EncoderLayer(encoder.random_weights(32, 64), 2, max_length=16)
    with pytest.raises(qc.QuiltError, match=r"no linear layer of shape \(32, 48\)"):
        layer.use_tuned({(32, 48): None})
