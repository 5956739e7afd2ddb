"""Value ranges declared on integer inputs: a gather indexed by such an input's elements
verifies without a mask or clamp when the range fits the table, and is refused when it
does not; bad declarations are refused with the fix named."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import interp
from quiltc.ir.verify import verify

from support.helpers import require_cc
from support.tiers import examples


def _gather_kernel(n, columns, declared_high):
    p = qc.placeholder((n,), "uint8", "p")
    idx = qc.placeholder((n,), "uint8", "idx", value_range=(0, declared_high))
    lut = qc.placeholder((256, columns), "int16", "lut")
    out = qc.compute((n,), lambda i: qc.cast(lut[p[i], idx[i]], "int32"), "out")
    return qc.lower(out, "declared_gather")


@settings(max_examples=examples(6))
@given(n=st.integers(1, 32), columns=st.integers(2, 255), seed=st.integers(0, 2**32 - 1))
def test_a_declared_range_inside_the_table_needs_no_mask(n, columns, seed):
    kernel = verify(_gather_kernel(n, columns, columns - 1))
    rng = np.random.default_rng(seed)
    p = rng.integers(0, 256, n).astype(np.uint8)
    idx = rng.integers(0, columns, n).astype(np.uint8)
    lut = rng.integers(-30000, 30000, (256, columns)).astype(np.int16)
    want = lut[p, idx].astype(np.int32)
    np.testing.assert_array_equal(interp.run(kernel, p=p, idx=idx, lut=lut)["out"], want)
    require_cc()
    np.testing.assert_array_equal(qc.build(kernel)(p=p, idx=idx, lut=lut), want)


@settings(max_examples=examples(6))
@given(columns=st.integers(2, 200), past=st.integers(1, 55))
def test_a_declared_range_past_the_table_is_refused(columns, past):
    high = columns - 1 + past
    kernel = _gather_kernel(4, columns, high)
    with pytest.raises(qc.VerifyError, match=rf"gathered index idx\[i\] of lut \(dim 1, "
                                             rf"extent {columns}\) ranges over \[0, {high}\]"):
        verify(kernel)


def test_the_declared_range_sits_on_the_input_buffer():
    idx = qc.placeholder((3,), "int8", "idx", value_range=(-4, 9))
    assert idx.buffer.value_range == (-4, 9)
    assert qc.placeholder((3,), "int8", "plain").buffer.value_range is None


def test_a_float_input_takes_no_value_range():
    with pytest.raises(qc.LanguageError, match="placeholder w of float32 declares "
                                               r"value_range=\(0, 1\); only integer inputs"):
        qc.placeholder((3,), "float32", "w", value_range=(0, 1))


@pytest.mark.parametrize("bounds", [(5, 4), (-1, 3), (0, 256)])
def test_an_empty_or_too_wide_value_range_is_refused(bounds):
    with pytest.raises(qc.LanguageError, match=rf"placeholder idx declares value_range="
                                               rf"\({bounds[0]}, {bounds[1]}\), which is empty "
                                               r"or leaves uint8 \(\[0, 255\]\)"):
        qc.placeholder((3,), "uint8", "idx", value_range=bounds)
