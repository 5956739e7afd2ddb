"""The one-pass (online softmax) attention schedule: per-sequence numpy references on
random ragged batches (lengths 0, 1 and the maximum included, several tiles of keys and
blocks of rows), causal or not, compiled and interpreted; its trace names the steps."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc import attention
from quiltc.ir import interp
from quiltc.ops import online_attention

from support.helpers import require_cc
from support.tiers import examples

MAX_LENGTH = 40
TOLERANCE = {"rtol": 1e-4, "atol": 2e-5}
lengths_strategy = st.lists(st.sampled_from([0, 1, MAX_LENGTH]) | st.integers(0, MAX_LENGTH),
                            min_size=1, max_size=5)


def _batch(lengths, heads, head_size, seed):
    rng = np.random.default_rng(seed)
    rows = [rng.uniform(-2, 2, size=(n, 3 * heads * head_size)).astype(np.float32)
            for n in lengths]
    return rows, qc.RaggedArray.from_list(rows, inner_shape=(3 * heads * head_size,))


@settings(max_examples=examples(10), deadline=None)
@given(lengths=lengths_strategy, causal=st.booleans(),
       shape=st.sampled_from([(2, 16), (1, 4)]), seed=st.integers(0, 2**16))
def test_online_attention_matches_each_sequence(lengths, causal, shape, seed):
    require_cc()
    heads, head_size = shape
    rows, qkv = _batch(lengths, heads, head_size, seed)
    result = online_attention.attention(qkv, heads, head_size, MAX_LENGTH, causal)
    expected = attention.reference_attention(rows, heads, head_size, causal)
    assert list(result.lengths) == list(lengths)
    for got, want in zip(result, expected):
        np.testing.assert_allclose(got, want, **TOLERANCE)


def test_the_interpreter_runs_the_online_schedule_to_the_same_values():
    require_cc()
    rows, qkv = _batch([0, 1, 17, 40], 1, 4, 3)
    sch = online_attention.online_schedule(1, 4, MAX_LENGTH, causal=True)
    interpreted = interp.run(sch.kernel, QKV=qkv)["attention"]
    expected = attention.reference_attention(rows, 1, 4, causal=True)
    for got, want in zip(interpreted, expected):
        np.testing.assert_allclose(got.reshape(want.shape), want, **TOLERANCE)


def test_the_schedule_merges_the_softmax_into_the_tiles_of_keys_and_peels_the_tails():
    steps = [step.primitive for step in online_attention.online_schedule(2, 16, 64).trace.steps]
    assert steps.count("online_softmax") == 1 and steps.count("peel") == 2
    assert steps.index("online_softmax") < steps.index("peel")
    text = str(online_attention.online_schedule(2, 16, 64).kernel)
    # No length x length intermediate: scores and exponentials live in one tile.
    assert "scores = alloc[1, 1, 6, 16] float32  # local" in text
    assert "exps = alloc[1, 1, 6, 16] float32  # local" in text
