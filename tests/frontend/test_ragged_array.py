"""`qc.RaggedArray`: one flat buffer plus row lengths; round trips through lists, padded
arrays and torch.nested jagged tensors, and a ShapeError naming the fix for bad input."""

import re
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc import RaggedArray

from support.tiers import examples

INNER_SHAPES = [(), (3,), (2, 5)]
DTYPES = ["float32", "int8", "int32"]
TORCH_HINT = "torch is an optional extra: pip install torch==2.13.0 (or pip install -e '.[bench]')"


@st.composite
def ragged_rows(draw):
    """Rows (length, *inner) with lengths 0..max, 0 and 1 included, and their parts."""
    longest = draw(st.sampled_from([1, 2, 5, 7]))
    lengths = draw(st.lists(st.integers(0, longest), min_size=0, max_size=6))
    inner = draw(st.sampled_from(INNER_SHAPES))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    rows = [rng.integers(-100, 100, size=(length, *inner)).astype(dtype) for length in lengths]
    return rows, lengths, inner, dtype


def _example(lengths=(3, 0, 1, 2), inner=(2,), dtype=np.float32):
    total = sum(lengths)
    values = np.arange(total * int(np.prod(inner)), dtype=dtype).reshape(total, *inner)
    return RaggedArray(values, list(lengths))


@settings(max_examples=examples(40))
@given(drawn=ragged_rows())
def test_from_list_keeps_rows_back_to_back_and_gives_them_back(drawn):
    rows, lengths, inner, dtype = drawn
    ragged = RaggedArray.from_list(rows, dtype=dtype, inner_shape=inner)
    assert ragged.batch == len(ragged) == len(lengths)
    assert ragged.dtype == dtype and ragged.inner_shape == inner
    assert ragged.total == sum(lengths) and ragged.max_length == max(lengths, default=0)
    np.testing.assert_array_equal(ragged.lengths, np.array(lengths, np.int32))
    assert ragged.lengths.dtype == np.int32 and ragged.lengths.flags.c_contiguous
    np.testing.assert_array_equal(ragged.offsets, np.concatenate([[0], np.cumsum(lengths)]))
    assert ragged.offsets.dtype == np.int64 and ragged.offsets is ragged.offsets
    expected = np.concatenate(rows) if rows else np.zeros((0, *inner), dtype)
    np.testing.assert_array_equal(ragged.values, expected)
    copies = ragged.to_list()
    assert len(copies) == len(rows)
    for row, copy, view in zip(rows, copies, ragged):
        assert copy.dtype == dtype and copy.shape == row.shape == view.shape
        np.testing.assert_array_equal(copy, row)
        if row.size:
            assert np.shares_memory(view, ragged.values)
            assert not np.shares_memory(copy, ragged.values)


@settings(max_examples=examples(40))
@given(drawn=ragged_rows(), extra=st.integers(0, 3), fill=st.sampled_from([0, -7, 9]))
def test_from_padded_and_to_padded_round_trip_with_fill(drawn, extra, fill):
    rows, lengths, inner, dtype = drawn
    positions = max(lengths, default=0) + extra
    padded = np.full((len(rows), positions, *inner), 55, dtype)
    for b, row in enumerate(rows):
        padded[b, :len(row)] = row
    ragged = RaggedArray.from_padded(padded, lengths)
    assert ragged.equal(RaggedArray.from_list(rows, dtype=dtype, inner_shape=inner))
    assert not np.shares_memory(ragged.values, padded)
    expected = padded.copy()
    for b, length in enumerate(lengths):
        expected[b, length:] = fill
    np.testing.assert_array_equal(ragged.to_padded(fill=fill, max_length=positions), expected)
    tight = ragged.to_padded(fill=fill)
    assert tight.shape == (len(rows), max(lengths, default=0), *inner) and tight.dtype == dtype
    np.testing.assert_array_equal(tight, expected[:, :ragged.max_length])


def test_rows_index_like_a_sequence_and_write_through_to_values():
    ragged = _example()
    np.testing.assert_array_equal(ragged[-1], np.array([[8, 9], [10, 11]], np.float32))
    assert ragged[np.int64(1)].shape == (0, 2)
    ragged[3][0, 0] = np.float32(-1)
    assert ragged.values[4, 0] == np.float32(-1)
    assert [row.shape[0] for row in ragged] == [3, 0, 1, 2]
    with pytest.raises(IndexError, match=r"row 4 is out of range for a ragged array of 4 rows"):
        ragged[4]
    with pytest.raises(TypeError, match=r"indexed by a row number, not slice"):
        ragged[1:2]


