"""Any value with flat `values` and per-row `lengths` is a ragged argument: it is checked
like a RaggedArray (a mismatch is a ShapeError naming the fix, never an AttributeError),
and the interpreter's own ragged output goes straight back in."""

from types import SimpleNamespace

import numpy as np
import pytest

import quiltc as qc
from quiltc.ir import interp


def _doubling():
    batch = qc.var("B", 1, 8)
    length = qc.ragged_dim("L", batch, 8)
    x = qc.placeholder((batch, length, 2), "float32", "X")
    return qc.Schedule(qc.compute((batch, length, 2),
                                  lambda b, l, f: x[b, l, f] * np.float32(2.0), "Y"))


def test_a_duck_typed_ragged_value_is_checked_like_a_ragged_array():
    kernel = _doubling().kernel
    rows = SimpleNamespace(values=np.ones((5, 2), np.float32), lengths=np.array([2, 3]))
    result = interp.run(kernel, X=rows)["Y"]
    assert [len(row) for row in result.to_list()] == [2, 3]
    np.testing.assert_array_equal(result.values, np.full((5, 2), 2, np.float32))
    wrong = SimpleNamespace(values=np.ones((5, 2), np.float32), lengths=np.array([2, 9]))
    with pytest.raises(qc.ShapeError, match=r"values has 5 entries along its first dimension "
                       r"\(shape \(5, 2\)\), but the lengths sum to 11"):
        interp.run(kernel, X=wrong)


def test_the_interpreters_ragged_output_is_a_ragged_argument():
    kernel = _doubling().kernel
    once = interp.run(kernel, X=qc.RaggedArray.from_list([np.ones((3, 2), np.float32)]))["Y"]
    assert isinstance(once, qc.RaggedArray)
    twice = interp.run(kernel, X=once)["Y"]
    np.testing.assert_array_equal(twice.values, np.full((3, 2), 4, np.float32))
