"""pad_storage: ragged and dense intermediates with rows padded to a multiple, against
per-sequence numpy references in the interpreter and compiled C, and its refusals."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.ir.walk import find_all

from support import ragged_programs
from support.ragged_programs import MAX_LENGTH, lengths_strategy
from support.tiers import examples


def _allocated(sch, name):
    [alloc] = [node for node in find_all(sch.kernel.body, lambda n: isinstance(n, ir.Alloc))
               if node.buffer.name == name]
    return alloc.buffer


@given(lengths=lengths_strategy, multiple=st.integers(1, 5),
       padded=st.sets(st.sampled_from(["T", "U"]), min_size=1), pad_loops=st.booleans(),
       seed=st.integers(0, 2**16))
def test_padded_ragged_rows_match_each_sequence(lengths, multiple, padded, pad_loops, seed):
    sch = qc.Schedule(ragged_programs.pipeline())
    for tensor in sorted(padded):
        sch.pad_storage(tensor, 1, multiple)
        assert _allocated(sch, tensor).layout.pad == multiple
        if multiple > 1:
            assert (f"{tensor} = alloc[B, L, 3] float32  # global, rows padded to {multiple}"
                    in repr(sch))
        if pad_loops:
            sch.pad_loop(sch.loops(tensor)[1], multiple)
    rows, batch = ragged_programs.ragged_batch(lengths, seed)
    fn = ragged_programs.check_ragged(sch, {"X": batch},
                                      ragged_programs.pipeline_reference(rows))
    if multiple > 1:
        assert f"L_off1_pad{multiple}[quiltc_row + 1]" in fn.source


def _scores(hidden):
    """row_max[b, i] = max over j of scores[b, i, j], scores = Q K^T per sequence: a
    (B, L, L) intermediate, whose rows hold L_len[b] ** 2 elements."""
    batch = qc.var("B", 1, 8)
    length = qc.ragged_dim("L", batch, MAX_LENGTH)
    queries = qc.placeholder((batch, length, hidden), "float32", "Q")
    keys = qc.placeholder((batch, length, hidden), "float32", "K")
    h = qc.reduce_axis(hidden, "h")
    scores = qc.compute((batch, length, length),
                        lambda b, i, j: qc.sum(queries[b, i, h] * keys[b, j, h], axis=h),
                        "scores")
    j = qc.reduce_axis(length, "j")
    return qc.compute((batch, length), lambda b, i: qc.max(scores[b, i, j], axis=j), "row_max")


@settings(max_examples=examples(15))
@given(lengths=lengths_strategy, multiple=st.integers(2, 4), dim=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**16))
def test_padded_square_rows_match_each_sequence(lengths, multiple, dim, seed):
    sch = qc.Schedule(_scores(2))
    sch.pad_storage("scores", dim, multiple)
    loops = sch.loops("scores")
    sch.pad_loop(loops[1], multiple)
    sch.pad_loop(loops[2], multiple)
    table = f"L_off2_pad{multiple}"
    assert f"{table}[b] = sum(round_up(L_len[r], {multiple}) ** 2 for r < b)" in repr(sch)
    query_rows, queries = ragged_programs.ragged_batch(lengths, seed, (2,))
    key_rows, keys = ragged_programs.ragged_batch(lengths, seed + 1, (2,))
    expected = [(q @ k.T).max(axis=1, initial=-np.inf) for q, k in zip(query_rows, key_rows)]
    ragged_programs.check_ragged(sch, {"Q": queries, "K": keys}, {"row_max": expected})


def test_dense_padding_rounds_the_dim_up():
    a = qc.placeholder((3, 10), "float32", "A")
    doubled = qc.compute((3, 10), lambda i, j: a[i, j] * np.float32(2.0), "T")
    sch = qc.Schedule(qc.compute((3, 10), lambda i, j: doubled[i, j] + np.float32(1.0), "C"))
    sch.pad_storage("T", 1, 4)
    assert _allocated(sch, "T").shape == (3, 12)
    assert "sch.pad_storage('T', 1, 4)" in str(sch.trace)


def test_parameters_cannot_be_padded():
    sch = qc.Schedule(ragged_programs.pipeline())
    with pytest.raises(qc.ScheduleError, match=r"pad_storage: .*X is a parameter of the kernel, "
                                               r"whose layout the caller fixes"):
        sch.pad_storage("X", 1, 4)


def test_dense_dims_of_ragged_rows_are_refused():
    sch = qc.Schedule(ragged_programs.pipeline())
    with pytest.raises(qc.ScheduleError, match=r"dim 2 of T is dense inside ragged rows"):
        sch.pad_storage("T", 2, 4)


def test_padding_twice_is_refused():
    sch = qc.Schedule(ragged_programs.pipeline())
    sch.pad_storage("T", 1, 4)
    with pytest.raises(qc.ScheduleError, match=r"T is already padded"):
        sch.pad_storage("T", 1, 2)


@pytest.mark.parametrize("dim", [3, -1, 1.0])
def test_dims_outside_the_buffer_are_refused(dim):
    sch = qc.Schedule(ragged_programs.pipeline())
    with pytest.raises(qc.ScheduleError, match=r"T has dims 0 to 2"):
        sch.pad_storage("T", dim, 4)


def test_unknown_buffers_and_bad_multiples_are_refused():
    sch = qc.Schedule(ragged_programs.pipeline())
    with pytest.raises(qc.ScheduleError, match=r"no buffer called 'V'"):
        sch.pad_storage("V", 1, 4)
    with pytest.raises(qc.ScheduleError, match=r"the multiple 0 is not a positive integer"):
        sch.pad_storage("T", 1, 0)
