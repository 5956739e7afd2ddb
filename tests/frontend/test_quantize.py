"""quiltc.quantize: the CMSIS-NN integer primitives against references written
independently in Python integers and fractions, and the integer layers against direct
per-tap convolutions of the same integers."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from quiltc import quantize as q
from quiltc.ir.errors import QuiltError, ShapeError

from support.tiers import examples


def _round_half_away(value):
    """Nearest integer to a Fraction, ties away from zero."""
    magnitude = (abs(value) + Fraction(1, 2)).__floor__()
    return magnitude if value >= 0 else -magnitude


def _reference_requantize(acc, multiplier, shift):
    """arm_nn_requantize spelled out in Python integers: a Q31 high multiply rounding by
    adding 2**30 and flooring, then a rounding division by 2**-shift."""
    scaled = acc * 2 ** max(shift, 0)
    high = (scaled * multiplier + 2**30) // 2**31
    return _round_half_away(Fraction(high, 2 ** max(-shift, 0)))


@settings(max_examples=examples(200))
@given(real=st.floats(2.0**-30, 2.0**6, allow_nan=False))
def test_quantize_multiplier_encodes_the_scale_in_q31(real):
    multiplier, shift = q.quantize_multiplier(np.array([real]))
    m, s = int(multiplier[0]), int(shift[0])
    assert 2**30 <= m < 2**31
    encoded = Fraction(m) * Fraction(2) ** (s - 31)
    # the mantissa is rounded to 31 bits: error at most half a unit in its last place
    assert abs(encoded - Fraction(real)) <= Fraction(2) ** (s - 32)


def test_quantize_multiplier_zero_tiny_and_vector():
    multiplier, shift = q.quantize_multiplier([0.0, 2.0**-40, 0.5, 0.75, 1.0])
    assert multiplier.dtype == np.int32 and shift.dtype == np.int32
    assert list(multiplier) == [0, 0, 2**30, 3 * 2**29, 2**30]
    assert list(shift) == [0, 0, 0, 0, 1]


def test_quantize_multiplier_rejects_negative_and_nan():
    with pytest.raises(QuiltError, match="finite and >= 0"):
        q.quantize_multiplier([0.5, -0.1])
    with pytest.raises(QuiltError, match="calibration data"):
        q.quantize_multiplier([np.nan])


@settings(max_examples=examples(300))
@given(acc=st.integers(-2**24, 2**24), multiplier=st.integers(2**30, 2**31 - 1),
       shift=st.integers(-31, 6))
def test_requantize_matches_python_integer_reference(acc, multiplier, shift):
    got = int(q.requantize(np.array([acc]), np.array([multiplier]), np.array([shift]))[0])
    assert got == _reference_requantize(acc, multiplier, shift)
    exact = Fraction(acc * multiplier) * Fraction(2) ** (shift - 31)
    # two roundings, each at most half a unit: never more than one away from the exact value
    assert abs(got - exact) <= 1


def test_requantize_rounds_like_cmsis_nn_at_ties():
    half = 2**30  # with shift 0 the factor is 1/2, with shift -1 it is 1/4
    odd = np.array([1, -1, 3, -3])
    # the high multiply adds 2**30 and floors: its ties go up, also for negative products
    assert q.requantize(odd, half, 0).tolist() == [1, 0, 2, -1]
    # the power-of-two division rounds its ties away from zero
    assert q.requantize(2 * odd, half, -1).tolist() == [1, -1, 2, -2]


def test_requantize_to_range_clamps_and_narrows():
    acc = np.array([[-500, 0, 100, 5000]])
    multiplier, shift = q.quantize_multiplier(np.full(4, 0.5))
    unsigned = q.requantize_to_range(acc, None, multiplier, shift, 0, 15)
    assert unsigned.dtype == np.uint8 and unsigned.tolist() == [[0, 0, 15, 15]]
    signed = q.requantize_to_range(acc, np.array([0, 0, -100, 0]), multiplier, shift, -128, 127)
    assert signed.dtype == np.int8 and signed.tolist() == [[-128, 0, 0, 127]]


def _reference_conv_acc(x, weight, stride, padding):
    """Direct convolution: one shifted slice of the padded input per kernel tap."""
    kh, kw, _, cout = weight.shape
    padded = np.pad(x.astype(np.int64), ((0, 0), (padding,) * 2, (padding,) * 2, (0, 0)))
    oh = (padded.shape[1] - kh) // stride + 1
    ow = (padded.shape[2] - kw) // stride + 1
    acc = np.zeros((x.shape[0], oh, ow, cout), np.int64)
    for i in range(kh):
        for j in range(kw):
            tap = padded[:, i:i + stride * oh:stride, j:j + stride * ow:stride]
            acc += tap @ weight[i, j].astype(np.int64)
    return acc


conv_shapes = st.fixed_dictionaries({
    "n": st.integers(1, 2), "h": st.integers(1, 7), "w": st.integers(1, 7),
    "cin": st.integers(1, 5), "cout": st.integers(1, 4), "k": st.integers(1, 3),
    "stride": st.integers(1, 2), "padding": st.integers(0, 1), "seed": st.integers(0, 2**31),
    "signed": st.booleans(),
})


def _layer_arguments(shape, weight_shape, channels):
    rng = np.random.default_rng(shape["seed"])
    low, high, dtype = (-128, 127, np.int8) if shape["signed"] else (0, 255, np.uint8)
    x_shape = (shape["n"], shape["h"], shape["w"], shape["cin"])
    x = rng.integers(low, high + 1, x_shape).astype(dtype)
    weight = rng.integers(-127, 128, weight_shape).astype(np.int8)
    bias = rng.integers(-5000, 5000, channels).astype(np.int32)
    multiplier, shift = q.quantize_multiplier(rng.uniform(1e-4, 0.05, channels))
    return x, weight, bias, multiplier, shift


@settings(max_examples=examples(60))
@given(shape=conv_shapes)
def test_conv2d_int_is_a_requantized_direct_convolution(shape):
    k = shape["k"]
    assume(shape["h"] + 2 * shape["padding"] >= k and shape["w"] + 2 * shape["padding"] >= k)
    x, weight, bias, multiplier, shift = _layer_arguments(
        shape, (k, k, shape["cin"], shape["cout"]), shape["cout"])
    got = q.conv2d_int(x, weight, bias, multiplier, shift, shape["stride"], shape["padding"],
                       -128, 127)
    acc = _reference_conv_acc(x, weight, shape["stride"], shape["padding"]) + bias
    want = np.vectorize(_reference_requantize, otypes=[np.int64])(acc, multiplier, shift)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, np.clip(want, -128, 127))


@settings(max_examples=examples(40))
@given(shape=conv_shapes)
def test_depthwise_conv2d_int_is_a_per_channel_convolution(shape):
    k = shape["k"]
    assume(shape["h"] + 2 * shape["padding"] >= k and shape["w"] + 2 * shape["padding"] >= k)
    channels = shape["cin"]
    x, weight, bias, multiplier, shift = _layer_arguments(shape, (k, k, channels), channels)
    got = q.depthwise_conv2d_int(x, weight, bias, multiplier, shift, shape["stride"],
                                 shape["padding"], 0, 255)
    diagonal = np.zeros((k, k, channels, channels), np.int64)
    diagonal[:, :, np.arange(channels), np.arange(channels)] = weight
    acc = _reference_conv_acc(x, diagonal, shape["stride"], shape["padding"]) + bias
    want = np.vectorize(_reference_requantize, otypes=[np.int64])(acc, multiplier, shift)
    np.testing.assert_array_equal(got, np.clip(want, 0, 255))


@settings(max_examples=examples(40))
@given(n=st.integers(1, 4), cin=st.integers(1, 40), cout=st.integers(1, 12),
       seed=st.integers(0, 2**31))
def test_dense_int_matches_integer_matmul(n, cin, cout, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (n, cin)).astype(np.int8)
    weight = rng.integers(-127, 128, (cin, cout)).astype(np.int8)
    bias = rng.integers(-3000, 3000, cout).astype(np.int32)
    multiplier, shift = q.quantize_multiplier(rng.uniform(1e-4, 0.1, cout))
    got = q.dense_int(x, weight, bias, multiplier, shift, -128, 127)
    acc = x.astype(np.int64) @ weight.astype(np.int64) + bias
    want = np.vectorize(_reference_requantize, otypes=[np.int64])(acc, multiplier, shift)
    np.testing.assert_array_equal(got, np.clip(want, -128, 127))


@settings(max_examples=examples(40))
@given(h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 4), k=st.integers(1, 3),
       signed=st.booleans(), seed=st.integers(0, 2**31))
def test_pools_match_window_references(h, w, c, k, signed, seed):
    assume(h >= k and w >= k)
    rng = np.random.default_rng(seed)
    dtype = np.int8 if signed else np.uint8
    info = np.iinfo(dtype)
    x = rng.integers(info.min, int(info.max) + 1, (2, h, w, c)).astype(dtype)
    oh, ow = h // k, w // k
    blocks = x[:, :oh * k, :ow * k].reshape(2, oh, k, ow, k, c).astype(np.int64)
    np.testing.assert_array_equal(q.max_pool_int(x, k), blocks.max(axis=(2, 4)))
    sums = blocks.sum(axis=(2, 4))
    want = np.vectorize(lambda s: _round_half_away(Fraction(int(s), k * k)),
                        otypes=[np.int64])(sums)
    got = q.avg_pool_int(x, k)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)


def test_weight_quantization_is_symmetric_per_output_channel():
    weight = np.array([[[[0.5, -2.0, 0.0]], [[-1.0, 1.0, 0.0]]]], np.float32)  # (1, 2, 1, 3)
    scales = q.weight_scales(weight)
    np.testing.assert_allclose(scales, [1.0 / 127, 2.0 / 127, 1.0])
    quantized = q.quantize_weight(weight, scales)
    assert quantized.dtype == np.int8
    assert quantized[0, :, 0].tolist() == [[64, -127, 0], [-127, 64, 0]]


def test_integer_layers_name_the_shape_problem():
    weight = np.zeros((3, 3, 4, 2), np.int8)
    ones = np.ones(2, np.int32)
    with pytest.raises(ShapeError, match="conv2d_int: input has 3 channels but the weight"):
        q.conv2d_int(np.zeros((1, 5, 5, 3), np.int8), weight, None, ones, ones, 1, 0, -128, 127)
    with pytest.raises(ShapeError, match="integer NHWC"):
        q.conv2d_int(np.zeros((5, 5, 4), np.int8), weight, None, ones, ones, 1, 0, -128, 127)
    with pytest.raises(ShapeError, match=r"dense_int: input must be an integer \(n, features\)"):
        q.dense_int(np.zeros((2, 4), np.float32), np.zeros((4, 2), np.int8), None, ones, ones,
                    -128, 127)
