"""Ragged arrays: a batch of rows of different lengths, stored without padding.

A `RaggedArray` is one flat buffer `values` of shape `(sum(lengths), *inner)` that holds
every row back to back, plus `lengths`, one int32 per row. Row `b` is
`values[offsets[b]:offsets[b + 1]]`, where `offsets` (int64, batch + 1 entries) is the
running sum of the lengths. It is the value that functions built over ragged dimensions
take and return, and it passes to and from `torch.nested` jagged tensors (values +
offsets) without copying.

    import numpy as np, quiltc as qc
    tokens = qc.RaggedArray.from_list([np.ones((3, 4)), np.ones((0, 4)), np.ones((5, 4))])
    tokens.lengths        # array([3, 0, 5], dtype=int32); tokens.values.shape == (8, 4)
    padded = tokens.to_padded(fill=0)                  # shape (3, 5, 4)
    same = qc.RaggedArray.from_padded(padded, tokens.lengths)
"""

import numpy as np

from . import dtypes
from .errors import QuiltError, ShapeError


def is_integer_in(value, lo, hi=None):
    """Whether an argument is an integer (Python's or numpy's, not a bool) in [lo, hi]."""
    return (not isinstance(value, bool) and isinstance(value, (int, np.integer))
            and lo <= value and (hi is None or value <= hi))


