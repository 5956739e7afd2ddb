"""Integer arithmetic of quantized networks, bit-exact with CMSIS-NN: the oracle for the
generated microcontroller C.

Conventions (TensorFlow Lite Micro / CMSIS-NN, symmetric, zero point 0 everywhere):

- weights are int8, symmetric per output channel (`weight_scales`);
- activations are int8 (signed, the model input and layers without ReLU) or unsigned
  with `act_bits` bits after a ReLU, always with zero point 0, so padding pads zeros;
- a layer accumulates in int32, adds an int32 bias, and rescales each output channel by
  a real factor M = s_in * s_w[c] / s_out given as a Q31 multiplier and a shift
  (`quantize_multiplier`), applied by `requantize`, then clamps to its output range.

Every function takes and returns numpy integer arrays; images are NHWC, batch first,
and conv weights HWIO. Accumulation runs in int64 here; the C kernels use int32, which
holds every sum these layers produce.
"""

import numpy as np

from ..ir.errors import QuiltError, ShapeError
from .im2col import im2col, windows

Q31_ONE = 1 << 31
INT8_MAX = 127


def weight_scales(weight):
    """Per-output-channel scales of a float weight whose last axis is the output channel:
    max |w[..., c]| / 127 (1 where a channel is all zero, so it quantizes to zeros)."""
    weight = np.asarray(weight, np.float64)
    peak = np.abs(weight.reshape(-1, weight.shape[-1])).max(axis=0)
    return np.where(peak > 0, peak / INT8_MAX, 1.0)


def quantize_weight(weight, scales):
    """`weight` (last axis = output channel) as int8: round(w / scales[c]) clamped to
    [-127, 127] (symmetric, so -128 never appears)."""
    scaled = np.asarray(weight, np.float64) / np.asarray(scales, np.float64)
    return np.clip(np.rint(scaled), -INT8_MAX, INT8_MAX).astype(np.int8)


