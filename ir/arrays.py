"""Ragged arrays: a batch of rows of different shapes, stored without padding.

A `RaggedArray` is one buffer `values` that holds every row back to back, plus each
row's shape. In the common form (rows `(length_b, *inner)`, one ragged axis) `values`
has shape `(sum(lengths), *inner)`, `lengths` holds one int32 per row, and row `b` is
`values[offsets[b]:offsets[b + 1]]`; this form passes to and from `torch.nested` jagged
tensors (values + offsets) without copying.

Rows may also vary along several axes (attention maps `(L_b, L_b)`, per-head maps
`(H, L_b, L_b)`), given by `shapes`, one row shape per row; `values` then has shape
`(n, *trailing)` for the axes after the last one that varies. A `causal` row axis runs,
at index i of the axis before it, over [0, i]: each row stores only the lower triangle
of that pair, row-major (i, j) at i (i + 1) / 2 + j.

    import numpy as np, quiltc as qc
    tokens = qc.RaggedArray.from_list([np.ones((3, 4)), np.ones((0, 4)), np.ones((5, 4))])
    tokens.lengths        # array([3, 0, 5], dtype=int32); tokens.values.shape == (8, 4)
    padded = tokens.to_padded(fill=0)                  # shape (3, 5, 4)
    same = qc.RaggedArray.from_padded(padded, tokens.lengths)
    maps = qc.RaggedArray.from_list([np.ones((2, 3, 3)), np.ones((2, 5, 5))])
    maps.row_shapes       # [[2, 3, 3], [2, 5, 5]]; maps.values.shape == (68,)
"""

import numpy as np

from .array_checks import (
    ROWS_SHOWN,
    as_dtype,
    as_lengths,
    as_row,
    as_row_shapes,
    as_values,
    check_causal,
    first_row_over,
    read_only,
    row_mask,
    row_sizes,
    varying_axes,
)
from .errors import ShapeError
from .interop import as_like, framework_name, import_torch, jagged_parts, to_numpy


