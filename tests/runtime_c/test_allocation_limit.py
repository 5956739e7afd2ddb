"""Heap allocations larger than the machine's memory come back as AllocationError
naming the buffer and the bytes, before the kernel runs: in C their byte count would
wrap (then the kernel writes past a small block) or the allocator would abort the
process. Sizes inside the limit run as before."""

import numpy as np
import pytest

import quiltc as qc
from quiltc.runtime_c.memory import memory_limit

from support.helpers import require_cc


def _cube_then_corner():
    """A float64 (N, N, N) intermediate (N up to 2**21: 2**66 bytes at the top) and
    the corner of each plane read back."""
    n = qc.var("N", 1, 1 << 21)
    a = qc.placeholder((n,), "float64", "A")
    cube = qc.compute((n, n, n), lambda i, j, k: a[i] + a[j] + a[k], "T")
    return qc.compute((n,), lambda i: cube[i, 0, 0] * np.float64(2.0), "S")


def test_an_allocation_past_memory_is_refused_with_its_buffer_and_bytes():
    require_cc()
    fn = qc.build(qc.Schedule(_cube_then_corner()))
    with pytest.raises(qc.AllocationError, match=r"buffer T would need up to "
                                                 r"73,786,976,294,838,206,464 bytes at N = "
                                                 r"2097152, more than this machine's"):
        fn(A=np.ones(1 << 21))
    assert issubclass(qc.AllocationError, MemoryError)
    assert memory_limit() < 1 << 66


def test_the_same_kernel_runs_at_sizes_that_fit():
    require_cc()
    fn = qc.build(qc.Schedule(_cube_then_corner()))
    a = np.arange(5, dtype=np.float64)
    np.testing.assert_array_equal(fn(A=a), (a + a[0] + a[0]) * np.float64(2.0))


def test_ragged_intermediates_are_bounded_by_their_rows():
    """A ragged intermediate is at most rows x the longest row: small ones pass the
    check without evaluating anything per call."""
    batch = qc.var("B", 1, 64)
    length = qc.ragged_dim("L", batch, 64)
    x = qc.placeholder((batch, length, 3), "float32", "X")
    doubled = qc.compute((batch, length, 3), lambda b, l, h: x[b, l, h] * np.float32(2.0), "D")
    y = qc.compute((batch, length, 3), lambda b, l, h: doubled[b, l, h] + np.float32(1.0), "Y")
    require_cc()
    fn = qc.build(qc.Schedule(y))
    assert fn._check_allocations.bounds == []
    rows = [np.ones((n, 3), np.float32) for n in (2, 0, 5)]
    for got, row in zip(fn(X=qc.RaggedArray.from_list(rows)), rows):
        np.testing.assert_array_equal(got, row * np.float32(3.0))


def test_ragged_scores_are_bounded_by_the_calls_own_rows():
    """(B, L, L) scores with rows up to 2**20 long: the declared maximum would need
    terabytes, so each call is bounded by its own longest row and prefix-sum totals
    (as attention's scores are); a row of 2**17 needs 64 GiB and is refused."""
    batch = qc.var("B", 1, 8)
    length = qc.ragged_dim("L", batch, 1 << 20)
    x = qc.placeholder((batch, length), "float32", "X")
    scores = qc.compute((batch, length, length), lambda b, i, j: x[b, i] * x[b, j], "scores")
    j = qc.reduce_axis(length, "j")
    row_max = qc.compute((batch, length), lambda b, i: qc.max(scores[b, i, j], axis=j), "M")
    require_cc()
    fn = qc.build(qc.Schedule(row_max))
    assert [name for name, _ in fn._check_allocations.bounds] == ["scores"]
    rows = [np.arange(n, dtype=np.float32) for n in (3, 0, 5)]
    for got, row in zip(fn(X=qc.RaggedArray.from_list(rows)), rows):
        np.testing.assert_array_equal(got, row * row.max() if len(row) else row)
    with pytest.raises(qc.AllocationError, match=r"buffer scores would need up to "
                                                 r"68,719,476,736 bytes at B = 1"):
        fn(X=qc.RaggedArray.from_list([np.ones(1 << 17, np.float32)]))
