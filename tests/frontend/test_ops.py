"""quiltc.ops and the encoder layer: every ragged operator equals a per-sequence numpy
reference on random batches (lengths 0..max, both ends included), in compiled C and, for
each op's kernel, in the interpreter."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc import attention, encoder, ops
from quiltc.ir import interp
from quiltc.ops import dense
from quiltc.ops import ragged as ragged_ops
from quiltc.runtime_c.host import host_isa

from support.helpers import require_cc
from support.tiers import examples

MAX_LENGTH = 7
HEADS, HEAD_SIZE = 2, 4
lengths_strategy = st.lists(st.integers(0, MAX_LENGTH), min_size=1, max_size=5)
TOLERANCE = {"rtol": 2e-5, "atol": 2e-5}


def _rows(lengths, width, seed):
    rng = np.random.default_rng(seed)
    rows = [rng.uniform(-1, 1, size=(n, width)).astype(np.float32) for n in lengths]
    return rows, qc.RaggedArray.from_list(rows, inner_shape=(width,))


def _assert_rows(result, expected_rows, tolerance=TOLERANCE):
    assert isinstance(result, qc.RaggedArray)
    assert list(result.lengths) == [len(r) for r in expected_rows]
    for got, want in zip(result, expected_rows):
        np.testing.assert_allclose(got, want, **tolerance)


def _interpreted(built, **arguments):
    """The one output of a built op's kernel, run by the interpreter (the oracle)."""
    results = interp.run(built.kernel, **arguments)
    return results[built.outputs[0]]


@given(lengths=lengths_strategy, width=st.sampled_from([1, 5, 16]), seed=st.integers(0, 2**31))
def test_add_and_bias_gelu_match_each_sequence(lengths, width, seed):
    require_cc()
    rows, x = _rows(lengths, width, seed)
    other_rows, y = _rows(lengths, width, seed + 1)
    bias = np.random.default_rng(seed).uniform(-1, 1, width).astype(np.float32)
    _assert_rows(ops.add(x, y), [a + b for a, b in zip(rows, other_rows)])
    _assert_rows(ops.bias_gelu(x, bias), [ops.reference_gelu(r + bias) for r in rows])
    _assert_rows(ops.add_bias(x, bias), [r + bias for r in rows])
    flat = _interpreted(ragged_ops._bias_gelu_kernel(width), X=x.values, bias=bias)
    np.testing.assert_allclose(flat, ops.reference_gelu(x.values + bias), **TOLERANCE)


def test_gelu_is_pytorchs_tanh_approximation():
    x = np.linspace(-6, 6, 101, dtype=np.float32)
    tanh_form = np.float32(0.5) * x * (np.float32(1) + np.tanh(
        np.float32(np.sqrt(2 / np.pi)) * (x + np.float32(0.044715) * x**3)))
    np.testing.assert_allclose(ops.reference_gelu(x), tanh_form, rtol=1e-5, atol=1e-6)


@given(lengths=lengths_strategy, width=st.sampled_from([1, 3, 32]), seed=st.integers(0, 2**31))
def test_add_layer_norm_matches_each_sequence(lengths, width, seed):
    require_cc()
    rows, x = _rows(lengths, width, seed)
    residual_rows, residual = _rows(lengths, width, seed + 1)
    rng = np.random.default_rng(seed)
    gamma, beta, bias = (rng.uniform(-1, 1, width).astype(np.float32) for _ in range(3))
    expected = [ops.reference_layer_norm(a + bias + r, gamma, beta)
                for a, r in zip(rows, residual_rows)]
    _assert_rows(ops.add_layer_norm(x, residual, gamma, beta, bias), expected,
                 {"rtol": 1e-4, "atol": 1e-4})
    flat = _interpreted(ragged_ops._add_layer_norm_kernel(width, 1e-5), X=x.values, bias=bias,
                        residual=residual.values, gamma=gamma, beta=beta)
    np.testing.assert_allclose(flat, ops.reference_layer_norm(x.values + bias + residual.values,
                                                              gamma, beta), rtol=1e-4, atol=1e-4)


