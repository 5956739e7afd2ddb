"""The primitive ops a graph is made of: for each, its kind (what a loop fuser can do with
it), how its output shape follows from its inputs', and its numpy meaning.

    elementwise   one output element from the same element of each input (inputs may
                  broadcast: numpy's rules, on symbolic dims too)
    reduce        along `axes`, keeping them as 1s when `keepdims`
    injective     each output element is one input element (transpose, reshape, slice,
                  concat, gather, expand)
    opaque        compute-bound, fused only at its edges (matmul)

Composite ops (layer norm, softmax, GELU) are built from these (see graph.Graph), so the
partitioner only ever meets this table.
"""

import math
from dataclasses import dataclass

import numpy as np
import sympy

from ..ir.errors import ShapeError

_erf = np.vectorize(math.erf, otypes=[np.float64])


@dataclass(frozen=True)
class Primitive:
    """One row of the table: `kind`, the number of inputs (None: one or more), and
    `compute(inputs, attrs, shape)`, the numpy result from the input arrays, the node's
    attributes and its output shape with every size bound."""

    kind: str
    arity: int | None
    compute: object


def same_dim(a, b):
    """Whether dims `a` and `b` (ints or size expressions) are equal for every size."""
    difference = sympy.expand(sympy.sympify(a) - sympy.sympify(b))
    if difference == 0 or difference.is_polynomial():
        # Expanded, polynomials in the sizes are equal exactly when their difference is 0;
        # simplify (slow: whole seconds over a model's graph) is for floors and the like.
        return difference == 0
    return sympy.simplify(difference) == 0


def broadcast_shapes(shapes, where):
    """numpy's broadcast of `shapes` (tuples of ints or size expressions): trailing dims
    align, and a dim of 1 stretches. ShapeError names `where` when two dims differ."""
    rank = max(len(shape) for shape in shapes)
    out = []
    for position in range(rank):
        dims = [shape[position - rank + len(shape)] for shape in shapes
                if position - rank + len(shape) >= 0]
        stretched = [dim for dim in dims if not same_dim(dim, 1)]
        dim = stretched[0] if stretched else 1
        for other in stretched[1:]:
            if not same_dim(other, dim):
                raise ShapeError(f"{where}: dims {dim} and {other} do not broadcast (shapes "
                                 f"{', '.join(map(str, shapes))}); numpy's rules need equal "
                                 "dims or a 1")
        out.append(dim)
    return tuple(out)


def _unary(function):
    return Primitive("elementwise", 1, lambda inputs, attrs, shape: function(inputs[0]))


def _binary(function):
    return Primitive("elementwise", 2, lambda inputs, attrs, shape: function(*inputs))


def _reduce(function):
    return Primitive("reduce", 1, lambda inputs, attrs, shape: function(
        inputs[0], axis=tuple(attrs["axes"]), keepdims=attrs["keepdims"]))


def _sigmoid(x):
    return (np.float32(1.0) / (np.float32(1.0) + np.exp(-x))).astype(x.dtype)


