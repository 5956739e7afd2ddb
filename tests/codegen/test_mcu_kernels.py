"""The microcontroller kernels, bit-exact against the numpy integer references
(quiltc.quantize, quiltc.bitserial): in the interpreter on small shapes, and as the host
build of the C the mcu renderer emits on hypothesis-drawn shapes, for every layer type
and every activation width 1..8."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc import quantize as q
from quiltc.bitserial import bitserial_conv2d_int, build_lut
from quiltc.ir import interp
from quiltc.ir.verify import verify
from quiltc.recipes import mcu as kernels
from quiltc.recipes import mcu_bitserial

from support.helpers import mcu_host_build
from support.tiers import activation_widths, examples

SEEDS = st.integers(0, 2**32 - 1)
# Register blocks: None is the kernel's default fitted to the layer; drawn ones need not
# divide the output, so the guarded remainder blocks are exercised too.
PIXEL_CHANNEL_BLOCKS = st.none() | st.tuples(st.integers(1, 4), st.integers(1, 4))


@st.composite
def conv_shapes(draw, cin=None, groups_of_8=False):
    kernel = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 2))
    padding = draw(st.integers(0, kernel // 2 + 1)) if kernel > 1 else 0
    h, w = draw(st.integers(kernel, 7)), draw(st.integers(kernel, 7))
    channels = cin or (8 * draw(st.integers(1, 3)) if groups_of_8 else draw(st.integers(1, 5)))
    return kernels.ConvShape(h, w, channels, draw(st.integers(1, 9)), kernel, kernel, stride,
                             padding)


def requantization(rng, cout, depth, in_max, out_max):
    """Per-channel bias and (multiplier, shift) spreading outputs over the range."""
    bias = rng.integers(-depth * in_max * 16, depth * in_max * 16, cout).astype(np.int32)
    scale = rng.uniform(0.5, 2.0, cout) * max(out_max, 1) / (depth * in_max * 24.0)
    multiplier, shift = q.quantize_multiplier(scale)
    return bias, multiplier, shift


def conv_case(shape, seed, in_dtype="uint8", bits=8, signed_out=False):
    rng = np.random.default_rng(seed)
    lo, hi = (0, (1 << bits) - 1) if in_dtype == "uint8" else (-128, 127)
    x = rng.integers(lo, hi, (1, shape.h, shape.w, shape.cin), endpoint=True).astype(in_dtype)
    weight = rng.integers(-127, 128, (shape.kh, shape.kw, shape.cin, shape.cout)).astype(np.int8)
    out_range = (-128, 127) if signed_out else (0, (1 << bits) - 1)
    depth = shape.kh * shape.kw * shape.cin
    bias, multiplier, shift = requantization(rng, shape.cout, depth, max(hi, 1), out_range[1])
    return x, weight, (bias, multiplier, shift), out_range


@pytest.mark.parametrize("variant", ["plain", "smlad"])
@settings(max_examples=examples(6))
@given(shape=conv_shapes(), seed=SEEDS, signed_in=st.booleans(), signed_out=st.booleans(),
       block=PIXEL_CHANNEL_BLOCKS, unrolled_rows=st.booleans())
def test_int8_convs_match_the_reference(variant, shape, seed, signed_in, signed_out, block,
                                        unrolled_rows):
    in_dtype = "int8" if signed_in else "uint8"
    x, weight, requant, out_range = conv_case(shape, seed, in_dtype, signed_out=signed_out)
    want = q.conv2d_int(x, weight, *requant, shape.stride, shape.padding, *out_range)[0]
    fn = mcu_host_build(kernels.conv_int8(shape, in_dtype, out_range, variant, block=block,
                                      unrolled_rows=unrolled_rows))
    table = (weight.transpose(3, 0, 1, 2) if variant == "plain" else kernels.pack_pairs(weight))
    got = fn(x=x[0], weight=np.ascontiguousarray(table), bias=requant[0],
             multiplier=requant[1], shift=requant[2])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("act_bits", activation_widths())
@settings(max_examples=examples(3))
@given(shape=conv_shapes(groups_of_8=True), seed=SEEDS,
       pool_size=st.sampled_from([2, 16, 48, 64, 256]), groups_per_step=st.sampled_from(
           [None, 1, 2, 3]), window_unrolled=st.booleans())
def test_the_bitserial_conv_matches_the_reference_at_every_width(
        act_bits, shape, seed, pool_size, groups_per_step, window_unrolled):
    rng = np.random.default_rng(seed)
    x, _, requant, out_range = conv_case(shape, seed, bits=act_bits)
    pool = rng.integers(-127, 128, (pool_size, mcu_bitserial.VECTOR_LEN)).astype(np.int8)
    indices = rng.integers(0, pool_size, (shape.kh, shape.kw, shape.cin // 8, shape.cout))
    indices = indices.astype(np.uint8)
    lut = build_lut(pool)
    want = bitserial_conv2d_int(x, indices, lut, *requant, act_bits, shape.stride,
                                shape.padding, *out_range)[0]
    sch = mcu_bitserial.bitserial_conv(shape, act_bits, pool_size, out_range,
                                 lut_dtype=np.dtype(lut.dtype).name,
                                 groups_per_step=groups_per_step, window_unrolled=window_unrolled)
    # Written out, the window's pool indices go into the code as immediates.
    constants = {"index": indices} if window_unrolled else None
    got = mcu_host_build(sch, constants)(x=x[0], index=indices, lut=lut, bias=requant[0],
                                     multiplier=requant[1], shift=requant[2])
    np.testing.assert_array_equal(got, want)


@settings(max_examples=examples(6))
@given(shape=conv_shapes(), seed=SEEDS, signed_in=st.booleans(), block=PIXEL_CHANNEL_BLOCKS)
def test_the_depthwise_conv_matches_the_reference(shape, seed, signed_in, block):
    shape = dataclasses.replace(shape, cout=shape.cin)
    in_dtype = "int8" if signed_in else "uint8"
    x, _, requant, out_range = conv_case(shape, seed, in_dtype)
    weight = np.random.default_rng(seed).integers(-127, 128, (shape.kh, shape.kw, shape.cin))
    weight = weight.astype(np.int8)
    want = q.depthwise_conv2d_int(x, weight, *requant, shape.stride, shape.padding,
                                  *out_range)[0]
    got = mcu_host_build(kernels.depthwise_int8(shape, in_dtype, out_range, block=block))(
        x=x[0], weight=np.ascontiguousarray(weight.transpose(2, 0, 1)), bias=requant[0],
        multiplier=requant[1], shift=requant[2])
    np.testing.assert_array_equal(got, want)


@settings(max_examples=examples(6))
@pytest.mark.parametrize("variant", ["plain", "smlad"])
@given(cin=st.integers(1, 70), cout=st.integers(1, 12), seed=SEEDS, signed_out=st.booleans(),
       block=st.none() | st.tuples(st.integers(1, 9)))
def test_the_dense_layer_matches_the_reference(variant, cin, cout, seed, signed_out, block):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (1, cin)).astype(np.uint8)
    weight = rng.integers(-127, 128, (cin, cout)).astype(np.int8)
    out_range = (-128, 127) if signed_out else (0, 255)
    requant = requantization(rng, cout, cin, 255, out_range[1])
    want = q.dense_int(x, weight, *requant, *out_range)[0]
    table = weight.T if variant == "plain" else kernels.pack_pairs(weight)
    got = mcu_host_build(kernels.dense_int8(cin, cout, "uint8", out_range, block=block,
                                        variant=variant))(
        x=x[0], weight=np.ascontiguousarray(table), bias=requant[0],
        multiplier=requant[1], shift=requant[2])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", ["max", "avg"])
@settings(max_examples=examples(5))
@given(h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 5), k=st.integers(1, 3),
       seed=SEEDS, dtype=st.sampled_from(["int8", "uint8"]))
def test_pools_match_the_reference(kind, h, w, c, k, seed, dtype):
    k = min(k, h, w)
    info = np.iinfo(dtype)
    x = np.random.default_rng(seed).integers(info.min, info.max, (1, h, w, c), endpoint=True)
    x = x.astype(dtype)
    make, reference = ((kernels.max_pool, q.max_pool_int) if kind == "max"
                       else (kernels.avg_pool, q.avg_pool_int))
    got = mcu_host_build(make(h, w, c, k, dtype))(x=x[0])
    np.testing.assert_array_equal(got, reference(x, k)[0])


def test_every_kernel_computes_the_reference_in_the_interpreter():
    shape = kernels.ConvShape(4, 3, 8, 3, 3, 3, 2, 1)
    x, weight, requant, out_range = conv_case(shape, 7, bits=3)
    named = dict(zip(("bias", "multiplier", "shift"), requant))
    want = q.conv2d_int(x, weight, *requant, 2, 1, *out_range)[0]
    for variant, table in (("plain", weight.transpose(3, 0, 1, 2)),
                           ("smlad", kernels.pack_pairs(weight))):
        sch = kernels.conv_int8(shape, "uint8", out_range, variant)
        got = interp.run(verify(sch.kernel), x=x[0], weight=np.ascontiguousarray(table),
                         **named)
        np.testing.assert_array_equal(got["conv"], want, err_msg=variant)
    pool = np.random.default_rng(3).integers(-127, 128, (4, 8)).astype(np.int8)
    indices = np.random.default_rng(4).integers(0, 4, (3, 3, 1, 3)).astype(np.uint8)
    sch = mcu_bitserial.bitserial_conv(shape, 3, 4, out_range, lut_dtype="int16")
    got = interp.run(verify(sch.kernel), x=x[0], index=indices,
                     lut=build_lut(pool).astype(np.int16), **named)
    want = bitserial_conv2d_int(x, indices, pool, *requant, 3, 2, 1, *out_range)[0]
    np.testing.assert_array_equal(got["conv"], want)


def test_the_default_block_is_lowered_to_divide_the_output():
    assert kernels.fitted_block((4, 2), (16, 32)) == (4, 2)
    assert kernels.fitted_block((4, 2), (6, 9)) == (3, 1)
    assert kernels.fitted_block((8,), (10,)) == (5,)


@pytest.mark.parametrize("block", [(2,), (0, 1), [2, 2, 1], (2, 2.0)])
def test_a_block_that_is_not_positive_integers_is_refused(block):
    shape = kernels.ConvShape(4, 4, 4, 4, 3, 3)
    with pytest.raises(qc.QuiltError, match=r"for an int8 conv is not 2 positive integers; "
                                            r"pass a tuple such as \(4, 2\)"):
        kernels.conv_int8(shape, "uint8", (0, 255), "smlad", block=block)


def test_a_pooled_conv_needs_channels_in_groups_of_eight():
    shape = kernels.ConvShape(4, 4, 12, 4, 3, 3)
    with pytest.raises(qc.QuiltError, match="multiples of 8, got 12; keep this layer int8"):
        mcu_bitserial.bitserial_conv(shape, 4, 64, (0, 15))


@pytest.mark.parametrize("act_bits", [0, 9])
def test_act_bits_outside_one_to_eight_are_refused(act_bits):
    shape = kernels.ConvShape(4, 4, 8, 4, 3, 3)
    with pytest.raises(qc.QuiltError, match=f"act_bits={act_bits} is outside 1..8"):
        mcu_bitserial.bitserial_conv(shape, act_bits, 64, (0, 15))