def test_lengths_and_offsets_are_read_only_copies():
    lengths = np.array([2, 1], np.int32)
    ragged = RaggedArray(np.zeros(3, np.float32), lengths)
    lengths[0] = 9
    np.testing.assert_array_equal(ragged.lengths, [2, 1])
    for array in (ragged.lengths, ragged.offsets):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 5


def test_values_are_shared_when_contiguous_and_made_contiguous_otherwise():
    values = np.arange(12, dtype=np.int32).reshape(6, 2)
    assert RaggedArray(values, [4, 2]).values is values
    strided = RaggedArray(values[::2], [1, 2])
    assert strided.values.flags.c_contiguous
    np.testing.assert_array_equal(strided[1], np.array([[4, 5], [8, 9]], np.int32))
    fortran = RaggedArray(np.asfortranarray(values), [6])
    assert fortran.values.flags.c_contiguous
    np.testing.assert_array_equal(fortran.values, values)


def test_values_may_be_any_object_with_array():
    class Wrapped:
        def __array__(self, dtype=None, copy=None):
            return np.array([1.5, 2.5, 3.5], np.float64)

    ragged = RaggedArray(Wrapped(), [1, 2])
    np.testing.assert_array_equal(ragged[1], np.array([2.5, 3.5]))


def test_repr_is_compact():
    assert repr(_example()) == (
        "RaggedArray(float32, batch=4, lengths=[3, 0, 1, 2], inner_shape=(2,))"
    )
    long = RaggedArray(np.zeros(44, np.int8), [0, 1] + [4] * 10 + [3])
    assert repr(long) == (
        "RaggedArray(int8, batch=13, lengths=[0, 1, 4, ..., 4, 3] (min 0, max 4, total 44))"
    )


def test_equal_compares_dtype_lengths_and_values_and_eq_stays_identity():
    ragged = _example()
    twin = RaggedArray(ragged.values.copy(), ragged.lengths)
    assert ragged.equal(twin) and not ragged == twin
    assert not ragged.equal(RaggedArray(ragged.values.astype(np.float64), ragged.lengths))
    assert not ragged.equal(RaggedArray(ragged.values, [2, 1, 1, 2]))
    changed = twin.values.copy()
    changed[5, 1] = np.float32(0.5)
    assert not ragged.equal(RaggedArray(changed, ragged.lengths))
    assert not ragged.equal(ragged.values)


@pytest.mark.parametrize("lengths, message", [
    ([2, -1, 3, -4], r"lengths must be 0 or more, but row 1 has -1, row 3 has -4; fix those"),
    ([1.5, 2.0], r"lengths must be integers; got dtype float64 \(\[1.5, 2.0\]\); convert them "
                 r"with np.asarray\(lengths\).astype\(np.int32\)"),
    ([True, False], r"lengths must be integers; got dtype bool"),
    ([[1, 2], [3, 4]], r"lengths must be 1-D, one integer per row; got shape \(2, 2\)"),
    (5, r"lengths must be 1-D, one integer per row; got shape \(\)"),
    ([[1], [2, 3]], r"lengths must be a 1-D sequence of integers, one per row"),
    ([1, 2**31], r"row 1 has length 2147483648, too large for int32 \(at most 2147483647\); "
                 r"split that row"),
])
def test_bad_lengths_are_refused_with_the_fix(lengths, message):
    with pytest.raises(qc.ShapeError, match=message):
        RaggedArray(np.zeros(3, np.float32), lengths)


def test_values_that_do_not_fit_the_lengths_are_refused():
    with pytest.raises(qc.ShapeError, match=re.escape(
            "values has 5 entries along its first dimension (shape (5, 3)), but the lengths sum "
            "to 6; pass values of shape (6, *inner) or lengths that sum to 5")):
        RaggedArray(np.zeros((5, 3), np.float32), [2, 4])
    with pytest.raises(qc.ShapeError, match=r"values is a scalar \(rank 0\); a ragged array's "
                                            r"values are an array of shape \(sum\(lengths\)"):
        RaggedArray(np.float32(1), [1])
    with pytest.raises(qc.ShapeError, match=r"dtype int64 of values is not supported by quiltc "
                                            r"\(it supports float32, .*uint8\); convert it"):
        RaggedArray(np.zeros(2, np.int64), [2])
    with pytest.raises(qc.ShapeError, match=r"argument 'values' is a list; pass a numpy array"):
        RaggedArray([1.0, 2.0], [2])