PRIMITIVES = {
    "neg": _unary(np.negative),
    "exp": _unary(np.exp),
    # exp of an argument known not to exceed 0 (a softmax's x - max): see qc.exp_nonpositive
    "exp_nonpositive": _unary(np.exp),
    "log": _unary(np.log),
    "sqrt": _unary(np.sqrt),
    "reciprocal": _unary(lambda x: (np.float32(1.0) / x).astype(x.dtype)),
    "erf": _unary(lambda x: _erf(x).astype(x.dtype)),
    "tanh": _unary(np.tanh),
    "sigmoid": _unary(_sigmoid),
    "relu": _unary(lambda x: np.maximum(x, x.dtype.type(0))),
    "cast": Primitive("elementwise", 1,
                      lambda inputs, attrs, shape: inputs[0].astype(attrs["dtype"])),
    "add": _binary(np.add),
    "sub": _binary(np.subtract),
    "mul": _binary(np.multiply),
    "div": _binary(np.divide),
    "pow": _binary(np.power),
    "maximum": _binary(np.maximum),
    "minimum": _binary(np.minimum),
    "equal": _binary(np.equal),
    "where": Primitive("elementwise", 3, lambda inputs, attrs, shape: np.where(*inputs)),
    "reduce_sum": _reduce(np.sum),
    "reduce_max": _reduce(np.max),
    # The largest value that is not NaN (qc.nanmax): a softmax's stabilising max.
    "reduce_nanmax": _reduce(lambda x, axis, keepdims: np.fmax.reduce(
        x, axis=axis, keepdims=keepdims, initial=-np.inf)),
    "reduce_mean": _reduce(np.mean),
    "transpose": Primitive("injective", 1,
                           lambda inputs, attrs, shape: np.transpose(inputs[0], attrs["perm"])),
    "reshape": Primitive("injective", 1,
                         lambda inputs, attrs, shape: inputs[0].reshape(shape)),
    # starts/stops/steps: one static int per axis, read as Python's slices read them
    # (negative from the end, clamped to the dim); a stop of None runs to the end (to the
    # front for a negative step). slice_range gives the first index and the count.
    "slice": Primitive("injective", 1, lambda inputs, attrs, shape: inputs[0][tuple(
        slice(*bounds) for bounds in zip(attrs["starts"], attrs["stops"], attrs["steps"]))]),
    "concat": Primitive("injective", None, lambda inputs, attrs, shape: np.concatenate(
        inputs, axis=attrs["axis"])),
    # The second input holds integer indices into the first's `axis` (negative from the
    # end), as numpy's take reads them.
    "gather": Primitive("injective", 2, lambda inputs, attrs, shape: np.take(
        inputs[0], inputs[1], axis=attrs["axis"])),
    "expand": Primitive("injective", 1,
                        lambda inputs, attrs, shape: np.broadcast_to(inputs[0], shape)),
    "matmul": Primitive("opaque", 2, lambda inputs, attrs, shape: np.matmul(*inputs)),
}


def element_count(shape):
    """The number of elements of `shape`, an int or an expression over sizes."""
    count = sympy.Mul(*(sympy.sympify(dim) for dim in shape))
    return int(count) if count.is_Integer else count


def at_largest(expr):
    """`expr` (an expression over sizes) with every size at the top of its range, as an
    int: the worst case a plan made once for every size must serve."""
    expr = sympy.sympify(expr)
    return int(expr.xreplace({size: getattr(size, "range", (1, 1))[1]
                              for size in expr.free_symbols}))


def size_bounds(dim):
    """(lo, hi): the least and greatest values of `dim` (an int, or an expression over
    sizes each carrying its range) over every binding of its sizes; hi may be infinite."""
    dim = sympy.sympify(dim)
    ranges = {size: sympy.AccumBounds(*getattr(size, "range", (0, sympy.oo)))
              for size in dim.free_symbols}
    bounds = dim.xreplace(ranges)
    if isinstance(bounds, sympy.AccumBounds):
        return bounds.min, bounds.max
    if bounds.is_number:
        return bounds, bounds
    return 0, sympy.oo  # a form interval arithmetic does not follow (floor, ...): a dim >= 0


