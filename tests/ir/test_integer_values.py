"""Integer kernels' values: shifts and masks, gathers, requantize and smlad, in the
interpreter (the oracle) and compiled C, against numpy and against the independent
numpy implementation of CMSIS-NN's requantization in quiltc.quantize."""

import operator
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc import quantize
from quiltc.ir import interp
from quiltc.ir.verify import verify

from support.helpers import require_cc
from support.tiers import examples

SEEDS = st.integers(0, 2**32 - 1)
N = qc.var("n_values", 1, 64)
INT_DTYPES = ["int8", "int16", "int32", "uint8"]


def _both(kernel, **arrays):
    """Results of the interpreter and of the compiled C, checked equal."""
    expected = interp.run(kernel, **arrays)
    require_cc()
    got = qc.build(kernel)(**arrays)
    got = got if isinstance(got, dict) else {kernel.outputs[0]: got}
    for name, want in expected.items():
        assert got[name].dtype == want.dtype
        np.testing.assert_array_equal(got[name], want, err_msg=name)
    return expected


def _shift_kernel(dtype):
    x = qc.placeholder((N,), dtype, "x")
    count = qc.placeholder((N,), dtype, "count")
    mask = qc.placeholder((N,), dtype, "mask")
    left = qc.compute((N,), lambda i: x[i] << count[i], "left")
    right = qc.compute((N,), lambda i: x[i] >> count[i], "right")
    both = qc.compute((N,), lambda i: (x[i] & mask[i]) | (mask[i] >> 1), "both")
    return qc.lower([left, right, both], f"shifts_{dtype}")


SHIFT_KERNELS = {dtype: _shift_kernel(dtype) for dtype in INT_DTYPES + ["int64"]}


@settings(max_examples=examples(12))
@given(dtype=st.sampled_from(INT_DTYPES), n=st.integers(1, 64), seed=SEEDS)
def test_shifts_and_masks_follow_c_on_every_integer_type(dtype, n, seed):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, n, endpoint=True).astype(dtype)
    count = rng.integers(0, info.bits, n).astype(dtype)
    mask = rng.integers(info.min, info.max, n, endpoint=True).astype(dtype)
    got = _both(SHIFT_KERNELS[dtype], x=x, count=count, mask=mask)
    wide = x.astype(np.int64)
    np.testing.assert_array_equal(got["left"], (wide << count).astype(dtype))
    np.testing.assert_array_equal(got["right"], (wide >> count).astype(dtype))
    np.testing.assert_array_equal(got["both"], (x & mask) | (mask >> 1))


def test_a_right_shift_of_a_negative_value_is_arithmetic():
    result = interp.run(SHIFT_KERNELS["int32"], x=np.array([-7], np.int32),
                        count=np.array([1], np.int32), mask=np.array([0], np.int32))
    assert result["right"][0] == -4


