"""Ragged tensors through the compiler: ragged dims in the language, row-offset tables
computed by the prelude, loops over each row's own length, in the interpreter and in C,
against per-sequence numpy references."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import interp

from support.helpers import require_cc
from support.tiers import examples

MAX_LENGTH = 9
lengths_strategy = st.lists(st.integers(0, MAX_LENGTH), min_size=1, max_size=5)


def _batch(lengths, inner, seed):
    rng = np.random.default_rng(seed)
    rows = [rng.uniform(-1, 1, size=(n, *inner)).astype(np.float32) for n in lengths]
    return rows, qc.RaggedArray.from_list(rows, inner_shape=inner)


def _run_both(outputs, **arguments):
    """Results of the interpreter and of compiled C for the naive schedule of `outputs`."""
    sch = qc.Schedule(outputs)
    oracle = interp.run(sch.kernel, **arguments)
    require_cc()
    compiled = qc.build(sch)(**arguments)
    compiled = compiled if isinstance(compiled, dict) else {sch.kernel.outputs[0]: compiled}
    return oracle, compiled


def _assert_rows(result, expected_rows):
    assert isinstance(result, qc.RaggedArray)
    assert [len(r) for r in result] == [len(r) for r in expected_rows]
    for got, want in zip(result, expected_rows):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _declare(hidden):
    batch = qc.var("B", 1, 8)
    length = qc.ragged_dim("L", batch, MAX_LENGTH)
    x = qc.placeholder((batch, length, hidden), "float32", "X")
    return batch, length, x


@settings(max_examples=examples(25))
@given(lengths=lengths_strategy, seed=st.integers(0, 2**31))
def test_elementwise_and_row_sum_match_each_sequence(lengths, seed):
    batch, length, x = _declare(3)
    scaled = qc.compute((batch, length, 3), lambda b, l, h: x[b, l, h] * np.float32(2.0) + 1.0,
                        "scaled")
    k = qc.reduce_axis(length, "k")
    total = qc.compute((batch, 3), lambda b, h: qc.sum(scaled[b, k, h], axis=k), "total")
    rows, ragged = _batch(lengths, (3,), seed)
    for result in _run_both([scaled, total], X=ragged):
        _assert_rows(result["scaled"], [r * np.float32(2.0) + np.float32(1.0) for r in rows])
        expected = np.stack([(r * np.float32(2.0) + np.float32(1.0)).sum(axis=0) for r in rows])
        np.testing.assert_allclose(result["total"], expected, rtol=1e-5, atol=1e-5)


@given(lengths=lengths_strategy, seed=st.integers(0, 2**31))
def test_attention_scores_over_len_by_len_rows(lengths, seed):
    hidden = 4
    batch, length, q = _declare(hidden)
    keys = qc.placeholder((batch, length, hidden), "float32", "K")
    h = qc.reduce_axis(hidden, "h")
    scores = qc.compute((batch, length, length),
                        lambda b, i, j: qc.sum(q[b, i, h] * keys[b, j, h], axis=h), "scores")
    j = qc.reduce_axis(length, "j")
    row_max = qc.compute((batch, length), lambda b, i: qc.max(scores[b, i, j], axis=j), "row_max")
    rows, ragged_q = _batch(lengths, (hidden,), seed)
    key_rows, ragged_k = _batch(lengths, (hidden,), seed + 1)
    for result in _run_both(row_max, X=ragged_q, K=ragged_k):
        got = result["row_max"] if isinstance(result, dict) else result
        expected = [(r @ k.T).max(axis=1, initial=-np.inf) for r, k in zip(rows, key_rows)]
        _assert_rows(got, expected)


def test_lengths_over_the_declared_maximum_are_refused():
    batch, length, x = _declare(2)
    y = qc.compute((batch, length, 2), lambda b, l, h: x[b, l, h] + 1.0, "y")
    too_long = qc.RaggedArray.from_list([np.zeros((MAX_LENGTH + 1, 2), np.float32)])
    require_cc()
    with pytest.raises(qc.ShapeError, match=rf"row 0 has length {MAX_LENGTH + 1}, over the "
                                            rf"declared maximum {MAX_LENGTH} of L"):
        qc.build(qc.Schedule(y))(X=too_long)


def test_arguments_whose_rows_disagree_are_refused():
    batch, length, x = _declare(2)
    other = qc.placeholder((batch, length, 2), "float32", "Z")
    y = qc.compute((batch, length, 2), lambda b, l, h: x[b, l, h] + other[b, l, h], "y")
    _, first = _batch([2, 3], (2,), 0)
    _, second = _batch([2, 4], (2,), 1)
    require_cc()
    with pytest.raises(qc.ShapeError, match=r"'X'.*'Z'|'Z'.*'X'"):
        qc.build(qc.Schedule(y))(X=first, Z=second)


def test_a_dense_array_for_a_ragged_input_is_refused():
    batch, length, x = _declare(2)
    y = qc.compute((batch, length, 2), lambda b, l, h: x[b, l, h] + 1.0, "y")
    require_cc()
    with pytest.raises(qc.ShapeError, match=r"argument 'X' is ragged .*qc.RaggedArray"):
        qc.build(qc.Schedule(y))(X=np.zeros((2, 3, 2), np.float32))


def test_a_ragged_dim_must_follow_its_batch():
    batch = qc.var("B", 1, 8)
    length = qc.ragged_dim("L", batch, 4)
    with pytest.raises(qc.LanguageError, match=r"shape must start with that batch"):
        qc.placeholder((length, batch), "float32", "X")


def test_a_padded_loop_over_a_row_is_rejected_by_the_verifier():
    import dataclasses

    batch, length, x = _declare(2)
    y = qc.compute((batch, length, 2), lambda b, l, h: x[b, l, h], "y")
    kernel = qc.lower(y)
    row_loop = kernel.body.body
    padded = dataclasses.replace(row_loop, extent=row_loop.extent + 1)
    broken = dataclasses.replace(kernel, body=dataclasses.replace(kernel.body, body=padded))
    with pytest.raises(qc.VerifyError, match=r"index l of X \(dim 1, extent L_len\(b\)\) may "
                                             r"leave its bounds"):
        qc.ir.verify(broken)


