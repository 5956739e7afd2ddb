"""What ONNX import knows before run time: the values of constants, initializers and the
shape sub-graphs exporters emit (Shape -> Gather -> Unsqueeze -> Concat -> Reshape), folded
while importing so that they never become graph nodes.

A known value is a `Folded` numpy array. An integer tensor computed from symbolic dims
(`Shape` of a [batch, seq, 256] input is [batch, seq, 256]) is an object array of ints and
sympy expressions over the graph's sizes; arithmetic on it stays symbolic, so a Reshape
whose target comes out of such a sub-graph gets a symbolic target shape.

A node is read through a NodeView, and the rules that turn its arguments into shapes
(reshape targets, squeeze and unsqueeze axes, slice bounds, split points) live here too,
because folding a value and converting a tensor read them the same way.
"""

from dataclasses import dataclass

import numpy as np
import sympy

from ..ir.errors import LanguageError, ShapeError
from .primitives import PRIMITIVES, element_count, same_dim, slice_range

# ONNX writes "to the end" and "to the front" of a slice as the int64 extremes (or as
# INT32 ones); a bound past this is one of those.
_UNBOUNDED = 2**31 - 1


class Unfoldable(Exception):
    """Raised by a fold whose inputs are all known but whose result quiltc does not work
    out at import time; the node becomes graph nodes instead."""


@dataclass(frozen=True, eq=False)
class Folded:
    """A value known at import time: `values` (an object array where entries depend on
    symbolic sizes) and the ONNX dtype it stands for."""

    values: np.ndarray
    dtype: np.dtype

    @property
    def shape(self):
        return self.values.shape

    @property
    def symbolic(self):
        return self.values.dtype == object


def folded(values, dtype=None):
    """`values` as a Folded of `dtype` (the array's own by default); an object array
    whose entries all turn out to be numbers becomes a plain array."""
    values = np.asarray(values)
    dtype = np.dtype(dtype if dtype is not None else values.dtype)
    if values.dtype != object:
        return Folded(values.astype(dtype, copy=False), dtype)
    entries = [sympy.sympify(entry) for entry in values.flat]
    if all(entry.is_Integer for entry in entries):
        return Folded(np.array([int(e) for e in entries], dtype).reshape(values.shape), dtype)
    settled = np.empty(values.shape, object)
    settled.flat[:] = [int(e) if e.is_Integer else e for e in entries]
    return Folded(settled, dtype)


def dims_of(value, what):
    """The entries of a known 1-D vector as dims: ints, or expressions over sizes."""
    if value.values.ndim != 1:
        raise ShapeError(f"{what} must be a 1-D vector, got shape {value.shape}")
    return tuple(entry if isinstance(entry, sympy.Basic) else int(entry)
                 for entry in value.values)


def normalized_axes(axes, rank, what):
    """`axes` (negative from the end) as nonnegative ints below `rank`."""
    if any(not -rank <= axis < rank for axis in axes):
        raise ShapeError(f"{what} {tuple(axes)} out of range for rank {rank}")
    return tuple(axis % rank for axis in axes)


