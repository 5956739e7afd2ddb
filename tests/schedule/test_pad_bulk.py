"""pad_bulk: a fused ragged loop padded to whole tiles of flat positions, the padded
positions landing in storage after the last row of each intermediate; every result is
checked per sequence in the interpreter and compiled (rerun under ASan+UBSan by
tests/runtime_c/test_sanitize.py)."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.ir.walk import find_all, rewrite

from support import ragged_programs
from support.tiers import examples


def _pipeline_padded(multiple, stages=("T", "U", "Y")):
    """The ragged pipeline with each of `stages` fused, bulk padded and split by `multiple`."""
    sch = qc.Schedule(ragged_programs.pipeline())
    for stage in stages:
        batch, length, _ = sch.loops(stage)
        padded = sch.pad_bulk(sch.fuse(batch, length), multiple)
        sch.split(padded, multiple)
    return sch


@settings(max_examples=examples(12), deadline=None)
@given(lengths=ragged_programs.lengths_strategy, seed=st.integers(0, 2**16),
       multiple=st.sampled_from([1, 2, 3, 4, 8, 16]))
def test_bulk_padded_pipelines_match_each_sequence(lengths, seed, multiple):
    rows, values = ragged_programs.ragged_batch(lengths, seed)
    sch = _pipeline_padded(multiple)
    ragged_programs.check_ragged(sch, {"X": values}, ragged_programs.pipeline_reference(rows))


def _stores(stmt):
    return find_all(stmt, lambda node: isinstance(node, ir.Store))


def _guarded_stores(stmt):
    return [store for guard in find_all(stmt, lambda node: isinstance(node, ir.If))
            for store in _stores(guard.then)]


def test_only_statements_touching_arguments_keep_the_guard():
    sch = _pipeline_padded(8)
    text = qc.ir.render(sch.kernel)
    assert "U = alloc[B, L, 3] float32  # global, storage after the last row to a multiple of 8" \
        in text
    assert ("L_row_bulk8[f], L_pos_bulk8[f] = the row and place of flat position f, rows r < B "
            "of L_len[r] back to back, run on past the last row to a multiple of 8") in text
    guarded = {store.buffer.name for store in _guarded_stores(sch.kernel.body)}
    stored = {store.buffer.name for store in _stores(sch.kernel.body)}
    # T reads the caller's X and Y is the caller's: both guarded; U reads and writes only
    # bulk-padded intermediates, so it runs on the padded positions.
    assert guarded == {"T", "Y"} and "U" in stored
    extents = [loop.extent for loop in find_all(sch.kernel.body, lambda n: isinstance(n, ir.For))]
    assert all(not isinstance(extent, ir.If) for extent in extents)


def test_the_verifier_refuses_an_unguarded_write_of_an_argument():
    sch = _pipeline_padded(4, stages=("Y",))

    def drop_guards(node):
        return node.then if isinstance(node, ir.If) else node

    broken = dataclasses.replace(sch.kernel, body=rewrite(sch.kernel.body, drop_guards))
    with pytest.raises(qc.VerifyError, match=r"of Y \(dim 1, extent .*\) may leave its bounds"):
        qc.ir.verify(broken)


def test_padding_tables_continue_the_last_row():
    sch = _pipeline_padded(4, stages=("U",))
    fn = qc.build(sch)
    rows, values = ragged_programs.ragged_batch([2, 0, 3], 0)
    tables = qc.ir.shapes.prelude_tables(sch.kernel, {"L": values.lengths}, {
        sch.kernel.shape_vars[0].symbol: 3})
    np.testing.assert_array_equal(tables["L_row_bulk4"], [0, 0, 2, 2, 2, 2, 2, 2])
    np.testing.assert_array_equal(tables["L_pos_bulk4"], [0, 1, 0, 1, 2, 3, 4, 5])
    for got, want in zip(fn(X=values)["Y"], ragged_programs.pipeline_reference(rows)["Y"]):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_a_loop_that_is_not_fused_is_refused():
    sch = qc.Schedule(ragged_programs.pipeline())
    batch, length, _ = sch.loops("T")
    with pytest.raises(qc.ScheduleError, match=r"loop l runs over L_len\(b\), not over every "
                                               r"position of a ragged batch .* Fuse the ragged "
                                               r"pair first \(sch.fuse\(b, l\)\)"):
        sch.pad_bulk(length, 4)
    with pytest.raises(qc.ScheduleError, match=r"the multiple 0 is not a positive integer"):
        sch.pad_bulk(sch.fuse(batch, length), 0)


def test_loops_padded_to_different_multiples_share_storage_for_both():
    """T is written by a loop padded to 8 and read by one padded to 3: its storage runs
    to a multiple of 24, past what either loop reaches."""
    sch = qc.Schedule(ragged_programs.pipeline())
    for stage, multiple in (("T", 8), ("U", 3)):
        batch, length, _ = sch.loops(stage)
        sch.split(sch.pad_bulk(sch.fuse(batch, length), multiple), multiple)
    assert "T = alloc[B, L, 3] float32  # global, storage after the last row to a multiple " \
           "of 24" in qc.ir.render(sch.kernel)
    rows, values = ragged_programs.ragged_batch([7, 0, 1], 5)
    ragged_programs.check_ragged(sch, {"X": values}, ragged_programs.pipeline_reference(rows))
