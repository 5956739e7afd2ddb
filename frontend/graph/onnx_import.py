"""ONNX import: a model written by a standard exporter (torch.onnx, tf2onnx, ...) as a quiltc
Graph of primitives.

    g = qc.graph.from_onnx("bert_layer.onnx", sizes={"batch": (1, 8), "seq": (1, 512)})
    g.evaluate(hidden=h, mask=m)

Each input dim named by a dim_param becomes a size (`qc.var`, one per name, in [1, 4096]
unless `sizes` gives its range). Constants and the shape sub-graphs exporters emit are
folded while importing (onnx_shapes.py), so the graph holds only data ops, each opened
into primitives; shapes are inferred through the builder, never read from the model.
Input names stay as the model gives them where they are identifiers; every other name is
made one, since later stages write names into C.
"""

import os
import re

import numpy as np

from ..ir.errors import LanguageError, QuiltError, ShapeError
from ..lang import var
from .graph import Graph, Value
from .onnx_shapes import (
    Folded,
    NodeView,
    Unfoldable,
    axes_argument,
    dims_of,
    fold_table,
    folded,
    reshaped,
    slice_arguments,
    split_arguments,
    transpose_perm,
)
from .primitives import element_count

DEFAULT_RANGE = (1, 4096)
DTYPES = tuple(np.dtype(name) for name in ("float32", "float64", "int64", "int32", "bool"))


def from_onnx(path_or_model, sizes=None):
    """The Graph of an ONNX model (a path or an onnx.ModelProto). `sizes` maps the names
    of symbolic input dims (dim_param) to their (lo, hi) range, [1, 4096] by default."""
    try:
        import onnx
    except ImportError:
        raise QuiltError("from_onnx reads models with the onnx package; install it with: "
                         "pip install 'onnx>=1.16'") from None
    if isinstance(path_or_model, (str, os.PathLike)):
        from google.protobuf.message import DecodeError

        try:
            model = onnx.load(os.fspath(path_or_model))
        except (OSError, DecodeError) as error:
            raise LanguageError(f"cannot read an ONNX model from {path_or_model}: {error}; "
                                "pass the path of a .onnx file") from None
    elif isinstance(path_or_model, onnx.ModelProto):
        model = path_or_model
    else:
        raise LanguageError(f"from_onnx takes a path or an onnx.ModelProto, not "
                            f"{type(path_or_model).__name__}")
    return _Importer(model, dict(sizes or {})).run()


def identifier(name):
    """`name` made a C identifier: runs of other characters become one underscore, and
    exporters' "_output_0" suffix goes."""
    clean = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_")
    clean = re.sub(r"_output_0$", "", clean) or "value"
    return f"v_{clean}" if clean[0].isdigit() else clean


