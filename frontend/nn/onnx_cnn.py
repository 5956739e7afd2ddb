"""ONNX CNNs as `quiltc.nn` models: a network trained in PyTorch (or anything that
exports ONNX) read into a `Sequential` that quantizes, compresses to a weight pool and
becomes a Cortex-M project like any other.

    model = qc.nn.from_onnx("digits_cnn.onnx")           # an OnnxCNN, a Sequential
    model.forward(images_nchw.transpose(0, 2, 3, 1))      # NHWC in, the ONNX logits out

The graph must be a chain: one image input [batch, C, H, W], one output, every node
reading the output of the node before it. Ops: Conv (group 1, or depthwise), Relu, Clip
from 0 (a ReLU, capped where the top is finite), MaxPool and AveragePool (window equal
to stride, no padding), GlobalAveragePool, Flatten and Reshape to (batch, -1), Gemm,
MatMul and the Add of its bias, BatchNormalization folded into the conv or dense before
it; Identity, Dropout and a Pad of nothing pass through. Constants and the shape
sub-graph exporters emit for `x.view(x.size(0), -1)` (Shape, Gather, Unsqueeze, Concat)
are folded.

NCHW becomes NHWC: conv weights go from OIHW to HWIO, and the first Dense after a
Flatten has its rows reordered from (c, h, w) to (h, w, c). `quiltc.graph.from_onnx`
imports general graphs for fusion; it sits above `nn` (and `quiltc.graph` imports what
imports `nn`), so this module reads ONNX through the onnx package's own helpers.
"""

import os

import numpy as np

from ..ir.errors import QuiltError, ShapeError
from .layers import Dense, Flatten, MaxPool2d, Sequential
from .onnx_folds import BATCH, FOLDS, Node
from .onnx_ops import CONVERTERS


class OnnxCNN(Sequential):
    """A `Sequential` read from an ONNX model by `from_onnx`. `input_name` is the ONNX
    input's name and `input_shape` the per-example NHWC shape the model takes (the ONNX
    input is its NCHW transpose)."""

    def __init__(self, layers, input_name, input_shape):
        super().__init__(layers)
        self.input_name, self.input_shape = input_name, tuple(input_shape)


def from_onnx(path_or_model):
    """Import the ONNX CNN at `path_or_model` (a path or an onnx.ModelProto) as an
    `OnnxCNN` whose float logits on NHWC images equal the ONNX model's on the same
    images in NCHW. Raises QuiltError naming the node, its op and the attribute or shape
    in the way for anything outside the ops listed in this module's docstring, and for
    a graph that is not a chain."""
    return _Chain(_load(path_or_model)).run()


def _load(path_or_model):
    try:
        import onnx
    except ImportError:
        raise QuiltError("from_onnx reads models with the onnx package; install it with: "
                         "pip install 'onnx>=1.16'") from None
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model
    if not isinstance(path_or_model, (str, os.PathLike)):
        raise QuiltError(f"from_onnx takes a path or an onnx.ModelProto, not "
                         f"{type(path_or_model).__name__}")
    from google.protobuf.message import DecodeError

    try:
        return onnx.load(os.fspath(path_or_model))
    except (OSError, DecodeError) as error:
        raise QuiltError(f"cannot read an ONNX model from {path_or_model}: {error}; pass the "
                         "path of a .onnx file") from None


