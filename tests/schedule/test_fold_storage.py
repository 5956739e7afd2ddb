"""fold_storage: an intermediate buffer shrunk to one loop iteration's slice computes
what the full buffer did, and folds that would share live data are refused."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import interp
from quiltc.ir.verify import verify

from support.tiers import examples


def two_stage(rows, cols):
    x = qc.placeholder((rows, cols), "int32", "x")
    doubled = qc.compute((rows, cols), lambda i, j: x[i, j] * 2, "doubled")
    k = qc.reduce_axis(cols, "k")
    total = qc.compute((rows,), lambda r: qc.sum(doubled[r, k], axis=k), "total")
    return qc.Schedule(total), doubled, total


@settings(max_examples=examples(10))
@given(rows=st.integers(1, 6), cols=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_a_folded_buffer_computes_the_same_results(rows, cols, seed):
    sch, doubled, total = two_stage(rows, cols)
    row = sch.loops(total)[0]
    sch.compute_at(doubled, row)
    sch.fold_storage(doubled, row)
    kernel = sch.kernel
    verify(kernel)
    assert f"sch.fold_storage('doubled', '{row}')" in str(sch.trace)
    assert f"doubled = alloc[1, {cols}] int32  # local" in repr(kernel)
    x = np.random.default_rng(seed).integers(-100, 100, (rows, cols)).astype(np.int32)
    np.testing.assert_array_equal(interp.run(kernel, x=x)["total"], (2 * x).sum(axis=1))


def test_a_buffer_used_outside_the_loop_is_not_folded():
    sch, doubled, total = two_stage(4, 3)
    with pytest.raises(qc.ScheduleError, match="doubled is also used outside loop"):
        sch.fold_storage(doubled, sch.loops(total)[0])


def test_an_unknown_loop_is_named():
    sch, doubled, _ = two_stage(4, 3)
    with pytest.raises(qc.ScheduleError, match="there is no single loop nowhere"):
        sch.fold_storage(doubled, "nowhere")


def test_a_slice_that_moves_with_inner_loops_is_not_folded():
    x = qc.placeholder((3, 4), "int32", "x")
    scaled = qc.compute((3, 12), lambda i, j: x[i, j % 4] * 2, "scaled")
    k = qc.reduce_axis(4, "k")
    total = qc.compute((3,), lambda r: qc.sum(scaled[r, r * k], axis=k), "total")
    sch = qc.Schedule(total)
    row = sch.loops(total)[0]
    sch.compute_at(scaled, row)
    with pytest.raises(qc.ScheduleError, match="the accesses of scaled move differently in dim 1"):
        sch.fold_storage(scaled, row)


@settings(max_examples=examples(10), deadline=None)
@given(lengths=st.lists(st.sampled_from([0, 1, 9]) | st.integers(0, 9), min_size=1,
                        max_size=6), seed=st.integers(0, 2**16))
def test_a_ragged_slice_read_by_guarded_tiles_folds_to_the_row_maximum(lengths, seed):
    # The guarded tiles of k reach 4 * ceiling(L / 4) - 1 and the rows L - 1: two bounds
    # that do not compare for every L (a fuzz finding, where Python's max raised TypeError).
    batch = qc.var("B", 1, 6)
    length = qc.ragged_dim("L", batch, 9)
    x = qc.placeholder((batch, length, 3), "int32", "X")
    channel = qc.reduce_axis(3, "c")
    pairs = qc.compute((batch, length, length),
                       lambda b, i, j: qc.max(x[b, j, channel], axis=channel), "pairs")
    key = qc.reduce_axis(length, "k")
    smallest = qc.compute((batch, length), lambda b, i: qc.min(pairs[b, key, key], axis=key),
                          "smallest")
    sch = qc.Schedule(smallest)
    sch.split("k", 4, guard=True)
    row = sch.loops(smallest)[0]
    sch.compute_at(pairs, row)
    sch.fold_storage(pairs, row)
    verify(sch.kernel)
    assert "pairs = alloc[1, 9, 9] int32  # local" in repr(sch.kernel)
    rng = np.random.default_rng(seed)
    rows = [rng.integers(-50, 50, (n, 3)).astype(np.int32) for n in lengths]
    expected = [np.full(len(r), r.max(axis=1).min() if len(r) else 0, np.int32) for r in rows]
    ragged = qc.RaggedArray.from_list(rows)
    for got in (interp.run(sch.kernel, X=ragged)["smallest"], qc.build(sch)(X=ragged)):
        for result, want in zip(got, expected):
            np.testing.assert_array_equal(result, want)