class _Importer:
    """One model's import: the ONNX name of every value met so far mapped to its graph
    Value or its Folded value, and the graph being built."""

    def __init__(self, model, ranges):
        self.model, self.ranges = model, ranges
        self.graph = Graph()
        self.values, self.materialized, self.sizes = {}, {}, {}
        opsets = [entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")]
        self.opset = opsets[0] if opsets else 1
        self.consumed = {name for node in model.graph.node for name in node.input}
        self.consumed |= {output.name for output in model.graph.output}

    def run(self):
        from onnx import numpy_helper

        body = self.model.graph
        for initializer in body.initializer:
            self.values[initializer.name] = folded(numpy_helper.to_array(initializer))
        for value in body.input:
            if value.name not in self.values:
                self.values[value.name] = self._input(value)
        unknown = sorted(set(self.ranges) - set(self.sizes))
        if unknown:
            raise LanguageError(f"sizes gives ranges for {', '.join(unknown)}, which no input "
                                "dim names; the model's symbolic dims are "
                                f"{', '.join(sorted(self.sizes)) or 'none'}")
        for node in body.node:
            self._convert(node)
        self.graph.output(*(self.tensor(output.name) for output in body.output))
        return self.graph

    # ----------------------------------------------------------------------------- inputs

    def _input(self, proto):
        from onnx import helper

        if proto.type.WhichOneof("value") != "tensor_type":
            raise ShapeError(f"input {proto.name!r} is a {proto.type.WhichOneof('value')}; "
                             "quiltc takes tensors only")
        tensor_type = proto.type.tensor_type
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
        if dtype not in DTYPES:
            raise ShapeError(f"input {proto.name!r} is {dtype}; quiltc takes "
                             f"{', '.join(map(str, DTYPES))} inputs")
        if not tensor_type.HasField("shape"):
            raise ShapeError(f"input {proto.name!r} has no shape in the model; give each dim "
                             "a dim_value or a dim_param")
        dims = []
        for position, dim in enumerate(tensor_type.shape.dim):
            if dim.HasField("dim_value"):
                dims.append(dim.dim_value)
            elif dim.HasField("dim_param"):
                dims.append(self._size(dim.dim_param))
            else:
                raise ShapeError(f"input {proto.name!r}: dim {position} has neither a value "
                                 "nor a name; give it a dim_value, or a dim_param naming the "
                                 "size it varies with")
        name = proto.name if proto.name.isidentifier() and proto.name.isascii() else \
            self._fresh(proto.name)
        return self.graph.input(name, dims, dtype)

    def _size(self, param):
        if param not in self.sizes:
            bounds = self.ranges.get(param, DEFAULT_RANGE)
            if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2):
                raise LanguageError(f"sizes[{param!r}] = {bounds!r}: give a (lo, hi) pair")
            self.sizes[param] = var(identifier(param), *bounds)
        return self.sizes[param]

    # ------------------------------------------------------------------------------ nodes

    def _convert(self, proto):
        where = f"node {proto.name or proto.output[0]!r} ({proto.op_type})"
        try:
            results = self._results(proto)
        except (LanguageError, ShapeError) as error:
            raise type(error)(f"{where}: {error}") from None
        for name, result in zip(proto.output, results):
            if name:
                self.values[name] = result

    def _results(self, proto):
        from onnx import helper

        op = proto.op_type
        if proto.domain not in ("", "ai.onnx"):
            raise LanguageError(f"quiltc imports ops of the default ONNX domain only, not "
                                f"{proto.domain}.{op}; export without custom ops")
        if op not in OPS:
            raise LanguageError(f"quiltc imports no {op}; supported ops: "
                                f"{', '.join(sorted(OPS))}")
        convert, handled = OPS[op]
        missing = [name for name in proto.input if name and name not in self.values]
        if missing:
            raise LanguageError(f"input {missing[0]!r} is no graph input, initializer or "
                                "earlier node's output; the model's nodes must be in order")
        attrs = {attribute.name: helper.get_attribute_value(attribute)
                 for attribute in proto.attribute}
        node = NodeView(self, proto, attrs)
        for name in node.attrs:
            if name not in handled:
                node.refuse(name, f"quiltc reads {op}'s "
                                  f"{', '.join(sorted(handled)) or 'no attributes'}")
        if op in FOLDS and (op == "Shape" or all(not isinstance(value, Value)
                                                 for value in node.inputs)):
            try:
                return FOLDS[op](node)
            except Unfoldable:
                pass
        return convert(self.graph, node)

    # ------------------------------------------------------------------------- constants

    def tensor(self, name):
        """The graph Value of ONNX value `name`: a known value becomes a graph constant
        (once); one that depends on sizes cannot."""
        value = self.values[name]
        if isinstance(value, Value):
            return value
        if name not in self.materialized:
            self.materialized[name] = self.constant(name, value)
        return self.materialized[name]

    def constant(self, name, value):
        """A graph constant of Folded `value`, named after ONNX value `name`."""
        if value.symbolic:
            raise ShapeError(f"{name!r} = {value.values.tolist()} is computed from sizes, "
                             "and a graph takes sizes only as dims; quiltc folds such values "
                             "into shapes (Reshape, Expand, Slice arguments), not into data")
        return self.graph.constant(self._fresh(name), value.values)

    def _fresh(self, name):
        graph = self.graph
        taken = {value.name for value in graph.inputs} | set(graph.constants)
        taken |= {node.output.name for node in graph.nodes}
        base = candidate = identifier(name)
        number = 1
        while candidate in taken:
            number += 1
            candidate = f"{base}_{number}"
        return candidate


