"""A partition of the graph becomes a tensor-language program: each primitive one
`qc.compute` stage, defined by its index map.

    elementwise   out[i, j] = f(a[i, j], b[0, j])        (broadcast dims read index 0)
    reduce        out[i, 0] = sum_k x[i, k]               (a mean divides the sum by its count)
    injective     out[i, j] = x[j, i]                     (transpose; reshape maps dims group
                                                          by group, gather reads a table)
    opaque        out[i, j] = sum_k a[i, k] * b[k, j]    (matmul, batch dims broadcast)

Values produced outside the partition, and constants, become placeholders; a constant
of one element becomes a literal in the expressions that read it.
"""

import numpy as np
import sympy

from .. import lang as qc
from ..ir import nodes as ir
from ..ir.dtypes import as_dtype
from ..ir.errors import LanguageError
from .primitives import PRIMITIVES, element_count, same_dim, slice_range


def _literal_readers(partition, value):
    """Whether every op of `partition` reading `value` takes a number there: elementwise
    ops, and a gather's index."""
    return all(PRIMITIVES[node.op].kind == "elementwise"
               or (node.op == "gather" and node.inputs[0] is not value)
               for node in partition.nodes if value in node.inputs)


def _broadcast_read(tensor, axes):
    """`tensor` read at output `axes` under numpy broadcasting (trailing dims align; a
    dim of 1 where the output's is wider reads index 0)."""
    offset = len(axes) - len(tensor.shape)
    indices = []
    for position, dim in enumerate(tensor.shape):
        axis = axes[offset + position]
        indices.append(0 if same_dim(dim, 1) and not same_dim(axis.extent, 1) else axis)
    return tensor[tuple(indices)] if indices else tensor[0]


def _power(base, exponent):
    """base ** exponent: small integer exponents as products, 0.5 as sqrt, others through
    exp and log (numpy's meaning for positive bases)."""
    if isinstance(exponent, float) and exponent.is_integer() and 1 <= exponent <= 4:
        result = base
        for _ in range(int(exponent) - 1):
            result = result * base
        return result
    if exponent == 0.5:
        return qc.sqrt(base)
    return qc.exp(qc.log(base) * exponent)


ELEMENTWISE = {
    "neg": lambda x: x * -1,
    "exp": qc.exp,
    "exp_nonpositive": qc.exp_nonpositive,
    "log": qc.log,
    "sqrt": qc.sqrt,
    "reciprocal": lambda x: 1 / x,
    "erf": qc.erf,
    "tanh": qc.tanh,
    "sigmoid": lambda x: ir.Call("sigmoid", (x,)),
    "relu": lambda x: qc.maximum(x, 0),
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "maximum": qc.maximum,
    "minimum": qc.minimum,
    "equal": lambda a, b: ir.Bin("==", a, b),
    "where": qc.where,
}


