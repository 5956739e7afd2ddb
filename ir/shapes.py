"""Binding symbolic sizes from argument shapes, and checking every argument against the
kernel's parameters. The compiled wrapper and the interpreter share this, so both reject
the same bad input with the same `ShapeError`."""

import numpy as np
import sympy

from .arrays import RaggedArray, to_numpy
from .errors import ShapeError
from .nodes import FlatRows, PrefixSum


def is_ragged_value(value):
    """Whether `value` is a ragged array (flat `values` plus per-row `lengths`)."""
    return hasattr(value, "values") and hasattr(value, "lengths") and not isinstance(
        value, np.ndarray)


def gather_ragged(kernel, arguments):
    """(arrays, lengths): every argument as a numpy array (a ragged one's flat values)
    and {ragged dim name: int32 lengths}, checked against the declared maxima and
    against each other. Raises ShapeError naming the argument."""
    params = {p.name: p for p in kernel.params}
    maxima = {d.name: d.max for d in kernel.ragged_dims}
    arrays, lengths, source = {}, {}, {}
    for name, value in arguments.items():
        buffer = params.get(name)
        if buffer is None or not buffer.is_ragged:
            if is_ragged_value(value):
                raise ShapeError(f"argument {name!r} is ragged but the kernel expects a dense "
                                 "array; pass a numpy array")
            arrays[name] = to_numpy(name, value)
            continue
        if not is_ragged_value(value):
            raise ShapeError(
                f"argument {name!r} is ragged (rows of different lengths); pass a "
                "qc.RaggedArray(values, lengths), e.g. qc.RaggedArray.from_list(rows)"
            )
        if not isinstance(value, RaggedArray):
            value = RaggedArray(value.values, value.lengths)  # checks a duck-typed value
        dim = buffer.layout.dim
        value.check_max(maxima[dim], dim)
        if dim in lengths:
            first_name, first = source[dim]
            first.check_same_rows(value, (first_name, name))
        else:
            lengths[dim] = np.ascontiguousarray(value.lengths, np.int32)
            source[dim] = (name, value)
        arrays[name] = np.ascontiguousarray(value.values)
    return arrays, lengths


def prelude_tables(kernel, lengths, binding):
    """{table: int64 array} for the kernel's prelude (prefix sums of row lengths, rows
    ordered by length), computed from the lengths."""
    tables = {}
    for entry in kernel.prelude:
        rows = lengths[entry.lengths.removesuffix("_len")].astype(np.int64)
        count = int(sympy.sympify(entry.count).xreplace(
            {k: sympy.Integer(v) for k, v in binding.items()}))
        if isinstance(entry, PrefixSum):
            rows = (rows + entry.pad - 1) // entry.pad * entry.pad
            tables[entry.table] = np.concatenate([[0], np.cumsum(rows[:count] ** entry.power)])
        elif isinstance(entry, FlatRows):
            lengths_used = rows[:count]
            tables[entry.rows] = np.repeat(np.arange(count, dtype=np.int64), lengths_used)
            starts = np.cumsum(lengths_used) - lengths_used
            tables[entry.positions] = (np.arange(int(lengths_used.sum()), dtype=np.int64)
                                       - np.repeat(starts, lengths_used))
        else:
            tables[entry.table] = np.argsort(-rows[:count], kind="stable").astype(np.int64)
    return tables


def storage_shape(buffer, binding, lengths):
    """The shape of the numpy array that holds `buffer`: a ragged one's flat values are
    (sum of its row lengths, *dense dims after the ragged one)."""
    if not buffer.is_ragged:
        return concrete_shape(buffer.shape, binding)
    rows = lengths.get(buffer.layout.dim)
    total = None if rows is None else int(rows.astype(np.int64).sum())
    return (total,) + concrete_shape(buffer.shape[2:], binding)