# ----------------------------------------------------------------------------- converters


def _elementwise(primitive):
    def convert(g, node):
        inputs = [node.tensor(index) for index in range(len(node.inputs))]
        if primitive == "pow" and inputs[1].dtype != inputs[0].dtype:
            inputs[1] = g.cast(inputs[1], dtype=inputs[0].dtype)  # ONNX allows another dtype
        return [g.apply(primitive, *inputs)]

    return convert


def _cast(g, node):
    from onnx import helper

    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(node.attr("to")))
    if dtype not in DTYPES:
        node.refuse("to", f"quiltc casts to {', '.join(map(str, DTYPES))}")
    x = node.tensor(0)
    return [x if x.dtype == dtype else g.cast(x, dtype=dtype)]


def _matmul(g, node):
    # numpy's (and ONNX's) 1-D operands: a row on the left, a column on the right, whose
    # added dim goes again from the product.
    a, b = node.tensor(0), node.tensor(1)
    left, right = len(a.shape) == 1, len(b.shape) == 1
    product = g.matmul(g.reshape(a, shape=(1, *a.shape)) if left else a,
                       g.reshape(b, shape=(*b.shape, 1)) if right else b)
    if left or right:
        shape = product.shape[:-2] + product.shape[-2:][left:2 - right]
        product = g.reshape(product, shape=shape)
    return [product]


def _gemm(g, node):
    a = node.tensor(0)
    if node.attr("transA", 0):
        a = g.transpose(a, perm=(1, 0))
    if node.attr("transB", 0) and isinstance(node.inputs[1], Folded):
        b = node.importer.constant(f"{node.names[1]}_T", folded(node.inputs[1].values.T))
    else:
        b = node.tensor(1)
        b = g.transpose(b, perm=(1, 0)) if node.attr("transB", 0) else b
    y = g.matmul(a, b)
    alpha, beta = node.attr("alpha", 1.0), node.attr("beta", 1.0)
    if alpha != 1.0:
        y = g.mul(y, g.scalar(alpha, y))
    if node.has(2):
        bias = node.tensor(2)
        y = g.add(y, g.mul(bias, g.scalar(beta, bias)) if beta != 1.0 else bias)
    return [y]


def _softmax(composite):
    def convert(g, node):
        x = node.tensor(0)
        rank = len(x.shape)
        build = getattr(g, composite)
        if node.opset >= 13:
            return [build(x, axis=node.axis(rank, -1))]
        # Before opset 13 the op flattens the axes from `axis` on into one.
        axis = node.axis(rank, 1)
        if axis == rank - 1:
            return [build(x, axis=-1)]
        flat = g.reshape(x, shape=(element_count(x.shape[:axis]), element_count(x.shape[axis:])))
        return [g.reshape(build(flat, axis=-1), shape=x.shape)]

    return convert


def _layer_norm(g, node):
    x, gamma = node.tensor(0), node.tensor(1)
    if node.attr("stash_type", 1) != 1:
        node.refuse("stash_type", "quiltc normalizes in the input's dtype (stash_type 1)")
    for extra in node.outputs[1:]:
        if extra and extra in node.importer.consumed:
            raise LanguageError(f"output {extra!r} (the mean or inverse deviation) is used, "
                                "and quiltc computes only the normalized output")
    rank, epsilon = len(x.shape), node.attr("epsilon", 1e-5)
    axis = node.axis(rank, -1)
    beta = node.tensor(2) if node.has(2) else g.scalar(0, x)
    if axis == rank - 1:
        return [g.layer_norm(x, gamma, beta, epsilon=epsilon)]
    # Over several trailing axes: normalize them flattened into one, then scale in shape.
    flat = g.reshape(x, shape=(*x.shape[:axis], element_count(x.shape[axis:])))
    normed = g.layer_norm(flat, g.scalar(1, x), g.scalar(0, x), epsilon=epsilon)
    return [g.add(g.mul(g.reshape(normed, shape=x.shape), gamma), beta)]


