"""Binding symbolic sizes from argument shapes, and checking every argument against the
kernel's parameters. The compiled wrapper and the interpreter share this, so both reject
the same bad input with the same `ShapeError`."""

import numpy as np
import sympy

from .errors import ShapeError


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


def bind_shape_vars(kernel, arrays):
    """{size symbol: int} read off `arrays` (parameter name -> numpy array).

    Checks each array's dtype, rank and static sizes, binds each symbolic size from the
    first dimension that names it alone, then checks every remaining dimension and every
    size's declared range. Raises ShapeError naming the argument and what was expected.
    """
    ranges = {v.symbol: (v.lo, v.hi) for v in kernel.shape_vars}
    binding = {}
    for buffer in kernel.params:
        if buffer.name not in arrays:
            continue
        array = arrays[buffer.name]
        if array.dtype != buffer.dtype.numpy:
            raise ShapeError(
                f"argument {buffer.name!r} has dtype {array.dtype}, expected {buffer.dtype.name}; "
                f"convert it with .astype(np.{buffer.dtype.name})"
            )
        if array.ndim != len(buffer.shape):
            raise ShapeError(
                f"argument {buffer.name!r} has rank {array.ndim} (shape {array.shape}), "
                f"expected rank {len(buffer.shape)} ({_shape_text(buffer.shape)})"
            )
        for extent, actual in zip(buffer.shape, array.shape):
            if isinstance(extent, sympy.Symbol) and extent not in binding:
                binding[extent] = int(actual)
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
        expected = concrete_shape(buffer.shape, binding)
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
