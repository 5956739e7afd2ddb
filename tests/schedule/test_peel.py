"""peel: the last iteration of a loop over tiles of a ragged row runs apart; the other
tiles lose their guards. Per-sequence numpy references (interpreter and compiled C),
the names of the copy, and the refusal of an annotated loop."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.ir.walk import find_all

from support import ragged_programs
from support.ragged_programs import lengths_strategy
from support.tiers import examples


def _tiled_row(factor):
    """Y = 2 X + 1 over a ragged batch, its row loop split with a guard into tiles of
    `factor`, computed through a local tile; returns (schedule, tile loop, element loop)."""
    batch = qc.var("B", 1, 8)
    length = qc.ragged_dim("L", batch, ragged_programs.MAX_LENGTH)
    x = qc.placeholder((batch, length), "float32", "X")
    doubled = qc.compute((batch, length), lambda b, l: x[b, l] * np.float32(2.0), "D")
    out = qc.compute((batch, length), lambda b, l: doubled[b, l] + np.float32(1.0), "Y")
    sch = qc.Schedule(out)
    tile, element = sch.split(sch.loops(out)[1], factor)
    sch.compute_at(doubled, tile)
    sch.fold_storage(doubled, tile)
    return sch, tile, element


def _loop(sch, name):
    [loop] = [n for n in find_all(sch.kernel.body, lambda n: isinstance(n, ir.For))
              if n.var.name == name]
    return loop


@settings(max_examples=examples(15), deadline=None)
@given(lengths=lengths_strategy, factor=st.sampled_from([1, 2, 3, 4]), seed=st.integers(0, 2**16))
def test_peeled_tiles_match_each_sequence_and_the_whole_ones_lose_their_guards(
        lengths, factor, seed):
    sch, tile, element = _tiled_row(factor)
    main = sch.peel(tile)
    assert main == tile
    if factor > 1:
        assert not find_all(_loop(sch, str(tile)), lambda n: isinstance(n, ir.If))
        sch.vectorize(element)
    rows, values = ragged_programs.ragged_batch(lengths, seed, ())
    reference = {"Y": [r * np.float32(2.0) + np.float32(1.0) for r in rows]}
    ragged_programs.check_ragged(sch, {"X": values}, reference)


def test_the_copy_gets_fresh_loop_and_buffer_names():
    sch, tile, element = _tiled_row(4)
    sch.peel(tile)
    text = str(sch.kernel)
    assert f"for {tile} in range((L_len(b_1) + 3) // 4 - 1):" in text
    assert "if ((L_len(b_1) + 3) // 4) >= 1:" in text
    assert f"for {element}_last in range(4):" in text
    assert "D_last = alloc[1, 4] float32  # local" in text
    assert str(sch.trace).splitlines()[-1] == f"{tile} = sch.peel('{tile}')"


def test_an_annotated_loop_is_refused():
    sch, tile, _ = _tiled_row(4)
    sch.parallel(tile)
    with pytest.raises(qc.ScheduleError, match=rf"peel: asked to peel the last iteration of loop "
                                               rf"{tile}, but the loop is parallel"):
        sch.peel(tile)


@settings(max_examples=examples(10), deadline=None)
@given(columns=st.integers(1, 16), seed=st.integers(0, 2**16))
def test_the_peeled_tile_of_a_fused_loop_writes_the_last_column(columns, seed):
    # The peeled copy's column index, (p + 15K - 5) // 15, was split into K + (p - 5) // 15,
    # which C truncates to K (past the array) for p < 5 (a fuzz finding).
    size = qc.var("K", 1, 16)
    x = qc.placeholder((15, size), "int32", "X")
    channel = qc.reduce_axis(size, "c")
    spread = qc.compute((15, size), lambda j, p: qc.max(x[j, channel], axis=channel), "spread")
    sch = qc.Schedule(spread)
    sch.reorder("p", "j")
    sch.split(sch.fuse("p", "j"), 5, guard=True)
    sch.peel("p_j_o")
    values = np.random.default_rng(seed).integers(-100, 100, (15, columns)).astype(np.int32)
    expected = np.repeat(values.max(axis=1, keepdims=True), columns, axis=1)
    np.testing.assert_array_equal(qc.build(sch)(X=values), expected)
