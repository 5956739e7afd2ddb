"""Binding symbolic sizes from argument shapes, and checking every argument against the
kernel's parameters. The compiled wrapper and the interpreter share this, so both reject
the same bad input with the same `ShapeError`."""

import numpy as np
import sympy

from .arrays import RaggedArray
from .errors import ShapeError
from .interop import to_numpy
from .nodes import FlatRows, PrefixSum


def is_ragged_value(value):
    """Whether `value` is a ragged array (flat `values` plus per-row `lengths`)."""
    return hasattr(value, "values") and hasattr(value, "lengths") and not isinstance(
        value, np.ndarray)


def is_jagged_layout(layout):
    """Whether a ragged layout stores rows (length, *dense): one ragged dim, right after
    the batch, as a jagged RaggedArray holds them with values of shape (total, *inner)."""
    return layout.ragged == (1,) and not layout.causal


def gather_ragged(kernel, arguments):
    """(arrays, lengths, row_shapes): every argument as a numpy array (a ragged one's
    values, flattened unless its rows vary along their first axis only), {ragged dim
    name: int32 lengths} checked against the declared maxima and across arguments, and
    {ragged argument: its row shapes}. Raises ShapeError naming the argument."""
    params = {p.name: p for p in kernel.params}
    maxima = {d.name: d.max for d in kernel.ragged_dims}
    arrays, lengths, source, row_shapes = {}, {}, {}, {}
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
        layout = buffer.layout
        _check_row_form(name, buffer, value)
        for position in layout.ragged:
            dim = layout.name_of(position)
            value.check_max(maxima[dim], dim, axis=position - 1)
            extents = np.ascontiguousarray(value.row_shapes[:, position - 1], np.int32)
            if dim in lengths:
                _check_same_lengths(dim, source[dim], lengths[dim], (name, position), extents)
            else:
                lengths[dim], source[dim] = extents, (name, position)
        row_shapes[name] = value.row_shapes
        values = np.ascontiguousarray(value.values)
        arrays[name] = values if is_jagged_layout(layout) else values.reshape(-1)
    return arrays, lengths, row_shapes


def _check_row_form(name, buffer, value):
    """The rows of ragged argument `name` have the buffer's rank, and its triangle."""
    layout, rank = buffer.layout, len(buffer.shape) - 1
    if value.row_shapes.shape[1] != rank:
        raise ShapeError(
            f"argument {name!r} has rows of rank {value.row_shapes.shape[1]}, but the kernel "
            f"expects rows of rank {rank} ({', '.join(map(str, buffer.shape[1:]))} after the "
            "batch)")
    expected = layout.causal[0] - 1 if layout.causal else None
    if value.causal != expected:
        wanted = (f"causal={expected} (each row the lower triangle of axes {expected - 1} "
                  f"and {expected})" if expected is not None else "no causal axis")
        raise ShapeError(f"argument {name!r} has causal={value.causal}, but the kernel expects "
                         f"{wanted}; build it with RaggedArray.from_list(rows, causal=...)")
    if is_jagged_layout(layout) and not value.is_jagged:
        raise ShapeError(
            f"argument {name!r} has rows of shapes that vary beyond their first axis, but the "
            f"kernel expects rows ({', '.join(map(str, buffer.shape[1:]))}) varying along "
            "the first only")


def _check_same_lengths(dim, first, first_lengths, second, lengths):
    """Two ragged axes over one dim hold the same lengths, row by row."""
    (first_name, first_position), (name, position) = first, second
    if len(first_lengths) != len(lengths):
        raise ShapeError(
            f"argument {first_name!r} has {len(first_lengths)} rows, but {name!r} has "
            f"{len(lengths)}; the two must hold the same rows")
    differing = np.flatnonzero(first_lengths != lengths)
    if differing.size:
        row = int(differing[0])
        raise ShapeError(
            f"row {row} of {first_name!r} has length {first_lengths[row]} along dim "
            f"{first_position}, but row {row} of {name!r} has {lengths[row]} along dim "
            f"{position}; both are ragged dim {dim} and must share their lengths")