@given(tokens=st.sampled_from([0, 1, 7, 8, 13, 2053]), seed=st.integers(0, 2**31),
       out_features=st.sampled_from([40, 64, 128]), packed=st.booleans())
def test_linear_matches_numpy_for_any_token_count(tokens, seed, out_features, packed):
    """Weights whose columns make whole panels (packed, once or per call) and others."""
    require_cc()
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (tokens, 16)).astype(np.float32)
    weight = rng.uniform(-1, 1, (16, out_features)).astype(np.float32)
    given_weight = ops.pack_weight(weight) if packed else weight
    np.testing.assert_allclose(ops.linear(a, given_weight), a @ weight, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("lanes, rows, columns", [(16, 8, 64), (8, 6, 16)])
def test_linear_kernels_in_the_interpreter(lanes, rows, columns):
    # Blocks of 8 rows with AVX-512, 6 with AVX2 (whose 16 registers 8 rows overfill).
    assert dense.row_block(lanes) == rows
    rng = np.random.default_rng(3)
    a = rng.uniform(-1, 1, (2, rows, 4)).astype(np.float32)
    weight = rng.uniform(-1, 1, (4, 64)).astype(np.float32)
    expected = a.reshape(2 * rows, 4) @ weight
    unpacked = _interpreted(dense._unpacked_kernel(4, 64, lanes=lanes), A=a, W=weight)
    packed = dense.pack_weight(weight, lanes=lanes)
    assert packed.panels.shape == (64 // columns, 4, columns)
    panels = _interpreted(dense._packed_kernel(4, 64, lanes=lanes), A=a, W=packed.panels)
    for result in (unpacked, panels):
        np.testing.assert_allclose(result.reshape(2 * rows, 64), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@settings(max_examples=examples(25))
@given(lengths=lengths_strategy, causal=st.booleans(), seed=st.integers(0, 2**31))
def test_attention_matches_each_sequence(lengths, causal, seed):
    require_cc()
    rows, qkv = _rows(lengths, 3 * HEADS * HEAD_SIZE, seed)
    expected = attention.reference_attention(rows, HEADS, HEAD_SIZE, causal)
    _assert_rows(attention.attention(qkv, HEADS, HEAD_SIZE, MAX_LENGTH, causal), expected)
    kernel = attention._attention_kernel(HEADS, HEAD_SIZE, MAX_LENGTH, causal)
    interpreted = _interpreted(kernel, QKV=qkv)
    flat = qc.RaggedArray(interpreted.values.reshape(-1, HEADS * HEAD_SIZE), qkv.lengths)
    _assert_rows(flat, expected)


@pytest.mark.slow
@settings(max_examples=examples(6))
@given(lengths=st.lists(st.sampled_from([0, 1, 31, 32, 33, 40]) | st.integers(0, 40),
                        min_size=1, max_size=4),
       causal=st.booleans(), seed=st.integers(0, 2**31))
def test_attention_in_register_tiles_matches_each_sequence(lengths, causal, seed):
    # Rows of 32 keys and more take the tiled score loop, heads of 16 the register rows.
    require_cc()
    heads, head_size = 2, host_isa().float32_lanes
    rows, qkv = _rows(lengths, 3 * heads * head_size, seed)
    expected = attention.reference_attention(rows, heads, head_size, causal)
    _assert_rows(attention.attention(qkv, heads, head_size, 40, causal), expected)
    assert "scores_local" in attention._attention_kernel(heads, head_size, 40, causal).source


@pytest.mark.slow
@settings(max_examples=examples(4))
@given(lengths=st.lists(st.sampled_from([0, 1, 32, 33, 40]) | st.integers(0, 40),
                        min_size=1, max_size=3),
       causal=st.booleans(), seed=st.integers(0, 2**31))
def test_attention_blocks_fit_the_registers_of_an_eight_lane_isa(lengths, causal, seed):
    # With AVX2's 16 registers a score block takes 6 queries of 16 keys, and a context
    # block 6 rows of a quarter of a head of 64 values; a sequence's last rows the whole
    # head.
    require_cc()
    heads, head_size = 2, 64
    rows, qkv = _rows(lengths, 3 * heads * head_size, seed)
    built = attention._attention_kernel(heads, head_size, 40, causal, lanes=8)
    assert all(f"{block}[{size}]" in built.source for block, size in (
        ("scores_local", 96), ("scores_local_1", 16), ("context_local", 96),
        ("context_local_1", 64)))
    values = built(QKV=qkv)
    got = qc.RaggedArray(values.values.reshape(-1, heads * head_size), qkv.lengths)
    _assert_rows(got, attention.reference_attention(rows, heads, head_size, causal))


def test_sequence_groups_cover_the_batch_within_the_pair_budget(monkeypatch):
    monkeypatch.setattr(attention, "GROUP_QUERY_KEY_PAIRS", 10)
    lengths = np.array([3, 0, 1, 7, 2], np.int32)
    assert list(attention._sequence_groups(lengths)) == [(0, 3), (3, 4), (4, 5)]
    assert list(attention._sequence_groups(np.array([], np.int32))) == []
    # Counted as the scores store them, lengths rounded up to the key tile: the first
    # three sequences hold 10 pairs, but 32 once padded to multiples of 4.
    monkeypatch.setattr(attention, "GROUP_QUERY_KEY_PAIRS", 30)
    assert list(attention._sequence_groups(lengths))[0] == (0, 3)
    assert list(attention._sequence_groups(lengths, 4)) == [(0, 2), (2, 3), (3, 4), (4, 5)]


def test_sequence_runs_keep_each_run_within_the_budget_but_never_empty():
    costs = np.array([3, 0, 1, 7, 2, 5])
    assert list(ragged_ops.sequence_runs(costs, 6)) == [(0, 3), (3, 4), (4, 5), (5, 6)]
    assert list(ragged_ops.sequence_runs(costs, 100, most=4)) == [(0, 4), (4, 6)]
    assert list(ragged_ops.sequence_runs(costs[:0], 6)) == []


@pytest.mark.slow
def test_attention_in_many_groups_matches_each_sequence(monkeypatch):
    require_cc()
    monkeypatch.setattr(attention, "GROUP_QUERY_KEY_PAIRS", 10)
    rows, qkv = _rows([3, 0, 1, 7, 2, 5], 3 * HEADS * HEAD_SIZE, 4)
    for causal in (False, True):
        _assert_rows(attention.attention(qkv, HEADS, HEAD_SIZE, MAX_LENGTH, causal),
                     attention.reference_attention(rows, HEADS, HEAD_SIZE, causal))


def test_causal_attention_of_the_first_token_is_its_own_value():
    require_cc()
    rows, qkv = _rows([4], 3 * HEADS * HEAD_SIZE, 0)
    result = attention.attention(qkv, HEADS, HEAD_SIZE, MAX_LENGTH, causal=True)
    width = HEADS * HEAD_SIZE
    np.testing.assert_allclose(result[0][0], rows[0][0, 2 * width:], rtol=1e-6)


@given(lengths=lengths_strategy, cols=st.sampled_from([1, 16, 19]), seed=st.integers(0, 2**31))
def test_vgemm_multiplies_each_matrix_by_its_own_weight(lengths, cols, seed):
    require_cc()
    rows, a = _rows(lengths, 3, seed)
    weights = np.random.default_rng(seed).uniform(-1, 1, (len(lengths), 3, cols)).astype(np.float32)
    expected = [r @ w for r, w in zip(rows, weights)]
    _assert_rows(ops.vgemm(a, weights, MAX_LENGTH), expected)
    kernel = ragged_ops._vgemm_kernel(MAX_LENGTH, 3, cols)
    _assert_rows(_interpreted(kernel, A=a, W=weights), expected)


@given(size=st.sampled_from([0, 1, 2, 7, 17]), cols=st.sampled_from([1, 5, 16]),
       seed=st.integers(0, 2**31))
def test_trmm_reads_only_the_lower_triangle(size, cols, seed):
    require_cc()
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (size, size)).astype(np.float32)
    x = rng.uniform(-1, 1, (size, cols)).astype(np.float32)
    expected = np.tril(a) @ x
    np.testing.assert_allclose(ops.trmm(a, x), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_interpreted(ragged_ops._trmm_kernel(), A=a, X=x), expected,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@settings(max_examples=examples(15))
@given(lengths=lengths_strategy, causal=st.booleans(), seed=st.integers(0, 2**31))
def test_encoder_layer_matches_each_sequence(lengths, causal, seed):
    require_cc()
    hidden = HEADS * HEAD_SIZE
    weights = encoder.random_weights(hidden, 2 * hidden, seed=seed % 1000)
    rows, x = _rows(lengths, hidden, seed)
    layer = encoder.EncoderLayer(weights, HEADS, MAX_LENGTH, causal=causal)
    expected = encoder.reference_encoder_layer(rows, weights, HEADS, causal=causal)
    _assert_rows(layer(x), expected, {"rtol": 1e-4, "atol": 1e-4})


def test_encoder_layer_calls_reuse_scratch_without_touching_earlier_results():
    # Scratch arrays are kept between calls and grow for a larger batch; a result the
    # caller holds is its own array.
    require_cc()
    hidden = HEADS * HEAD_SIZE
    weights = encoder.random_weights(hidden, 2 * hidden, seed=3)
    layer = encoder.EncoderLayer(weights, HEADS, MAX_LENGTH)
    batches = [[3, 1], [7, 0, 5, 6], [2]]
    results, expected = [], []
    for seed, lengths in enumerate(batches):
        rows, x = _rows(lengths, hidden, seed)
        results.append(layer(x))
        expected.append(encoder.reference_encoder_layer(rows, weights, HEADS))
    for got, want in zip(results, expected):
        _assert_rows(got, want, {"rtol": 1e-4, "atol": 1e-4})
    layer.release_scratch()
    rows, x = _rows(batches[1], hidden, 1)
    _assert_rows(layer(x), expected[1], {"rtol": 1e-4, "atol": 1e-4})


def test_encoder_layer_in_many_groups_matches_each_sequence(monkeypatch):
    # Groups of about 6 tokens: a sequence longer than that runs alone, empty ones join
    # their neighbours, and every group writes its own rows of the result.
    require_cc()
    monkeypatch.setattr(encoder, "GROUP_TOKENS", 6)
    hidden = HEADS * HEAD_SIZE
    weights = encoder.random_weights(hidden, 2 * hidden, seed=5)
    lengths = [3, 0, 1, 7, 2, 5, 0]
    assert len(list(ragged_ops.sequence_runs(np.array(lengths), 6))) == 4
    rows, x = _rows(lengths, hidden, 5)
    layer = encoder.EncoderLayer(weights, HEADS, MAX_LENGTH)
    _assert_rows(layer(x), encoder.reference_encoder_layer(rows, weights, HEADS),
                 {"rtol": 1e-4, "atol": 1e-4})


@pytest.mark.slow
def test_encoder_layer_matches_pytorch():
    torch = pytest.importorskip("torch")
    require_cc()
    hidden = HEADS * HEAD_SIZE
    torch.manual_seed(0)
    torch_layer = torch.nn.TransformerEncoderLayer(
        hidden, HEADS, 2 * hidden, dropout=0.0, batch_first=True,
        activation=lambda t: torch.nn.functional.gelu(t, approximate="tanh")).eval()
    rows, x = _rows([5, 0, 1, 7], hidden, 1)
    layer = encoder.EncoderLayer(torch_layer.state_dict(), HEADS, MAX_LENGTH)
    with torch.no_grad():
        expected = [torch_layer(torch.from_numpy(r)[None])[0].numpy() for r in rows]
    _assert_rows(layer(x), expected, {"rtol": 1e-4, "atol": 1e-4})


def test_sequences_longer_than_the_declared_maximum_are_refused():
    require_cc()
    _, qkv = _rows([MAX_LENGTH + 1], 3 * HEADS * HEAD_SIZE, 0)
    with pytest.raises(qc.ShapeError, match=rf"row 0 has length {MAX_LENGTH + 1}, over the "
                                            rf"declared maximum {MAX_LENGTH} of L"):
        attention.attention(qkv, HEADS, HEAD_SIZE, MAX_LENGTH)