class PartitionProgram:
    """The tensor program of one partition: `placeholders` and `stages` by value name,
    `outputs` (the tensors other partitions or the caller read), `final` (the names of
    those only the caller reads: `final_values` names them in the graph), and `literals`,
    the one-element constants spelled as numbers. A matmul's product is computed over rows
    and columns padded to multiples of `matmul_block` (rows, columns).

    Tensors take names from their position (inputs in0, in1...; the stage of the partition's
    n-th op vn), not from the graph, so partitions alike in all but names (the query, key
    and value projections) lower to equal kernels, scheduled once; `value_names` maps them
    back."""

    def __init__(self, partition, constants, matmul_block=(1, 1), final_values=()):
        self.matmul_block = matmul_block
        self.constant_names = set(constants)
        self.packed = {}
        self.staged = set()  # stages kept in memory whatever the schedule's policy
        self.placeholders, self.stages, self.literals = {}, {}, {}
        self.order = []  # every stage, producers first (a mean's sum included)
        self.canonical = {node.output.name: f"v{position}"
                          for position, node in enumerate(partition.nodes)}
        for node in partition.nodes:
            for value in node.inputs:
                if value.name in self.canonical or value.name in self.placeholders:
                    continue
                array = constants.get(value.name)
                if array is not None and array.size == 1 and _literal_readers(partition, value):
                    self.literals[value.name] = array.reshape(()).item()
                else:
                    self.canonical[value.name] = f"in{len(self.placeholders)}"
                    self.placeholders[value.name] = qc.placeholder(
                        value.shape, as_dtype(value.dtype), self.canonical[value.name])
        self.value_names = {name: value for value, name in self.canonical.items()}
        for node in partition.nodes:
            self.stages[node.output.name] = self._stage(node)
        self.outputs = [self.stages[value.name] for value in partition.outputs]
        self.final = frozenset(self.canonical[value.name] for value in partition.outputs
                               if value.name in final_values)

    def _compute(self, shape, body, name):
        """A stage of `shape` whose element is `body(axes)` (axes as one tuple), its loops
        named after the value."""
        tensor = qc.compute(shape, lambda *axes: body(axes), name,
                            axis_names=[f"{name}_{axis}" for axis in range(len(shape))])
        self.order.append(tensor)
        return tensor

    def tensor(self, value):
        """The tensor (placeholder or stage) holding `value`, or its literal."""
        if value.name in self.literals:
            return self.literals[value.name]
        return self.stages.get(value.name) or self.placeholders[value.name]

    def _read(self, value, axes):
        source = self.tensor(value)
        if not isinstance(source, qc.Tensor):
            return ir.Const(source, as_dtype(value.dtype))
        return _broadcast_read(source, axes)

    def _stage(self, node):
        name, shape, op = self.canonical[node.output.name], node.output.shape, node.op
        if op == "div" and node.output.dtype.kind == "f":
            return self._division(node, name)
        if op in ELEMENTWISE:
            return self._compute(shape, _elementwise(self, node), name)
        if op == "cast":
            dtype = as_dtype(node.attrs["dtype"])
            return self._compute(shape, (lambda axes: qc.cast(
                self._read(node.inputs[0], axes), dtype)), name)
        if op == "pow":
            exponent = self.literals.get(node.inputs[1].name)
            if exponent is None:
                raise LanguageError(
                    f"pow {node.output.name}: the exponent {node.inputs[1].name} must be a "
                    "constant of one element to compile; compute exp(y * log(x)) in the graph "
                    "instead")
            return self._compute(shape, (lambda axes: _power(
                self._read(node.inputs[0], axes), float(exponent))), name)
        if op.startswith("reduce_"):
            return self._reduction(node)
        if op == "matmul":
            return self._matmul(node)
        return self._compute(shape, (lambda axes: INJECTIVE[op](self, node, axes)), name)

    def _division(self, node, name):
        """a / b, as a * (1 / b) where b is one number or broadcasts (a row's sum or norm):
        the reciprocal is then computed once per number instead of a division per element
        (a vector division costs as much as ten multiplications), within an ulp of a / b."""
        numerator, divisor = node.inputs
        source = self.tensor(divisor)
        if not isinstance(source, qc.Tensor):
            scale = ir.Const(1.0 / source, as_dtype(divisor.dtype))
            return self._compute(node.output.shape, lambda axes: self._read(numerator, axes)
                                 * scale, name)
        if same_dim(element_count(divisor.shape), element_count(node.output.shape)):
            return self._compute(node.output.shape, _elementwise(self, node), name)
        reciprocal = self._compute(divisor.shape, lambda axes: 1 / source[axes],
                                   f"{name}_reciprocal")
        return self._compute(node.output.shape, lambda axes: self._read(numerator, axes)
                             * _broadcast_read(reciprocal, axes), name)

    def _reduction(self, node):
        source = self.tensor(node.inputs[0])
        reduced, keepdims = node.attrs["axes"], node.attrs["keepdims"]
        combiner = {"reduce_sum": qc.sum, "reduce_mean": qc.sum, "reduce_max": qc.max,
                    "reduce_nanmax": qc.nanmax}[node.op]
        name = self.canonical[node.output.name]

        def body(*axes):
            kept = iter(axes)
            indices, over = [], []
            for axis, dim in enumerate(source.shape):
                if axis in reduced:
                    over.append(qc.reduce_axis(dim, f"k{axis}"))
                    indices.append(over[-1])
                    if keepdims:
                        next(kept)
                else:
                    indices.append(next(kept))
            return combiner(source[tuple(indices)], axis=tuple(over))

        if node.op != "reduce_mean":
            return self._compute(node.output.shape, lambda axes: body(*axes), name)
        total = self._compute(node.output.shape, lambda axes: body(*axes), f"{name}_sum")
        count = sympy.Mul(*(source.shape[axis] for axis in reduced))
        scale = 1 / ir.Cast(as_dtype(node.output.dtype), ir.Index(count))
        return self._compute(node.output.shape, lambda axes: total[axes] * scale, name)

    def _matmul(self, node):
        """The product over a block-padded row x column range (rows and columns past the
        end read the last row or column, so every load stays in bounds), then the exact
        result copied out of it: the copy is where an epilogue applies, and with the
        padding the register block needs no guard inside its k loop."""
        left, right = (self.tensor(value) for value in node.inputs)
        depth = qc.reduce_axis(left.shape[-1], "k")
        *batch_shape, rows, columns = node.output.shape
        block_rows, block_columns = self.matmul_block
        padded = (*batch_shape, _padded(rows, block_rows), _padded(columns, block_columns))

        packed = self._packed_weights(node.inputs[1], block_columns)
        name = self.canonical[node.output.name]
        if packed is None and not same_dim(padded[-1], columns):
            # The right operand copied once with its columns padded (the last column
            # repeated): the register block then loads whole vectors of it, where a clamp
            # of each lane's column would gather them one by one.
            last = sympy.sympify(columns) - 1
            source = right
            right = self._compute((*source.shape[:-1], padded[-1]), lambda axes: source[
                (*axes[:-1], sympy.Min(axes[-1], last))], f"{name}_columns")
            self.staged.add(right.name)

        def product(axes):
            *batch, row, column = axes
            row = row if same_dim(padded[-2], rows) else sympy.Min(row, sympy.sympify(rows) - 1)
            a = _batch_read(left, batch, len(axes), (row, depth))
            if packed is not None:
                b = packed[column // block_columns, depth, column % block_columns]
            else:
                b = _batch_read(right, batch, len(axes), (depth, column))
            return qc.sum(a * b, axis=depth)

        block = self._compute(padded, product, f"{name}_block")
        return self._compute(node.output.shape, lambda axes: block[axes], name)


    def _packed_weights(self, value, columns):
        """A placeholder for constant matrix `value` packed in panels of `columns` columns,
        (N / columns, K, columns), so the register block reads each row of its panel from
        consecutive addresses (weights packed once, when the module is made, as inference
        libraries do); None when `value` is not such a constant. `packed` records
        {packed name: (constant name, columns)} for the module to fill in."""
        shape = value.shape
        if (value.name not in self.constant_names or len(shape) != 2
                or not all(isinstance(dim, int) for dim in shape) or shape[1] % columns):
            return None
        name = f"{value.name}__panels{columns}"
        if name not in self.placeholders:
            canonical = f"in{len(self.placeholders)}"
            self.placeholders[name] = qc.placeholder(
                (shape[1] // columns, shape[0], columns), as_dtype(value.dtype), canonical)
            self.value_names[canonical] = name
            self.packed[name] = (value.name, columns)
        return self.placeholders[name]


def pack_panels(array, columns):
    """`array` (K, N) as (N / columns, K, columns) panels; see _packed_weights."""
    depth, width = array.shape
    return np.ascontiguousarray(array.reshape(depth, width // columns, columns).transpose(1, 0, 2))


def _padded(extent, block):
    """`extent` rounded up to a multiple of `block`."""
    return block * sympy.floor((sympy.sympify(extent) + block - 1) / block)


def _batch_read(tensor, batch, out_rank, last_two):
    """`tensor` (a matmul operand) read at broadcast batch indices and `last_two`."""
    offset = out_rank - 2 - (len(tensor.shape) - 2)
    indices = []
    for position, dim in enumerate(tensor.shape[:-2]):
        axis = batch[offset + position]
        indices.append(0 if same_dim(dim, 1) and not same_dim(axis.extent, 1) else axis)
    return tensor[(*indices, *last_two)]


def _elementwise(program, node):
    function = ELEMENTWISE[node.op]
    return (lambda axes: function(*(program._read(value, axes) for value in node.inputs)))


def _transpose(program, node, axes):
    perm = node.attrs["perm"]
    indices = [None] * len(perm)
    for position, axis in enumerate(perm):
        indices[axis] = axes[position]
    return program.tensor(node.inputs[0])[tuple(indices)]


def dim_groups(source, target):
    """Pair runs of `source` dims with runs of `target` dims of equal products (a reshape
    splits or merges dims only inside a group): [(source positions, target positions)]."""
    groups, start_source, start_target = [], 0, 0
    position_source, position_target = 0, 0
    while position_source < len(source) or position_target < len(target):
        left = sympy.Mul(*source[start_source:position_source])
        right = sympy.Mul(*target[start_target:position_target])
        if position_source > start_source and position_target > start_target and same_dim(
                left, right):
            groups.append((range(start_source, position_source),
                           range(start_target, position_target)))
            start_source, start_target = position_source, position_target
            continue
        grow_source = position_target >= len(target) or (
            position_source < len(source) and _at_most(left, right))
        if grow_source:
            position_source += 1
        else:
            position_target += 1
    if start_source < len(source) or start_target < len(target):
        groups.append((range(start_source, len(source)), range(start_target, len(target))))
    return groups


def _at_most(left, right):
    difference = sympy.sympify(right) - sympy.sympify(left)
    return difference.is_nonnegative is True or (difference.is_number and difference >= 0)


def _reshape(program, node, axes):
    source = program.tensor(node.inputs[0])
    in_shape, out_shape = tuple(node.inputs[0].shape), tuple(node.output.shape)
    indices = [sympy.Integer(0)] * len(in_shape)
    for source_dims, target_dims in dim_groups(in_shape, out_shape):
        flat = sympy.Integer(0)
        for position in target_dims:
            flat = flat * out_shape[position] + axes[position]
        for position in reversed(source_dims):
            dim = sympy.sympify(in_shape[position])
            indices[position] = flat if position == source_dims[0] else sympy.Mod(flat, dim)
            flat = sympy.floor(flat / dim)
    return source[tuple(indices)]


def _slice(program, node, axes):
    source, value = program.tensor(node.inputs[0]), node.inputs[0]
    indices = []
    for dim, start, stop, step, axis in zip(value.shape, node.attrs["starts"],
                                            node.attrs["stops"], node.attrs["steps"], axes):
        first, _ = slice_range(dim, start, stop, step, f"slice {node.output.name}")
        indices.append(first + step * axis)
    return source[tuple(indices)]


def _expand(program, node, axes):
    return _broadcast_read(program.tensor(node.inputs[0]), axes)


def _concat(program, node, axes):
    axis = node.attrs["axis"]
    result, offset = None, sympy.Integer(0)
    pieces = []
    for value in node.inputs:
        extent = sympy.sympify(value.shape[axis])
        pieces.append((offset, extent, value))
        offset = offset + extent
    for start, extent, value in reversed(pieces):
        # Each piece is read at an index clamped into its own extent, so every load stays
        # in bounds whichever piece the select keeps.
        inside = sympy.Min(sympy.Max(axes[axis] - start, 0), extent - 1)
        indices = tuple(inside if position == axis else index
                        for position, index in enumerate(axes))
        read = program.tensor(value)[indices]
        result = read if result is None else qc.where(axes[axis] < start + extent, read, result)
    return result


def _gather(program, node, axes):
    data, positions = node.inputs
    axis = node.attrs["axis"]
    table = program.tensor(data)
    if not isinstance(table, qc.Tensor) or not table.is_placeholder:
        raise LanguageError(f"gather {node.output.name}: the table {data.name} must be an input "
                            "of the partition (the partitioner cuts before a gather)")
    rank = len(positions.shape)
    index = program.tensor(positions)
    extent = sympy.sympify(data.shape[axis])
    if not isinstance(index, qc.Tensor):
        # A constant index (BERT's exporter picks batch item 0 so) is a plain position.
        position = int(index)
        return table[(*axes[:axis], position + extent if position < 0 else position,
                      *axes[axis + rank:])]
    picked = ir.Cast(as_dtype("int64"), index[tuple(axes[axis:axis + rank])])
    # numpy's take counts a negative index from the end; one past either end (where numpy
    # raises) reads the nearest row rather than leave the table.
    wrapped = qc.where(picked < 0, picked + ir.Index(extent), picked)
    inside = qc.minimum(qc.maximum(wrapped, 0), ir.Index(extent - 1))
    return table[(*axes[:axis], inside, *axes[axis + rank:])]


INJECTIVE = {
    "transpose": _transpose,
    "reshape": _reshape,
    "slice": _slice,
    "expand": _expand,
    "concat": _concat,
    "gather": _gather,
}


def constant_arrays(graph):
    """{name: array} of the graph's constants."""
    return {name: np.asarray(array) for name, (_, array) in graph.constants.items()}