def prelude_tables(kernel, lengths, binding):
    """{table: int64 array} for the kernel's prelude (prefix sums of row lengths, rows
    ordered by length), computed from the lengths."""
    tables = {}
    for entry in kernel.prelude:
        rows = lengths[entry.lengths.removesuffix("_len")].astype(np.int64)
        count = int(sympy.sympify(entry.count).xreplace(
            {k: sympy.Integer(v) for k, v in binding.items()}))
        if isinstance(entry, PrefixSum):
            sizes = entry.row_sizes({f"{dim}_len": row_lengths.astype(np.int64)[:count]
                                     for dim, row_lengths in lengths.items()})
            tables[entry.table] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        elif isinstance(entry, FlatRows):
            lengths_used = rows[:count]
            total = int(lengths_used.sum())
            padded = -(-total // entry.pad) * entry.pad
            tables[entry.rows] = np.concatenate([
                np.repeat(np.arange(count, dtype=np.int64), lengths_used),
                np.full(padded - total, count - 1, np.int64)])
            starts = np.cumsum(lengths_used) - lengths_used
            last_start = int(starts[-1]) if count else 0
            tables[entry.positions] = np.concatenate([
                np.arange(total, dtype=np.int64) - np.repeat(starts, lengths_used),
                np.arange(total, padded, dtype=np.int64) - last_start])
        else:
            tables[entry.table] = np.argsort(-rows[:count], kind="stable").astype(np.int64)
    return tables


def storage_shape(buffer, binding, lengths):
    """The shape of the numpy array that holds `buffer`: a jagged one's values are (sum
    of its row lengths, *dense dims after the ragged one), another ragged one's a flat
    (sum of its row sizes times its dense dims,); None where not yet known."""
    if not buffer.is_ragged:
        return concrete_shape(buffer.shape, binding)
    layout = buffer.layout
    if is_jagged_layout(layout):
        rows = lengths.get(layout.dim)
        total = None if rows is None else int(rows.astype(np.int64).sum())
        return (total,) + concrete_shape(buffer.shape[2:], binding)
    if any(dim not in lengths for dim in layout.dim_names):
        return (None,)
    dense = concrete_shape([e for d, e in enumerate(buffer.shape)
                            if d and d not in layout.ragged and d not in layout.causal], binding)
    if None in dense:
        return (None,)
    sizes = layout.prefix_sum(0).row_sizes(
        {f"{dim}_len": rows.astype(np.int64) for dim, rows in lengths.items()})
    return (int(np.sum(sizes)) * int(np.prod(dense, dtype=np.int64)),)


def ragged_result(buffer, values, binding, lengths):
    """The RaggedArray of ragged output `buffer` from its `values` as the kernel wrote them."""
    layout = buffer.layout
    if is_jagged_layout(layout):
        return RaggedArray(values, lengths[layout.dim])
    columns = []
    for position, extent in enumerate(buffer.shape[1:], start=1):
        if position in layout.ragged:
            columns.append(lengths[layout.name_of(position)].astype(np.int64))
        elif position in layout.causal:
            columns.append(columns[-1])
        else:
            columns.append(np.full(len(next(iter(lengths.values()))),
                                   concrete_shape([extent], binding)[0], np.int64))
    causal = layout.causal[0] - 1 if layout.causal else None
    return RaggedArray(values, shapes=np.stack(columns, axis=1), causal=causal)


def bind_shape_vars(kernel, arrays, lengths=None, row_shapes=None):
    """{size symbol: int} read off `arrays` (parameter name -> numpy array; a ragged
    parameter's values), `lengths` ({ragged dim: lengths}) and `row_shapes` ({ragged
    parameter: its row shapes}, which carry its dense dims between ragged ones).

    Checks each array's dtype, rank and static sizes, binds each symbolic size from the
    first dimension that names it alone (a ragged dim's batch from its number of rows),
    then checks every remaining dimension and every size's declared range. Raises
    ShapeError naming the argument and what was expected.
    """
    lengths = lengths or {}
    binding = {}
    _bind_row_dims(kernel, row_shapes or {}, binding)
    ranges = {v.symbol: (v.lo, v.hi) for v in kernel.shape_vars}
    rows_of = {}
    for dim in kernel.ragged_dims:
        if dim.name in lengths and isinstance(dim.batch, sympy.Symbol):
            binding.setdefault(dim.batch, len(lengths[dim.name]))
            first = rows_of.setdefault(dim.batch, dim.name)
            if len(lengths[dim.name]) != len(lengths[first]):
                raise ShapeError(
                    f"ragged dims {first} and {dim.name} both vary over the rows of batch "
                    f"{dim.batch}, but their arguments hold {len(lengths[first])} and "
                    f"{len(lengths[dim.name])} rows; pass the same rows to both")
    for buffer in kernel.params:
        if buffer.name not in arrays:
            continue
        array = arrays[buffer.name]
        declared = (buffer.shape if not buffer.is_ragged
                    else (None,) + tuple(buffer.shape[2:]) if is_jagged_layout(buffer.layout)
                    else (None,))
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


def _bind_row_dims(kernel, row_shapes, binding):
    """Bind the dense dims of ragged arguments from their rows' shapes, which must agree."""
    for buffer in kernel.params:
        if buffer.name not in row_shapes or is_jagged_layout(buffer.layout):
            continue
        layout, shapes = buffer.layout, row_shapes[buffer.name]
        for position, extent in enumerate(buffer.shape[1:], start=1):
            if position in layout.ragged or position in layout.causal or not len(shapes):
                continue
            extents = shapes[:, position - 1]
            if (extents != extents[0]).any():
                row = int(np.flatnonzero(extents != extents[0])[0])
                raise ShapeError(
                    f"argument {buffer.name!r} has rows of extents {extents[0]} and "
                    f"{extents[row]} (row {row}) along dim {position}, which the kernel "
                    f"declares dense ({extent}); rows may differ only along ragged dims")
            _bind_extent(extent, int(extents[0]), buffer.name, binding)
            value = sympy.sympify(extent).xreplace(
                {k: sympy.Integer(v) for k, v in binding.items()})
            if value.is_Integer and int(value) != int(extents[0]):
                raise ShapeError(
                    f"argument {buffer.name!r} has rows of extent {extents[0]} along dim "
                    f"{position}, expected {value} ({extent})")


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
