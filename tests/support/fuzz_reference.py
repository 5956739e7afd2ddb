"""Inputs for a fuzz program and its numpy reference, computed from the program tree
without quiltc: a second, independent reading of what the program means.

Each stage is evaluated at once over index grids (one open numpy grid per axis, the
reduce axis last). int32 programs compute in int64 and wrap to 32 bits after every
operation, as the language defines (numpy's wrapping arithmetic); division truncates
toward zero as C does. A ragged program is evaluated row by row: the batch axis drops
out and L takes the row's length, so each row is a small dense program.
"""

import numpy as np

from .fuzz_programs import INT32_MAX, INT32_MIN, Const, Load, Reduce

_SPECIAL = np.array([INT32_MIN, INT32_MAX, 0, -1, 1, INT32_MIN + 1], dtype=np.int64)


def _data(rng, program, shape):
    if program.dtype == "float32":
        return rng.uniform(-1, 1, size=shape).astype(np.float32)
    if not program.extreme_values:
        return rng.integers(-8, 8, size=shape).astype(np.int32)
    values = rng.integers(INT32_MIN, INT32_MAX, size=shape, endpoint=True)
    special = rng.random(size=shape) < 0.3
    values[special] = rng.choice(_SPECIAL, size=int(special.sum()))
    return values.astype(np.int32)


def inputs(rng, program):
    """{input name: array}, a ragged input as a list of per-row arrays."""
    arrays = {}
    for spec in program.inputs():
        if program.ragged and spec.dims[0] == "B":
            inner = tuple(program.dims[d].size for d in spec.dims[2:])
            arrays[spec.name] = [_data(rng, program, (n, *inner)) for n in program.lengths]
        else:
            arrays[spec.name] = _data(rng, program, tuple(program.dims[d].size
                                                          for d in spec.dims))
    return arrays


def _wrap(values):
    return ((values + 2**31) % 2**32) - 2**31


def _in_width(count):
    """Shift counts C defines on int32; outside them every bit shifts out (numpy's rule)."""
    return (count >= 0) & (count < 32)


def _truncating_divide(a, b):
    """a / b as C truncates it; a zero divisor gives 0 (numpy's, and quiltc's, choice)."""
    with np.errstate(divide="ignore"):
        quotient = np.abs(a) // np.abs(b)
    return np.where((a < 0) == (b < 0), quotient, -quotient)


class _Stage:
    """One stage's evaluation: `grid` maps an axis name to its index array."""

    def __init__(self, program, arrays, grid, batch_axis):
        self.program, self.arrays, self.grid = program, arrays, grid
        self.integer = program.dtype == "int32"
        self.batch_axis = batch_axis

    def load(self, expr):
        dims = self.program.tensor(expr.tensor).dims
        index = tuple(self.grid[a] for a, d in zip(expr.axes, dims)
                      if not (self.batch_axis and d == "B"))
        values = self.arrays[expr.tensor][index]
        return values.astype(np.int64) if self.integer else values

    def value(self, expr):
        if isinstance(expr, Load):
            return self.load(expr)
        if isinstance(expr, Const):
            return np.int64(expr.value) if self.integer else np.float32(expr.value)
        # A division's third argument is the sign of its safe divisor, not an operand.
        operands = expr.args[:2] if expr.op in ("/", "%") else expr.args
        args = [self.value(a) for a in operands]
        result = self._integer(expr, args) if self.integer else self._float(expr, args)
        return _wrap(result) if self.integer else result

    def _float(self, expr, args):
        op = expr.op
        with np.errstate(all="ignore"):
            table = {
                "+": lambda: args[0] + args[1], "-": lambda: args[0] - args[1],
                "*": lambda: args[0] * args[1],
                "max": lambda: np.maximum(args[0], args[1]),
                "min": lambda: np.minimum(args[0], args[1]),
                "div": lambda: args[0] / (np.abs(args[1]) + np.float32(1.0)),
                "neg": lambda: -args[0], "abs": lambda: np.abs(args[0]),
                "exp": lambda: np.exp(np.minimum(args[0], np.float32(4.0))),
                "tanh": lambda: np.tanh(args[0]),
                "select": lambda: np.where(args[0] > args[1], args[2], args[3]),
            }
            return np.asarray(table[op](), dtype=np.float32)

    def _integer(self, expr, args):
        op = expr.op
        if op in ("/", "%"):
            a, b = args
            quotient = _wrap(_truncating_divide(a, b))
            return quotient if op == "/" else a - _wrap(quotient * b)
        table = {
            "+": lambda: args[0] + args[1], "-": lambda: args[0] - args[1],
            "*": lambda: args[0] * args[1],
            "max": lambda: np.maximum(args[0], args[1]),
            "min": lambda: np.minimum(args[0], args[1]),
            "&": lambda: args[0] & args[1], "|": lambda: args[0] | args[1],
            "<<": lambda: np.where(_in_width(args[1]), args[0] << np.clip(args[1], 0, 31), 0),
            ">>": lambda: np.where(_in_width(args[1]), args[0] >> np.clip(args[1], 0, 31),
                                   np.where(args[0] < 0, -1, 0)),
            "neg": lambda: -args[0], "abs": lambda: np.abs(args[0]),
            "select": lambda: np.where(args[0] > args[1], args[2], args[3]),
        }
        return np.asarray(table[op](), dtype=np.int64)


