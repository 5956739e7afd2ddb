"""quiltc.qmodel: every integer layer is its float layer on the dequantized input, with the
quantized weights, rounded to the output scale (within the one unit that two roundings
allow), for every activation width; the layer list carries what the C emitter reads."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quiltc import nn, qmodel
from quiltc.ir.errors import QuiltError

from support.tiers import examples


def _small_model(seed):
    model = nn.Sequential([
        nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.DepthwiseConv2d(8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 1), nn.AvgPool2d(2), nn.Flatten(), nn.Dense(8, 4), nn.ReLU(),
        nn.Dense(4, 3),
    ], seed=seed)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.param_names:
            layer.bias = rng.normal(0, 0.1, layer.bias.shape).astype(np.float32)
    return model


def _dequantized_reference(layer, x_int):
    """The float layer on the dequantized input with the dequantized weights and bias,
    expressed in output units."""
    x = x_int.astype(np.float64) * layer.in_scale
    weight = layer.weight.astype(np.float64) * layer.weight_scale
    bias = layer.bias * layer.in_scale * layer.weight_scale
    if layer.kind == "dense":
        out = x @ weight + bias
    elif layer.kind == "depthwise_conv2d":
        float_layer = nn.DepthwiseConv2d(weight.shape[2], layer.kernel, layer.stride, layer.padding)
        float_layer.weight, float_layer.bias = weight, bias
        out = float_layer.forward(x)
    else:
        float_layer = nn.Conv2d(weight.shape[2], weight.shape[3], layer.kernel, layer.stride,
                                layer.padding)
        float_layer.weight, float_layer.bias = weight, bias
        out = float_layer.forward(x)
    return out / layer.out_scale


@settings(max_examples=examples(12))
@given(seed=st.integers(0, 2**31), act_bits=st.integers(1, 8))
def test_each_integer_layer_is_its_rescaled_float_layer(seed, act_bits):
    model = _small_model(seed % 1000)
    calib = np.random.default_rng(seed).uniform(-1, 1, (16, 8, 8, 2)).astype(np.float32)
    qm = qmodel.quantize(model, calib, act_bits=act_bits)
    out = qm.quantize_input(calib)
    for layer in qm.layers:
        result = layer.run(out)
        assert result.dtype == layer.out_dtype and result.shape[1:] == layer.out_shape
        if layer.weight is not None:
            want = np.clip(_dequantized_reference(layer, out), layer.out_min, layer.out_max)
            assert np.abs(result.astype(np.float64) - want).max() <= 1.0 + 1e-6
        out = result
    assert out.dtype == np.int8 and out.shape == (16, 3)


def test_layer_list_carries_ranges_dtypes_and_requantization():
    qm = qmodel.quantize(_small_model(1), np.random.default_rng(0).uniform(
        -1, 1, (8, 8, 8, 2)).astype(np.float32), act_bits=3)
    kinds = [layer.kind for layer in qm.layers]
    assert kinds == ["conv2d", "max_pool", "depthwise_conv2d", "conv2d", "avg_pool", "flatten",
                     "dense", "dense"]
    first, _, depthwise, pointwise, _, _, hidden, logits = qm.layers
    assert (first.out_min, first.out_max, first.out_dtype) == (0, 7, np.uint8)
    assert (first.in_dtype == np.int8 and first.in_shape == (8, 8, 2)
            and first.out_shape == (8, 8, 8))
    assert (depthwise.stride, depthwise.padding, depthwise.kernel) == (2, 1, 3)
    assert (pointwise.out_min, pointwise.out_max, pointwise.out_dtype) == (-128, 127, np.int8)
    assert (hidden.relu, logits.relu) == (True, False)
    for layer in (first, depthwise, pointwise, hidden, logits):
        assert layer.weight.dtype == np.int8 and layer.bias.dtype == np.int32
        assert layer.multiplier.dtype == np.int32 and layer.shift.dtype == np.int32
        assert np.all(layer.multiplier >= 2**30)
        real = layer.multiplier * 2.0 ** (layer.shift.astype(np.float64) - 31)
        np.testing.assert_allclose(real, layer.in_scale * layer.weight_scale / layer.out_scale,
                                   rtol=1e-9)
    assert qm.storage_bytes() == sum(l.weight.size + 4 * l.bias.size
                                     for l in qm.layers if l.weight is not None)


def test_int8_model_predicts_like_the_float_model():
    model = _small_model(2)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (200, 8, 8, 2)).astype(np.float32)
    qm = qmodel.quantize(model, x, act_bits=8)
    agreement = np.mean(qm.predict(x) == model.predict(x))
    assert agreement >= 0.9


def test_an_empty_batch_predicts_no_classes():
    model = _small_model(4)
    x = np.random.default_rng(5).uniform(-1, 1, (20, 8, 8, 2)).astype(np.float32)
    qm = qmodel.quantize(model, x, act_bits=4)
    assert qm.predict(x[:0]).shape == (0,)
    assert model.predict(x[:0]).shape == (0,)


def test_quantize_names_what_it_cannot_fuse_or_read():
    loose_relu = nn.Sequential([nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(),
                                nn.Dense(4, 2)])
    calib = np.zeros((2, 6, 6, 1), np.float32)
    with pytest.raises(QuiltError,
                       match=r"layer 2 ReLU\(\) follows MaxPool2d\(2\).*directly after"):
        qmodel.quantize(loose_relu, calib)
    model = _small_model(0)
    with pytest.raises(QuiltError, match="calib must be a non-empty NHWC batch"):
        qmodel.quantize(model, np.zeros((0, 8, 8, 2), np.float32))
    with pytest.raises(QuiltError, match=r"act_bits=9 is not supported"):
        qmodel.quantize(model, np.ones((2, 8, 8, 2), np.float32), act_bits=9)
    qm = qmodel.quantize(model, np.ones((2, 8, 8, 2), np.float32))
    with pytest.raises(QuiltError, match=r"forward_int takes the int8 input.*quantize_input"):
        qm.forward_int(np.ones((2, 8, 8, 2), np.float32))