def to_numpy(name, value):
    """A numpy view of `value` (a numpy array, a `__dlpack__` object, or `__array__`)."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "__dlpack__"):
        try:
            return np.from_dlpack(value)
        except (TypeError, RuntimeError, BufferError):
            pass
    if hasattr(value, "__array__"):
        return np.asarray(value)
    raise ShapeError(
        f"argument {name!r} is a {type(value).__name__}; pass a numpy array or an object "
        "with __dlpack__ or __array__"
    )


SUPPORTED_DTYPES = tuple(
    d.numpy for d in (dtypes.float32, dtypes.float64, dtypes.int8, dtypes.int16, dtypes.int32,
                      dtypes.uint8)
)
_INT32_MAX = np.iinfo(np.int32).max
_ROWS_SHOWN = 8
_TORCH_MISSING = (
    "torch is not installed; pip install torch==2.13.0 (the bench extra: pip install -e '.[bench]')"
)


class RaggedArray:
    """A batch of rows `(length_b, *inner)` stored back to back in one flat buffer.

    `values` is kept as given (made C-contiguous if it was not), so row views and the
    torch exchange share its memory; `lengths` is copied to a read-only int32 array
    because the cached `offsets` are computed from it.
    """

    def __init__(self, values, lengths):
        self._lengths = _as_lengths(lengths)
        offsets = np.zeros(len(self._lengths) + 1, dtype=np.int64)
        np.cumsum(self._lengths, dtype=np.int64, out=offsets[1:])
        # The writable array is handed to torch as the nested tensor's offsets; users see
        # a read-only view so the cache cannot drift from the lengths.
        self._offsets = offsets
        self._offsets_view = offsets.view()
        self._offsets_view.flags.writeable = False
        self._values = _as_values(values, int(offsets[-1]))

    @property
    def values(self):
        """The flat buffer, shape `(total, *inner)`: every row back to back."""
        return self._values

    @property
    def lengths(self):
        """Row lengths, a read-only C-contiguous int32 array of `batch` entries."""
        return self._lengths

    @property
    def offsets(self):
        """Row starts in `values`, read-only int64, `batch + 1` entries from 0 to `total`."""
        return self._offsets_view

    @property
    def batch(self):
        """The number of rows."""
        return len(self._lengths)

    @property
    def inner_shape(self):
        """The shape every row shares after its length dimension."""
        return self._values.shape[1:]

    @property
    def dtype(self):
        """The numpy dtype of `values`."""
        return self._values.dtype

    @property
    def max_length(self):
        """The longest row's length (0 for an empty batch)."""
        return int(self._lengths.max()) if self.batch else 0

    @property
    def total(self):
        """The sum of the lengths: the first dimension of `values`."""
        return int(self._offsets[-1])

    def __len__(self):
        return self.batch

    def __getitem__(self, row):
        """Row `row` as a view of `values`, shape `(lengths[row], *inner)`."""
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)):
            raise TypeError(f"a RaggedArray is indexed by a row number, not {type(row).__name__}")
        index = int(row)
        if not -self.batch <= index < self.batch:
            raise IndexError(f"row {index} is out of range for a ragged array of {self.batch} rows")
        index %= self.batch
        return self._values[self._offsets[index]:self._offsets[index + 1]]

    def __iter__(self):
        for start, stop in zip(self._offsets[:-1], self._offsets[1:]):
            yield self._values[start:stop]

    def __repr__(self):
        inner = f", inner_shape={self.inner_shape}" if self.inner_shape else ""
        lengths = self._lengths_text()
        return f"RaggedArray({self.dtype}, batch={self.batch}, lengths={lengths}{inner})"

    def _lengths_text(self):
        lengths = self._lengths.tolist()
        if len(lengths) <= _ROWS_SHOWN:
            return str(lengths)
        head = ", ".join(map(str, lengths[:3]))
        tail = ", ".join(map(str, lengths[-2:]))
        return (f"[{head}, ..., {tail}] (min {min(lengths)}, max {max(lengths)}, "
                f"total {self.total})")

    def equal(self, other):
        """True when `other` is a RaggedArray with the same dtype, lengths and values."""
        return (
            isinstance(other, RaggedArray)
            and self.dtype == other.dtype
            and self.inner_shape == other.inner_shape
            and np.array_equal(self._lengths, other.lengths)
            and np.array_equal(self._values, other.values)
        )

    @classmethod
    def from_list(cls, rows, dtype=None, inner_shape=None):
        """A RaggedArray holding copies of `rows`, each an array `(length, *inner)`.

        Every row shares one inner shape; an empty row may be spelled `[]` whatever the
        inner shape. `dtype` defaults to the common dtype of the non-empty rows.
        With no rows at all, pass `inner_shape` (and `dtype`, else float32).
        """
        arrays = [_as_row(index, row) for index, row in enumerate(rows)]
        if inner_shape is None:
            if not arrays:
                raise ShapeError(
                    "RaggedArray.from_list got no rows, so the inner shape is unknown; pass it, "
                    "e.g. RaggedArray.from_list([], dtype='float32', inner_shape=(3,))"
                )
            shaped = [a for a in arrays if a.shape != (0,)] or arrays
            inner_shape = shaped[0].shape[1:]
        inner_shape = tuple(int(extent) for extent in inner_shape)
        for index, array in enumerate(arrays):
            if array.shape[1:] != inner_shape and array.shape != (0,):
                raise ShapeError(
                    f"row {index} has shape {array.shape}, whose inner shape "
                    f"{array.shape[1:]} differs from {inner_shape}; every row must be an array "
                    f"(length, {', '.join(map(str, inner_shape))}) with one shared inner shape"
                )
        where = "from_list(dtype=...)"
        if dtype is None:
            filled = [a.dtype for a in arrays if a.size] or [a.dtype for a in arrays]
            dtype = np.result_type(*filled) if filled else np.float32
            where = "the rows"
        dtype = _as_dtype(dtype, where, "pass dtype= one of those")
        lengths = [len(array) for array in arrays]
        values = np.empty((sum(lengths), *inner_shape), dtype=dtype)
        start = 0
        for array in arrays:
            if len(array):
                values[start:start + len(array)] = array
                start += len(array)
        return cls(values, lengths)

    @classmethod
    def from_padded(cls, array, lengths):
        """A RaggedArray of the first `lengths[b]` positions of each row of `array`.

        `array` has shape `(batch, max_len, *inner)`; what lies past each length is dropped.
        """
        padded = to_numpy("array", array)
        if padded.ndim < 2:
            raise ShapeError(
                f"from_padded needs an array of shape (batch, max_len, *inner), got shape "
                f"{padded.shape}; add the missing axes, e.g. array[None] for a single row"
            )
        lengths = _as_lengths(lengths)
        batch, positions = padded.shape[:2]
        if len(lengths) != batch:
            raise ShapeError(
                f"from_padded got {len(lengths)} lengths for a padded array of {batch} rows "
                f"(shape {padded.shape}); pass one length per row"
            )
        over = _first_row_over(lengths, positions)
        if over is not None:
            raise ShapeError(
                f"row {over} has length {lengths[over]}, but the padded array holds only "
                f"{positions} positions per row (shape {padded.shape}); pass lengths of at most "
                f"{positions}"
            )
        return cls(padded[_row_mask(lengths, positions)], lengths)

    def to_padded(self, fill=0, max_length=None):
        """A new `(batch, max_length, *inner)` array: each row, then `fill` up to the end.

        `max_length` defaults to the longest row.
        """
        positions = self.max_length if max_length is None else int(max_length)
        if positions < 0:
            raise ShapeError(f"to_padded got max_length={positions}; pass a length of 0 or more")
        over = _first_row_over(self._lengths, positions)
        if over is not None:
            raise ShapeError(
                f"row {over} has length {self._lengths[over]}, longer than max_length="
                f"{positions}; pass max_length of at least {self.max_length} or leave it out"
            )
        try:
            fill_value = self.dtype.type(fill)
        except (ValueError, OverflowError, TypeError) as error:
            raise ShapeError(
                f"fill value {fill!r} does not fit dtype {self.dtype} ({error}); pick a fill "
                "the dtype can hold"
            ) from None
        padded = np.full((self.batch, positions, *self.inner_shape), fill_value, dtype=self.dtype)
        padded[_row_mask(self._lengths, positions)] = self._values
        return padded

    def to_list(self):
        """A list of copies of the rows, each `(lengths[b], *inner)`."""
        return [row.copy() for row in self]

    def check_max(self, max_length, name):
        """Raise ShapeError when a row is longer than `max_length`, the declared maximum of
        the ragged dimension `name`."""
        max_length = int(max_length)
        over = _first_row_over(self._lengths, max_length)
        if over is not None:
            raise ShapeError(
                f"row {over} has length {self._lengths[over]}, over the declared maximum "
                f"{max_length} of {name}; declare {name} with a maximum of at least "
                f"{self.max_length}"
            )

    def check_same_rows(self, other, names):
        """Raise ShapeError unless `other` has the same row lengths; `names` names the two
        arguments, this one first."""
        mine, theirs = names
        if not isinstance(other, RaggedArray):
            raise ShapeError(
                f"argument {theirs!r} is a {type(other).__name__}, but it must be a RaggedArray "
                f"with the same rows as {mine!r}; build one with RaggedArray(values, lengths)"
            )
        if self.batch != other.batch:
            raise ShapeError(
                f"argument {mine!r} has {self.batch} rows, but {theirs!r} has {other.batch}; "
                "the two must hold the same rows"
            )
        differing = np.flatnonzero(self._lengths != other.lengths)
        if differing.size:
            row = int(differing[0])
            raise ShapeError(
                f"row {row} of {mine!r} has length {self._lengths[row]}, but row {row} of "
                f"{theirs!r} has length {other.lengths[row]}; the two must share their row "
                "lengths"
            )

    def to_torch_nested(self):
        """A `torch.nested` jagged tensor sharing this array's values and offsets (no copy)."""
        torch = _import_torch()
        return torch.nested.nested_tensor_from_jagged(
            torch.from_numpy(self._values), torch.from_numpy(self._offsets)
        )

    @classmethod
    def from_torch_nested(cls, nested):
        """A RaggedArray viewing the values of a CPU `torch.nested` jagged tensor (no copy)."""
        torch = _import_torch()
        if not getattr(nested, "is_nested", False) or nested.layout != torch.jagged:
            layout = getattr(nested, "layout", None)
            raise ShapeError(
                f"from_torch_nested needs a nested tensor of layout torch.jagged, got a "
                f"{type(nested).__name__} of layout {layout}; build one with "
                "torch.nested.nested_tensor(rows, layout=torch.jagged)"
            )
        if nested.device.type != "cpu":
            raise ShapeError(
                f"from_torch_nested reads memory in place, but the nested tensor is on "
                f"{nested.device}; move it first with nested.cpu()"
            )
        if nested.lengths() is not None or not nested.values().is_contiguous():
            raise ShapeError(
                "the nested tensor's rows do not lie back to back in one contiguous buffer; "
                "make them so first with nested.contiguous()"
            )
        try:
            values = nested.values().detach().numpy()
        except TypeError as error:
            raise ShapeError(
                f"the nested tensor's dtype {nested.dtype} has no numpy equivalent ({error}); "
                "convert it first, e.g. nested.to(torch.float32)"
            ) from None
        offsets = nested.offsets().detach().numpy()
        return cls(values[offsets[0]:offsets[-1]], np.diff(offsets))


