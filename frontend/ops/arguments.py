"""Argument checks at the entry of every `quiltc.ops` function: a bad call ends in a
ShapeError (a bad array) or a QuiltError (a bad setting) that names the argument, what
was given and what is expected, before any kernel is built or any output written.

Expected shapes are tuples of extents: an int must match, a string names a size that any
extent fits (the same string twice in one shape must be the same extent), and the string
is how the message spells it: `dense("a", a, ("tokens", 16))` expects (tokens, 16).
"""

import numpy as np

from ..ir.array_checks import is_integer_in
from ..ir.arrays import RaggedArray
from ..ir.errors import QuiltError, ShapeError
from ..ir.interop import to_numpy
from ..ir.shapes import is_ragged_value


def _shape_text(shape):
    return "(" + ", ".join(str(extent) for extent in shape) + (",)" if len(shape) == 1 else ")")


def dense(name, value, shape, dtype=np.float32):
    """`value` as a numpy array of `dtype` and `shape` (see the module docstring)."""
    if is_ragged_value(value):
        raise ShapeError(f"argument {name!r} is a {type(value).__name__}, but it must be a dense "
                         f"array of shape {_shape_text(shape)}; pass its .values")
    array = to_numpy(name, value)
    dtype = np.dtype(dtype)
    if array.dtype != dtype:
        raise ShapeError(f"argument {name!r} has dtype {array.dtype}, expected {dtype}; "
                         f"convert it with .astype(np.{dtype})")
    bound = {}
    fits = array.ndim == len(shape) and all(
        actual == (bound.setdefault(extent, actual) if isinstance(extent, str) else extent)
        for extent, actual in zip(shape, array.shape))
    if not fits:
        raise ShapeError(f"argument {name!r} has shape {array.shape}, expected "
                         f"{_shape_text(shape)}")
    return array


def ragged(name, value, inner, dtype=np.float32):
    """`value` as a RaggedArray whose values have `dtype` and shape (total, *inner)."""
    if not is_ragged_value(value):
        raise ShapeError(f"argument {name!r} is a {type(value).__name__}, but it must be a "
                         f"RaggedArray of (total, {', '.join(map(str, inner))}) values; build "
                         "one with qc.RaggedArray(values, lengths) or RaggedArray.from_list(rows)")
    if not isinstance(value, RaggedArray):
        value = RaggedArray(value.values, value.lengths)
    dense(f"{name}.values", value.values, ("total", *inner), dtype)
    return value


def out(value, shape, name="out"):
    """The `out=` array (None stays None): writeable, float32, of exactly `shape`. Any
    memory order is accepted; see `direct` and `write`."""
    if value is None:
        return None
    if not isinstance(value, np.ndarray):
        raise ShapeError(f"argument {name!r} is a {type(value).__name__}; pass a numpy array "
                         f"np.empty({tuple(shape)}, np.float32) or leave {name} out")
    array = dense(name, value, shape)
    if not array.flags.writeable:
        raise ShapeError(f"argument {name!r} is read-only; pass a writeable array or leave "
                         f"{name} out")
    return array


def direct(out, *inputs):
    """`out` when a kernel can write it in place (C-contiguous and, where a kernel runs in
    several calls, sharing no memory with `inputs`, which an earlier call would overwrite
    before a later one reads them); else None, and the caller writes a fresh array."""
    if out is None or not out.flags.c_contiguous:
        return None
    return None if any(np.may_share_memory(out, array) for array in inputs) else out


def write(out, result):
    """`result` copied into `out` (when given and not already `result`); returns what
    holds the result."""
    if out is None or out is result:
        return result
    out[...] = result
    return out


def positive_int(name, value):
    """`value` as an int >= 1 (bools and floats refused)."""
    if not is_integer_in(value, 1):
        raise QuiltError(f"argument {name!r} is {value!r}, expected an integer of 1 or more")
    return int(value)


def non_negative_real(name, value):
    """`value` as a finite float >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 <= value < np.inf:
        raise QuiltError(f"argument {name!r} is {value!r}, expected a finite number of 0 or more")
    return float(value)