class NodeView:
    """One ONNX node as the importer's converters and the folds read it: its inputs (graph
    Values, Folded, or None where the model leaves an optional input out), attributes and
    opset. `importer` gives `values` (ONNX name -> Value or Folded), `opset`, and
    `tensor(name)`, a value as a graph Value."""

    def __init__(self, importer, proto, attrs):
        self.importer, self.op, self.attrs = importer, proto.op_type, attrs
        self.opset = importer.opset
        self.names = list(proto.input)
        self.inputs = [importer.values[name] if name else None for name in proto.input]
        self.outputs = list(proto.output)

    def attr(self, name, default=None):
        """Attribute `name`, or `default` where the node has none."""
        return self.attrs.get(name, default)

    def refuse(self, name, hint):
        """Stop at attribute `name`, whose value the import does not handle."""
        value = self.attrs.get(name)
        shown = "a tensor" if hasattr(value, "dims") else value
        raise LanguageError(f"attribute {name!r} = {shown} is not handled; {hint}")

    def tensor(self, index):
        """Input `index` as a graph Value (a known one becomes a constant)."""
        return self.importer.tensor(self.names[index])

    def has(self, index):
        """Whether the model gives input `index` (optional inputs may be left out)."""
        return index < len(self.inputs) and self.inputs[index] is not None

    def known(self, index, what):
        """Input `index` as a Folded value, None where the model leaves it out; ShapeError
        when it is computed from data at run time."""
        if not self.has(index):
            return None
        if not isinstance(self.inputs[index], Folded):
            raise ShapeError(f"{what} ({self.names[index]!r}) is computed from data at run "
                             "time; quiltc needs it known at import time (a constant, or "
                             "shapes of inputs)")
        return self.inputs[index]

    def ints(self, index, what):
        """Known input `index` as a tuple of ints, None where the model leaves it out."""
        given = self.known(index, what)
        if given is not None and given.symbolic:
            raise ShapeError(f"{what} {list(given.values.flat)} depends on symbolic sizes; "
                             "quiltc needs plain integers there at import time")
        return None if given is None else tuple(int(entry) for entry in given.values.flat)

    def axis(self, rank, default):
        """The `axis` attribute (negative from the end) as a nonnegative axis."""
        axis = self.attr("axis", default)
        if axis is None:
            raise LanguageError(f"{self.op} needs its axis attribute, and the node has none")
        return normalized_axes([axis], rank, "axis")[0]


# ------------------------------------------------------------------------ shape arguments


def axes_argument(node, since):
    """A node's `axes`: from its second input from opset `since` on, from its attribute
    before; None where the model gives none."""
    if node.opset >= since:
        return node.ints(1, "the axes input")
    axes = node.attr("axes")
    return None if axes is None else tuple(axes)


def reshaped(node, shape):
    """The shape Reshape, Flatten, Squeeze or Unsqueeze gives an input of `shape`."""
    rank = len(shape)
    if node.op == "Flatten":
        axis = node.axis(rank + 1, 1)
        return element_count(shape[:axis]), element_count(shape[axis:])
    if node.op == "Unsqueeze":
        added = axes_argument(node, 13) or ()
        axes = normalized_axes(added, rank + len(added), "the axes")
        dims = iter(shape)
        return tuple(1 if axis in axes else next(dims) for axis in range(rank + len(added)))
    if node.op == "Squeeze":
        return _squeezed(node, shape)
    target = dims_of(node.known(1, "the target shape"), "the target shape")
    return _reshape_target(shape, target, node.attr("allowzero", 0))


def _squeezed(node, shape):
    axes = axes_argument(node, 13)
    if axes is None:
        if any(not isinstance(dim, int) for dim in shape):
            raise ShapeError(f"Squeeze without axes drops every dim of 1 of {shape}, and "
                             "whether a symbolic dim is 1 is known only at run time; give "
                             "the axes")
        return tuple(dim for dim in shape if dim != 1)
    axes = normalized_axes(axes, len(shape), "the axes")
    for axis in axes:
        if not same_dim(shape[axis], 1):
            raise ShapeError(f"cannot squeeze axis {axis} of {shape}: its dim "
                             f"{shape[axis]} is not always 1")
    return tuple(dim for axis, dim in enumerate(shape) if axis not in axes)


def _reshape_target(shape, target, allowzero):
    """ONNX's reading of a target shape: 0 copies the input's dim (unless allowzero),
    one -1 takes what the others leave."""
    dims = [shape[axis] if same_dim(dim, 0) and not allowzero else dim
            for axis, dim in enumerate(target)]
    unknown = [axis for axis, dim in enumerate(dims) if same_dim(dim, -1)]
    if len(unknown) > 1:
        raise ShapeError(f"the target shape {target} has more than one -1; at most one dim "
                         "can be inferred")
    if unknown:
        rest = sympy.Mul(*(dim for axis, dim in enumerate(dims) if axis != unknown[0]))
        inferred = sympy.cancel(sympy.Mul(*shape) / rest)
        if same_dim(rest, 0) or sympy.fraction(inferred)[1] != 1:
            raise ShapeError(f"cannot infer the -1 of target shape {target} for an input of "
                             f"{shape}: {sympy.Mul(*shape)} elements over {rest} is not a "
                             "whole number for every size")
        dims[unknown[0]] = int(inferred) if inferred.is_Integer else inferred
    return tuple(dims)


