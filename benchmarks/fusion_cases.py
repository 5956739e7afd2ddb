"""The cases of benchmarks/fusion.py and the one vocabulary they are written in.

Each synthetic case is one function of an `ops` object (`ops.add`, `ops.layer_norm`,
`ops.gelu_erf`, ...), so numpy, torch, jax, the ONNX model for onnxruntime and the quiltc
graph all compute the same definition, each spelled the way its own users spell it:
torch runs F.layer_norm and F.gelu, jax runs jax.nn.gelu, the ONNX model carries the node
patterns torch's exporter writes (LayerNormalization, Div-Erf-Add-Mul-Mul GELU) and
quiltc gets its Graph composites. The BERT layer comes from an exported ONNX file
(fusion_bert.py).
"""

import math
from dataclasses import dataclass

import numpy as np

EPSILON = 1e-5
SQRT2 = math.sqrt(2.0)
TANH_GELU_BETA, TANH_GELU_KAPPA = math.sqrt(2.0 / math.pi), 0.044715
STRICT = (1e-4, 1e-5, "float32 throughout")
# jax's and onnxruntime's float32 erf are polynomial approximations, and matmuls add in
# different orders: allclose at rtol 1e-3 / atol 1e-4 instead.
APPROXIMATE = (1e-3, 1e-4, "erf approximated by jax and onnxruntime, or matmul sums reordered")


def _erf_for_numpy():
    """scipy's float32 erf, or math.erf element by element when scipy is missing (slow:
    the numpy column is then not a fair figure)."""
    try:
        from scipy.special import erf
    except ImportError:
        print("scipy is not installed: numpy's erf runs math.erf element by element")
        vectorized = np.vectorize(math.erf, otypes=[np.float32])
        return lambda x: vectorized(x).astype(x.dtype)
    return erf


class NumpyOps:
    """numpy, one array operation at a time: the reference every contender is checked against."""

    def __init__(self):
        self.erf = _erf_for_numpy()

    add, mul, matmul, tanh = np.add, np.multiply, np.matmul, np.tanh

    def relu(self, x):
        return np.maximum(x, 0)

    def sigmoid(self, x):
        return 1 / (1 + np.exp(-x))

    def layer_norm(self, x, gamma, beta, epsilon=EPSILON):
        centered = x - x.mean(axis=-1, keepdims=True)
        variance = (centered * centered).mean(axis=-1, keepdims=True)
        return centered / np.sqrt(variance + epsilon) * gamma + beta

    def softmax(self, x, axis=-1):
        exps = np.exp(x - x.max(axis=axis, keepdims=True))
        return exps / exps.sum(axis=axis, keepdims=True)

    def gelu_erf(self, x):
        return x * 0.5 * (1 + self.erf(x / SQRT2))

    def gelu_tanh(self, x):
        return x * 0.5 * (1 + np.tanh(TANH_GELU_BETA * (x + TANH_GELU_KAPPA * x * x * x)))

    def transpose(self, x, perm):
        return np.transpose(x, perm)

    def cast_float(self, x):
        return x.astype(np.float32)


class TorchOps:
    """torch's own fused functions where it has them (F.layer_norm, F.gelu, softmax)."""

    def __init__(self, torch):
        functional = torch.nn.functional
        self.add, self.mul, self.matmul = torch.add, torch.mul, torch.matmul
        self.relu, self.sigmoid, self.tanh = torch.relu, torch.sigmoid, torch.tanh
        self.erf = torch.erf
        self.gelu_erf = functional.gelu
        self.gelu_tanh = lambda x: functional.gelu(x, approximate="tanh")
        self.softmax = lambda x, axis=-1: torch.softmax(x, axis)
        self.layer_norm = lambda x, gamma, beta, epsilon=EPSILON: functional.layer_norm(
            x, x.shape[-1:], gamma, beta, epsilon)
        self.transpose = lambda x, perm: x.permute(perm)
        self.cast_float = lambda x: x.float()


class JaxOps:
    """jax.numpy and jax.nn; layer norm as flax writes it (jax has none of its own)."""

    def __init__(self, jax):
        jnp = jax.numpy
        self.add, self.mul, self.matmul, self.tanh = jnp.add, jnp.multiply, jnp.matmul, jnp.tanh
        self.relu, self.sigmoid, self.erf = jax.nn.relu, jax.nn.sigmoid, jax.lax.erf
        self.gelu_erf = lambda x: jax.nn.gelu(x, approximate=False)
        self.gelu_tanh = lambda x: jax.nn.gelu(x, approximate=True)
        self.softmax = lambda x, axis=-1: jax.nn.softmax(x, axis=axis)
        self.transpose = jnp.transpose
        self.cast_float = lambda x: x.astype(jnp.float32)
        self.rsqrt = jax.lax.rsqrt

    def layer_norm(self, x, gamma, beta, epsilon=EPSILON):
        mean = x.mean(axis=-1, keepdims=True)
        variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) * self.rsqrt(variance + epsilon) * gamma + beta