def _as_lengths(lengths):
    try:
        array = np.asarray(lengths)
    except (ValueError, TypeError):
        raise ShapeError(
            "lengths must be a 1-D sequence of integers, one per row; got a nested sequence "
            "whose parts differ in length"
        ) from None
    if array.ndim != 1:
        raise ShapeError(
            f"lengths must be 1-D, one integer per row; got shape {array.shape}; flatten it "
            "or pass one length per row"
        )
    if array.size == 0:
        return _read_only(np.zeros(0, dtype=np.int32))
    if array.dtype.kind not in "iu":
        raise ShapeError(
            f"lengths must be integers; got dtype {array.dtype} ({_few(array)}); convert them "
            "with np.asarray(lengths).astype(np.int32)"
        )
    negative = np.flatnonzero(array < 0)
    if negative.size:
        rows = ", ".join(f"row {row} has {array[row]}" for row in negative[:_ROWS_SHOWN])
        raise ShapeError(f"lengths must be 0 or more, but {rows}; fix those rows' lengths")
    if array.max() > _INT32_MAX:
        row = int(np.argmax(array))
        raise ShapeError(
            f"row {row} has length {array[row]}, too large for int32 (at most {_INT32_MAX}); "
            "split that row"
        )
    return _read_only(array.astype(np.int32))