class _Chain:
    """One model's import. `known` maps the names of constant values to numpy arrays;
    `shapes` maps each activation to its per-example NCHW shape, (c, h, w) or
    (features,); `current` is the activation at the end of the chain so far."""

    def __init__(self, model):
        from onnx import numpy_helper

        self.graph = model.graph
        opsets = [entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")]
        self.opset = opsets[0] if opsets else 1
        self.known = {tensor.name: numpy_helper.to_array(tensor)
                      for tensor in self.graph.initializer}
        self.consumed = {name for node in self.graph.node for name in node.input}
        self.consumed |= {output.name for output in self.graph.output}
        self.shapes, self.readers = {}, {}
        self.layers, self.weights = [], []
        # The conv or dense whose output the chain is at (a BatchNormalization or a bias
        # Add folds into it), and the (c, h, w) map the next Dense reads flattened.
        self.fold_target = self.flattened = None

    def run(self):
        inputs = [value for value in self.graph.input if value.name not in self.known]
        if len(inputs) != 1:
            raise ShapeError(f"the graph has {len(inputs)} inputs "
                             f"({', '.join(repr(v.name) for v in inputs)}); quiltc.nn imports "
                             "CNNs with one image input [batch, C, H, W]")
        input_name, (c, h, w) = self._input(inputs[0])
        for proto in self.graph.node:
            where = f"node {proto.name or proto.output[0]!r} ({proto.op_type})"
            try:
                self._convert(proto)
            except QuiltError as error:
                raise type(error)(f"{where}: {error}") from None
        outputs = [output.name for output in self.graph.output]
        if outputs != [self.current]:
            raise QuiltError(f"the graph's outputs are {outputs}, and quiltc.nn imports chains "
                             f"with one output, the last node's ({self.current!r})")
        model = OnnxCNN(self.layers, input_name, (h, w, c))
        model.set_weights([array for pair in self.weights for array in pair])
        return model

    def _input(self, proto):
        from onnx import TensorProto

        tensor_type = proto.type.tensor_type
        dims = [dim.dim_value if dim.HasField("dim_value") else None
                for dim in tensor_type.shape.dim]
        if tensor_type.elem_type != TensorProto.FLOAT or len(dims) != 4 \
                or not all(dims[1:]):
            dtype = TensorProto.DataType.Name(tensor_type.elem_type)
            shown = [dim if dim is not None else "?" for dim in dims]
            raise ShapeError(f"input {proto.name!r} is {dtype} {shown}; quiltc.nn imports CNNs "
                             "whose input is FLOAT [batch, C, H, W] with C, H and W fixed")
        self.batch = dims[0] or BATCH
        self.shapes[proto.name] = tuple(dims[1:])
        self.current = proto.name
        return proto.name, dims[1:]

    def _convert(self, proto):
        from onnx import helper

        op = proto.op_type
        if proto.domain not in ("", "ai.onnx"):
            raise QuiltError(f"quiltc.nn imports ops of the default ONNX domain only, not "
                             f"{proto.domain}.{op}")
        missing = [name for name in proto.input
                   if name and name not in self.known and name not in self.shapes]
        if missing:
            raise QuiltError(f"input {missing[0]!r} is no graph input, initializer or earlier "
                             "node's output; the model's nodes must be in order")
        node = Node(proto, {attribute.name: helper.get_attribute_value(attribute)
                            for attribute in proto.attribute}, self.known, self.opset)
        data = [name for name in proto.input if name in self.shapes]
        if op == "Shape" and data:
            node.check_attributes({"start", "end"})
            dims = np.array([self.batch, *self.shapes[data[0]]], object)
            self.known[proto.output[0]] = dims[node.attr("start", 0):node.attr("end")]
            return
        if not data:
            if op not in FOLDS:
                raise QuiltError(f"computes on constants only, and quiltc.nn folds only "
                                 f"{', '.join(sorted(FOLDS))}")
            fold, handled = FOLDS[op]
            node.check_attributes(handled)
            self.known[proto.output[0]] = fold(node)
            return
        if op not in CONVERTERS:
            raise QuiltError(f"quiltc.nn imports no {op}; it imports "
                             f"{', '.join(sorted(CONVERTERS))} (see quiltc.nn.onnx_ops)")
        self._check_chain(proto, data)
        convert, handled = CONVERTERS[op]
        node.check_attributes(handled)
        for extra in proto.output[1:]:
            if extra in self.consumed:
                raise QuiltError(f"output {extra!r} is used, and quiltc.nn computes only the "
                                 f"first output of {op}")
        self.shapes[proto.output[0]] = convert(self, node, self.shapes[data[0]])
        self.current = proto.output[0]

    def _check_chain(self, proto, data):
        if len(data) > 1:
            raise QuiltError(f"reads two activations, {data[0]!r} and {data[1]!r}: quiltc.nn "
                             "imports chains, each node reading only the output of the node "
                             "before it (no residual adds, concatenations or other branches)")
        name = data[0]
        if name in self.readers:
            raise QuiltError(f"reads {name!r}, which node {self.readers[name]!r} reads too: the "
                             "graph branches there, and quiltc.nn imports chains only")
        if name != self.current:
            raise QuiltError(f"reads {name!r}, but the chain is at {self.current!r}; quiltc.nn "
                             "imports chains, each node reading the output of the node before")
        self.readers[name] = proto.name or proto.output[0]

    def add(self, layer, weight=None, bias=None):
        """Append `layer` (with its weight and bias in quiltc.nn's layouts, if it has any)."""
        self.layers.append(layer)
        self.fold_target = None
        if weight is not None:
            self.weights.append([np.asarray(weight, np.float32), np.asarray(bias, np.float32)])
            self.fold_target = len(self.weights) - 1

    def add_relu(self, relu):
        """Append `relu`, or put it before the max pool the chain ends with: the two
        commute (a ReLU is monotone), and quantized models fuse a ReLU into the conv
        before it, as PyTorch code writing relu(max_pool(conv(x))) does not."""
        if self.layers and isinstance(self.layers[-1], MaxPool2d):
            self.layers.insert(len(self.layers) - 1, relu)
        else:
            self.add(relu)

    def fold(self, node, scale, shift):
        """Fold y * scale + shift (per output channel) into the conv or dense before."""
        if self.fold_target is None:
            before = repr(self.layers[-1]) if self.layers else "the input"
            raise QuiltError(f"follows {before}, and quiltc.nn folds a {node.op} only into "
                             "the Conv, Gemm or MatMul right before it")
        weight, bias = self.weights[self.fold_target]
        self.weights[self.fold_target] = [weight * scale, bias * scale + shift]

    def dense(self, weight, bias):
        """Append a Dense of a (features, cout) weight whose rows follow ONNX's flattening."""
        if self.flattened is not None:
            c, h, w = self.flattened
            weight = weight.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(c * h * w, -1)
            self.flattened = None
        self.add(Dense(*weight.shape), weight, bias)
        return (weight.shape[1],)

    def flatten(self, shape):
        if len(shape) == 3:
            self.add(Flatten())
            self.flattened = shape
        return (int(np.prod(shape)),)
