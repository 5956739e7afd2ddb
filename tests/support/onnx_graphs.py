"""Random ONNX models for the fusion tests: DAGs over a symbolic row count T with
broadcasts, reductions (kept or dropped dims), reshapes, transposes, matmuls with constant
weights, composites (Softmax, LayerNormalization, the exporters' erf-GELU) and values
read by several consumers. Every op keeps its values finite and moderate (divisors and
logarithms see 1 + x * x), so a fused module and the references agree to rtol 1e-4.

    model = draw(onnx_models())          # onnx.ModelProto, inputs "x" (T, C) and "bias" (C,)
"""

import numpy as np
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper


class _Builder:
    """The model under construction: nodes, initializers and each value's static shape
    (the symbolic row count written as "T")."""

    def __init__(self, columns):
        self.nodes, self.initializers, self.shapes = [], [], {}
        self.shapes["x"] = ("T", columns)
        self.shapes["bias"] = (columns,)
        self.count = 0

    def name(self):
        self.count += 1
        return f"v{self.count}"

    def constant(self, array, dtype=np.float32):
        name = f"c{self.count}_{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype), name))
        return name

    def node(self, op, inputs, shape, **attributes):
        output = self.name()
        self.nodes.append(helper.make_node(op, inputs, [output], **attributes))
        self.shapes[output] = shape
        return output

    def positive(self, value):
        """1 + value * value: a safe divisor, logarithm or square root argument."""
        square = self.node("Mul", [value, value], self.shapes[value])
        return self.node("Add", [square, self.constant(1.0)], self.shapes[value])


def _rows(shape):
    return shape and shape[0] == "T"


def _step(draw, builder):
    """Add one op on values drawn from those built so far."""
    names = list(builder.shapes)
    value = draw(st.sampled_from(names))
    shape = builder.shapes[value]
    kind = draw(st.sampled_from(["unary", "binary", "reduce", "composite", "layout", "matmul"]))
    if kind == "unary":
        op = draw(st.sampled_from(["Exp", "Tanh", "Sigmoid", "Relu", "Erf", "Neg", "Sqrt",
                                   "Log", "Reciprocal"]))
        if op == "Exp":
            value = builder.node("Tanh", [value], shape)
        if op in ("Sqrt", "Log", "Reciprocal"):
            value = builder.positive(value)
        return builder.node(op, [value], shape)
    if kind == "binary":
        partners = [name for name in names if builder.shapes[name] in (shape, shape[-1:], ())
                    or (len(builder.shapes[name]) == len(shape) and builder.shapes[name][-1] == 1
                        and builder.shapes[name][:-1] == shape[:-1])]
        other = draw(st.sampled_from(partners)) if partners else builder.constant(0.5)
        op = draw(st.sampled_from(["Add", "Sub", "Mul", "Div", "Max"]))
        if op == "Div":
            other = builder.positive(other)
        operands = [value, other] if draw(st.booleans()) else [other, value]
        if op == "Max":
            return builder.node("Max", operands, shape)
        return builder.node(op, operands, shape)
    if kind == "reduce" and len(shape) >= 1:
        op = draw(st.sampled_from(["ReduceSum", "ReduceMax", "ReduceMean"]))
        keep = draw(st.booleans()) or len(shape) == 1
        reduced = shape[:-1] + ((1,) if keep else ())
        if op == "ReduceSum":  # axes an input from opset 13, an attribute for the others
            axes = builder.constant([len(shape) - 1], np.int64)
            return builder.node(op, [value, axes], reduced, keepdims=int(keep))
        return builder.node(op, [value], reduced, axes=[len(shape) - 1], keepdims=int(keep))
    if kind == "composite" and len(shape) >= 1 and isinstance(shape[-1], int) and shape[-1] > 1:
        choice = draw(st.sampled_from(["Softmax", "LayerNormalization", "Gelu"]))
        if choice == "Softmax":
            return builder.node("Softmax", [value], shape, axis=-1)
        if choice == "LayerNormalization":
            columns = shape[-1]
            gamma = builder.constant(np.linspace(0.5, 1.5, columns))
            beta = builder.constant(np.linspace(-0.5, 0.5, columns))
            # A row of nearly equal values (1 + v * v for a small v) has a variance of
            # rounding errors: normalized, one ulp of difference in its values (an FMA
            # against a multiply and an add) became a 2e-3 relative difference in the
            # output. A ramp across the columns keeps every row's variance near 0.4.
            spread = builder.node("Add", [value, builder.constant(np.linspace(-1, 1, columns))],
                                  shape)
            return builder.node("LayerNormalization", [spread, gamma, beta], shape, axis=-1,
                                epsilon=1e-5)
        scaled = builder.node("Div", [value, builder.constant(np.sqrt(2.0))], shape)
        curve = builder.node("Add", [builder.node("Erf", [scaled], shape),
                                     builder.constant(1.0)], shape)
        half = builder.node("Mul", [value, builder.constant(0.5)], shape)
        return builder.node("Mul", [half, curve], shape)
    if kind == "layout" and len(shape) == 2 and _rows(shape) and shape[1] % 2 == 0:
        if draw(st.booleans()):
            split = builder.node("Reshape", [value, builder.constant((0, -1, 2), np.int64)],
                                 ("T", shape[1] // 2, 2))
            swapped = builder.node("Transpose", [split], ("T", 2, shape[1] // 2),
                                   perm=[0, 2, 1])
            return builder.node("Reshape", [swapped, builder.constant((0, -1), np.int64)], shape)
        return builder.node("Transpose", [value], (shape[1], "T"), perm=[1, 0])
    if kind == "matmul" and _rows(shape) and len(shape) == 2:
        columns = draw(st.sampled_from([1, 4, 8, 20, 33]))
        weights = np.linspace(-1, 1, shape[1] * columns).reshape(shape[1], columns) / shape[1]
        return builder.node("MatMul", [value, builder.constant(weights)], ("T", columns))
    return builder.node("Relu", [value], shape)


@st.composite
def onnx_models(draw, max_ops=8):
    """A random model (see the module docstring): inputs x (T, C) and bias (C,), one to
    three outputs of row-shaped values, at opset 17."""
    columns = draw(st.sampled_from([1, 3, 8, 16, 40]))
    builder = _Builder(columns)
    for _ in range(draw(st.integers(1, max_ops))):
        _step(draw, builder)
    made = [name for name in builder.shapes if name.startswith("v") and _rows(builder.shapes[name])]
    if not made:
        made = [builder.node("Relu", ["x"], builder.shapes["x"])]
    outputs = draw(st.lists(st.sampled_from(made), min_size=1, max_size=3, unique=True))
    if made[-1] not in outputs:
        outputs.append(made[-1])

    def info(name):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(builder.shapes[name]))

    graph = helper.make_graph(builder.nodes, "random", [info("x"), info("bias")],
                              [info(name) for name in outputs], builder.initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
