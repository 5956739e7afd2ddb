"""quiltc.weightpool: k-means finds planted pools, pooled models run bit-serially exactly
like their plain integer convolutions through the whole network at every activation
width, the errors name their fix, and on the digits the pool keeps int8 accuracy at low
activation widths with pooled weights >= 7.5x smaller than int8."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quiltc import nn, weightpool
from quiltc.ir.errors import QuiltError

from support.tiers import examples


def _pooled_net(seed):
    return nn.Sequential([
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 8, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Dense(2 * 2 * 8, 3),
    ], seed=seed)


@settings(max_examples=examples(10))
@given(seed=st.integers(0, 2**31), pool_size=st.integers(2, 40),
       distance=st.sampled_from(weightpool.DISTANCES))
def test_bitserial_model_equals_plain_integer_model_at_every_width(seed, pool_size, distance):
    model = _pooled_net(seed % 1000)
    x = np.random.default_rng(seed).uniform(0, 1, (6, 8, 8, 1)).astype(np.float32)
    pm = weightpool.compress(model, calib=x, pool_size=pool_size, distance=distance, seed=seed)
    for act_bits in range(1, 9):
        qm = pm.quantized(act_bits)
        pooled = [layer for layer in qm.layers if layer.kind == "bitserial_conv2d"]
        assert [layer.name.split()[1] for layer in pooled] == ["2", "5", "7"]
        for layer in pooled:
            kh, kw, cin, cout = layer.weight.shape
            assert (layer.indices.shape == (kh, kw, cin // 8, cout)
                    and layer.indices.dtype == np.uint8)
            assert layer.indices.max() < pool_size and layer.act_bits == act_bits
            assert layer.pool is pm.pool and layer.pool.shape == (pool_size, 8)
            assert layer.in_dtype == np.uint8 and layer.out_max == 2**act_bits - 1
        x_int = qm.quantize_input(x)
        np.testing.assert_array_equal(qm.forward_int(x_int), qm.forward_int(x_int, bitserial=False))


def test_fine_tuning_moves_vectors_to_other_entries_and_keeps_them_on_the_pool():
    model = _pooled_net(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (64, 8, 8, 1)).astype(np.float32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype(np.int64)
    plain = weightpool.compress(model, calib=x, pool_size=16)
    pm = weightpool.compress(model, calib=x, pool_size=16, train=(x, y), epochs=3, lr=1e-2)
    np.testing.assert_array_equal(pm.pool, plain.pool)
    moved = [np.mean(pm.pooled[p][0] != plain.pooled[p][0]) for p in plain.pooled]
    assert max(moved) > 0
    assert pm.float_model.accuracy(x, y) > plain.float_model.accuracy(x, y)
    pool = pm.pool.astype(np.float64) * pm.pool_scale
    for position, (indices, scale) in pm.pooled.items():
        weight = pm.float_model.layers[position].weight
        vectors = pool[indices] * scale[:, None]  # (kh, kw, groups, cout, 8)
        expected = vectors.transpose(0, 1, 2, 4, 3).reshape(weight.shape)
        np.testing.assert_allclose(weight, expected, rtol=1e-6, atol=1e-7)
    # the caller's model is left as it was
    np.testing.assert_array_equal(model.layers[2].weight, _pooled_net(0).layers[2].weight)


@pytest.mark.parametrize("distance", weightpool.DISTANCES)
def test_kmeans_recovers_a_planted_pool(distance):
    rng = np.random.default_rng(1)
    planted = rng.standard_normal((6, 8))
    members = rng.integers(0, 6, 600)
    rows = planted[members] + rng.normal(0, 0.01, (600, 8))
    centers, assignment = weightpool.kmeans(rows, 6, distance, seed=0)
    # every planted vector is found, and rows of one planted vector share one center
    nearest_found = np.linalg.norm(planted[:, None] - centers[None], axis=2).min(axis=1)
    assert nearest_found.max() < 0.05
    for member in range(6):
        assert len(set(assignment[members == member])) == 1


def test_compress_rejects_bad_arguments_with_the_fix():
    model = _pooled_net(0)
    x = np.zeros((2, 8, 8, 1), np.float32)
    for size in (1, 257, 0, True):
        with pytest.raises(QuiltError, match=r"pass a pool_size in 2\.\.256"):
            weightpool.compress(model, calib=x, pool_size=size)
    with pytest.raises(QuiltError, match="pass vector_len=8"):
        weightpool.compress(model, calib=x, vector_len=4)
    with pytest.raises(QuiltError, match=r"distance='manhattan'.*cosine"):
        weightpool.compress(model, calib=x, distance="manhattan")
    pm = weightpool.compress(model, calib=x, pool_size=4)
    for act_bits in (0, 9):
        with pytest.raises(QuiltError, match=r"pass act_bits in 1\.\.8"):
            pm.predict(x, act_bits=act_bits)


def test_a_pooled_conv_with_cin_not_a_multiple_of_8_names_the_layer_and_fix():
    model = nn.Sequential([nn.Conv2d(1, 12, 3, padding=1), nn.ReLU(), nn.Conv2d(12, 8, 3),
                           nn.ReLU(), nn.Flatten(), nn.Dense(6 * 6 * 8, 2)])
    x = np.random.default_rng(0).uniform(0, 1, (3, 8, 8, 1)).astype(np.float32)
    with pytest.raises(QuiltError, match=r"layer 2 Conv2d\(12, 8, 3, .*\) has 12 input channels, "
                                         r"not a multiple of the vector length 8: make cin a "
                                         r"multiple of 8 or keep the layer int8 with "
                                         r"int8_layers=\(2,\)"):
        weightpool.compress(model, calib=x)
    with pytest.raises(QuiltError, match="has no conv to pool"):
        weightpool.compress(model, calib=x, int8_layers=(2,))


def test_a_pooled_conv_must_read_relu_outputs():
    model = nn.Sequential([nn.Conv2d(1, 8, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3),
                           nn.ReLU(), nn.Flatten(), nn.Dense(2 * 2 * 8, 2)])
    x = np.random.default_rng(0).uniform(0, 1, (3, 8, 8, 1)).astype(np.float32)
    with pytest.raises(QuiltError, match=r"layer 2 Conv2d\(8, 8, 3, .*\) reads signed activations "
                                         r"\(layer 0 is Conv2d.*put a ReLU before it or keep the "
                                         r"layer int8 with int8_layers=\(2,\)"):
        weightpool.compress(model, calib=x)


@pytest.fixture(scope="module")
def digits_figures(pooled_digits):
    """(float model, pooled model, test accuracies): float, int8, and pooled at 8 bits and
    at each width from 1 to 8."""
    model, int8_model, pm, (_, _, x_test, y_test) = pooled_digits
    figures = {
        "float": model.accuracy(x_test, y_test),
        "int8": int8_model.accuracy(x_test, y_test),
        "pool_int8": pm.accuracy(x_test, y_test, act_bits=8),
        "pool_bits": {b: pm.accuracy(x_test, y_test, act_bits=b) for b in range(1, 9)},
    }
    print("digits accuracy:", figures)
    print("digits storage:", pm.storage_bytes())
    return model, pm, figures


@pytest.mark.slow
def test_digits_pool_keeps_int8_accuracy_at_four_bits_or_fewer(digits_figures):
    _, _, figures = digits_figures
    assert figures["float"] >= 0.97
    assert figures["int8"] >= figures["float"] - 0.01
    assert figures["pool_int8"] >= figures["int8"] - 0.02
    best_low_width = max(figures["pool_bits"][b] for b in range(1, 5))
    assert best_low_width >= figures["int8"] - 0.01


@pytest.mark.slow
def test_digits_pooled_weights_are_7_5x_smaller_than_int8(digits_figures):
    model, pm, _ = digits_figures
    storage = pm.storage_bytes()
    pooled_convs = [layer for layer in model.layers[1:] if isinstance(layer, nn.Conv2d)]
    int8_weights = sum(layer.weight.size for layer in pooled_convs)
    indices = sum(layer.weight.size // 8 for layer in pooled_convs)
    assert storage["pooled_layers_int8_bytes"] == int8_weights
    assert storage["pooled_layers_bytes"] == indices + 64 * 8
    assert storage["pooled_layers_ratio"] == int8_weights / (indices + 64 * 8) >= 7.5
    everything = sum(layer.weight.size + 4 * layer.bias.size
                     for layer in model.layers if layer.param_names)
    assert storage["int8_bytes"] == everything
    assert storage["pooled_bytes"] == everything - int8_weights + indices + 64 * 8
    assert storage["lut_bytes"] == 256 * 64 * np.dtype(pm.quantized(8).layers[1].lut.dtype).itemsize
    assert pm.quantized(4).storage_bytes() == storage["pooled_bytes"]
