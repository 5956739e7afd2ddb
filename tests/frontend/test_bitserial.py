"""quiltc.bitserial: the LUT holds the pool's dot products with every bit pattern, and the
bit-plane convolution is bit-exact with the plain integer convolution of pool[indices]
for every activation width 1..8."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from quiltc import bitserial, quantize
from quiltc.ir.errors import QuiltError, ShapeError

from support.tiers import examples


@settings(max_examples=examples(30))
@given(pool_size=st.integers(1, 256), seed=st.integers(0, 2**31), small=st.booleans())
def test_lut_entries_are_dot_products_with_bit_patterns(pool_size, seed, small):
    rng = np.random.default_rng(seed)
    bound = 15 if small else 127
    pool = rng.integers(-bound, bound + 1, (pool_size, 8)).astype(np.int8)
    lut = bitserial.build_lut(pool)
    assert lut.shape == (256, pool_size)
    for p in rng.integers(0, 256, 20):
        bits = np.array([(p >> j) & 1 for j in range(8)])
        np.testing.assert_array_equal(lut[p], pool.astype(np.int64) @ bits)
    # 8 entries of at most 15 sum to at most 120: the table fits int8 then
    assert lut.dtype == (np.int8 if np.abs(lut).max() <= 127 and lut.min() >= -128 else np.int16)
    if small:
        assert lut.dtype == np.int8


conv_cases = st.fixed_dictionaries({
    "n": st.integers(1, 2), "h": st.integers(1, 6), "w": st.integers(1, 6),
    "groups": st.integers(1, 3), "cout": st.integers(1, 5), "k": st.sampled_from([1, 3]),
    "stride": st.integers(1, 2), "padding": st.integers(0, 1), "pool_size": st.integers(2, 64),
    "act_bits": st.integers(1, 8), "seed": st.integers(0, 2**31), "as_lut": st.booleans(),
})


@settings(max_examples=examples(80))
@given(case=conv_cases)
def test_bitserial_conv_equals_integer_conv_of_pooled_weights(case):
    k, padding = case["k"], case["padding"]
    assume(case["h"] + 2 * padding >= k and case["w"] + 2 * padding >= k)
    rng = np.random.default_rng(case["seed"])
    cin, cout = 8 * case["groups"], case["cout"]
    pool = rng.integers(-127, 128, (case["pool_size"], 8)).astype(np.int8)
    indices = rng.integers(0, case["pool_size"], (k, k, case["groups"], cout)).astype(np.uint8)
    image_shape = (case["n"], case["h"], case["w"], cin)
    x = rng.integers(0, 2 ** case["act_bits"], image_shape).astype(np.uint8)
    bias = rng.integers(-2000, 2000, cout).astype(np.int32)
    multiplier, shift = quantize.quantize_multiplier(rng.uniform(1e-4, 0.02, cout))
    # pool[indices] is (kh, kw, groups, cout, 8): channel g*8+j of the weight is entry j
    weight = pool[indices].transpose(0, 1, 2, 4, 3).reshape(k, k, cin, cout)
    common = (bias, multiplier, shift)
    want = quantize.conv2d_int(x, weight, *common, case["stride"], padding, -128, 127)
    table = bitserial.build_lut(pool) if case["as_lut"] else pool
    got = bitserial.bitserial_conv2d_int(x, indices, table, *common, case["act_bits"],
                                         case["stride"], padding, -128, 127)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def _small_layer():
    pool = np.arange(16, dtype=np.int8).reshape(2, 8)
    indices = np.zeros((1, 1, 1, 2), np.uint8)
    multiplier, shift = quantize.quantize_multiplier(np.full(2, 0.01))
    return pool, indices, multiplier, shift


@pytest.mark.parametrize("act_bits", [0, 9, -1, 2.0, True])
def test_bitserial_rejects_act_bits_outside_1_to_8(act_bits):
    pool, indices, multiplier, shift = _small_layer()
    x = np.zeros((1, 2, 2, 8), np.uint8)
    with pytest.raises(QuiltError, match=r"act_bits=.* is not supported.*pass act_bits in 1\.\.8"):
        bitserial.bitserial_conv2d_int(x, indices, pool, None, multiplier, shift, act_bits,
                                       1, 0, 0, 255)


def test_bitserial_rejects_activations_wider_than_act_bits():
    pool, indices, multiplier, shift = _small_layer()
    x = np.full((1, 2, 2, 8), 4, np.uint8)
    with pytest.raises(QuiltError, match=r"do not fit 2 unsigned bits.*\[0, 3\]"):
        bitserial.bitserial_conv2d_int(x, indices, pool, None, multiplier, shift, 2, 1, 0, 0, 255)


def test_bitserial_names_shape_problems():
    pool, indices, multiplier, shift = _small_layer()
    with pytest.raises(ShapeError, match=r"input must be \(n, h, w, 8\)"):
        bitserial.bitserial_conv2d_int(np.zeros((1, 2, 2, 16), np.uint8), indices, pool, None,
                                       multiplier, shift, 8, 1, 0, 0, 255)
    with pytest.raises(ShapeError, match="pool index 5 is out of range for a pool of 2"):
        bitserial.bitserial_conv2d_int(np.zeros((1, 2, 2, 8), np.uint8), indices + 5, pool, None,
                                       multiplier, shift, 8, 1, 0, 0, 255)
    with pytest.raises(ShapeError, match=r"weight pool must be \(pool_size, 8\)"):
        bitserial.build_lut(np.zeros((4, 6), np.int8))
    with pytest.raises(ShapeError, match="quantize the pool to int8"):
        bitserial.build_lut(np.full((4, 8), 300, np.int16))


def test_a_raw_pool_of_256_vectors_is_not_mistaken_for_a_lut():
    rng = np.random.default_rng(0)
    pool = rng.integers(-127, 128, (256, 8)).astype(np.int8)
    _, indices, multiplier, shift = _small_layer()
    with pytest.raises(ShapeError, match=r"pass build_lut\(pool\)"):
        bitserial.bitserial_conv2d_int(np.zeros((1, 2, 2, 8), np.uint8), indices, pool, None,
                                       multiplier, shift, 8, 1, 0, 0, 255)