def test_from_list_errors_name_the_row_and_the_fix():
    with pytest.raises(qc.ShapeError, match=re.escape(
            "RaggedArray.from_list got no rows, so the inner shape is unknown; pass it, e.g. "
            "RaggedArray.from_list([], dtype='float32', inner_shape=(3,))")):
        RaggedArray.from_list([])
    with pytest.raises(qc.ShapeError, match=re.escape(
            "row 2 has shape (1, 4), whose inner shape (4,) differs from (3,); every row must be "
            "an array (length, 3) with one shared inner shape")):
        RaggedArray.from_list([np.ones((2, 3)), np.ones((0, 3)), np.ones((1, 4))], inner_shape=(3,))
    with pytest.raises(qc.ShapeError, match=r"row 1 is a scalar; each row must be an array"):
        RaggedArray.from_list([[1.0], 2.0])
    with pytest.raises(qc.ShapeError, match=r"row 0 is itself ragged"):
        RaggedArray.from_list([[[1.0], [2.0, 3.0]]])
    with pytest.raises(qc.ShapeError, match=r"dtype int64 of the rows is not supported .* pass "
                                            r"dtype= one of those"):
        RaggedArray.from_list([[1, 2], [3]])
    with pytest.raises(qc.ShapeError, match=r"dtype complex64 of from_list\(dtype=...\)"):
        RaggedArray.from_list([[1, 2]], dtype=np.complex64)


def test_from_list_infers_dtype_from_non_empty_rows_and_takes_quiltc_dtypes():
    ragged = RaggedArray.from_list([np.ones((2, 3), np.int8), [], np.zeros((0, 3), np.float64)])
    assert ragged.dtype == np.int8 and ragged.inner_shape == (3,)
    np.testing.assert_array_equal(ragged.lengths, [2, 0, 0])
    empty = RaggedArray.from_list([], dtype=qc.int16, inner_shape=(2, 5))
    assert (empty.batch, empty.total, empty.dtype, empty.inner_shape) == (0, 0, np.int16, (2, 5))
    assert empty.to_padded().shape == (0, 0, 2, 5) and empty.max_length == 0
    assert RaggedArray.from_list([], inner_shape=()).dtype == np.float32


def test_from_padded_errors_name_the_row():
    padded = np.zeros((3, 4, 2), np.float32)
    with pytest.raises(qc.ShapeError, match=re.escape(
            "row 2 has length 5, but the padded array holds only 4 positions per row (shape "
            "(3, 4, 2)); pass lengths of at most 4")):
        RaggedArray.from_padded(padded, [1, 4, 5])
    with pytest.raises(qc.ShapeError, match=re.escape(
            "from_padded got 2 lengths for a padded array of 3 rows (shape (3, 4, 2)); pass one "
            "length per row")):
        RaggedArray.from_padded(padded, [1, 4])
    with pytest.raises(qc.ShapeError, match=r"from_padded needs an array of shape \(batch, "
                                            r"max_len, \*inner\), got shape \(4,\)"):
        RaggedArray.from_padded(np.zeros(4, np.float32), [4])
    with pytest.raises(qc.ShapeError, match=r"lengths must be 0 or more, but row 0 has -1"):
        RaggedArray.from_padded(padded, [-1, 0, 0])


def test_to_padded_errors_name_the_row_and_the_fill():
    ragged = _example(dtype=np.uint8)
    with pytest.raises(qc.ShapeError, match=re.escape(
            "row 0 has length 3, longer than max_length=2; pass max_length of at least 3 or leave "
            "it out")):
        ragged.to_padded(max_length=2)
    with pytest.raises(qc.ShapeError, match=r"to_padded got max_length=-1; pass a length of 0"):
        RaggedArray(np.zeros(0, np.float32), [0]).to_padded(max_length=-1)
    with pytest.raises(qc.ShapeError, match=r"fill value -1 does not fit dtype uint8 .*; pick a "
                                            r"fill the dtype can hold"):
        ragged.to_padded(fill=-1)
    with pytest.raises(qc.ShapeError, match=r"fill value nan does not fit dtype int32"):
        _example(dtype=np.int32).to_padded(fill=float("nan"))


def test_check_max_names_the_row_and_the_dimension():
    ragged = _example()
    ragged.check_max(3, "L")
    with pytest.raises(qc.ShapeError, match=re.escape(
            "row 0 has length 3, over the declared maximum 2 of L; declare L with a maximum of "
            "at least 3")):
        ragged.check_max(2, "L")


def test_check_same_rows_names_both_arguments_and_the_first_differing_row():
    ragged = _example()
    ragged.check_same_rows(_example(inner=(), dtype=np.int8), ("x", "mask"))
    with pytest.raises(qc.ShapeError, match=re.escape(
            "row 2 of 'x' has length 1, but row 2 of 'mask' has length 0; the two must share "
            "their row lengths")):
        ragged.check_same_rows(_example(lengths=(3, 0, 0, 3)), ("x", "mask"))
    with pytest.raises(qc.ShapeError, match=re.escape(
            "argument 'x' has 4 rows, but 'mask' has 3; the two must hold the same rows")):
        ragged.check_same_rows(_example(lengths=(3, 0, 1)), ("x", "mask"))
    with pytest.raises(qc.ShapeError, match=r"argument 'mask' is a ndarray, but it must be a "
                                            r"RaggedArray with the same rows as 'x'"):
        ragged.check_same_rows(np.zeros(4), ("x", "mask"))