def bind_shape_vars(kernel, arrays, lengths=None):
    """{size symbol: int} read off `arrays` (parameter name -> numpy array; a ragged
    parameter's flat values) and `lengths` ({ragged dim: lengths}).

    Checks each array's dtype, rank and static sizes, binds each symbolic size from the
    first dimension that names it alone (a ragged dim's batch from its number of rows),
    then checks every remaining dimension and every size's declared range. Raises
    ShapeError naming the argument and what was expected.
    """
    lengths = lengths or {}
    ranges = {v.symbol: (v.lo, v.hi) for v in kernel.shape_vars}
    binding = {}
    for dim in kernel.ragged_dims:
        if dim.name in lengths and isinstance(dim.batch, sympy.Symbol):
            binding.setdefault(dim.batch, len(lengths[dim.name]))
    for buffer in kernel.params:
        if buffer.name not in arrays:
            continue
        array = arrays[buffer.name]
        declared = (None,) + tuple(buffer.shape[2:]) if buffer.is_ragged else buffer.shape
        if array.dtype != buffer.dtype.numpy:
            raise ShapeError(
                f"argument {buffer.name!r} has dtype {array.dtype}, expected {buffer.dtype.name}; "
                f"convert it with .astype(np.{buffer.dtype.name})"
            )
        if array.ndim != len(declared):
            raise ShapeError(
                f"argument {buffer.name!r} has rank {array.ndim} (shape {array.shape}), "
                f"expected rank {len(declared)} ({_shape_text(buffer.shape)})"
            )
        for extent, actual in zip(declared, array.shape):
            _bind_extent(extent, int(actual), buffer.name, binding)
    for symbol, value in binding.items():
        lo, hi = ranges.get(symbol, (None, None))
        if lo is not None and not lo <= value <= hi:
            raise ShapeError(
                f"size {symbol} = {value} is outside its declared range [{lo}, {hi}]; "
                f"declare it with a wider range, e.g. qc.var({str(symbol)!r}, {min(lo, value)}, "
                f"{max(hi, value)})"
            )
    for buffer in kernel.params:
        if buffer.name not in arrays:
            continue
        expected = storage_shape(buffer, binding, lengths)
        actual = arrays[buffer.name].shape
        if None not in expected and tuple(actual) != expected:
            raise ShapeError(
                f"argument {buffer.name!r} has shape {tuple(actual)}, expected {expected} "
                f"({_shape_text(buffer.shape)} with {_binding_text(binding)})"
            )
    missing = [v.symbol for v in kernel.shape_vars if v.symbol not in binding]
    if missing:
        raise ShapeError(
            f"sizes {', '.join(map(str, missing))} are not fixed by any input; pass the "
            "outputs that carry them through out={...}"
        )
    return binding


def _bind_extent(extent, actual, argument, binding):
    """Bind the size an extent names alone (`T`) or times a constant (`16*T`, so a
    program over token counts can take 16 rows per token) from the array's `actual` size."""
    if extent is None:
        return
    coefficient, size = sympy.sympify(extent).as_coeff_Mul()
    if not (isinstance(size, sympy.Symbol) and coefficient.is_Integer and coefficient > 0):
        return
    if size in binding:
        return
    if actual % int(coefficient):
        raise ShapeError(
            f"argument {argument!r} has {actual} along a dimension of {extent}, which is not "
            f"a multiple of {coefficient}; pass {int(coefficient)} * {size} of them"
        )
    binding[size] = actual // int(coefficient)


def concrete_shape(shape, binding):
    """`shape` with symbols replaced by their bound values (None where still symbolic)."""
    binding = {symbol: sympy.Integer(value) for symbol, value in binding.items()}
    out = []
    for extent in shape:
        value = sympy.sympify(extent).xreplace(binding)
        out.append(int(value) if value.is_Integer else None)
    return tuple(out)


def _shape_text(shape):
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _binding_text(binding):
    return ", ".join(f"{k} = {v}" for k, v in binding.items()) or "static sizes"
