"""remap: ragged batch loops visiting the rows longest first, against per-sequence numpy
references in the interpreter and compiled C (with OpenMP threads), and its refusals."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.ir.shapes import prelude_tables

from support import ragged_programs
from support.ragged_programs import lengths_strategy
from support.tiers import examples

TENSORS = ("T", "U", "Y", "total")


@given(lengths=lengths_strategy, remapped=st.sets(st.sampled_from(TENSORS), min_size=1),
       parallel=st.booleans(), seed=st.integers(0, 2**16))
def test_remapped_batch_loops_match_each_sequence(lengths, remapped, parallel, seed):
    sch = qc.Schedule(ragged_programs.pipeline())
    for tensor in sorted(remapped):
        batch_loop = sch.loops(tensor)[0]
        if parallel:
            sch.parallel(batch_loop)
        assert sch.remap(batch_loop, "length-desc") == batch_loop
    text = repr(sch)
    assert "L_order_desc[k] = the row with the k-th longest L_len, k < B" in text
    assert text.count("range(L_len(L_order_desc(") == len(remapped)
    assert text.count("# parallel") == (len(remapped) if parallel else 0)
    rows, batch = ragged_programs.ragged_batch(lengths, seed)
    fn = ragged_programs.check_ragged(sch, {"X": batch},
                                      ragged_programs.pipeline_reference(rows))
    assert "L_order_desc[quiltc_next++] = quiltc_row;" in fn.source


@settings(max_examples=examples(40))
@given(lengths=st.lists(st.integers(0, ragged_programs.MAX_LENGTH), min_size=1, max_size=8))
def test_the_row_order_puts_longer_rows_first_and_keeps_ties_in_row_order(lengths):
    sch = qc.Schedule(ragged_programs.pipeline())
    sch.remap(sch.loops("T")[0])
    order = prelude_tables(sch.kernel, {"L": np.array(lengths, np.int32)},
                           {sch.kernel.shape_vars[0].symbol: len(lengths)})["L_order_desc"]
    expected = sorted(range(len(lengths)), key=lambda row: (-lengths[row], row))
    assert order.tolist() == expected


def test_remap_refuses_a_loop_that_is_not_a_ragged_batch():
    sch = qc.Schedule(ragged_programs.pipeline())
    with pytest.raises(qc.ScheduleError, match=r"remap: .*loop l does not run over the rows of "
                                               r"a ragged batch \(batches: L: B\)"):
        sch.remap("l")


def test_remap_refuses_an_unknown_order():
    sch = qc.Schedule(ragged_programs.pipeline())
    with pytest.raises(qc.ScheduleError, match=r"'random' is not an order remap knows"):
        sch.remap("b", "random")


def test_remap_is_recorded_in_the_trace_and_adds_one_table():
    sch = qc.Schedule(ragged_programs.pipeline())
    sch.remap("b")
    sch.remap("b_1")
    assert "sch.remap('b', 'length-desc')" in str(sch.trace)
    assert sum(isinstance(entry, ir.RowOrder) for entry in sch.kernel.prelude) == 1
