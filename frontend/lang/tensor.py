"""The tensor language: what is computed, never how.

    M = qc.var("M", 1, 1024)
    A = qc.placeholder((M, 64), "float32", "A")
    k = qc.reduce_axis(64, "k")
    C = qc.compute((M, M), lambda i, j: qc.sum(A[i, k] * A[j, k], axis=k), "C")

Sizes are ints or symbols from `var`, each carrying its range; indices are axes (the
lambda's parameters, and reduce axes), each carrying its extent and each a variable of
its own whatever its name (symbols.py); element values are IR Value nodes, so
`+ - * /` and comparisons build the expression tree that lowering turns into loop nests.
"""

import inspect
import itertools
from dataclasses import dataclass, replace

import numpy as np
import sympy

from ..ir import dtypes
from ..ir import nodes as ir
from ..ir.errors import LanguageError
from ..ir.index import as_expr, table
from ..ir.layout import Ragged
from .symbols import Axis, ReduceAxis, Size, merge_sizes, sizes_of, to_kernel

_readers = []
_fresh_names = itertools.count()


def var(name, lo, hi):
    """A symbolic size that takes any value in [lo, hi] at call time."""
    if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi):
        raise LanguageError(f"var {name!r}: need integers 0 <= lo <= hi, got [{lo}, {hi}]")
    return Size(name, lo, hi)


def reduce_axis(extent, name="k"):
    """An index that a reduction (`qc.sum(..., axis=k)`) runs over, from 0 to extent - 1.
    Each call makes a new axis, even under a name used before."""
    return ReduceAxis(name, _as_size(extent))


def ragged_dim(name, parent, max):  # noqa: A002 (the issue's spelling of the argument)
    """A dim whose extent varies with the row of a batch of `parent` rows (an int or a
    qc.var), each at most `max` long: `L = qc.ragged_dim("L", B, 128)`, then
    `qc.placeholder((B, L, 64))` holds B sequences of lengths[b] x 64 values."""
    if not (isinstance(max, int) and max >= 0):
        raise LanguageError(f"ragged_dim {name!r}: max must be a nonnegative int, got {max!r}")
    if not name.isidentifier():
        raise LanguageError(f"ragged_dim name {name!r} must be an identifier")
    return ir.RaggedDim(name, _as_size(parent), max)


def causal_dim(of):
    """A dim that, placed right after ragged dim `of` in a shape, runs at index i of `of`
    over [0, i]: `(B, L, qc.causal_dim(L))` is each row's lower triangle (a causal
    attention map), stored without its upper half."""
    if not isinstance(of, ir.RaggedDim):
        raise LanguageError(f"causal_dim follows a ragged dim (qc.ragged_dim), not {of!r}")
    return ir.CausalDim(of)


def _as_size(extent):
    if isinstance(extent, (ir.RaggedDim, ir.CausalDim)):
        return extent
    try:
        return as_expr(extent)
    except TypeError:
        raise LanguageError(
            f"a size must be an int or a qc.var expression, not {extent!r}") from None


@dataclass(frozen=True)
class ReduceExpr:
    """`combiner` over `axes` of `value`; only allowed as the whole body of a compute."""

    combiner: str
    value: ir.Value
    axes: tuple  # ((symbol, extent), ...)

    @property
    def dtype(self):
        return self.value.dtype

    def _nested(self, *_):
        raise LanguageError(_NESTED_REDUCTION)

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _nested
    __truediv__ = __rtruediv__ = __neg__ = __lt__ = __le__ = __gt__ = __ge__ = _nested


_NESTED_REDUCTION = (
    "a reduction may only be the whole body of a compute; compute it as a tensor of its "
    "own and read that tensor in the expression"
)


def _resolve_ragged_axes(body, shape, axes):
    """A reduction over a ragged dim runs over the row of the compute's batch axis."""
    resolved = []
    for axis, extent in body.axes:
        if isinstance(extent, ir.RaggedDim):
            if not shape or shape[0] != extent.batch:
                raise LanguageError(
                    f"reduce axis {axis} runs over ragged dim {extent.name}, whose length "
                    f"depends on the row of a batch of {extent.batch}; the compute's shape must "
                    f"start with that batch, e.g. ({extent.batch}, ...)"
                )
            extent = row_length(extent, axes[0])
        elif isinstance(extent, ir.CausalDim):
            extent = _causal_extent(axis, extent, shape, axes)
        resolved.append((axis, extent))
    return ReduceExpr(body.combiner, body.value, tuple(resolved))