def _reduce(primitive, since):
    def convert(g, node):
        x = node.tensor(0)
        axes = axes_argument(node, since)
        if not axes and node.attr("noop_with_empty_axes", 0):
            return [x]
        return [g.apply(primitive, x, axes=axes or None,
                        keepdims=bool(node.attr("keepdims", 1)))]

    return convert


def _reshape(g, node):
    x = node.tensor(0)
    shape = reshaped(node, x.shape)
    return [x if tuple(shape) == tuple(x.shape) else g.reshape(x, shape=shape)]


def _slices(pieces):
    """A converter to one slice per (starts, stops, steps) that `pieces(node, shape)` gives."""

    def convert(g, node):
        x = node.tensor(0)
        return [x if all(bounds == (0, None, 1) for bounds in zip(*piece)) else
                g.slice(x, starts=piece[0], stops=piece[1], steps=piece[2])
                for piece in pieces(node, x.shape)]

    return convert


def _concat(g, node):
    inputs = [node.tensor(index) for index in range(len(node.inputs))]
    return [g.concat(*inputs, axis=node.axis(len(inputs[0].shape), None))]


def _gather(g, node):
    data = node.tensor(0)
    return [g.gather(data, node.tensor(1), axis=node.axis(len(data.shape), 0))]


def _expand(g, node):
    shape = dims_of(node.known(1, "the shape input"), "the shape input")
    return [g.expand(node.tensor(0), shape=shape)]


ELEMENTWISE = {
    "Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Equal": "equal",
    "Where": "where", "Sqrt": "sqrt", "Reciprocal": "reciprocal", "Exp": "exp", "Log": "log",
    "Erf": "erf", "Tanh": "tanh", "Sigmoid": "sigmoid", "Relu": "relu", "Neg": "neg",
    "Max": "maximum", "Min": "minimum",
}
_REDUCE_AXES = {"axes", "keepdims", "noop_with_empty_axes"}

# ONNX op type -> (converter to primitives, the attributes it reads). Ops whose every input
# is known are folded instead where FOLDS has them; Constant and Shape always are.
OPS = {op: (_elementwise(primitive), set()) for op, primitive in ELEMENTWISE.items()}
OPS.update({
    "Cast": (_cast, {"to", "saturate"}),
    "MatMul": (_matmul, set()),
    "Gemm": (_gemm, {"alpha", "beta", "transA", "transB"}),
    "Softmax": (_softmax("softmax"), {"axis"}),
    "LogSoftmax": (_softmax("log_softmax"), {"axis"}),
    "LayerNormalization": (_layer_norm, {"axis", "epsilon", "stash_type"}),
    "ReduceMean": (_reduce("reduce_mean", 18), _REDUCE_AXES),
    "ReduceSum": (_reduce("reduce_sum", 13), _REDUCE_AXES),
    "ReduceMax": (_reduce("reduce_max", 18), _REDUCE_AXES),
    "Transpose": (lambda g, node: [g.transpose(node.tensor(0), perm=transpose_perm(
        node, len(node.inputs[0].shape)))], {"perm"}),
    "Reshape": (_reshape, {"allowzero"}),
    "Flatten": (_reshape, {"axis"}),
    "Squeeze": (_reshape, {"axes"}),
    "Unsqueeze": (_reshape, {"axes"}),
    "Concat": (_concat, {"axis"}),
    "Split": (_slices(split_arguments), {"axis", "split", "num_outputs"}),
    "Slice": (_slices(lambda node, shape: [slice_arguments(node, shape)]),
              {"starts", "ends", "axes"}),
    "Gather": (_gather, {"axis"}),
    "Expand": (_expand, set()),
    "Identity": (lambda g, node: [node.inputs[0]], set()),
    "Constant": (None, {"value", "value_float", "value_floats", "value_int", "value_ints"}),
    "Shape": (None, {"start", "end"}),
})
FOLDS = fold_table(ELEMENTWISE)