class RaggedArray:
    """A batch of rows stored back to back in one buffer.

    `RaggedArray(values, lengths)` holds rows `(lengths[b], *values.shape[1:])`;
    `RaggedArray(values, shapes=..., causal=...)` holds rows of any shapes of one rank.
    `values` is kept as given (made C-contiguous if it was not), so row views and the
    torch exchange share its memory; lengths and shapes are copied to read-only arrays
    because the cached `offsets` are computed from them.
    """

    def __init__(self, values, lengths=None, *, shapes=None, causal=None):
        if (lengths is None) == (shapes is None):
            raise ShapeError("a RaggedArray takes lengths (rows (length, *inner)) or shapes "
                             "(each row's full shape), exactly one of them")
        if shapes is None:
            self._lengths = as_lengths(lengths)
            values = to_numpy("values", values)
            inner = values.shape[1:] if values.ndim else ()
            shapes = np.column_stack([self._lengths.astype(np.int64)]
                                     + [np.full(len(self._lengths), e, np.int64) for e in inner])
            trailing = len(inner)
        else:
            values = to_numpy("values", values)
            trailing = max(values.ndim - 1, 0)
        self._shapes = as_row_shapes(shapes)
        if lengths is None:
            self._lengths = read_only(self._shapes[:, 0].astype(np.int32))
        self._causal = check_causal(self._shapes, causal)
        self._check_trailing(values, trailing)
        units = int(np.prod(values.shape[1:], dtype=np.int64)) if values.ndim else 1
        offsets = np.zeros(self.batch + 1, dtype=np.int64)
        np.cumsum(row_sizes(self._shapes, self._causal) // max(units, 1), out=offsets[1:])
        # The writable array is handed to torch as the nested tensor's offsets; users see
        # a read-only view so the cache cannot drift from the lengths.
        self._offsets = offsets
        self._offsets_view = offsets.view()
        self._offsets_view.flags.writeable = False
        self._values = as_values(values, int(offsets[-1]))

    def _check_trailing(self, values, trailing):
        """The axes `values` keeps after its first are the rows' last axes, none varying."""
        if not trailing:
            return
        rank = self._shapes.shape[1]
        kept = values.shape[1:]
        first_kept = rank - len(kept)
        fixed = first_kept > 0 and all(axis < first_kept for axis in
                                       varying_axes(self._shapes, self._causal))
        if not fixed or (self.batch and tuple(self._shapes[0, first_kept:]) != kept):
            raise ShapeError(
                f"values has shape {values.shape}, whose axes after the first must be the "
                f"last axes of every row, after any that varies; pass values.reshape(-1) "
                "for rows that vary along their last axes"
            )

    @property
    def values(self):
        """The buffer, shape `(n, *inner)`: every row back to back."""
        return self._values

    @property
    def lengths(self):
        """Each row's extent along its first axis, a read-only int32 array of `batch` entries."""
        return self._lengths

    @property
    def row_shapes(self):
        """Each row's full shape, a read-only int64 array of shape (batch, rank)."""
        return self._shapes

    @property
    def causal(self):
        """The row axis stored as the lower triangle with the axis before it, or None."""
        return self._causal

    @property
    def is_jagged(self):
        """Whether only each row's first axis varies (and no triangle): the form torch's
        jagged nested tensors hold, with `values` of shape (total, *inner)."""
        return self._causal is None and all(a == 0 for a in varying_axes(self._shapes, None))

    @property
    def offsets(self):
        """Row starts along `values`' first axis, read-only int64, `batch + 1` entries."""
        return self._offsets_view

    @property
    def batch(self):
        """The number of rows."""
        return len(self._shapes)

    @property
    def inner_shape(self):
        """The shape every row shares after the axes that vary: `values.shape[1:]`."""
        return self._values.shape[1:]

    @property
    def dtype(self):
        """The numpy dtype of `values`."""
        return self._values.dtype

    @property
    def max_length(self):
        """The longest row's first axis (0 for an empty batch)."""
        return int(self._lengths.max()) if self.batch else 0

    @property
    def total(self):
        """The length of `values`' first axis."""
        return int(self._offsets[-1])

    def __len__(self):
        return self.batch

    def __getitem__(self, row):
        """Row `row` as an array of its shape: a view of `values`, or for a causal row a
        new array with zeros above the triangle."""
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)):
            raise TypeError(f"a RaggedArray is indexed by a row number, not {type(row).__name__}")
        index = int(row)
        if not -self.batch <= index < self.batch:
            raise IndexError(f"row {index} is out of range for a ragged array of {self.batch} rows")
        index %= self.batch
        stored = self._values[self._offsets[index]:self._offsets[index + 1]]
        shape = tuple(int(e) for e in self._shapes[index])
        if self._causal is None:
            return stored.reshape(shape)
        full = np.zeros(shape, self.dtype)
        full[_triangle(shape, self._causal)] = stored.reshape(_stored_shape(shape, self._causal))
        return full

    def __iter__(self):
        for row in range(self.batch):
            yield self[row]

    def __repr__(self):
        if not self.is_jagged:
            causal = "" if self._causal is None else f", causal={self._causal}"
            return (f"RaggedArray({self.dtype}, batch={self.batch}, "
                    f"row_shapes={self._shapes_text()}{causal})")
        inner = f", inner_shape={self.inner_shape}" if self.inner_shape else ""
        lengths = self._lengths_text()
        return f"RaggedArray({self.dtype}, batch={self.batch}, lengths={lengths}{inner})"

    def _shapes_text(self):
        shapes = [tuple(int(e) for e in shape) for shape in self._shapes]
        if len(shapes) <= ROWS_SHOWN:
            return str(shapes)
        return f"[{', '.join(map(str, shapes[:3]))}, ..., {shapes[-1]}]"

    def _lengths_text(self):
        lengths = self._lengths.tolist()
        if len(lengths) <= ROWS_SHOWN:
            return str(lengths)
        head = ", ".join(map(str, lengths[:3]))
        tail = ", ".join(map(str, lengths[-2:]))
        return (f"[{head}, ..., {tail}] (min {min(lengths)}, max {max(lengths)}, "
                f"total {self.total})")

    def equal(self, other):
        """True when `other` is a RaggedArray with the same dtype, row shapes and values."""
        return (
            isinstance(other, RaggedArray)
            and self.dtype == other.dtype
            and self.inner_shape == other.inner_shape
            and self._causal == other.causal
            and np.array_equal(self._shapes, other.row_shapes)
            and np.array_equal(self._values, other.values)
        )

    @classmethod
    def from_list(cls, rows, dtype=None, inner_shape=None, causal=None):
        """A RaggedArray holding copies of `rows`, arrays of one rank.

        Rows that differ only along their first axis make the common form `(length,
        *inner)`; an empty row may then be spelled `[]` whatever the inner shape. Rows that
        differ along other axes, or a `causal` axis (each row keeps the lower triangle of
        that axis and the one before it), make the general form. `dtype` defaults to the
        common dtype of the non-empty rows. With no rows at all, pass `inner_shape` (and
        `dtype`, else float32).
        """
        arrays = [as_row(index, row) for index, row in enumerate(rows)]
        where = "from_list(dtype=...)"
        if dtype is None:
            filled = [a.dtype for a in arrays if a.size] or [a.dtype for a in arrays]
            dtype = np.result_type(*filled) if filled else np.float32
            where = "the rows"
        dtype = as_dtype(dtype, where, "pass dtype= one of those")
        shaped = [a for a in arrays if a.shape != (0,)] or arrays
        if causal is None and inner_shape is None and len({a.shape[1:] for a in shaped}) > 1:
            ranks = {a.ndim for a in arrays}
            if len(ranks) == 1:
                return cls._general(arrays, dtype, None)
        if causal is not None:
            return cls._general(arrays, dtype, causal)
        return cls._jagged(arrays, dtype, inner_shape)

    @classmethod
    def _jagged(cls, arrays, dtype, inner_shape):
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
        lengths = [len(array) for array in arrays]
        values = np.empty((sum(lengths), *inner_shape), dtype=dtype)
        start = 0
        for array in arrays:
            if len(array):
                values[start:start + len(array)] = array
                start += len(array)
        return cls(values, lengths)

    @classmethod
    def _general(cls, arrays, dtype, causal):
        ranks = sorted({a.ndim for a in arrays})
        if len(ranks) > 1:
            raise ShapeError(f"rows have ranks {ranks}; rows of a ragged array share one rank")
        shapes = as_row_shapes([a.shape for a in arrays]) if arrays else np.zeros((0, 1), int)
        causal = check_causal(shapes, causal)
        parts = [a[_triangle(a.shape, causal)] if causal is not None else a for a in arrays]
        flat = [np.asarray(part, dtype).reshape(-1) for part in parts]
        values = np.concatenate(flat) if flat else np.zeros(0, dtype)
        return cls(values, shapes=shapes, causal=causal)

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
        lengths = as_lengths(lengths)
        batch, positions = padded.shape[:2]
        if len(lengths) != batch:
            raise ShapeError(
                f"from_padded got {len(lengths)} lengths for a padded array of {batch} rows "
                f"(shape {padded.shape}); pass one length per row"
            )
        over = first_row_over(lengths, positions)
        if over is not None:
            raise ShapeError(
                f"row {over} has length {lengths[over]}, but the padded array holds only "
                f"{positions} positions per row (shape {padded.shape}); pass lengths of at most "
                f"{positions}"
            )
        return cls(padded[row_mask(lengths, positions)], lengths)

    def to_padded(self, fill=0, max_length=None, mask=False, like=None):
        """A new `(batch, *longest)` array: each row, then `fill` up to the end of every
        axis (and above a causal triangle). `max_length` (default: the longest) pads the
        first axis, and every axis that varies, to that length. With `mask=True` returns
        (padded, mask), the mask True where a row holds an element. `like` ("torch",
        "jax" or an array of one) returns them in that framework instead of numpy."""
        framework_name(like)
        if max_length is not None and int(max_length) < 0:
            raise ShapeError(f"to_padded got max_length={max_length}; pass a length of 0 or more")
        longest = self._shapes.max(axis=0) if self.batch else self._shapes.sum(axis=0)
        if self.inner_shape:
            longest[-len(self.inner_shape):] = self.inner_shape
        if max_length is not None:
            for axis in [0] + varying_axes(self._shapes, self._causal):
                extents = self._shapes[:, axis]
                row = first_row_over(extents, int(max_length))
                if row is not None:
                    where = "" if axis == 0 else f" along axis {axis}"
                    raise ShapeError(
                        f"row {row} has length {extents[row]}{where}, longer than max_length="
                        f"{max_length}; pass max_length of at least {int(extents.max())} or "
                        "leave it out")
                longest[axis] = int(max_length)
        try:
            fill_value = self.dtype.type(fill)
        except (ValueError, OverflowError, TypeError) as error:
            raise ShapeError(
                f"fill value {fill!r} does not fit dtype {self.dtype} ({error}); pick a fill "
                "the dtype can hold"
            ) from None
        padded = np.full((self.batch, *(int(e) for e in longest)), fill_value, self.dtype)
        present = np.zeros(padded.shape, bool)
        for index, row in enumerate(self):
            place = (index,) + tuple(slice(0, e) for e in row.shape)
            if self._causal is None:
                padded[place] = row
                present[place] = True
                continue
            kept = np.zeros(row.shape, bool)
            kept[_triangle(row.shape, self._causal)] = True
            padded[place] = np.where(kept, row, fill_value)
            present[place] = kept
        padded = as_like(padded, like)
        return (padded, as_like(present, like)) if mask else padded

    def to_list(self):
        """A list of copies of the rows, each an array of its row shape."""
        return [np.array(row, copy=True) for row in self]

    def check_max(self, max_length, name, axis=0):
        """Raise ShapeError when a row is longer along row axis `axis` than `max_length`,
        the declared maximum of the ragged dimension `name`."""
        max_length = int(max_length)
        extents = self._shapes[:, axis]
        over = first_row_over(extents, max_length)
        if over is not None:
            raise ShapeError(
                f"row {over} has length {extents[over]}, over the declared maximum "
                f"{max_length} of {name}; declare {name} with a maximum of at least "
                f"{int(extents.max())}"
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
        if not self.is_jagged:
            raise ShapeError(
                "torch.nested jagged tensors hold rows that vary along their first axis only, "
                f"but these rows vary along axes {varying_axes(self._shapes, self._causal)}"
                + (" and are causal triangles" if self._causal is not None else "")
                + "; use to_padded(mask=True) or to_list() instead"
            )
        torch = import_torch()
        return torch.nested.nested_tensor_from_jagged(
            torch.from_numpy(self._values), torch.from_numpy(self._offsets)
        )

    @classmethod
    def from_torch_nested(cls, nested):
        """A RaggedArray viewing the values of a CPU `torch.nested` jagged tensor (no copy)."""
        values, lengths = jagged_parts(nested)
        return cls(values, lengths)


def _triangle(shape, causal):
    """The index of a causal row's stored elements, in storage order: the lower triangle
    of axes (causal - 1, causal), row-major."""
    return (slice(None),) * (causal - 1) + np.tril_indices(shape[causal])


def _stored_shape(shape, causal):
    side = shape[causal]
    return shape[:causal - 1] + (side * (side + 1) // 2,) + shape[causal + 1:]