def _causal_extent(axis, dim, shape, axes):
    """A reduction over causal dim `dim` runs up to the compute's index along `dim.of`."""
    positions = [d for d, extent in enumerate(shape) if extent == dim.of]
    if len(positions) != 1:
        raise LanguageError(
            f"reduce axis {axis} runs over {dim.name}, up to the index along {dim.of.name}; "
            f"the compute's shape must hold {dim.of.name} exactly once to say which index, "
            f"but holds it {len(positions)} times")
    return axes[positions[0]] + 1


def _reject_reductions(*values):
    if any(isinstance(x, ReduceExpr) for x in values):
        raise LanguageError(_NESTED_REDUCTION)


def _value(x, like=None):
    """`x` as an IR value; a reduction here would be nested inside an expression."""
    _reject_reductions(x)
    return ir.as_value(x, like)


class Tensor:
    """A named array of the program: a placeholder (an input) or a compute."""

    def __init__(self, name, shape, dtype, body=None, axes=(), inputs=(), sizes=None):
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.body = body
        self.axes = axes
        self.inputs = inputs
        self.sizes = sizes or {}  # {name: Size} of the sizes its shape and inputs use
        self.buffer = _buffer(name, dtype, shape)

    @property
    def is_placeholder(self):
        return self.body is None

    @property
    def ndim(self):
        return len(self.shape)

    def __getitem__(self, indices):
        if not isinstance(indices, tuple):
            indices = (indices,)
        if len(indices) != len(self.shape):
            raise LanguageError(
                f"{self.name} has rank {len(self.shape)} but was indexed with {len(indices)} "
                f"indices {indices}"
            )
        exprs, gather = [], []
        for index in indices:
            if isinstance(index, ir.Value):
                if not self.is_placeholder:
                    # Schedules reason about the regions of computed tensors from their
                    # index expressions, which a gathered index does not have.
                    raise LanguageError(
                        f"{self.name} is a compute indexed by a tensor value {index}; only "
                        "placeholders (tables) may be gathered from: make it an input"
                    )
                if index.dtype.is_float or index.dtype == dtypes.boolean:
                    raise LanguageError(
                        f"{self.name} is indexed by a {index.dtype} value {index}; a gathered "
                        "index must be an integer value: cast it with qc.cast(x, 'int32')"
                    )
                exprs.append(sympy.Integer(0))
                gather.append(index)
                continue
            exprs.append(as_expr(index))
            gather.append(None)
        if _readers:
            _readers[-1].append(self)
        if any(value is not None for value in gather):
            return ir.Load(self.buffer, tuple(exprs), tuple(gather))
        return ir.Load(self.buffer, tuple(exprs))

    def __repr__(self):
        kind = "placeholder" if self.is_placeholder else "compute"
        return f"Tensor({self.name}: {self.dtype}{list(self.shape)}, {kind})"


def _buffer(name, dtype, shape):
    """The IR buffer of a tensor: dense, or ragged (a ragged or causal dim's shape entry is
    its max). Its shape holds the kernel's plain size symbols."""
    ragged = [(d, e) for d, e in enumerate(shape) if isinstance(e, ir.RaggedDim)]
    causal = [(d, e) for d, e in enumerate(shape) if isinstance(e, ir.CausalDim)]
    for position, dim in causal:
        if shape[position - 1] != dim.of:
            raise LanguageError(
                f"{name}: {dim.name} runs up to the index of {dim.of.name}, so it must come "
                f"right after {dim.of.name} in the shape, e.g. ({dim.batch}, {dim.of.name}, "
                f"qc.causal_dim({dim.of.name}))")
    if not ragged:
        return ir.Buffer(name, dtype, tuple(to_kernel(e) for e in shape))
    for position, dim in ragged:
        if position == 0 or shape[0] != dim.batch:
            raise LanguageError(
                f"{name}: ragged dim {dim.name} varies over a batch of {dim.batch} rows, so "
                f"the shape must start with that batch, e.g. ({dim.batch}, {dim.name}, ...)"
            )
    storage_shape = tuple(e.max if isinstance(e, (ir.RaggedDim, ir.CausalDim))
                          else to_kernel(e) for e in shape)
    names = tuple(dim.name for _, dim in ragged)
    layout = Ragged(names[0], tuple(d for d, _ in ragged),
                    names=names if len(set(names)) > 1 else (),
                    causal=tuple(d for d, _ in causal))
    return ir.Buffer(name, dtype, storage_shape, layout)