def slice_arguments(node, shape):
    """(starts, stops, steps), one per axis of `shape`, from Slice's inputs (attributes
    before opset 10); a stop of None runs to the end (the front, for a negative step)."""
    if node.opset >= 10:
        starts, ends, axes, steps = (node.ints(index, f"the {name} input") for index, name
                                     in enumerate(("starts", "ends", "axes", "steps"), 1))
    else:
        starts, ends, axes, steps = node.attr("starts"), node.attr("ends"), node.attr("axes"), None
    steps = steps or (1,) * len(starts)
    axes = normalized_axes(axes if axes is not None else range(len(starts)), len(shape),
                           "the axes")
    bounds = [[0, None, 1] for _ in shape]
    for axis, start, end, step in zip(axes, starts, ends, steps):
        unbounded = end >= _UNBOUNDED if step > 0 else end <= -_UNBOUNDED
        end = None if unbounded else end
        first = slice_range(shape[axis], start, end, step, f"axis {axis}")[0]
        # The first index itself where it is a number, so that readers of the graph can
        # take each start as where the slice begins.
        bounds[axis] = [first if isinstance(first, int) and first >= 0 else start, end, step]
    return tuple(zip(*bounds)) if bounds else ((), (), ())


def split_arguments(node, shape):
    """(starts, stops, steps) for each output of Split, as slice_arguments gives them."""
    axis = node.axis(len(shape), 0)
    sizes = node.ints(1, "the split input") if node.opset >= 13 else node.attr("split")
    if sizes is None:
        if not isinstance(shape[axis], int):
            raise ShapeError(f"Split into equal parts of the symbolic dim {shape[axis]} has "
                             "parts whose size is known only at run time; give the sizes")
        count = node.attr("num_outputs", len(node.outputs))
        part = -(-shape[axis] // count)
        sizes = [min(part, shape[axis] - part * index) for index in range(count)]
    pieces, start = [], 0
    for size in sizes:
        bounds = [[0, None, 1] for _ in shape]
        bounds[axis] = [start, start + size, 1]
        pieces.append(tuple(zip(*bounds)))
        start += size
    return pieces


def transpose_perm(node, rank):
    """Transpose's permutation, reversing the axes when the model gives none."""
    perm = node.attr("perm")
    perm = tuple(perm) if perm is not None else tuple(reversed(range(rank)))
    if sorted(perm) != list(range(rank)):
        raise ShapeError(f"perm {perm} is not a permutation of the {rank} axes")
    return perm


# --------------------------------------------------------------------------------- folds


def _fold_constant(node):
    # The attribute check let through only these, and ONNX gives a Constant exactly one.
    [(name, value)] = node.attrs.items()
    if name == "value":
        from onnx import numpy_helper

        return [folded(numpy_helper.to_array(value))]
    return [folded(np.array(value, np.float32 if "float" in name else np.int64))]


def _fold_shape(node):
    source = node.inputs[0]
    dims = list(source.shape)[slice(node.attr("start", 0), node.attr("end"))]
    return [folded(np.array(dims, object), np.int64)]


def _fold_cast(node):
    from onnx import helper

    source, dtype = node.inputs[0], np.dtype(helper.tensor_dtype_to_np_dtype(node.attr("to")))
    if source.symbolic and not np.issubdtype(dtype, np.integer):
        raise Unfoldable
    return [folded(source.values if source.symbolic else source.values.astype(dtype), dtype)]


def _fold_gather(node):
    data, indices = node.inputs
    if indices.symbolic:
        raise Unfoldable
    axis = node.axis(len(data.shape), 0)
    try:
        return [folded(np.take(data.values, indices.values, axis=axis), data.dtype)]
    except IndexError:
        raise ShapeError(f"indices {indices.values.tolist()} out of range for axis {axis} "
                         f"of {data.shape}") from None


def _fold_concat(node):
    values = [value.values for value in node.inputs]
    axis = node.axis(values[0].ndim, None)
    if any(array.dtype == object for array in values):
        values = [array.astype(object) for array in values]
    return [folded(np.concatenate(values, axis=axis), node.inputs[0].dtype)]


def _fold_reshaped(node):
    source = node.inputs[0]
    shape = reshaped(node, source.shape)
    if any(not isinstance(dim, int) for dim in shape):
        raise Unfoldable
    if element_count(shape) != source.values.size:
        raise ShapeError(f"cannot reshape {source.shape} ({source.values.size} elements) to "
                         f"{shape} ({element_count(shape)} elements)")
    return [folded(source.values.reshape(shape), source.dtype)]


def _fold_slices(pieces):
    def fold(node):
        source = node.inputs[0]
        return [folded(source.values[tuple(slice(*bounds) for bounds in zip(*piece))],
                       source.dtype) for piece in pieces(node, source.shape)]

    return fold


def _fold_expand(node):
    source = node.inputs[0]
    shape = dims_of(node.inputs[1], "the shape input")
    if any(not isinstance(dim, int) for dim in shape):
        raise Unfoldable
    target = np.broadcast_shapes(source.shape, shape)
    return [folded(np.broadcast_to(source.values, target), source.dtype)]


def _truncated_quotient(a, b):
    """ONNX's integer Div (toward zero) on ints, and on sizes (nonnegative) as floor."""
    if b == 0:
        raise ShapeError(f"an integer division of {a} by 0 while folding a shape")
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
        quotient = abs(int(a)) // abs(int(b))
        return quotient if (a >= 0) == (b > 0) else -quotient
    return sympy.floor(sympy.sympify(a) / b)


def _decided_equal(a, b):
    decided = sympy.Eq(sympy.sympify(a), sympy.sympify(b))
    if decided not in (sympy.true, sympy.false):
        raise Unfoldable
    return bool(decided)


_SYMBOLIC = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "neg": np.negative,
    "div": np.frompyfunc(_truncated_quotient, 2, 1),
    "equal": np.frompyfunc(_decided_equal, 2, 1),
}


