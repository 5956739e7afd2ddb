"""pad_loop: ragged and dense loops padded to a multiple, against per-sequence numpy
references in the interpreter and compiled C; guards only where storage is unpadded."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.ir.verify import verify
from quiltc.ir.walk import find_all, rewrite

from support import helpers, ragged_programs
from support.ragged_programs import lengths_strategy
from support.tiers import examples


def _stores(kernel, name):
    """(guarded, statement) for each store to `name`."""
    found = []

    def visit(stmt, guarded):
        if isinstance(stmt, (ir.Store, ir.Reduce)) and stmt.buffer.name == name:
            found.append((guarded, stmt))
        elif isinstance(stmt, ir.If):
            visit(stmt.then, True)
        for child in (getattr(stmt, field) for field in stmt.child_fields):
            for item in child if isinstance(child, tuple) else (child,):
                if isinstance(item, ir.Stmt) and not isinstance(stmt, ir.If):
                    visit(item, guarded)

    visit(kernel.body, False)
    return found


@given(lengths=lengths_strategy, multiple=st.integers(1, 5),
       padded=ragged_programs.pipeline_tensors_strategy,
       seed=st.integers(0, 2**16))
def test_padded_ragged_loops_match_each_sequence(lengths, multiple, padded, seed):
    sch = qc.Schedule(ragged_programs.pipeline())
    for tensor in sorted(padded):
        length_loop = ragged_programs.length_loop(sch, tensor)
        assert sch.pad_loop(length_loop, multiple) == length_loop
    # Y is the caller's unpadded output and total a reduction: both keep their guards
    # (total's initialisation runs in a nest of its own, which was not padded).
    for output in padded & {"Y", "total"}:
        updates = [guarded for guarded, stmt in _stores(sch.kernel, output)
                   if output == "Y" or isinstance(stmt, ir.Reduce)]
        assert all(updates) or multiple == 1
    rows, batch = ragged_programs.ragged_batch(lengths, seed)
    ragged_programs.check_ragged(sch, {"X": batch}, ragged_programs.pipeline_reference(rows))


@settings(max_examples=examples(15))
@given(lengths=lengths_strategy, multiple=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_stores_between_padded_buffers_run_unguarded(lengths, multiple, seed):
    sch = qc.Schedule(ragged_programs.pipeline())
    sch.pad_storage("T", 1, multiple)
    sch.pad_storage("U", 1, multiple)
    sch.pad_loop(sch.loops("T")[1], multiple)
    sch.pad_loop(sch.loops("U")[1], multiple)
    # T reads the caller's unpadded X, so it keeps its guard; U reads and writes only
    # padded rows, so it runs the padded iterations unguarded.
    assert [guarded for guarded, _ in _stores(sch.kernel, "T")] == [True]
    assert [guarded for guarded, _ in _stores(sch.kernel, "U")] == [False]
    rows, batch = ragged_programs.ragged_batch(lengths, seed)
    ragged_programs.check_ragged(sch, {"X": batch}, ragged_programs.pipeline_reference(rows))


def _dense_pipeline(rows, columns):
    a = qc.placeholder((rows, columns), "float32", "A")
    doubled = qc.compute((rows, columns), lambda i, j: a[i, j] * np.float32(2.0), "T")
    shifted = qc.compute((rows, columns), lambda i, j: doubled[i, j] + np.float32(1.0), "U")
    return qc.compute((rows, columns), lambda i, j: shifted[i, j] * np.float32(3.0), "C")


@given(rows=st.sampled_from([1, 2, 5]), columns=st.sampled_from([1, 2, 3, 7, 8, 11]),
       multiple=st.integers(1, 6), pad_storage=st.booleans(), seed=st.integers(0, 2**16))
def test_padded_dense_loops_match_numpy(rows, columns, multiple, pad_storage, seed):
    sch = qc.Schedule(_dense_pipeline(rows, columns))
    if pad_storage:
        sch.pad_storage("T", 1, multiple)
        sch.pad_storage("U", 1, multiple)
    for tensor in ("T", "U", "C"):
        sch.pad_loop(sch.loops(tensor)[1], multiple)
    [(guarded, _)] = _stores(sch.kernel, "U")
    assert guarded == (columns % multiple != 0 and not pad_storage)
    a = helpers.random_array(np.random.default_rng(seed), (rows, columns))
    reference = {"C": (a * np.float32(2.0) + np.float32(1.0)) * np.float32(3.0)}
    helpers.check_schedule(sch, {"A": a}, reference)


def _column_sums(rows, columns):
    a = qc.placeholder((rows, columns), "float32", "A")
    doubled = qc.compute((rows, columns), lambda i, j: a[i, j] * np.float32(2.0), "P")
    k = qc.reduce_axis(rows, "k")
    sums = qc.compute((rows, columns), lambda i, j: qc.sum(doubled[k, j] * doubled[i, j], axis=k),
                      "S")
    row_k = qc.reduce_axis(columns, "m")
    totals = qc.compute((rows,), lambda i: qc.sum(sums[i, row_k], axis=row_k), "R")
    return qc.compute((rows, columns), lambda i, j: sums[i, j] + totals[i], "C")


@settings(max_examples=examples(15))
@given(rows=st.sampled_from([1, 3]), columns=st.sampled_from([1, 5, 8, 9]),
       multiple=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_a_reduction_into_padded_storage_runs_the_padded_iterations(rows, columns, multiple,
                                                                      seed):
    sch = qc.Schedule(_column_sums(rows, columns))
    sch.pad_storage("P", 1, multiple)
    sch.pad_storage("S", 1, multiple)
    sch.pad_loop(sch.loops("P")[1], multiple)
    sch.pad_loop(sch.loops("S")[1], multiple)
    sch.pad_loop(sch.loops("R")[1], multiple)
    # S's padded iterations each sum into their own padded element; R's loop over the
    # columns is its reduction axis, where a padded iteration would add garbage to a real
    # total, so it keeps its guard.
    assert [guarded for guarded, _ in _stores(sch.kernel, "S")] == [False]
    assert [guarded for guarded, stmt in _stores(sch.kernel, "R")
            if isinstance(stmt, ir.Reduce)] == [columns % multiple != 0]
    a = helpers.random_array(np.random.default_rng(seed), (rows, columns))
    doubled = a * np.float32(2.0)
    sums = doubled.sum(axis=0, keepdims=True) * doubled
    helpers.check_schedule(sch, {"A": a}, {"C": sums + sums.sum(axis=1, keepdims=True)})


def test_padded_extent_rounds_up():
    sch = qc.Schedule(_dense_pipeline(2, 11))
    j = sch.pad_loop(sch.loops("T")[1], 4)
    [loop] = [s for s in find_all(sch.kernel.body, lambda n: isinstance(n, ir.For))
              if s.var == j]
    assert loop.extent == 12
    assert "if j < 11" in repr(sch)
    assert "sch.pad_loop('j', 4)" in str(sch.trace)


@pytest.mark.parametrize("multiple", [0, -4, 2.5, True])
def test_pad_loop_rejects_a_multiple_that_is_not_a_positive_integer(multiple):
    sch = qc.Schedule(_dense_pipeline(2, 3))
    with pytest.raises(qc.ScheduleError, match=r"pad_loop: .*is not a positive integer"):
        sch.pad_loop("j", multiple)


def test_pad_loop_names_the_loops_it_knows():
    sch = qc.Schedule(_dense_pipeline(2, 3))
    with pytest.raises(qc.ScheduleError, match=r"no loop called 'q'"):
        sch.pad_loop("q", 4)


def test_verifier_rejects_a_padded_loop_that_reads_past_a_row_unguarded():
    sch = qc.Schedule(ragged_programs.pipeline())
    sch.pad_loop(sch.loops("T")[1], 4)
    unguarded = rewrite(sch.kernel.body,
                        lambda node: node.then if isinstance(node, ir.If) else node)
    with pytest.raises(qc.VerifyError, match=r"index l of X \(dim 1, extent L_len\(b\)\) may "
                                             r"leave its bounds"):
        verify(dataclasses.replace(sch.kernel, body=unguarded))