def row_length(dim, row):
    """The extent of ragged `dim` in row `row`: `{dim}_len[row]`."""
    return table(dim.lengths_table)(row)


def loop_extents(shape, axes):
    """Loop extents of a compute over `shape`: a ragged dim's is its length in row axes[0],
    a causal dim's the index of the dim before it plus one."""
    return tuple(row_length(e, axes[0]) if isinstance(e, ir.RaggedDim)
                 else axes[d - 1] + 1 if isinstance(e, ir.CausalDim) else e
                 for d, e in enumerate(shape))


def placeholder(shape, dtype="float32", name=None, value_range=None):
    """An input tensor of `shape` (ints and qc.var sizes) and `dtype`. An integer input
    may declare `value_range=(lo, hi)`, a promise that every element lies in [lo, hi]:
    a table gathered at its elements then needs no clamp or mask (`lut[p, idx[i]]` with
    idx in [0, 63] reads a 64-column lut), and nothing checks the promise at run time."""
    shape = tuple(_as_size(extent) for extent in _as_tuple(shape))
    name = name or f"input{next(_fresh_names)}"
    dtype = dtypes.as_dtype(dtype)
    tensor = Tensor(name, shape, dtype, sizes=sizes_of(shape))
    if value_range is not None:
        tensor.buffer = replace(tensor.buffer, value_range=_value_range(value_range, dtype, name))
    return tensor


def _value_range(value_range, dtype, name):
    """`value_range` as a pair of ints inside `dtype`, or LanguageError naming the fix."""
    if dtype.is_float or dtype == dtypes.boolean:
        raise LanguageError(f"placeholder {name} of {dtype} declares value_range={value_range}; "
                            "only integer inputs take one: drop it or make the input an integer")
    info = np.iinfo(dtype.numpy)
    lo, hi = (int(bound) for bound in value_range)
    if not info.min <= lo <= hi <= info.max:
        raise LanguageError(f"placeholder {name} declares value_range=({lo}, {hi}), which is "
                            f"empty or leaves {dtype} ([{info.min}, {info.max}]); give "
                            f"lo <= hi inside that range")
    return lo, hi


def _as_tuple(shape):
    return tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)


def compute(shape, fn, name=None, axis_names=None):
    """A tensor whose element at (i, j, ...) is `fn(i, j, ...)`.

    The lambda's parameter names become the loop names (`sch.loops(C)` gives i, j, ...),
    or `axis_names` does, for a function of any rank (`lambda *axes: ...`).
    The body is an element expression, or one reduction (`qc.sum`, `qc.max`, `qc.min`).
    """
    shape = tuple(_as_size(extent) for extent in _as_tuple(shape))
    params = list(axis_names or inspect.signature(fn).parameters)
    if len(params) != len(shape):
        raise LanguageError(
            f"compute of rank {len(shape)} needs a function of {len(shape)} indices, "
            f"got one of {len(params)} ({', '.join(params)})"
        )
    axes = tuple(Axis(p, extent) for p, extent in zip(params, shape))
    _readers.append([])
    try:
        body = fn(*axes)
    finally:
        inputs = _readers.pop()
    if isinstance(body, ReduceExpr):
        body = _resolve_ragged_axes(body, shape, axes)
    else:
        body = _value(body)
    sizes = sizes_of(shape)
    for tensor in inputs:
        merge_sizes(sizes, tensor.sizes)
    unique_inputs = tuple(dict.fromkeys(inputs))
    name = name or f"compute{next(_fresh_names)}"
    return Tensor(name, shape, body.dtype, body, axes, unique_inputs, sizes)


def _reduce(combiner, value, axis):
    axes = _as_tuple(axis)
    extents = []
    for axis_symbol in axes:
        if not isinstance(axis_symbol, ReduceAxis):
            raise LanguageError(f"{axis_symbol} is not a reduce axis; make it with qc.reduce_axis")
        extents.append((axis_symbol, axis_symbol.extent))
    return ReduceExpr(combiner, _value(value), tuple(extents))