def _fold_elementwise(primitive):
    """A fold of an elementwise op on known values: numpy's arithmetic on plain arrays,
    sympy's on those holding sizes (integer arithmetic and comparison only)."""

    def fold(node):
        inputs = list(node.inputs)
        dtype = {"equal": np.bool_, "where": inputs[-1].dtype}.get(primitive, inputs[0].dtype)
        if primitive == "where":
            if inputs[0].symbolic:
                raise Unfoldable
            return [folded(np.where(*(value.values for value in inputs)), dtype)]
        if any(value.symbolic for value in inputs):
            if primitive not in _SYMBOLIC:
                raise Unfoldable
            return [folded(_SYMBOLIC[primitive](*(value.values for value in inputs)), dtype)]
        arrays = [value.values for value in inputs]
        if primitive == "div" and np.issubdtype(dtype, np.integer):
            return [folded(_SYMBOLIC["div"](*arrays).astype(dtype), dtype)]
        with np.errstate(all="ignore"):
            return [folded(PRIMITIVES[primitive].compute(arrays, {}, None), dtype)]

    return fold


def fold_table(elementwise):
    """The folds by ONNX op type: the shape ops, and `elementwise` (ONNX op type ->
    primitive) on known values. Shape folds whatever its input; the others fold when
    every input is known."""
    folds = {op: _fold_elementwise(primitive) for op, primitive in elementwise.items()}
    folds.update({
        "Constant": _fold_constant,
        "Identity": lambda node: [node.inputs[0]],
        "Shape": _fold_shape,
        "Cast": _fold_cast,
        "Gather": _fold_gather,
        "Concat": _fold_concat,
        "Reshape": _fold_reshaped, "Flatten": _fold_reshaped,
        "Squeeze": _fold_reshaped, "Unsqueeze": _fold_reshaped,
        "Slice": _fold_slices(lambda node, shape: [slice_arguments(node, shape)]),
        "Split": _fold_slices(split_arguments),
        "Expand": _fold_expand,
        "Transpose": lambda node: [folded(np.transpose(
            node.inputs[0].values, transpose_perm(node, len(node.inputs[0].shape))),
            node.inputs[0].dtype)],
    })
    return folds