def quantize_multiplier(real_scale):
    """Encode positive real factors as (multiplier, shift) with
    real = multiplier * 2**(shift - 31) and multiplier in [2**30, 2**31): TensorFlow
    Lite's QuantizeMultiplier, vectorised. Rounds the mantissa half away from zero (as
    std::round); a factor of 0, or one below 2**-31, encodes as (0, 0).

    Returns (multiplier int32, shift int32) arrays of `real_scale`'s shape."""
    real = np.asarray(real_scale, np.float64)
    if not np.all(np.isfinite(real)) or np.any(real < 0):
        raise QuiltError(f"quantize_multiplier: scales must be finite and >= 0, got {real!r}; "
                         "check the calibration data for empty or constant tensors")
    mantissa, exponent = np.frexp(real)
    fixed = np.floor(mantissa * Q31_ONE + 0.5).astype(np.int64)
    carried = fixed == Q31_ONE
    fixed = np.where(carried, fixed // 2, fixed)
    exponent = np.where(carried, exponent + 1, exponent)
    underflow = exponent < -31
    fixed = np.where(underflow, 0, fixed)
    exponent = np.where(underflow, 0, exponent)
    return fixed.astype(np.int32), exponent.astype(np.int32)


def doubling_high_mult(a, b):
    """CMSIS-NN arm_nn_doubling_high_mult_no_sat: (a * b + 2**30) >> 31 in 64 bits with an
    arithmetic (flooring) shift. The no-saturation variant has no separate nudge for
    negative products: the + 2**30 is added whatever the sign."""
    product = np.asarray(a, np.int64) * np.asarray(b, np.int64)
    return (product + (1 << 30)) >> 31


def divide_by_power_of_two(dividend, exponent):
    """CMSIS-NN arm_nn_divide_by_power_of_two: dividend / 2**exponent rounded to nearest,
    ties away from zero (exponent in [0, 31])."""
    dividend = np.asarray(dividend, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = dividend & mask
    result = dividend >> exponent
    threshold = (mask >> 1) + (result < 0)
    return result + (remainder > threshold)


def requantize(acc, multiplier, shift):
    """CMSIS-NN arm_nn_requantize (the double-rounding form): `acc` times
    multiplier * 2**(shift - 31), i.e.
    divide_by_power_of_two(doubling_high_mult(acc * 2**max(shift, 0), multiplier),
    max(-shift, 0)). `multiplier` and `shift` broadcast against `acc` (per channel on
    the last axis). Returns int64, unclamped."""
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    scaled = np.asarray(acc, np.int64) << left
    return divide_by_power_of_two(doubling_high_mult(scaled, multiplier), right)


def range_dtype(out_min, out_max):
    """The narrowest numpy integer dtype holding [out_min, out_max]: uint8 for unsigned
    activations, int8 for signed ones."""
    for dtype in (np.uint8, np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= out_min and out_max <= info.max:
            return dtype
    raise QuiltError(f"output range [{out_min}, {out_max}] does not fit int32; "
                     "activations are at most 8 bits")


def requantize_to_range(acc, bias, multiplier, shift, out_min, out_max):
    """The end of every integer layer: `acc` (..., cout) plus `bias` (int32 per channel,
    or None), requantized per channel and clamped to [out_min, out_max], returned in
    `range_dtype(out_min, out_max)`."""
    acc = np.asarray(acc, np.int64)
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    result = np.clip(requantize(acc, multiplier, shift), out_min, out_max)
    return result.astype(range_dtype(out_min, out_max))


def _check_image(x, name):
    x = np.asarray(x)
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.integer):
        raise ShapeError(f"{name}: input must be an integer NHWC array (n, h, w, c), "
                         f"got {x.dtype} of shape {x.shape}")
    return x


def _check_channels(name, x, expected, what):
    if x.shape[-1] != expected:
        raise ShapeError(f"{name}: input has {x.shape[-1]} channels but the {what} expects "
                         f"{expected}; pass an input whose last axis is {expected}")


def _exact_matmul(rows, weight):
    """Integer matrix product through float64 BLAS: exact, because every product of an
    8-bit activation and an int8 weight is below 2**16 in magnitude and a sum of fewer
    than 2**37 of them stays below 2**53, where float64 represents integers exactly."""
    product = rows.astype(np.float64) @ weight.astype(np.float64)
    return product.astype(np.int64)


def conv2d_int(x, weight, bias, multiplier, shift, stride, padding, out_min, out_max):
    """Integer 2-D convolution (CMSIS-NN arm_convolve_s8 with zero offsets).

    x (n, h, w, cin) int8/uint8; weight (kh, kw, cin, cout) int8 HWIO; bias (cout,)
    int32 or None; multiplier, shift (cout,) from `quantize_multiplier`; `padding` zeros
    on each side. Returns (n, oh, ow, cout) clamped to [out_min, out_max]."""
    x = _check_image(x, "conv2d_int")
    kh, kw, cin, cout = weight.shape
    _check_channels("conv2d_int", x, cin, f"weight {weight.shape}")
    rows = im2col(x, kh, kw, stride, padding)
    acc = _exact_matmul(rows.reshape(-1, kh * kw * cin), weight.reshape(-1, cout))
    acc = acc.reshape(rows.shape[:3] + (cout,))
    return requantize_to_range(acc, bias, multiplier, shift, out_min, out_max)


def depthwise_conv2d_int(x, weight, bias, multiplier, shift, stride, padding, out_min, out_max):
    """Integer depthwise convolution, channel multiplier 1 (CMSIS-NN
    arm_depthwise_conv_s8): x (n, h, w, c), weight (kh, kw, c) int8, bias (c,) int32 or
    None, multiplier/shift (c,). Returns (n, oh, ow, c) clamped to [out_min, out_max]."""
    x = _check_image(x, "depthwise_conv2d_int")
    kh, kw, channels = weight.shape
    _check_channels("depthwise_conv2d_int", x, channels, f"weight {weight.shape}")
    patches = windows(x, kh, kw, stride, padding).astype(np.int64)
    acc = np.einsum("nhwijc,ijc->nhwc", patches, weight.astype(np.int64))
    return requantize_to_range(acc, bias, multiplier, shift, out_min, out_max)


def dense_int(x, weight, bias, multiplier, shift, out_min, out_max):
    """Integer fully connected layer (CMSIS-NN arm_fully_connected_s8 with per-channel
    scales): x (n, cin), weight (cin, cout) int8, bias (cout,) int32 or None,
    multiplier/shift (cout,). Returns (n, cout) clamped to [out_min, out_max]."""
    x = np.asarray(x)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
        raise ShapeError(f"dense_int: input must be an integer (n, features) array, "
                         f"got {x.dtype} of shape {x.shape}")
    _check_channels("dense_int", x, weight.shape[0], f"weight {weight.shape}")
    acc = _exact_matmul(x, weight)
    return requantize_to_range(acc, bias, multiplier, shift, out_min, out_max)


def max_pool_int(x, k):
    """k x k max pooling with stride k and no padding (trailing rows/columns that do not
    fill a window are dropped); keeps x's dtype."""
    x = _check_image(x, "max_pool_int")
    return windows(x, k, k, k, 0).max(axis=(3, 4))


def avg_pool_int(x, k):
    """k x k average pooling with stride k, no padding, rounding like CMSIS-NN
    arm_avgpool_s8: (sum + count/2) / count for sums >= 0, (sum - count/2) / count
    otherwise, with C's truncating division (so ties round away from zero); keeps x's
    dtype."""
    x = _check_image(x, "avg_pool_int")
    count = k * k
    total = windows(x, k, k, k, 0).astype(np.int64).sum(axis=(3, 4))
    magnitude = (np.abs(total) + count // 2) // count
    return (np.sign(total) * magnitude).astype(x.dtype)
