"""The graph IR: a DAG of primitive ops (primitives.py) over tensors whose dims may be
symbolic sizes (`qc.var`), built in Python and printed as one line per op.

    T = qc.var("T", 1, 512)
    g = qc.graph.Graph()
    x = g.input("x", (T, 768))
    gamma, beta = g.constant("gamma", np.ones(768, np.float32)), g.constant("beta", ...)
    g.output(g.layer_norm(x, gamma, beta))
    print(g)                      # one line per op: name = op(inputs) : shape dtype
    g.evaluate(x=np.ones((5, 768), np.float32))   # op by op in numpy: the reference

Composite builders (`layer_norm`, `softmax`, `log_softmax`, `gelu_tanh`, `gelu_erf`) emit
primitives, so a graph holds nothing the partitioner does not know. Every node checks its
inputs' shapes and dtypes as it is added: a ShapeError names the node.
"""

from dataclasses import dataclass, field

import numpy as np
import sympy

from ..ir.errors import LanguageError, ShapeError
from .primitives import PRIMITIVES, output_shape


@dataclass(frozen=True, eq=False)
class Value:
    """A tensor of the graph: its name, shape (ints and size expressions) and numpy dtype."""

    name: str
    shape: tuple
    dtype: np.dtype

    def __repr__(self):
        dims = ", ".join(str(dim) for dim in self.shape)
        return f"{self.name}: [{dims}] {self.dtype}"


@dataclass(frozen=True, eq=False)
class Node:
    """One primitive op: `op` applied to `inputs` (Values) with `attrs`, giving `output`."""

    op: str
    inputs: tuple
    attrs: dict
    output: Value

    def __str__(self):
        arguments = [value.name for value in self.inputs]
        arguments += [f"{key}={value}" for key, value in sorted(self.attrs.items())]
        dims = ", ".join(str(dim) for dim in self.output.shape)
        return (f"{self.output.name} = {self.op}({', '.join(arguments)})"
                f"  : [{dims}] {self.output.dtype}")