def test_torch_exchange_without_torch_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    message = re.escape("torch is not installed; pip install torch==2.13.0 (the bench extra: "
                        "pip install -e '.[bench]')")
    with pytest.raises(qc.QuiltError, match=message):
        _example().to_torch_nested()
    with pytest.raises(qc.QuiltError, match=message):
        RaggedArray.from_torch_nested(object())


@settings(max_examples=examples(30))
@given(drawn=ragged_rows())
def test_torch_nested_exchange_shares_memory_both_ways(drawn):
    torch = pytest.importorskip("torch", reason=TORCH_HINT)
    rows, lengths, inner, dtype = drawn
    ragged = RaggedArray.from_list(rows, dtype=dtype, inner_shape=inner)
    nested = ragged.to_torch_nested()
    assert nested.is_nested and nested.layout == torch.jagged
    assert nested.size(0) == len(lengths) and tuple(nested.shape[2:]) == inner
    np.testing.assert_array_equal(nested.values().numpy(), ragged.values)
    np.testing.assert_array_equal(nested.offsets().numpy(), ragged.offsets)
    if ragged.total:
        assert nested.values().data_ptr() == ragged.values.ctypes.data
    back = RaggedArray.from_torch_nested(nested)
    assert back.equal(ragged)
    if ragged.total:
        assert back.values.ctypes.data == ragged.values.ctypes.data
        for row, (start, stop) in zip(nested.unbind(), zip(ragged.offsets, ragged.offsets[1:])):
            np.testing.assert_array_equal(row.numpy(), ragged.values[start:stop])


def test_from_torch_nested_reads_torch_built_tensors_in_place():
    torch = pytest.importorskip("torch", reason=TORCH_HINT)
    nested = torch.nested.nested_tensor(
        [torch.arange(6.0).reshape(3, 2), torch.zeros(0, 2), torch.ones(1, 2)], layout=torch.jagged
    )
    ragged = RaggedArray.from_torch_nested(nested)
    np.testing.assert_array_equal(ragged.lengths, [3, 0, 1])
    assert ragged.values.ctypes.data == nested.values().data_ptr()
    np.testing.assert_array_equal(ragged[0], np.arange(6, dtype=np.float32).reshape(3, 2))
    flat = torch.arange(6, dtype=torch.int32)
    assert RaggedArray(flat, [2, 4]).values.ctypes.data == flat.data_ptr()
    grad = torch.nested.nested_tensor_from_jagged(
        torch.ones(3, requires_grad=True), torch.tensor([0, 1, 3])
    )
    np.testing.assert_array_equal(RaggedArray.from_torch_nested(grad)[1], np.ones(2, np.float32))


def test_from_torch_nested_refuses_what_it_cannot_view():
    torch = pytest.importorskip("torch", reason=TORCH_HINT)
    with pytest.raises(qc.ShapeError, match=r"needs a nested tensor of layout torch.jagged, got a "
                                            r"Tensor of layout torch.strided; build one with"):
        RaggedArray.from_torch_nested(torch.ones(3))
    on_meta = torch.nested.nested_tensor_from_jagged(
        torch.ones(3, device="meta"), torch.tensor([0, 1, 3], device="meta")
    )
    with pytest.raises(qc.ShapeError, match=r"the nested tensor is on meta; move it first with "
                                            r"nested.cpu\(\)"):
        RaggedArray.from_torch_nested(on_meta)
    with_holes = torch.nested.narrow(
        torch.arange(12.0).reshape(3, 4), 1, torch.tensor([0, 1, 0]), torch.tensor([2, 3, 1]),
        layout=torch.jagged,
    )
    with pytest.raises(qc.ShapeError, match=r"do not lie back to back .* nested.contiguous\(\)"):
        RaggedArray.from_torch_nested(with_holes)
    strided_values = torch.nested.nested_tensor_from_jagged(
        torch.arange(12.0).reshape(6, 2)[:, 0], torch.tensor([0, 2, 6])
    )
    with pytest.raises(qc.ShapeError, match=r"do not lie back to back"):
        RaggedArray.from_torch_nested(strided_values)
    half = torch.nested.nested_tensor_from_jagged(
        torch.ones(3, dtype=torch.bfloat16), torch.tensor([0, 1, 3])
    )
    with pytest.raises(qc.ShapeError, match=r"dtype torch.bfloat16 has no numpy equivalent"):
        RaggedArray.from_torch_nested(half)
