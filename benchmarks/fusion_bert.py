"""The BERT layer case of benchmarks/fusion.py, from an exported ONNX file: numpy, torch and
jax run its nodes one by one through a small interpreter (OnnxFileCase), which
torch.compile and jax.jit then trace whole; onnxruntime and quiltc read the file itself.
"""

from dataclasses import dataclass

import numpy as np
from fusion_cases import APPROXIMATE, EPSILON, NumpyOps


@dataclass(frozen=True)
class Step:
    """One node left to run at call time: `function(ops, *arguments)` gives `output`; an
    argument is a value's name (str) or a number or shape fixed when the program was planned."""

    function: object
    arguments: tuple
    output: str

    def run(self, ops, values):
        """Compute the output from `values` ({name: array}) and add it to them."""
        values[self.output] = self.function(ops, *(
            values[a] if isinstance(a, str) else a for a in self.arguments))


# ONNX op -> (ops, *arguments, **attributes) -> value, for the nodes that run at call time
CALL_TIME = {
    "Add": lambda ops, a, b: a + b,
    "Sub": lambda ops, a, b: a - b,
    "Mul": lambda ops, a, b: a * b,
    "Div": lambda ops, a, b: a / b,
    "MatMul": lambda ops, a, b: ops.matmul(a, b),
    "Erf": lambda ops, x: ops.erf(x),
    "Softmax": lambda ops, x, axis=-1: ops.softmax(x, axis),
    "LayerNormalization": lambda ops, x, gamma, beta, axis=-1, epsilon=EPSILON:
        ops.layer_norm(x, gamma, beta, epsilon),
    "Transpose": lambda ops, x, perm: ops.transpose(x, perm),
    "Cast": lambda ops, x, to: ops.cast_float(x),
    "Identity": lambda ops, x: x,
}
# ONNX op -> numpy, for the nodes computing shapes: run once, when the program is planned
PLAN_TIME = {
    "Gather": lambda x, index, axis=0: np.take(x, index, axis=axis),
    "Unsqueeze": lambda x, axes: np.expand_dims(x, tuple(axes)),
    "Concat": lambda *parts, axis: np.concatenate(parts, axis=axis),
    "Identity": lambda x: x,
}


class OnnxFileCase:
    """A case read from an exported ONNX file, planned for fixed input shapes: Constant,
    Shape and the index arithmetic on shapes are folded once in numpy, reshapes get their
    target shapes, and what is left is a list of Steps any array library runs (the numpy
    run that plans it gives the reference output and the matmul FLOPs)."""

    memory_bound = False
    tolerance = APPROXIMATE
    onnx_batch_of_one = False
    note = ("the exported output is Gather(axis 0, index 0) of the layer's output: batch element 0 "
            "only. Every contender is timed on the whole graph as written; one that pruned the "
            "work feeding the other elements would skip most of it (XLA's HLO keeps it all)")

    def __init__(self, name, path, inputs, onnx):
        model = onnx.load(path)
        self.name, self.path, self.inputs = name, str(path), inputs
        # copies: the arrays onnx hands out are read-only, and torch warns on wrapping those
        self.params = {tensor.name: onnx.numpy_helper.to_array(tensor).copy()
                       for tensor in model.graph.initializer}
        self.output = model.graph.output[0].name
        self.steps, self.flops = [], 0.0
        self._plan(model, onnx)

    def _plan(self, model, onnx):
        ops, folded = NumpyOps(), {}
        values = {**self.inputs, **self.params}
        for node in model.graph.node:
            attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            output = node.output[0]
            if node.op_type == "Constant":
                folded[output] = onnx.numpy_helper.to_array(attributes["value"])
            elif node.op_type == "Shape":
                folded[output] = np.array(values[node.input[0]].shape, np.int64)
            elif all(name in folded for name in node.input):
                folded[output] = PLAN_TIME[node.op_type](
                    *(folded[name] for name in node.input), **attributes)
            else:
                step = self._step(node, attributes, folded, values)
                step.run(ops, values)
                if node.op_type == "MatMul":
                    self.flops += 2.0 * values[output].size * values[node.input[0]].shape[-1]
                self.steps.append(step)

    @staticmethod
    def _step(node, attributes, folded, values):
        """The Step for a node with at least one call-time input."""
        op, output = node.op_type, node.output[0]
        if op in ("Reshape", "Unsqueeze"):
            # the target shape is known now: both become a plain reshape
            x, spec = values[node.input[0]], folded[node.input[1]]
            if op == "Unsqueeze":
                target = np.expand_dims(x, tuple(int(axis) for axis in spec)).shape
            else:  # a 0 in the shape keeps that dim of x (allowzero is 0 in exported files)
                target = tuple(x.shape[axis] if extent == 0 else int(extent)
                               for axis, extent in enumerate(spec))
            return Step(lambda ops, x, shape: x.reshape(shape), (node.input[0], target), output)
        if op == "Gather":
            index = folded[node.input[1]]
            if index.ndim != 0:
                raise ValueError(f"{node.name}: a Gather of a tensor of indices; this interpreter "
                                 "runs what exported BERT layers hold (a constant index)")
            axis = attributes.get("axis", 0)
            return Step(lambda ops, x, axis, i: x[(slice(None),) * axis + (i,)],
                        (node.input[0], axis, int(index)), output)
        arguments = []
        for name in node.input:
            if name not in folded:
                arguments.append(name)
            elif folded[name].size == 1:
                # a Python number: every library keeps the tensor's float32 for it
                arguments.append(float(folded[name]))
            else:
                raise ValueError(f"{node.name}: {op} of a constant tensor folded at planning; "
                                 "this interpreter runs what exported BERT layers hold "
                                 "(constant numbers and weights as inputs)")
        function = CALL_TIME[op]
        return Step(lambda ops, *args: function(ops, *args, **attributes), tuple(arguments),
                    output)

    def function(self, ops):
        """f(arrays) -> output in `ops`'s array library, running the planned steps in turn."""
        def run(arrays):
            values = dict(arrays)
            for step in self.steps:
                step.run(ops, values)
            return values[self.output]
        return run

    def onnx_model(self, onnx):
        """The file's path (onnxruntime loads it itself)."""
        return self.path

    def quiltc_graph(self, qc):
        """The file imported by quiltc's ONNX front end."""
        return qc.graph.from_onnx(self.path)


def bert_case(path, quick, onnx):
    """The BERT-base layer at batch 8, sequence 128 (2 x 32 for --quick): random hidden
    states and a 0/1 mask padding each sequence after a random length of at least half."""
    batch, seq = (2, 32) if quick else (8, 128)
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((batch, seq, 768)).astype(np.float32)
    lengths = rng.integers(seq // 2, seq + 1, size=batch)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    return OnnxFileCase("bert_base_layer", path, {"hidden": hidden, "mask": mask}, onnx)