@dataclass
class Graph:
    """A graph under construction: inputs, constants, nodes in the order added (which is
    a topological order) and outputs."""

    inputs: list = field(default_factory=list)
    constants: dict = field(default_factory=dict)
    nodes: list = field(default_factory=list)
    outputs: list = field(default_factory=list)

    # ------------------------------------------------------------------ sources and sinks

    def _name(self, name, prefix):
        taken = {value.name for value in self.inputs} | set(self.constants)
        taken |= {node.output.name for node in self.nodes}
        if name is not None:
            if name in taken:
                raise LanguageError(f"the graph already has a value called {name!r}")
            return name
        number = len(taken)
        while f"{prefix}{number}" in taken:
            number += 1
        return f"{prefix}{number}"

    def input(self, name, shape, dtype="float32"):
        """A graph input: the caller passes an array of `shape` (sizes bound at the call)."""
        value = Value(self._name(name, "input"), tuple(shape), np.dtype(dtype))
        self.inputs.append(value)
        return value

    def constant(self, name, array):
        """A constant tensor (a weight): its values are part of the graph."""
        array = np.asarray(array)
        value = Value(self._name(name, "constant"), array.shape, array.dtype)
        self.constants[value.name] = (value, array)
        return value

    def output(self, *values):
        """Mark `values` as the graph's outputs, in order."""
        self.outputs.extend(values)

    # ------------------------------------------------------------------------ primitives

    def apply(self, op, *inputs, name=None, **attrs):
        """Add primitive `op` on `inputs` (Values); returns its output Value."""
        if op not in PRIMITIVES:
            raise LanguageError(f"{op!r} is not a primitive op; known: {', '.join(PRIMITIVES)}")
        arity = PRIMITIVES[op].arity
        if (len(inputs) != arity) if arity is not None else not inputs:
            wanted = arity if arity is not None else "one or more"
            raise LanguageError(f"{op} takes {wanted} inputs, got {len(inputs)}")
        name = self._name(name, "t")
        where = f"{op} {name}"
        self._check_dtypes(op, inputs, where)
        if PRIMITIVES[op].kind == "reduce":
            attrs["axes"] = _axes(attrs.get("axes"), len(inputs[0].shape), where)
            attrs.setdefault("keepdims", True)
        shape = output_shape(op, [value.shape for value in inputs], attrs, where)
        dtype = np.dtype(_result_dtype(op, inputs, attrs))
        node = Node(op, tuple(inputs), attrs, Value(name, shape, dtype))
        self.nodes.append(node)
        return node.output

    @staticmethod
    def _check_dtypes(op, inputs, where):
        if op == "where" and inputs[0].dtype != np.bool_:
            raise ShapeError(f"{where}: the condition {inputs[0].name} is {inputs[0].dtype}; "
                             "it must be bool (compare with equal, or cast it)")
        if op == "gather" and not np.issubdtype(inputs[1].dtype, np.integer):
            raise ShapeError(f"{where}: the indices {inputs[1].name} are {inputs[1].dtype}; "
                             "they must be integers (cast them)")
        data = {"where": inputs[1:], "gather": inputs[:1]}.get(op, inputs)
        if len({value.dtype for value in data}) > 1:
            kinds = ", ".join(f"{value.name} {value.dtype}" for value in data)
            raise ShapeError(f"{where}: inputs of different dtypes ({kinds}); cast one first")

    def __getattr__(self, op):
        # g.add(a, b), g.exp(x), g.reduce_sum(x, axes=(1,)) ...: one method per primitive.
        if op in PRIMITIVES:
            return lambda *inputs, **attrs: self.apply(op, *inputs, **attrs)
        raise AttributeError(op)

    # ------------------------------------------------------------------------ composites

    def scalar(self, number, like):
        """A constant of one element, of `like`'s dtype, broadcasting against it."""
        return self.constant(None, np.array(number, dtype=like.dtype))

    def softmax(self, x, axis=-1):
        """exp(x - max) / sum(exp(x - max)) along `axis`. The max only keeps exp from
        overflowing, so it may pass over a NaN (reduce_nanmax): the NaN's own exp still
        makes the row's sum, and so the whole row, NaN, as numpy's softmax does."""
        axis = axis % len(x.shape)
        shifted = self.sub(x, self.reduce_nanmax(x, axes=(axis,)))
        exps = self.exp_nonpositive(shifted)
        return self.div(exps, self.reduce_sum(exps, axes=(axis,)))

    def log_softmax(self, x, axis=-1):
        """log(softmax(x)) along `axis`, as x - max - log(sum(exp(x - max))) so that it
        neither overflows nor takes the log of an underflowed 0 (NaN as in softmax)."""
        axis = axis % len(x.shape)
        shifted = self.sub(x, self.reduce_nanmax(x, axes=(axis,)))
        total = self.reduce_sum(self.exp_nonpositive(shifted), axes=(axis,))
        return self.sub(shifted, self.log(total))

    def layer_norm(self, x, gamma, beta, epsilon=1e-5, axis=-1):
        """(x - mean) / sqrt(variance + epsilon) * gamma + beta along `axis`."""
        axis = axis % len(x.shape)
        centered = self.sub(x, self.reduce_mean(x, axes=(axis,)))
        variance = self.reduce_mean(self.mul(centered, centered), axes=(axis,))
        spread = self.sqrt(self.add(variance, self.scalar(epsilon, x)))
        return self.add(self.mul(self.div(centered, spread), gamma), beta)

    def gelu_erf(self, x):
        """x / 2 * (1 + erf(x / sqrt 2)), GELU as BERT's exporters write it."""
        inner = self.erf(self.mul(x, self.scalar(1 / np.sqrt(2), x)))
        return self.mul(self.mul(x, self.scalar(0.5, x)), self.add(inner, self.scalar(1, x)))

    def gelu_tanh(self, x):
        """x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3))), GELU's tanh form,
        computed as x * sigmoid(2 sqrt(2 / pi) * (x + 0.044715 x^3)): the same function
        ((1 + tanh(u)) / 2 = sigmoid(2u)) for one exp and no cancellation of 1 + tanh(u)."""
        cubed = self.mul(self.mul(x, x), x)
        inner = self.add(x, self.mul(cubed, self.scalar(0.044715, x)))
        return self.mul(x, self.sigmoid(self.mul(inner, self.scalar(2 * np.sqrt(2 / np.pi), x))))

    # -------------------------------------------------------------------------- reading

    def __str__(self):
        lines = [f"graph({', '.join(map(repr, self.inputs))}):"]
        for value, array in self.constants.values():
            scalar = f" = {array.reshape(())[()]!s}" if array.size == 1 else ""
            lines.append(f"    const {value!r}{scalar}")
        lines += [f"    {node}" for node in self.nodes]
        lines.append(f"    return {', '.join(value.name for value in self.outputs)}")
        return "\n".join(lines)

    def evaluate(self, **arrays):
        """The outputs for input `arrays` (by input name), each op run in numpy in turn: the
        reference every fused module is checked against. One array, or a tuple."""
        sizes = self._bind_sizes(arrays)
        values = {name: array for name, (_, array) in self.constants.items()}
        values.update({value.name: np.asarray(arrays[value.name]) for value in self.inputs})
        for node in self.nodes:
            shape = tuple(int(sympy.sympify(dim).xreplace(sizes)) for dim in node.output.shape)
            inputs = [values[value.name] for value in node.inputs]
            with np.errstate(all="ignore"):
                result = PRIMITIVES[node.op].compute(inputs, node.attrs, shape)
            values[node.output.name] = np.asarray(result).astype(node.output.dtype, copy=False)
        results = tuple(values[value.name] for value in self.outputs)
        return results[0] if len(results) == 1 else results

    def _bind_sizes(self, arrays):
        """{size: int} from the input arrays' shapes; ShapeError on a missing, misshapen
        or out-of-range input."""
        sizes = {}
        for value in self.inputs:
            if value.name not in arrays:
                raise ShapeError(f"missing input {value.name!r}; the graph takes "
                                 f"{', '.join(v.name for v in self.inputs)}")
            actual = np.shape(arrays[value.name])
            if len(actual) != len(value.shape):
                raise ShapeError(f"input {value.name!r} has shape {actual}, expected rank "
                                 f"{len(value.shape)} ({value!r})")
            for dim, extent in zip(value.shape, actual):
                dim = sympy.sympify(dim)
                if dim.is_Symbol and dim not in sizes:
                    sizes[dim] = extent
                if int(dim.xreplace(sizes)) != extent:
                    raise ShapeError(f"input {value.name!r} has shape {actual}, expected "
                                     f"{value!r} with {_bound(sizes)}")
        for size, extent in sizes.items():
            lo, hi = getattr(size, "range", (extent, extent))
            if not lo <= extent <= hi:
                raise ShapeError(f"size {size} = {extent} is outside its range [{lo}, {hi}]")
        return sizes


def _bound(sizes):
    return ", ".join(f"{size} = {extent}" for size, extent in sizes.items()) or "no sizes"


def _axes(axes, rank, where):
    """`axes` (ints, negative from the end) as a sorted tuple of nonnegative axes."""
    if axes is None:
        return tuple(range(rank))
    normalized = tuple(sorted({axis % rank for axis in axes}))
    if any(not -rank <= axis < rank for axis in axes):
        raise ShapeError(f"{where}: axes {tuple(axes)} out of range for rank {rank}")
    return normalized


def _result_dtype(op, inputs, attrs):
    if op == "equal":
        return np.bool_
    if op == "cast":
        return attrs["dtype"]
    return (inputs[1] if op == "where" else inputs[0]).dtype