ONNX_NODES = {"add": "Add", "mul": "Mul", "matmul": "MatMul", "relu": "Relu", "sigmoid": "Sigmoid",
              "tanh": "Tanh"}


class OnnxOps:
    """Builds an opset-17 ONNX graph, each op spelled as torch's TorchScript exporter writes
    it, so onnxruntime's fusions (LayerNorm, Gelu, FastGelu, BiasGelu) meet their patterns."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.initializers = onnx, [], []

    def parameter(self, name, array):
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def _scalar(self, number):
        return self.parameter(f"scalar{len(self.initializers)}", np.array(number, np.float32))

    def _node(self, op, *inputs, **attributes):
        output = f"{op.lower()}{len(self.nodes)}"
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [output], **attributes))
        return output

    def __getattr__(self, op):
        # add, mul, matmul, relu, sigmoid, tanh: one ONNX node each
        if op in ONNX_NODES:
            return lambda *inputs: self._node(ONNX_NODES[op], *inputs)
        raise AttributeError(op)

    def layer_norm(self, x, gamma, beta, epsilon=EPSILON):
        return self._node("LayerNormalization", x, gamma, beta, axis=-1, epsilon=epsilon)

    def softmax(self, x, axis=-1):
        return self._node("Softmax", x, axis=axis)

    def gelu_erf(self, x):
        erf = self._node("Erf", self._node("Div", x, self._scalar(SQRT2)))
        return self.mul(self.mul(x, self.add(erf, self._scalar(1.0))), self._scalar(0.5))

    def gelu_tanh(self, x):
        # GPT-2's NewGELU as exported: onnxruntime's FastGeluFusion matches this form
        # (Pow, not x * x * x; the 0.5 * x factor apart), unless its output is a graph output
        cube = self._node("Pow", x, self._scalar(3.0))
        inner = self.mul(self._scalar(TANH_GELU_BETA),
                         self.add(x, self.mul(self._scalar(TANH_GELU_KAPPA), cube)))
        return self.mul(self.mul(self._scalar(0.5), x),
                        self.add(self._scalar(1.0), self.tanh(inner)))

    def model(self, inputs, output):
        """The serialized model taking `inputs` ({name: example array}) to `output`."""
        helper, TensorProto = self.onnx.helper, self.onnx.TensorProto
        # a leading batch dim of 1, as exported models have ([batch, seq, hidden]):
        # onnxruntime fuses Add + LayerNormalization into SkipLayerNormalization for 3-D only
        declared = [helper.make_tensor_value_info(name, TensorProto.FLOAT, (1, *array.shape))
                    for name, array in inputs.items()]
        result = helper.make_tensor_value_info(output, TensorProto.FLOAT, None)
        graph = helper.make_graph(self.nodes, "case", declared, [result], self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        # IR 8 is the oldest that carries opset 17: any onnxruntime that runs opset 17 loads it
        model.ir_version = 8
        return model.SerializeToString()


class QuiltcOps:
    """Builds a quiltc Graph from its primitives and composites."""

    def __init__(self, graph):
        self.graph = graph

    def __getattr__(self, op):
        # add, mul, matmul, relu, sigmoid, tanh, gelu_erf, gelu_tanh: the Graph's methods
        return getattr(self.graph, op)

    def layer_norm(self, x, gamma, beta, epsilon=EPSILON):
        return self.graph.layer_norm(x, gamma, beta, epsilon=epsilon)

    def softmax(self, x, axis=-1):
        return self.graph.softmax(x, axis=axis)


# ------------------------------------------------------------------- the synthetic cases


def layer_norm(ops, x, gamma, beta):
    return ops.layer_norm(x, gamma, beta)


def softmax(ops, x):
    return ops.softmax(x)


def bias_gelu_tanh(ops, x, bias):
    return ops.gelu_tanh(ops.add(x, bias))


def bias_gelu_erf(ops, x, bias):
    return ops.gelu_erf(ops.add(x, bias))


def residual_layer_norm(ops, x, residual, gamma, beta):
    return ops.layer_norm(ops.add(x, residual), gamma, beta)


def matmul_bias_gelu(ops, x, weight, bias):
    return ops.gelu_erf(ops.add(ops.matmul(x, weight), bias))


def branches(ops, x, a, b, c):
    """relu(x * a) + sigmoid(x + b) + tanh(x) * c: three independent branches of one input,
    each with its own per-column constant."""
    return ops.add(ops.add(ops.relu(ops.mul(x, a)), ops.sigmoid(ops.add(x, b))),
                   ops.mul(ops.tanh(x), c))


@dataclass
class ComposedCase:
    """A case written once against `ops`: `inputs` are fed at each call, `params` are
    weights (initializers in ONNX, constants in quiltc, arguments in torch and jax). Its
    ONNX model takes the inputs with a leading batch dim of 1 (onnx_batch_of_one)."""

    name: str
    math: object
    inputs: dict
    params: dict
    memory_bound: bool
    tolerance: tuple = STRICT
    flops: float = 0.0
    note: str = ""
    onnx_batch_of_one = True

    def function(self, ops):
        """f(arrays) -> output in `ops`'s array library; arrays holds inputs and params."""
        return lambda arrays: self.math(ops, **arrays)

    def onnx_model(self, onnx):
        """The case as a serialized ONNX model."""
        builder = OnnxOps(onnx)
        names = {name: builder.parameter(name, array) for name, array in self.params.items()}
        names.update({name: name for name in self.inputs})
        return builder.model(self.inputs, self.math(builder, **names))

    def quiltc_graph(self, qc):
        """The case as a quiltc Graph with concrete shapes."""
        graph = qc.graph.Graph()
        values = {name: graph.input(name, array.shape) for name, array in self.inputs.items()}
        values.update({name: graph.constant(name, array) for name, array in self.params.items()})
        graph.output(self.math(QuiltcOps(graph), **values))
        return graph