def _grid(names, sizes):
    count = len(names)
    return {name: np.arange(size).reshape([-1 if p == n else 1 for p in range(count)])
            for n, (name, size) in enumerate(zip(names, sizes))}


def _evaluate(program, spec, arrays, sizes, batch_axis):
    axes = [(a, d) for a, d in spec.axes if not (batch_axis and d == "B")]
    shape = tuple(sizes[d] for _, d in axes)
    dtype = np.int64 if program.dtype == "int32" else np.float32
    body = spec.body
    if not isinstance(body, Reduce):
        grid = _grid([a for a, _ in axes], shape)
        values = _Stage(program, arrays, grid, batch_axis).value(body)
        return np.broadcast_to(values, shape).astype(program.dtype)
    extent = sizes[body.dim]
    grid = _grid([a for a, _ in axes] + [body.axis], shape + (extent,))
    values = np.broadcast_to(_Stage(program, arrays, grid, batch_axis).value(body.body),
                             shape + (extent,)).astype(dtype)
    if body.combiner == "sum":
        result = values.sum(axis=-1, dtype=dtype)
        return (_wrap(result) if dtype == np.int64 else result).astype(program.dtype)
    info = np.iinfo(np.int32) if dtype == np.int64 else None
    if body.combiner == "max":
        start = info.min if info else -np.inf
        return values.max(axis=-1, initial=start).astype(program.dtype)
    if body.combiner == "nanmax":
        start = info.min if info else -np.inf
        return np.fmax.reduce(values, axis=-1, initial=start).astype(program.dtype)
    start = info.max if info else np.inf
    return values.min(axis=-1, initial=start).astype(program.dtype)


def _run(program, arrays, sizes, batch_axis):
    arrays = dict(arrays)
    for spec in program.tensors:
        if spec.body is not None:
            arrays[spec.name] = _evaluate(program, spec, arrays, sizes, batch_axis)
    return arrays


def reference(program, arrays):
    """{output name: numpy result}: a ragged output as a list of per-row arrays, a dense
    output of a ragged program (B, ...) as one array."""
    sizes = {name: dim.size for name, dim in program.dims.items()}
    if not program.ragged:
        results = _run(program, arrays, sizes, False)
        return {name: results[name] for name in program.outputs}
    per_row = []
    for b, length in enumerate(program.lengths):
        row = {name: (value[b] if isinstance(value, list) else value)
               for name, value in arrays.items()}
        per_row.append(_run(program, row, dict(sizes, L=length), True))
    results = {}
    for name in program.outputs:
        rows = [r[name] for r in per_row]
        results[name] = rows if "L" in program.tensor(name).dims else np.stack(rows)
    return results