def sum(value, axis):  # noqa: A001 (the language's name for the reducer)
    """The sum of `value` over the reduce axis (or tuple of axes) `axis`."""
    return _reduce("sum", value, axis)


def max(value, axis):  # noqa: A001
    """The maximum of `value` over `axis`."""
    return _reduce("max", value, axis)


def min(value, axis):  # noqa: A001
    """The minimum of `value` over `axis`."""
    return _reduce("min", value, axis)


def nanmax(value, axis):
    """The largest value over `axis` that is not NaN (-inf where there is none): a
    softmax's stabilising max, one SIMD max a vector where `max` also tests for NaN."""
    return _reduce("nanmax", value, axis)


def _call(fn, x):
    x = _value(x, dtypes.float32)
    if not x.dtype.is_float:
        raise LanguageError(f"{fn} needs a float argument, got {x.dtype}; use qc.cast first")
    return ir.Call(fn, (x,))


def exp(x):
    """e ** x, elementwise."""
    return _call("exp", x)


def exp_nonpositive(x):
    """e ** x, elementwise, for x <= 0: an exp whose argument is known not to exceed 0,
    such as x - max(x) in a softmax, which the C target computes without exp's overflow
    path (16 vector instructions instead of 21; the results are exp's for every x up to
    44 and wrong above)."""
    return _call("exp_nonpositive", x)


def log(x):
    """Natural logarithm, elementwise."""
    return _call("log", x)


def sqrt(x):
    """Square root, elementwise."""
    return _call("sqrt", x)


def tanh(x):
    """Hyperbolic tangent, elementwise."""
    return _call("tanh", x)


def erf(x):
    """The error function, elementwise (exact GELU uses it)."""
    return _call("erf", x)


def abs(x):  # noqa: A001
    """Absolute value, elementwise."""
    return ir.Call("abs", (_value(x),))


def maximum(a, b):
    """The larger of a and b, elementwise."""
    _reject_reductions(a, b)
    return ir.binary("max", a, b)


def minimum(a, b):
    """The smaller of a and b, elementwise."""
    _reject_reductions(a, b)
    return ir.binary("min", a, b)


def _integer_call(fn, *args):
    args = tuple(_value(x, dtypes.int32) for x in args)
    wrong = [str(x.dtype) for x in args if x.dtype != dtypes.int32]
    if wrong:
        raise LanguageError(f"{fn} takes int32 arguments, got {', '.join(wrong)}; "
                            "cast them with qc.cast(x, 'int32')")
    return ir.Call(fn, args)


def requantize(acc, multiplier, shift):
    """An int32 accumulator times multiplier * 2**(shift - 31), rounded as CMSIS-NN's
    arm_nn_requantize (multiplier a Q31 value in [2**30, 2**31), shift in [-31, 30])."""
    return _integer_call("requantize", acc, multiplier, shift)


def smlad(a, b, acc):
    """acc + lo(a) * lo(b) + hi(a) * hi(b) over the int16 halves of the int32 words a
    and b: two multiply-accumulates in one Arm DSP instruction."""
    return _integer_call("smlad", a, b, acc)


def where(cond, then, otherwise):
    """`then` where cond holds, else `otherwise`; cond compares values or indices."""
    _reject_reductions(cond, then, otherwise)
    if isinstance(cond, sympy.Basic):
        cond = ir.Index(cond)
    elif not isinstance(cond, ir.Value):
        raise LanguageError(f"where() needs a condition, got {cond!r}")
    like = then.dtype if isinstance(then, ir.Value) else (
        otherwise.dtype if isinstance(otherwise, ir.Value) else None
    )
    then, otherwise = _value(then, like), _value(otherwise, like)
    if then.dtype != otherwise.dtype:
        raise LanguageError(
            f"where() branches have dtypes {then.dtype} and {otherwise.dtype}; cast one"
        )
    return ir.Select(cond, then, otherwise)


def cast(x, dtype):
    """`x` converted to `dtype` (floats truncate toward zero into integers)."""
    return ir.Cast(dtypes.as_dtype(dtype), _value(x))