def slice_range(dim, start, stop, step, where):
    """(first, count): the index a slice start:stop:step (Python's reading; stop None runs
    to the end) starts at along a dim of extent `dim`, and how many elements it takes.
    On a symbolic dim each bound must be one expression for every size in the dim's
    range; ShapeError names `where` when it is not."""
    if step == 0:
        raise ShapeError(f"{where}: a slice step of 0 takes nothing; use a nonzero step")
    if isinstance(dim, (int, np.integer)) or sympy.sympify(dim).is_Integer:
        first, end, step = slice(start, stop, step).indices(int(dim))
        return first, len(range(first, end, step))
    lo, hi = size_bounds(dim)
    # Python clamps a bound (negative ones first moved up by the dim) into [low, top].
    low, top = (0, dim) if step > 0 else (-1, dim - 1)
    top_lo, top_hi = (lo, hi) if step > 0 else (lo - 1, hi - 1)

    def index(bound, role):
        if bound is None:
            return top if (role == "start") == (step < 0) else low
        if bound < 0 and lo + bound >= low:
            return dim + bound
        if bound < 0 and hi + bound <= low:
            return low
        if 0 <= bound <= top_lo:
            return bound
        if bound >= top_hi:
            return top
        raise ShapeError(
            f"{where}: slice {role} {bound} on the symbolic dim {dim} (from {lo} to {hi}) "
            "lands at different places for different sizes; slice a static dim, or give "
            f"{dim} a range where the {role} always falls inside it")

    first, end = index(start, "start"), index(stop, "stop")
    span = sympy.expand((end - first) * (1 if step > 0 else -1))
    span_lo, span_hi = size_bounds(span)
    if span_hi <= 0:
        return _plain(first), 0
    if span_lo < 0:
        raise ShapeError(f"{where}: slice {start}:{stop}:{step} of the symbolic dim {dim} "
                         f"takes {span} elements, below 0 for some sizes; give {dim} a "
                         "range where the slice never runs past its end")
    if abs(step) != 1 and not span.is_Integer:
        raise ShapeError(f"{where}: slice step {step} on the symbolic dim {dim} takes "
                         f"ceil(({span}) / {abs(step)}) elements, which quiltc's shapes do "
                         "not express; use step 1 or -1 there, or slice a static dim")
    return _plain(first), _plain(-(-span // abs(step)))


def _plain(dim):
    """`dim` as a Python int when it is a number, so static shapes print as ints."""
    dim = sympy.sympify(dim)
    return int(dim) if dim.is_Integer else dim


def output_shape(op, shapes, attrs, where):
    """The output shape of primitive `op` on inputs of `shapes`; ShapeError names `where`."""
    kind = PRIMITIVES[op].kind
    if kind == "elementwise":
        return broadcast_shapes(shapes, where)
    shape = shapes[0]
    if kind == "reduce":
        axes = attrs["axes"]
        if attrs["keepdims"]:
            return tuple(1 if axis in axes else dim for axis, dim in enumerate(shape))
        return tuple(dim for axis, dim in enumerate(shape) if axis not in axes)
    if op == "transpose":
        return tuple(shape[axis] for axis in attrs["perm"])
    if op == "slice":
        bounds = (attrs["starts"], attrs["stops"], attrs["steps"])
        if any(len(entries) != len(shape) for entries in bounds):
            raise ShapeError(f"{where}: starts, stops and steps {bounds} need one entry for "
                             f"each of the {len(shape)} axes of {shape}")
        return tuple(slice_range(dim, *axis_bounds, where)[1]
                     for dim, *axis_bounds in zip(shape, *bounds))
    if op == "concat":
        return _concat_shape(shapes, attrs["axis"], where)
    if op == "gather":
        axis = attrs["axis"]
        if not 0 <= axis < len(shape):
            raise ShapeError(f"{where}: gather axis {axis} is not an axis of {shape}; give "
                             f"one from 0 to {len(shape) - 1}")
        return (*shape[:axis], *shapes[1], *shape[axis + 1:])
    if op == "expand":
        return broadcast_shapes([shape, tuple(attrs["shape"])], where)
    if op == "reshape":
        new = tuple(attrs["shape"])
        if not same_dim(sympy.Mul(*shape), sympy.Mul(*new)):
            raise ShapeError(f"{where}: cannot reshape {shape} ({sympy.Mul(*shape)} elements) "
                             f"to {new} ({sympy.Mul(*new)} elements)")
        return new
    left, right = shapes
    if len(left) < 2 or len(right) < 2 or not same_dim(left[-1], right[-2]):
        raise ShapeError(f"{where}: matmul of {left} and {right} needs rank >= 2 and the "
                         "left's last dim equal to the right's second to last")
    batch = broadcast_shapes([left[:-2], right[:-2]], where)
    return (*batch, left[-2], right[-1])


def _concat_shape(shapes, axis, where):
    if any(len(shape) != len(shapes[0]) for shape in shapes) or not 0 <= axis < len(shapes[0]):
        raise ShapeError(f"{where}: concat along axis {axis} of shapes "
                         f"{', '.join(map(str, shapes))} needs one rank and an axis below it")
    for position, dims in enumerate(zip(*shapes)):
        if position != axis and any(not same_dim(dim, dims[0]) for dim in dims):
            raise ShapeError(f"{where}: concat along axis {axis} of shapes "
                             f"{', '.join(map(str, shapes))}: dims {position} differ; every "
                             "dim but the axis must agree")
    total = _plain(sympy.Add(*(shape[axis] for shape in shapes)))
    return (*shapes[0][:axis], total, *shapes[0][axis + 1:])
