"""Lowering: a graph of tensors becomes one kernel of naive loop nests, one nest per
compute in dependency order. Placeholders and outputs become parameters; intermediate
tensors become buffers allocated around the whole body. Reductions lower to a `Reduce`
statement whose initialisation runs at the reduction's first iteration (`decompose`
moves it out); a reduction whose axis may be empty is lowered already decomposed."""

import sympy

from ..ir import nodes as ir
from ..ir.dtypes import identity
from ..ir.errors import LanguageError
from ..ir.index import bounds, symbol
from ..ir.layout import Ragged
from ..ir.walk import substitute
from .tensor import ReduceExpr, loop_extents


def _topological(outputs):
    order, state = [], {}

    def visit(tensor):
        mark = state.get(id(tensor))
        if mark == "done":
            return
        if mark == "active":
            raise LanguageError(f"tensor {tensor.name} depends on itself")
        state[id(tensor)] = "active"
        for source in tensor.inputs:
            visit(source)
        state[id(tensor)] = "done"
        order.append(tensor)

    for tensor in outputs:
        visit(tensor)
    names = {}
    for tensor in order:
        if names.setdefault(tensor.name, tensor) is not tensor:
            raise LanguageError(
                f"two different tensors are both named {tensor.name!r}; give each a unique name"
            )
    return order


class _Names:
    """Hands out loop variable names, renaming a repeat `i` to `i_1`, `i_2`, ..."""

    def __init__(self, taken):
        self.taken = set(taken)

    def fresh(self, name):
        candidate, n = name, 0
        while candidate in self.taken:
            n += 1
            candidate = f"{name}_{n}"
        self.taken.add(candidate)
        return symbol(candidate)


def _may_be_empty(extent, size_ranges, spatial_extents):
    # Inside the stage's own loop over the same extent, that extent is at least 1.
    if extent in spatial_extents:
        return False
    lowest, _ = bounds(extent, {s: (sympy.Integer(lo), sympy.Integer(hi))
                                for s, (lo, hi) in size_ranges.items()})
    return not (lowest.is_Integer and lowest >= 1)


def _lower_stage(tensor, names, size_ranges):
    renaming = {axis: names.fresh(axis.name) for axis in tensor.axes}
    indices = tuple(renaming[axis] for axis in tensor.axes)
    loop_vars = list(indices)
    extents = loop_extents(tensor.shape, loop_vars)
    body = tensor.body
    init = None
    if isinstance(body, ReduceExpr):
        # A ragged reduction's extent names the batch axis, renamed like the others.
        reduce_axes = tuple((names.fresh(axis.name), sympy.sympify(extent).xreplace(renaming))
                            for axis, extent in body.axes)
        renaming.update({old: new for (old, _), (new, _) in zip(body.axes, reduce_axes)})
        value = substitute(body.value, renaming)
        init_when = tuple(v for v, _ in reduce_axes)
        # An empty reduction never reaches its first iteration, so its identity is stored
        # up front by a nest of its own (what `decompose` does) whenever an axis may be empty.
        if any(_may_be_empty(extent, size_ranges, set(extents)) for _, extent in reduce_axes):
            init_when = ()
            init = ir.Store(tensor.buffer, indices,
                            ir.as_value(identity(body.combiner, tensor.dtype), tensor.dtype))
        stmt = ir.Reduce(tensor.buffer, indices, body.combiner, value, init_when)
        for loop_var, extent in reversed(reduce_axes):
            stmt = ir.For(loop_var, extent, stmt)
    else:
        stmt = ir.Store(tensor.buffer, indices, substitute(body, renaming))
    for loop_var, extent in reversed(list(zip(loop_vars, extents))):
        stmt = ir.For(loop_var, extent, stmt)
    if init is not None:
        init_renaming = {v: names.fresh(f"{v.name}_init") for v in loop_vars}
        init = substitute(init, init_renaming)
        for loop_var, extent in reversed(list(zip(loop_vars, extents))):
            init = ir.For(init_renaming[loop_var],
                          sympy.sympify(extent).xreplace(init_renaming), init)
        stmt = ir.seq(init, stmt)
    return stmt


def _ragged_tables(tensors):
    """The kernel's ragged dims and the prelude's prefix-sum tables its buffers read."""
    dims, prelude = {}, {}
    for tensor in tensors:
        for extent in tensor.shape:
            if isinstance(extent, ir.RaggedDim):
                if dims.setdefault(extent.name, extent) != extent:
                    raise LanguageError(
                        f"ragged dim {extent.name} is declared twice with different batches or "
                        "maxima; declare it once and reuse it"
                    )
        layout = tensor.buffer.layout
        if isinstance(layout, Ragged):
            dim = dims[layout.dim]
            prelude[layout.offsets_table] = ir.PrefixSum(
                layout.offsets_table, dim.lengths_table, len(layout.ragged), dim.batch)
    return tuple(dims.values()), tuple(prelude[name] for name in sorted(prelude))


def lower(outputs, name="kernel"):
    """The naive kernel computing `outputs` (a tensor or list of tensors)."""
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    if not outputs:
        raise LanguageError("lower() needs at least one output tensor")
    for tensor in outputs:
        if tensor.is_placeholder:
            raise LanguageError(f"output {tensor.name} is a placeholder; outputs must be computes")
    order = _topological(outputs)
    size_ranges = {}
    for tensor in order:
        for size, rng in tensor.size_ranges.items():
            if size_ranges.setdefault(size, rng) != rng:
                raise LanguageError(f"size {size} is declared with ranges "
                                    f"{size_ranges[size]} and {rng}")
    names = _Names(str(size) for size in size_ranges)
    stages = [_lower_stage(t, names, size_ranges) for t in order if not t.is_placeholder]
    body = ir.seq(*stages)
    output_ids = {id(t) for t in outputs}
    for tensor in reversed(order):
        if not tensor.is_placeholder and id(tensor) not in output_ids:
            body = ir.Alloc(tensor.buffer, "global", body)
    inputs = [t.buffer for t in order if t.is_placeholder]
    for buffer in inputs + [t.buffer for t in outputs]:
        if buffer.is_ragged and buffer.layout.ragged != (1,):
            raise LanguageError(
                f"{buffer.name} is an input or output with ragged dims at "
                f"{list(buffer.layout.ragged)}; arguments hold one ragged dim right after the "
                "batch, (B, L, dense...), as a RaggedArray does: keep (B, L, L) tensors "
                "inside the program"
            )
    shape_vars = tuple(ir.ShapeVar(size, lo, hi) for size, (lo, hi) in size_ranges.items())
    ragged_dims, prelude = _ragged_tables(order)
    return ir.Kernel(
        name=name,
        params=tuple(inputs + [t.buffer for t in outputs]),
        body=body,
        outputs=tuple(t.name for t in outputs),
        shape_vars=shape_vars,
        prelude=prelude,
        ragged_dims=ragged_dims,
    )