@settings(max_examples=examples(12))
@given(dtype=st.sampled_from(INT_DTYPES + ["int64"]), n=st.integers(1, 64), seed=SEEDS)
def test_shift_counts_outside_the_width_give_numpys_results_everywhere(dtype, n, seed):
    """A count below 0 or at least the width (C leaves those undefined) shifts every bit
    out: 0, or -1 for a right shift of a negative value, as numpy defines it; the
    interpreter and C agree with numpy on any count."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, n, endpoint=True).astype(dtype)
    low = -3 if info.min < 0 else 0
    count = rng.integers(low, min(info.bits + 40, int(info.max)), n).astype(dtype)
    kernel = SHIFT_KERNELS[dtype]
    got = _both(kernel, x=x, count=count, mask=np.zeros(n, dtype))
    np.testing.assert_array_equal(got["left"], np.left_shift(x, count))
    np.testing.assert_array_equal(got["right"], np.right_shift(x, count))


BITWISE = {"<<": operator.lshift, ">>": operator.rshift, "&": operator.and_, "|": operator.or_}


@pytest.mark.parametrize("op", sorted(BITWISE))
def test_bitwise_operators_refuse_floats(op):
    x = qc.placeholder((4,), "float32", "x")
    with pytest.raises(qc.LanguageError,
                       match=re.escape(f"'{op}' needs integer operands, got float32")):
        qc.compute((4,), lambda i: BITWISE[op](x[i], x[i]), "y")


def _gather_kernel(columns, clamp):
    p = qc.placeholder((N,), "uint8", "p")
    idx = qc.placeholder((N,), "uint8", "idx")
    lut = qc.placeholder((256, columns), "int16", "lut")
    out = qc.compute((N,), lambda i: qc.cast(lut[p[i], clamp(idx[i])], "int32"), "out")
    return qc.lower(out, "gather")


@settings(max_examples=examples(8))
@given(n=st.integers(1, 64), seed=SEEDS, how=st.sampled_from(["mask", "clamp"]))
def test_a_gather_reads_the_table_at_data_dependent_positions(n, seed, how):
    columns = 16
    clamp = ((lambda v: v & (columns - 1)) if how == "mask"
             else (lambda v: qc.minimum(v, qc.cast(columns - 1, "uint8"))))
    kernel = verify(_gather_kernel(columns, clamp))
    rng = np.random.default_rng(seed)
    p = rng.integers(0, 256, n).astype(np.uint8)
    idx = rng.integers(0, 256, n).astype(np.uint8)
    lut = rng.integers(-30000, 30000, (256, columns)).astype(np.int16)
    got = _both(kernel, p=p, idx=idx, lut=lut)
    column = idx & 15 if how == "mask" else np.minimum(idx, 15)
    np.testing.assert_array_equal(got["out"], lut[p, column].astype(np.int32))


def test_the_verifier_refuses_a_gather_whose_index_may_leave_the_table():
    kernel = _gather_kernel(16, lambda v: v)
    with pytest.raises(qc.VerifyError, match=r"gathered index idx\[i\] of lut \(dim 1, extent "
                                             r"16\) ranges over \[0, 255\]; clamp it"):
        verify(kernel)


def test_a_full_width_table_needs_no_clamp_for_a_byte_index():
    verify(_gather_kernel(256, lambda v: v))


def test_a_gather_index_must_be_an_integer_value():
    lut = qc.placeholder((8,), "int32", "lut")
    f = qc.placeholder((8,), "float32", "f")
    with pytest.raises(qc.LanguageError, match="lut is indexed by a float32 value"):
        qc.compute((8,), lambda i: lut[f[i]], "bad")


def _requantize_kernel():
    acc = qc.placeholder((N,), "int32", "acc")
    multiplier = qc.placeholder((N,), "int32", "multiplier")
    shift = qc.placeholder((N,), "int32", "shift")
    out = qc.compute((N,), lambda i: qc.requantize(acc[i], multiplier[i], shift[i]), "out")
    return qc.lower(out, "requantize")


REQUANTIZE = _requantize_kernel()


@settings(max_examples=examples(12))
@given(n=st.integers(1, 64), seed=SEEDS, magnitude=st.integers(1, 31))
def test_requantize_is_bit_exact_with_the_numpy_reference(n, seed, magnitude):
    rng = np.random.default_rng(seed)
    acc = rng.integers(-(1 << magnitude), 1 << magnitude, n).astype(np.int32)
    real = np.exp(rng.uniform(np.log(2.0**-20), np.log(0.99), n))
    multiplier, shift = quantize.quantize_multiplier(real)
    got = _both(REQUANTIZE, acc=acc, multiplier=multiplier, shift=shift)
    want = quantize.requantize(acc, multiplier, shift)
    np.testing.assert_array_equal(got["out"], want.astype(np.int32))


def test_requantize_halves_ties_away_from_zero_after_the_high_multiply():
    # M = 0.25 is multiplier 2**30, shift -1: the doubling high multiply gives
    # floor((acc + 1) / 2) (3, -3, 1, -1), whose halving ties round away from zero (in
    # the interpreter and in compiled C alike).
    multiplier, shift = quantize.quantize_multiplier(np.full(4, 0.25))
    got = _both(REQUANTIZE, acc=np.array([6, -6, 2, -2], np.int32),
                multiplier=multiplier, shift=shift)
    np.testing.assert_array_equal(got["out"], [2, -2, 1, -1])


def test_integer_calls_take_int32_arguments():
    x = qc.placeholder((4,), "int16", "x")
    with pytest.raises(qc.LanguageError, match="requantize takes int32 arguments, got int16"):
        qc.compute((4,), lambda i: qc.requantize(x[i], 1 << 30, 0), "bad")


@settings(max_examples=examples(8))
@given(n=st.integers(1, 64), seed=SEEDS)
def test_smlad_adds_both_halfword_products(n, seed):
    a = qc.placeholder((N,), "int32", "a")
    b = qc.placeholder((N,), "int32", "b")
    acc = qc.placeholder((N,), "int32", "acc")
    kernel = qc.lower(qc.compute((N,), lambda i: qc.smlad(a[i], b[i], acc[i]), "out"), "smlad")
    rng = np.random.default_rng(seed)
    words = [rng.integers(-2**31, 2**31, n).astype(np.int32) for _ in range(3)]
    got = _both(kernel, a=words[0], b=words[1], acc=words[2])

    def halves(w):
        return (w & 0xFFFF).astype(np.uint16).view(np.int16).astype(np.int64), \
            (w.astype(np.int64) >> 16).astype(np.int16).astype(np.int64)

    (a_lo, a_hi), (b_lo, b_hi) = halves(words[0]), halves(words[1])
    want = (words[2].astype(np.int64) + a_lo * b_lo + a_hi * b_hi).astype(np.int32)
    np.testing.assert_array_equal(got["out"], want)


def test_the_printer_shows_shifts_and_gathers():
    kernel = _gather_kernel(16, lambda v: v & 15)
    assert "lut[p[i], (idx[i] & 15)]" in repr(kernel)


def test_only_tables_may_be_gathered_from():
    x = qc.placeholder((8,), "int32", "x")
    idx = qc.placeholder((8,), "uint8", "idx")
    doubled = qc.compute((8,), lambda i: x[i] * 2, "doubled")
    with pytest.raises(qc.LanguageError, match="doubled is a compute indexed by a tensor value"):
        qc.compute((8,), lambda i: doubled[idx[i] & 7], "bad")


def test_the_interpreter_checks_each_gathered_index_against_its_dim():
    kernel = _gather_kernel(16, lambda v: v)
    lut = np.zeros((256, 16), np.int16)
    with pytest.raises(qc.VerifyError, match=r"access lut\[16\] is outside its 16 elements"):
        interp.run(kernel, p=np.array([0], np.uint8), idx=np.array([16], np.uint8), lut=lut)


def _division_kernels():
    kernels = {}
    for dtype in INT_DTYPES + ["int64"]:
        a, b = qc.placeholder((N,), dtype, "a"), qc.placeholder((N,), dtype, "b")
        quotient = qc.compute((N,), lambda i: a[i] / b[i], "quotient")
        kernels[dtype] = qc.lower([quotient], f"divide_{dtype}")
    return kernels


DIVISION_KERNELS = _division_kernels()


def _numpy_truncating_division(a, b):
    """numpy's integer division (0 for a zero divisor, the minimum over -1 wrapping),
    rounded toward zero as C rounds rather than toward minus infinity."""
    with np.errstate(divide="ignore", over="ignore"):
        floor = a // b
        remainder = a - floor * b
    rounds_up = (b != 0) & (remainder != 0) & ((a < 0) != (b < 0))
    return np.where(rounds_up, floor + 1, floor).astype(a.dtype)


@settings(max_examples=examples(12))
@given(dtype=st.sampled_from(INT_DTYPES + ["int64"]), n=st.integers(1, 59), seed=SEEDS)
def test_integer_division_is_defined_for_every_input_and_agrees_everywhere(dtype, n, seed):
    """x / 0 is 0 and MIN / -1 is MIN in the interpreter and in C, as in numpy; a
    bare C division would kill the process with SIGFPE on both."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    edges = np.array([info.min, info.min, info.max, 0, 7], dtype=dtype)
    a = np.concatenate([edges, rng.integers(info.min, info.max, n, endpoint=True).astype(dtype)])
    divisors = [0, 1, 3] + ([-1, -3] if info.min < 0 else [255])
    b = np.concatenate([np.array([-1 if info.min < 0 else 1, 0, 0, 2, 0], dtype=dtype),
                        rng.choice(np.array(divisors, dtype=dtype), n)])
    result = _both(DIVISION_KERNELS[dtype], a=a, b=b)["quotient"]
    np.testing.assert_array_equal(result, _numpy_truncating_division(a, b))
    assert result[0] == (info.min if info.min < 0 else 0)
