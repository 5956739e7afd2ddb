"""online_softmax: attention over a ragged batch scheduled as one pass over each tile of
keys (scores, running max, rescaled sums), per query row and per block of rows, causal
included; compiled C and the interpreter against numpy; refusals by message."""

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import interp

from support import helpers
from support.ragged_programs import ATTENTION_DEPTH, ATTENTION_MAX_LENGTH, online_attention
from support.ragged_programs import softmax_attention as attention
from support.tiers import examples


def _blocked(rows, tile):
    """Blocks of `rows` query rows by tiles of keys, as flash attention runs them."""
    out = attention()
    sch = qc.Schedule(out)
    _, row, _ = sch.loops(out)
    block, _ = sch.split(row, rows)
    for stage in ("C", "Z", "M"):
        sch.compute_at(stage, block)
    tiles = []
    for stage in ("M", "Z", "C"):
        block_row, *value, key = sch.loops(stage)[2:]
        key_tile, key_lane = sch.split(key, tile)
        sch.reorder(key_tile, block_row, key_lane, *value)
        sch.decompose(stage, key_tile)
        tiles.append(key_tile)
    sch.online_softmax("M", tiles[0])
    sch.compute_at("S", tiles[0])
    return sch


def _reference(q, k, v, causal):
    scores = q @ k.T * np.float32(1 / np.sqrt(ATTENTION_DEPTH))
    if causal:
        scores = np.where(np.tri(len(q), dtype=bool), scores, np.float32(-np.inf))
    exps = np.exp(scores - scores.max(axis=1, keepdims=True, initial=-np.inf))
    return (exps / exps.sum(axis=1, keepdims=True)) @ v


@functools.cache
def _compiled(schedule, *arguments):
    """The schedule `schedule(*arguments)` and its compiled kernel, built once per
    arguments: a build takes seconds."""
    helpers.require_cc()
    sch = schedule(*arguments)
    return sch, qc.build(sch)


def _check(compiled_schedule, lengths, causal=False, seed=0):
    sch, kernel = compiled_schedule
    rng = np.random.default_rng(seed)
    arrays = {name: [rng.standard_normal((n, ATTENTION_DEPTH)).astype(np.float32) for n in lengths]
              for name in "QKV"}
    ragged = {name: qc.RaggedArray.from_list(rows) for name, rows in arrays.items()}
    compiled = kernel(**ragged)
    interpreted = interp.run(sch.kernel, **ragged)["O"]
    for got, q, k, v in zip(compiled, *arrays.values()):
        expected = _reference(q, k, v, causal)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(interpreted.values, compiled.values, rtol=1e-5, atol=1e-6)


_lengths = st.lists(st.sampled_from([0, 1, ATTENTION_MAX_LENGTH])
                    | st.integers(0, ATTENTION_MAX_LENGTH), min_size=1, max_size=5)


@settings(max_examples=examples(8), deadline=None)
@given(lengths=_lengths, tile=st.sampled_from([1, 3, 8]), causal=st.booleans())
def test_a_row_at_a_time_matches_numpy(lengths, tile, causal):
    _check(_compiled(online_attention, tile, causal), lengths, causal)


@settings(max_examples=examples(8), deadline=None)
@given(lengths=_lengths, rows=st.sampled_from([2, 4]), tile=st.sampled_from([1, 5, 8]))
def test_blocks_of_rows_by_tiles_of_keys_match_numpy(lengths, rows, tile):
    _check(_compiled(_blocked, rows, tile), lengths)


def test_the_scores_are_computed_once_inside_the_merged_loop():
    sch = _blocked(4, 8)
    text = str(sch.kernel)
    # One write of S and one read each by the max, the sum and the context.
    assert text.count("S[") == 4
    merged = sch.loops("S")[2]
    for stage in ("M", "Z", "C"):
        assert sch.loops(stage)[2] == merged
    assert "M_previous = alloc[4] float32  # local" in text
    assert "M_rescale = alloc[4] float32  # local" in text
    assert str(sch.trace).splitlines()[-2] == f"sch.online_softmax('M', '{merged}')"


def test_a_max_that_still_starts_itself_is_refused():
    out = attention()
    sch = qc.Schedule(out)
    _, row, _ = sch.loops(out)
    for stage in ("C", "Z", "M"):
        sch.compute_at(stage, row)
    with pytest.raises(qc.ScheduleError, match=r"online_softmax: asked to merge the sums over "
                                               r"exp\(x - M\) into loop j_\d+ .*still sets its "
                                               r"start value.*decompose\('M'"):
        sch.online_softmax("M", sch.loops("M")[-1])


def test_a_sum_that_reads_the_max_outside_an_exponential_is_refused():
    batch = qc.var("B", 1, 8)
    length = qc.ragged_dim("L", batch, ATTENTION_MAX_LENGTH)
    x = qc.placeholder((batch, length, ATTENTION_DEPTH), "float32", "X")
    j, j2 = qc.reduce_axis(ATTENTION_DEPTH, "j"), qc.reduce_axis(ATTENTION_DEPTH, "j2")
    top = qc.compute((batch, length), lambda b, i: qc.max(x[b, i, j], axis=j), "M")
    spread = qc.compute((batch, length), lambda b, i: qc.sum(x[b, i, j2] - top[b, i], axis=j2),
                        "D")
    sch = qc.Schedule(spread)
    sch.compute_at(top, sch.loops(spread)[1])
    for stage in ("M", "D"):
        sch.decompose(stage, sch.loops(stage)[-1])
    with pytest.raises(qc.ScheduleError, match=r"its sum into D reads M other than as a factor "
                                               r"exp\(c \* \(x - M\)\)"):
        sch.online_softmax("M", sch.loops("M")[-1])


def test_a_block_of_rows_without_a_constant_extent_is_refused():
    out = attention()
    sch = qc.Schedule(out)
    sequence = sch.loops(out)[0]
    for stage in ("C", "Z", "M"):
        sch.compute_at(stage, sequence)
    _, row, key = sch.loops("M")
    sch.reorder(key, row)
    sch.decompose("M", key)
    with pytest.raises(qc.ScheduleError, match=rf"loop {row}, which picks the element of M, runs "
                                               r"over L_len\(b_\d+\), not a constant"):
        sch.online_softmax("M", key)


def test_a_max_with_nothing_after_it_is_refused():
    batch = qc.var("B", 1, 8)
    x = qc.placeholder((batch, ATTENTION_DEPTH), "float32", "X")
    j = qc.reduce_axis(ATTENTION_DEPTH, "j")
    top = qc.compute((batch,), lambda b: qc.max(x[b, j], axis=j), "M")
    sch = qc.Schedule(top)
    _, key = sch.loops(top)
    sch.decompose(top, key)
    with pytest.raises(qc.ScheduleError, match=r"no statement after it reads M"):
        sch.online_softmax(top, key)


def test_a_local_block_of_the_context_takes_its_rescaling_along():
    """cache_write of the context at the merged loop: the block is loaded with the sums
    so far, rescaled and accumulated in place, then stored back, once per tile."""
    sch = online_attention(4)
    merged = sch.loops("S")[2]
    block = sch.cache_write("C", "local", at=merged)
    rescaled = [line.strip() for line in str(sch.kernel).splitlines()
                if f"{block}[" in line and "* M_rescale[0]" in line]
    assert rescaled == [f"{block}[0, 0, C_e_rescale] = ({block}[0, 0, C_e_rescale] * M_rescale[0])"]
    helpers.require_cc()
    _check((sch, qc.build(sch)), [0, 1, 5, ATTENTION_MAX_LENGTH])
