"""quiltc.nn: every layer's forward pass against a float64 numpy reference written tap by
tap, backpropagation against central differences, and the weight-loading API."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from quiltc import nn
from quiltc.ir.errors import QuiltError, ShapeError

from support.tiers import examples


def _reference_conv(x, weight, stride, padding):
    """float64 convolution, one shifted slice per kernel tap (HWIO weight)."""
    kh, kw, _, cout = weight.shape
    padded = np.pad(x.astype(np.float64), ((0, 0), (padding,) * 2, (padding,) * 2, (0, 0)))
    oh = (padded.shape[1] - kh) // stride + 1
    ow = (padded.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, cout))
    for i in range(kh):
        for j in range(kw):
            out += padded[:, i:i + stride * oh:stride, j:j + stride * ow:stride] @ weight[i, j]
    return out


shapes = st.fixed_dictionaries({
    "n": st.integers(1, 3), "h": st.integers(1, 7), "w": st.integers(1, 7),
    "cin": st.integers(1, 4), "cout": st.integers(1, 4), "k": st.integers(1, 3),
    "stride": st.integers(1, 2), "padding": st.integers(0, 1), "seed": st.integers(0, 2**31),
})


def _input(s):
    rng = np.random.default_rng(s["seed"])
    return rng.standard_normal((s["n"], s["h"], s["w"], s["cin"])).astype(np.float32), rng


@settings(max_examples=examples(40))
@given(s=shapes)
def test_conv_and_depthwise_forward_match_tap_by_tap_reference(s):
    assume(s["h"] + 2 * s["padding"] >= s["k"] and s["w"] + 2 * s["padding"] >= s["k"])
    x, rng = _input(s)
    conv = nn.Conv2d(s["cin"], s["cout"], s["k"], s["stride"], s["padding"])
    conv.initialize(rng)
    conv.bias = rng.standard_normal(s["cout"]).astype(np.float32)
    want = _reference_conv(x, conv.weight.astype(np.float64), s["stride"], s["padding"]) + conv.bias
    got = conv.forward(x)
    assert got.shape == (s["n"],) + conv.output_shape(x.shape[1:])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    depthwise = nn.DepthwiseConv2d(s["cin"], s["k"], s["stride"], s["padding"])
    depthwise.initialize(rng)
    diagonal = np.zeros((s["k"], s["k"], s["cin"], s["cin"]))
    diagonal[:, :, np.arange(s["cin"]), np.arange(s["cin"])] = depthwise.weight
    want = _reference_conv(x, diagonal, s["stride"], s["padding"]) + depthwise.bias
    np.testing.assert_allclose(depthwise.forward(x), want, rtol=1e-5, atol=1e-5)


@settings(max_examples=examples(30))
@given(s=shapes)
def test_pools_and_flatten_forward(s):
    k = s["k"]
    assume(s["h"] >= k and s["w"] >= k)
    x, _ = _input(s)
    oh, ow = s["h"] // k, s["w"] // k
    blocks = x[:, :oh * k, :ow * k].reshape(s["n"], oh, k, ow, k, s["cin"]).astype(np.float64)
    np.testing.assert_array_equal(nn.MaxPool2d(k).forward(x), blocks.max(axis=(2, 4)))
    np.testing.assert_allclose(nn.AvgPool2d(k).forward(x), blocks.mean(axis=(2, 4)),
                               rtol=1e-5, atol=1e-6)
    flat = nn.Flatten().forward(x)
    last_pixel = ((s["h"] - 1) * s["w"] + s["w"] - 1) * s["cin"]  # NHWC order
    np.testing.assert_array_equal(flat[:, last_pixel:], x[:, -1, -1])


def _tiny_net():
    return nn.Sequential([
        nn.Conv2d(2, 3, 3, stride=1, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.DepthwiseConv2d(3, 2, stride=1, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(3, 4, 1, stride=2), nn.Flatten(), nn.Dense(4, 5),
    ], seed=3)


def _loss64(model, x, labels):
    out = x
    for layer in model.layers:
        out = layer.forward(out)
    return nn.softmax_cross_entropy(out, labels)


def test_backpropagation_matches_central_differences():
    model = _tiny_net()
    for layer in model.layers:
        for name in layer.param_names:
            setattr(layer, name, getattr(layer, name).astype(np.float64) + 0.1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 6, 6, 2))
    labels = np.array([0, 3, 4])
    _, grad = _loss64(model, x, labels)
    input_grad = model.backward(grad)
    analytic = [g.copy() for layer in model.layers if layer.param_names for g in layer.grads]
    params = [p for layer in model.layers if layer.param_names for p in layer.params()]
    eps = 1e-6
    for param, expected in zip(params + [x], analytic + [input_grad]):
        for flat in rng.choice(param.size, size=min(param.size, 6), replace=False):
            index = np.unravel_index(flat, param.shape)
            saved = param[index]
            param[index] = saved + eps
            upper, _ = _loss64(model, x, labels)
            param[index] = saved - eps
            lower, _ = _loss64(model, x, labels)
            param[index] = saved
            numeric = (upper - lower) / (2 * eps)
            assert abs(numeric - expected[index]) <= 1e-5 + 1e-4 * abs(numeric)


def test_fit_lowers_the_loss_of_a_separable_problem():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    x = rng.standard_normal((200, 4, 4, 1)).astype(np.float32) * np.float32(0.3)
    x[labels == 1, :2] += np.float32(1.0)
    model = nn.Sequential([nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Flatten(), nn.Dense(16, 2)], seed=0)
    history = model.fit(x, labels, epochs=5, lr=1e-2, batch_size=20, lr_end=1e-3)
    assert len(history) == 5 and history[-1] < history[0] / 4
    assert model.accuracy(x, labels) >= 0.95


def test_get_and_set_weights_round_trip_in_layer_order():
    model = _tiny_net()
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(3, 3, 2, 3), (3,), (2, 2, 3), (3,), (1, 1, 3, 4), (4,),
                                          (4, 5), (5,)]
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 2)).astype(np.float32)
    other = _tiny_net()
    other.set_weights([w * np.float32(2) for w in weights])
    assert not np.allclose(other.forward(x), model.forward(x))
    other.set_weights(weights)
    np.testing.assert_array_equal(other.forward(x), model.forward(x))
    weights[0][...] = 0  # get_weights hands out copies
    assert np.abs(model.get_weights()[0]).sum() > 0


def test_set_weights_names_the_layer_with_the_wrong_shape():
    model = _tiny_net()
    weights = model.get_weights()
    weights[4] = np.zeros((1, 1, 4, 3), np.float32)
    with pytest.raises(ShapeError, match=r"array 4 is the weight of layer 6 Conv2d\(3, 4, 1, "
                                         r"stride=2, padding=0\), which has shape \(1, 1, 3, 4\)"):
        model.set_weights(weights)
    with pytest.raises(ShapeError, match="got 7 arrays but the model has 8"):
        model.set_weights(weights[:7])


def test_layers_reject_inputs_of_the_wrong_shape():
    with pytest.raises(ShapeError,
                       match=r"Conv2d\(3, 8, 3, .*\) expects NHWC input with 3 channels"):
        nn.Conv2d(3, 8, 3).forward(np.zeros((1, 5, 5, 4), np.float32))
    with pytest.raises(ShapeError, match=r"Dense\(10, 2\) expects \(n, 10\) input.*Flatten"):
        nn.Dense(10, 2).forward(np.zeros((1, 2, 5), np.float32))
    model = nn.Sequential([nn.Flatten(), nn.Dense(4, 2)])
    with pytest.raises(ShapeError, match=r"x has 3 inputs, y has shape \(2,\)"):
        model.fit(np.zeros((3, 2, 2, 1), np.float32), np.zeros(2, np.int64))


def test_seed_fixes_the_initial_weights():
    first, second, third = nn.Sequential([nn.Dense(6, 3)], seed=5), \
        nn.Sequential([nn.Dense(6, 3)], seed=5), nn.Sequential([nn.Dense(6, 3)], seed=6)
    np.testing.assert_array_equal(first.get_weights()[0], second.get_weights()[0])
    assert not np.array_equal(first.get_weights()[0], third.get_weights()[0])
    # He initialization: standard deviation sqrt(2 / fan_in)
    big = nn.Sequential([nn.Dense(400, 300)], seed=0).get_weights()[0]
    assert abs(big.std() - np.sqrt(2 / 400)) < 0.005


def test_a_capped_relu_clips_at_its_ceiling_and_passes_no_gradient_there():
    relu6 = nn.ReLU(ceiling=6)
    x = np.array([-2.0, 0.5, 5.0, 9.0], np.float32)
    assert relu6.forward(x).tolist() == [0.0, 0.5, 5.0, 6.0]
    assert relu6.backward(np.ones(4, np.float32)).tolist() == [0.0, 1.0, 1.0, 0.0]
    assert repr(relu6) == "ReLU(ceiling=6)"
    with pytest.raises(QuiltError, match=r"ReLU\(ceiling=-1\); pass a positive finite number"):
        nn.ReLU(ceiling=-1)
