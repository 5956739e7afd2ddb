"""The primitive ops a graph is made of: for each, its kind (what a loop fuser can do with
it), how its output shape follows from its inputs', and its numpy meaning.

    elementwise   one output element from the same element of each input (inputs may
                  broadcast: numpy's rules, on symbolic dims too)
    reduce        along `axes`, keeping them as 1s when `keepdims`
    injective     each output element is one input element (transpose, reshape)
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
    """One row of the table: `kind`, the number of inputs, and `compute(inputs, attrs,
    shape)`, the numpy result from the input arrays, the node's attributes and its output
    shape with every size bound."""

    kind: str
    arity: int
    compute: object


def _same(a, b):
    return sympy.simplify(sympy.sympify(a) - sympy.sympify(b)) == 0


def broadcast_shapes(shapes, where):
    """numpy's broadcast of `shapes` (tuples of ints or size expressions): trailing dims
    align, and a dim of 1 stretches. ShapeError names `where` when two dims differ."""
    rank = max(len(shape) for shape in shapes)
    out = []
    for position in range(rank):
        dims = [shape[position - rank + len(shape)] for shape in shapes
                if position - rank + len(shape) >= 0]
        stretched = [dim for dim in dims if not _same(dim, 1)]
        dim = stretched[0] if stretched else 1
        for other in stretched[1:]:
            if not _same(other, dim):
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
    "reduce_mean": _reduce(np.mean),
    "transpose": Primitive("injective", 1,
                           lambda inputs, attrs, shape: np.transpose(inputs[0], attrs["perm"])),
    "reshape": Primitive("injective", 1,
                         lambda inputs, attrs, shape: inputs[0].reshape(shape)),
    "matmul": Primitive("opaque", 2, lambda inputs, attrs, shape: np.matmul(*inputs)),
}


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
    if op == "reshape":
        new = tuple(attrs["shape"])
        if not _same(sympy.Mul(*shape), sympy.Mul(*new)):
            raise ShapeError(f"{where}: cannot reshape {shape} ({sympy.Mul(*shape)} elements) "
                             f"to {new} ({sympy.Mul(*new)} elements)")
        return new
    left, right = shapes
    if len(left) < 2 or len(right) < 2 or not _same(left[-1], right[-2]):
        raise ShapeError(f"{where}: matmul of {left} and {right} needs rank >= 2 and the "
                         "left's last dim equal to the right's second to last")
    batch = broadcast_shapes([left[:-2], right[:-2]], where)
    return (*batch, left[-2], right[-1])
