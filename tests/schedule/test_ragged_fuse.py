"""fuse on a ragged pair: the batch loop and the loop over each row's length become one
flat loop over all positions, through the prelude's row and position tables."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.ir.errors import VerifyError
from quiltc.ir.verify import verify
from quiltc.ir.walk import find_all, rewrite

from support import ragged_programs
from support.ragged_programs import lengths_strategy


@given(lengths=lengths_strategy, tensors=st.sets(st.sampled_from(["T", "U", "Y"]), min_size=1),
       factor=st.integers(1, 5), parallel=st.booleans(), seed=st.integers(0, 2**16))
def test_fused_ragged_loops_match_each_sequence(lengths, tensors, factor, parallel, seed):
    sch = qc.Schedule(ragged_programs.pipeline())
    for tensor in sorted(tensors):
        batch, length, _ = sch.loops(tensor)
        flat = sch.fuse(batch, length)
        outer, _ = sch.split(flat, factor)
        if parallel:
            sch.parallel(outer)
    rows, values = ragged_programs.ragged_batch(lengths, seed)
    ragged_programs.check_ragged(sch, {"X": values}, ragged_programs.pipeline_reference(rows))


def test_a_fused_loop_indexes_rows_by_its_flat_position():
    sch = qc.Schedule(ragged_programs.pipeline())
    batch, length, _ = sch.loops("Y")
    flat = sch.fuse(batch, length)
    assert flat.name == "b_2_l_2"
    [loop] = [stmt for stmt in _loops(sch.kernel) if stmt.var == flat]
    assert str(loop.extent) == "L_off1(B)"
    prelude = {entry.table for entry in sch.kernel.prelude}
    assert {"L_row", "L_off1"} <= prelude
    source = qc.build(sch, target="c").source
    # L_off1(L_row(f)) + L_pos(f) folds back to f: Y and U are read and written at 3*f + h.
    assert "Y[h_2 + (3 * b_2_l_2)] = U[h_2 + (3 * b_2_l_2)] * 3.0f;" in source
    assert "L_row[quiltc_next] = quiltc_row;" in source


def test_the_verifier_bounds_positions_by_their_own_row():
    sch = qc.Schedule(ragged_programs.pipeline())
    batch, length, _ = sch.loops("Y")
    sch.fuse(batch, length)
    verify(sch.kernel)

    def one_position_further(node):
        if isinstance(node, ir.Store) and node.buffer.name == "Y":
            row, position, feature = node.indices
            return dataclasses.replace(node, indices=(row, position + 1, feature))
        return node

    # Reading one position further runs past the end of the row: the verifier refuses it.
    with pytest.raises(VerifyError, match=r"index L_pos\(b_2_l_2\) \+ 1 of Y .*may leave"):
        verify(dataclasses.replace(sch.kernel, body=rewrite(sch.kernel.body, one_position_further)))


@pytest.mark.parametrize("before, message", [
    (lambda sch: sch.pad_loop(sch.loops("Y")[1], 4),
     r"fuse: .*extent of loop l_2 .* depends on b_2, but it is not L_len\(b_2\).*"
     r"Fuse a ragged pair before padding or remapping it"),
    (lambda sch: sch.remap(sch.loops("Y")[0]),
     r"depends on b_2, but it is not L_len\(b_2\)"),
])
def test_fuse_refuses_a_padded_or_remapped_ragged_pair(before, message):
    sch = qc.Schedule(ragged_programs.pipeline())
    before(sch)
    batch, length, _ = sch.loops("Y")
    with pytest.raises(qc.ScheduleError, match=message):
        sch.fuse(batch, length)


def _loops(kernel):
    return find_all(kernel.body, lambda node: isinstance(node, ir.For))
