"""Checks on what callers pass as arrays: supported dtypes, row
lengths and row shapes, each refusal a ShapeError that says how to fix the input. Shared
by `RaggedArray` (arrays.py) and the operators and models that take arrays."""

import numpy as np

from . import dtypes
from .errors import ShapeError
from .interop import to_numpy


def is_integer_in(value, lo, hi=None):
    """Whether an argument is an integer (Python's or numpy's, not a bool) in [lo, hi]."""
    return (not isinstance(value, bool) and isinstance(value, (int, np.integer))
            and lo <= value and (hi is None or value <= hi))


SUPPORTED_DTYPES = tuple(
    d.numpy for d in (dtypes.float32, dtypes.float64, dtypes.int8, dtypes.int16, dtypes.int32,
                      dtypes.uint8)
)
INT32_MAX = np.iinfo(np.int32).max
ROWS_SHOWN = 8



def as_lengths(lengths):
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
        return read_only(np.zeros(0, dtype=np.int32))
    if array.dtype.kind not in "iu":
        raise ShapeError(
            f"lengths must be integers; got dtype {array.dtype} ({few(array)}); convert them "
            "with np.asarray(lengths).astype(np.int32)"
        )
    negative = np.flatnonzero(array < 0)
    if negative.size:
        rows = ", ".join(f"row {row} has {array[row]}" for row in negative[:ROWS_SHOWN])
        raise ShapeError(f"lengths must be 0 or more, but {rows}; fix those rows' lengths")
    if array.max() > INT32_MAX:
        row = int(np.argmax(array))
        raise ShapeError(
            f"row {row} has length {array[row]}, too large for int32 (at most {INT32_MAX}); "
            "split that row"
        )
    return read_only(array.astype(np.int32))


def as_values(values, total):
    array = to_numpy("values", values)
    if array.ndim == 0:
        raise ShapeError(
            "values is a scalar (rank 0); a ragged array's values are an array of shape "
            "(sum(lengths), *inner) holding every row back to back"
        )
    as_dtype(array.dtype, "values", "convert it with .astype(np.float32) or another of those")
    if array.shape[0] != total:
        raise ShapeError(
            f"values has {array.shape[0]} entries along its first dimension (shape "
            f"{array.shape}), but the lengths sum to {total}; pass values of shape "
            f"({total}, *inner) or lengths that sum to {array.shape[0]}"
        )
    return np.ascontiguousarray(array)


def as_row(index, row):
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


def as_dtype(value, where, fix):
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


def first_row_over(lengths, limit):
    over = np.flatnonzero(lengths > limit)
    return int(over[0]) if over.size else None


def row_mask(lengths, positions):
    return np.arange(positions) < lengths[:, None]


def read_only(array):
    array.flags.writeable = False
    return array


def few(array):
    shown = array[:ROWS_SHOWN].tolist()
    return str(shown)[:-1] + (", ...]" if array.size > ROWS_SHOWN else "]")


def as_row_shapes(shapes):
    """`shapes` (one row shape per row, all of one rank) as a read-only int64 array of
    shape (batch, rank)."""
    try:
        array = np.asarray(shapes, dtype=np.int64)
    except (ValueError, TypeError):
        raise ShapeError(
            "shapes must give each row's full shape, all rows of one rank, e.g. "
            "[(3, 3), (5, 5)]; got rows of different ranks or non-integers"
        ) from None
    if array.ndim != 2 or array.shape[1] == 0:
        raise ShapeError(
            f"shapes must be a (batch, rank) table of row shapes, rank 1 or more; got shape "
            f"{array.shape}"
        )
    negative = np.argwhere(array < 0)
    if negative.size:
        row, axis = (int(x) for x in negative[0])
        raise ShapeError(f"row {row} has extent {array[row, axis]} along axis {axis}; extents "
                         "must be 0 or more")
    return read_only(array)


def check_causal(shapes, causal):
    """`causal` (a row axis whose index runs up to the previous axis's) as an int, checked
    against the row shapes: each row is square along the pair."""
    if causal is None:
        return None
    rank = shapes.shape[1]
    if not is_integer_in(causal, 1, rank - 1):
        raise ShapeError(
            f"causal={causal!r} must name a row axis after the first (1 to {rank - 1}): the "
            "axis whose index runs up to the index of the axis before it"
        )
    differing = np.flatnonzero(shapes[:, causal] != shapes[:, causal - 1])
    if differing.size:
        row = int(differing[0])
        shape = tuple(int(e) for e in shapes[row])
        raise ShapeError(
            f"row {row} has shape {shape}, not square along axes {causal - 1} and "
            f"{causal}; a causal row holds the lower triangle of a square, so the two extents "
            "must be equal"
        )
    return int(causal)


def row_sizes(shapes, causal):
    """Elements each row stores: the product of its shape, a causal pair n x n holding
    only its n (n + 1) / 2 lower triangle."""
    if causal is None:
        return np.prod(shapes, axis=1, dtype=np.int64)
    others = np.delete(shapes, [causal - 1, causal], axis=1)
    side = shapes[:, causal]
    return np.prod(others, axis=1, dtype=np.int64) * (side * (side + 1) // 2)


def varying_axes(shapes, causal):
    """Row axes whose extent differs between rows, with a causal pair counted as varying."""
    varying = {int(a) for a in np.flatnonzero((shapes != shapes[:1]).any(axis=0))}
    if causal is not None:
        varying |= {causal - 1, causal}
    return sorted(varying)