def _as_values(values, total):
    array = to_numpy("values", values)
    if array.ndim == 0:
        raise ShapeError(
            "values is a scalar (rank 0); a ragged array's values are an array of shape "
            "(sum(lengths), *inner) holding every row back to back"
        )
    _as_dtype(array.dtype, "values", "convert it with .astype(np.float32) or another of those")
    if array.shape[0] != total:
        raise ShapeError(
            f"values has {array.shape[0]} entries along its first dimension (shape "
            f"{array.shape}), but the lengths sum to {total}; pass values of shape "
            f"({total}, *inner) or lengths that sum to {array.shape[0]}"
        )
    return np.ascontiguousarray(array)


def _as_row(index, row):
    if hasattr(row, "__dlpack__") or hasattr(row, "__array__"):
        array = to_numpy(f"row {index}", row)
    else:
        try:
            array = np.asarray(row)
        except (ValueError, TypeError):
            raise ShapeError(
                f"row {index} is itself ragged; each row must be an array (length, *inner)"
            ) from None
    if array.ndim == 0:
        raise ShapeError(
            f"row {index} is a scalar; each row must be an array (length, *inner), e.g. [x] "
            "for a row of one element"
        )
    return array


def _as_dtype(value, where, fix):
    try:
        dtype = value.numpy if isinstance(value, dtypes.DType) else np.dtype(value)
    except TypeError:
        dtype = None
    if dtype not in SUPPORTED_DTYPES:
        shown = dtype.name if dtype is not None else repr(value)
        names = ", ".join(d.name for d in SUPPORTED_DTYPES)
        raise ShapeError(
            f"dtype {shown} of {where} is not supported by quiltc (it supports {names}); {fix}"
        )
    return dtype


def _first_row_over(lengths, limit):
    over = np.flatnonzero(lengths > limit)
    return int(over[0]) if over.size else None


def _row_mask(lengths, positions):
    return np.arange(positions) < lengths[:, None]


def _read_only(array):
    array.flags.writeable = False
    return array


def _few(array):
    shown = array[:_ROWS_SHOWN].tolist()
    return str(shown)[:-1] + (", ...]" if array.size > _ROWS_SHOWN else "]")


def _import_torch():
    try:
        import torch
    except ImportError:
        raise QuiltError(_TORCH_MISSING) from None
    return torch
