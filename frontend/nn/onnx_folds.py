"""What `onnx_cnn` reads of an ONNX node, and the values it works out while importing:
constants, and the shape sub-graph exporters emit for `x.view(x.size(0), -1)`
(Shape -> Gather -> Unsqueeze -> Concat -> Reshape). A folded shape holds `BATCH` where
the batch size stands, which is known only at run time.
"""

import numpy as np

from ..ir.errors import QuiltError, ShapeError


class _Batch:
    """The batch dim in a folded shape."""

    def __repr__(self):
        return "batch"


BATCH = _Batch()


class Node:
    """One ONNX node as the importer reads it: `op`, `inputs` (names, "" where an optional
    input is left out), `attrs` (decoded attribute values), and `known`, the values of
    constants by name."""

    def __init__(self, proto, attrs, known, opset):
        self.op, self.inputs, self.attrs = proto.op_type, list(proto.input), attrs
        self.known, self.opset = known, opset

    def attr(self, name, default=None):
        """Attribute `name`, or `default` where the node has none."""
        return self.attrs.get(name, default)

    def text(self, name, default):
        """String attribute `name` (ONNX stores bytes), or `default`."""
        value = self.attrs.get(name, default)
        return value.decode() if isinstance(value, bytes) else value

    def refuse(self, name, hint):
        """Stop at attribute `name`, whose value quiltc.nn does not import."""
        value = self.attrs.get(name)
        shown = value.decode() if isinstance(value, bytes) else value
        raise QuiltError(f"attribute {name} = {shown} is not supported: {hint}")

    def check_attributes(self, handled):
        """Refuse any attribute outside `handled`, the ones the converter reads."""
        for name in self.attrs:
            if name not in handled:
                self.refuse(name, f"quiltc.nn reads {self.op}'s "
                                  f"{', '.join(sorted(handled)) or 'no attributes'}")

    def has(self, index):
        """Whether the model gives input `index` (optional inputs may be left out)."""
        return index < len(self.inputs) and self.inputs[index] != ""

    def constant(self, index, what):
        """Input `index` (`what`, for messages) as a numpy array; it must be known."""
        name = self.inputs[index]
        if name not in self.known:
            raise QuiltError(f"its {what} ({name!r}) is computed from the activations; "
                             "quiltc.nn needs it as an initializer or a Constant")
        return np.asarray(self.known[name])

    def same_pair(self, name, default):
        """Attribute `name` of a 2-D op (kernel_shape, strides) as its one value, which
        must be the same in height and width."""
        values = self.attr(name, default)
        if values is None:
            raise QuiltError(f"{self.op} needs the {name} attribute, and the node has none")
        if len(values) != 2 or values[0] != values[1]:
            self.refuse(name, "quiltc.nn takes 2-D ops with the same value in height and width")
        return values[0]

    def require_ones(self, name):
        """Refuse attribute `name` (dilations) unless every entry is 1."""
        if any(value != 1 for value in self.attr(name, ())):
            self.refuse(name, f"quiltc.nn imports {self.op} without {name}")


def flat_target(target, features, batch, allowzero):
    """Check that a Reshape's folded `target` flattens to (batch, `features`): its batch
    entry is BATCH, the input's fixed batch, 0 (copied) or -1, and its other -1 or
    `features`. Raises ShapeError otherwise."""
    entries = list(target.reshape(-1))
    if len(entries) == 2:
        first, second = entries
        leading = (first is BATCH or (batch is not BATCH and first == batch)
                   or (first == 0 and not allowzero) or (first == -1 and second == features))
        if leading and (second is not BATCH and second in (-1, features)):
            return
    shown = [entry if entry is BATCH else int(entry) for entry in entries]
    raise ShapeError(f"the target shape {shown} is not (batch, {features}); quiltc.nn reads a "
                     "Reshape only as a flatten to (batch, -1)")


def _constant(node):
    if len(node.attrs) != 1:
        raise QuiltError(f"a Constant needs one value attribute, got {sorted(node.attrs)}")
    [(name, value)] = node.attrs.items()
    if name == "value":
        from onnx import numpy_helper

        return numpy_helper.to_array(value)
    return np.array(value, np.float32 if "float" in name else np.int64)


def _axes(node):
    """Unsqueeze's or Squeeze's axes: their second input from opset 13, an attribute before."""
    if node.opset >= 13:
        return tuple(node.constant(1, "axes").reshape(-1)) if node.has(1) else None
    return node.attr("axes")


def _squeeze(node):
    axes = _axes(node)
    return np.squeeze(node.constant(0, "input"), axis=None if axes is None else tuple(axes))


def _concat(node):
    arrays = [node.constant(index, "input") for index in range(len(node.inputs))]
    if any(array.dtype == object for array in arrays):
        arrays = [array.astype(object) for array in arrays]
    return np.concatenate(arrays, axis=node.attr("axis"))


def _cast(node):
    from onnx import helper

    value = node.constant(0, "input")
    return value if value.dtype == object else value.astype(
        helper.tensor_dtype_to_np_dtype(node.attr("to")))


def _reshape(node):
    value = node.constant(0, "input")
    target = [int(entry) for entry in node.constant(1, "the target shape").reshape(-1)]
    if not node.attr("allowzero", 0):
        target = [value.shape[axis] if entry == 0 else entry for axis, entry in enumerate(target)]
    try:
        return value.reshape(target)
    except ValueError:
        raise ShapeError(f"cannot reshape a constant of shape {value.shape} to {target}") from None


# ONNX op type -> (fold of a node whose inputs are all known, the attributes it reads).
FOLDS = {
    "Constant": (_constant, {"value", "value_float", "value_floats", "value_int", "value_ints"}),
    "Identity": (lambda node: node.constant(0, "input"), set()),
    "Gather": (lambda node: np.take(node.constant(0, "data"),
                                    node.constant(1, "indices").astype(np.int64),
                                    axis=node.attr("axis", 0)), {"axis"}),
    "Unsqueeze": (lambda node: np.expand_dims(node.constant(0, "input"), tuple(_axes(node))),
                  {"axes"}),
    "Squeeze": (_squeeze, {"axes"}),
    "Concat": (_concat, {"axis"}),
    "Cast": (_cast, {"to", "saturate"}),
    "Reshape": (_reshape, {"allowzero"}),
    "Transpose": (lambda node: np.transpose(node.constant(0, "input"), node.attr("perm")),
                  {"perm"}),
}