def composed_cases(quick):
    """The seven synthetic cases at full size, or a few rows of each for --quick."""
    rng = np.random.default_rng(0)
    rows = 256 if quick else 4096

    def normal(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    hidden, wide = 768, 3072
    gamma, beta = 1 + normal(hidden, scale=0.1), normal(hidden, scale=0.1)
    weight = normal(hidden, wide, scale=1 / math.sqrt(hidden))  # unit-variance outputs
    return [
        ComposedCase("layer_norm", layer_norm, {"x": normal(rows, hidden)},
                     {"gamma": gamma, "beta": beta}, memory_bound=True),
        ComposedCase("softmax", softmax, {"x": normal(3 * rows, 128, scale=2.0)}, {},
                     memory_bound=True),
        ComposedCase("bias_gelu_tanh", bias_gelu_tanh, {"x": normal(rows, wide)},
                     {"bias": normal(wide, scale=0.1)}, memory_bound=True,
                     note="onnxruntime runs this GELU unfused: its FastGeluFusion refuses a GELU "
                          "whose output is a graph output"),
        ComposedCase("bias_gelu_erf", bias_gelu_erf, {"x": normal(rows, wide)},
                     {"bias": normal(wide, scale=0.1)}, memory_bound=True, tolerance=APPROXIMATE),
        ComposedCase("residual_layer_norm", residual_layer_norm,
                     {"x": normal(rows, hidden), "residual": normal(rows, hidden)},
                     {"gamma": gamma, "beta": beta}, memory_bound=True),
        ComposedCase("matmul_bias_gelu", matmul_bias_gelu, {"x": normal(rows, hidden)},
                     {"weight": weight, "bias": normal(wide, scale=0.1)}, memory_bound=False,
                     tolerance=APPROXIMATE, flops=2.0 * rows * hidden * wide),
        ComposedCase("branches", branches, {"x": normal(rows, hidden)},
                     {"a": normal(hidden), "b": normal(hidden), "c": normal(hidden)},
                     memory_bound=True),
    ]


def select(names, quick, bert_path):
    """The cases named in `names` (comma-separated; None for all), built at full or --quick
    size; the BERT layer only when its file and the onnx package are there."""
    cases = {case.name: case for case in composed_cases(quick)}
    wanted = names.split(",") if names else [*cases, "bert_base_layer"]
    unknown = set(wanted) - {*cases, "bert_base_layer"}
    if unknown:
        raise SystemExit(f"unknown cases {', '.join(sorted(unknown))}; known: "
                         f"{', '.join(cases)}, bert_base_layer")
    if "bert_base_layer" in wanted:
        try:
            import onnx
        except ImportError:
            print("bert_base_layer skipped: onnx is not importable (pip install -e '.[bench]')")
        else:
            import fusion_bert  # it builds on this module's vocabulary

            if bert_path.exists():
                cases["bert_base_layer"] = fusion_bert.bert_case(bert_path, quick, onnx)
            else:
                print(f"bert_base_layer skipped: {bert_path} does not exist (--bert PATH)")
    return [cases[name] for name in wanted if name in cases]
