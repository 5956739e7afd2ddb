"""`out=` of quiltc.ops and attention: any writeable float32 array of the result's shape
is written (any row count, C or Fortran order, strided views, memory shared with an
input) and equals the numpy reference (issue 10: linear with rows not a multiple of 8,
and attention with a Fortran-order out, used to leave out untouched)."""

import numpy as np
import pytest

import quiltc as qc
from quiltc import attention, ops

from support.helpers import require_cc

TOLERANCE = {"rtol": 2e-5, "atol": 2e-5}
HEADS, HEAD_SIZE = 2, 4


def _layouts(rows, cols):
    """Fresh zeroed out= arrays of (rows, cols): C order, Fortran order, a strided view."""
    return {"C": np.zeros((rows, cols), np.float32),
            "F": np.zeros((rows, cols), np.float32, order="F"),
            "strided": np.zeros((rows, 2 * cols), np.float32)[:, ::2]}


@pytest.mark.parametrize("tokens", [1, 5, 8, 13])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_linear_writes_any_out_for_any_row_count(tokens, layout):
    require_cc()
    rng = np.random.default_rng(tokens)
    a = rng.uniform(-1, 1, (tokens, 16)).astype(np.float32)
    weight = rng.uniform(-1, 1, (16, 8)).astype(np.float32)
    out = _layouts(tokens, 8)[layout]
    result = ops.linear(a, weight, out=out)
    assert result is out
    np.testing.assert_allclose(out, a @ weight, **TOLERANCE)


def test_linear_out_may_overlap_its_input_across_calls(monkeypatch):
    """An out one row block ahead of `a` in one buffer: with several kernel calls, an
    earlier call's rows would land where a later call still reads."""
    require_cc()
    monkeypatch.setattr(ops.dense, "ROWS_PER_CALL", 8)
    rng = np.random.default_rng(0)
    buffer = rng.uniform(-1, 1, (40, 8)).astype(np.float32)
    weight = rng.uniform(-1, 1, (8, 8)).astype(np.float32)
    a, out = buffer[:32], buffer[8:]
    expected = a @ weight
    ops.linear(a, weight, out=out)
    np.testing.assert_allclose(out, expected, **TOLERANCE)


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_token_ops_write_any_out(layout):
    require_cc()
    rng = np.random.default_rng(1)
    rows = [rng.uniform(-1, 1, (n, 4)).astype(np.float32) for n in (2, 0, 3)]
    x = qc.RaggedArray.from_list(rows, inner_shape=(4,))
    bias = rng.uniform(-1, 1, 4).astype(np.float32)
    gamma = np.float32(1.5) * np.ones(4, np.float32)
    flat = x.values
    cases = {
        "bias_gelu": (lambda out: ops.bias_gelu(x, bias, out=out), ops.reference_gelu(flat + bias)),
        "add_bias": (lambda out: ops.add_bias(x, bias, out=out), flat + bias),
        "add_layer_norm": (lambda out: ops.add_layer_norm(x, x, gamma, bias, out=out),
                           ops.reference_layer_norm(flat + flat, gamma, bias)),
    }
    for name, (call, expected) in cases.items():
        out = _layouts(5, 4)[layout]
        result = call(out)
        np.testing.assert_allclose(out, expected, **TOLERANCE, err_msg=name)
        np.testing.assert_allclose(result.values, expected, **TOLERANCE, err_msg=name)


def _qkv(lengths, seed=0):
    rng = np.random.default_rng(seed)
    width = 3 * HEADS * HEAD_SIZE
    rows = [rng.uniform(-1, 1, (n, width)).astype(np.float32) for n in lengths]
    return rows, qc.RaggedArray.from_list(rows, inner_shape=(width,))


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_attention_writes_any_out(layout):
    require_cc()
    rows, qkv = _qkv([3, 0, 4])
    expected = np.concatenate(attention.reference_attention(rows, HEADS, HEAD_SIZE))
    out = _layouts(7, HEADS * HEAD_SIZE)[layout]
    result = attention.attention(qkv, HEADS, HEAD_SIZE, 7, out=out)
    np.testing.assert_allclose(out, expected, **TOLERANCE)
    np.testing.assert_allclose(result.values, expected, **TOLERANCE)
    assert list(result.lengths) == [3, 0, 4]


def test_attention_out_may_share_memory_with_qkv(monkeypatch):
    """out written over qkv's own buffer, with one kernel call per sequence."""
    require_cc()
    monkeypatch.setattr(attention, "GROUP_QUERY_KEY_PAIRS", 1)
    rows, qkv = _qkv([3, 4, 2], seed=2)
    expected = np.concatenate(attention.reference_attention(rows, HEADS, HEAD_SIZE))
    # out starts at row 3 of qkv: the first call's rows land on the second sequence.
    out = qkv.values.reshape(-1)[72:144].reshape(9, HEADS * HEAD_SIZE)
    attention.attention(qkv, HEADS, HEAD_SIZE, 7, out=out)
    np.testing.assert_allclose(out, expected, **TOLERANCE)


def test_attention_of_more_sequences_than_one_call_takes(monkeypatch):
    require_cc()
    monkeypatch.setattr(attention, "MAX_BATCH", 2)
    rows, qkv = _qkv([1, 2, 0, 3, 1])
    groups = list(attention._sequence_groups(qkv.lengths))
    assert groups == [(0, 2), (2, 4), (4, 5)]
    expected = np.concatenate(attention.reference_attention(rows, HEADS, HEAD_SIZE))
    np.testing.assert_allclose(attention.attention(qkv, HEADS, HEAD_SIZE, 7).values, expected,
                               **TOLERANCE)
