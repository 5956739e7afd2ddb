"""Lowering: a graph of tensors becomes one kernel of naive loop nests, one nest per
compute in dependency order. Placeholders and outputs become parameters; intermediate
tensors become buffers allocated around the whole body. Reductions lower to a `Reduce`
statement whose initialisation runs at the reduction's first iteration (`decompose`
moves it out); a reduction whose axis may be empty is lowered already decomposed.
Each axis becomes a loop variable of its own and each size the kernel's plain symbol of
its name; every ragged dim the kernel uses must be an argument's, since the caller
passes lengths only with ragged arguments."""

import sympy

from ..ir import nodes as ir
from ..ir.dtypes import identity
from ..ir.errors import LanguageError
from ..ir.index import bounds, symbol
from ..ir.layout import Ragged
from ..ir.walk import rewrite, substitute
from .symbols import Axis, merge_sizes, sizes_in, to_kernel
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


def _in_kernel(tensor, renaming, sizes):
    """Index expressions of `tensor`'s stage as the kernel spells them: its axes renamed to
    their loop variables, sizes as plain symbols (checked against the program's `sizes`);
    an axis left over is not bound by this stage."""

    def convert(expr):
        if not isinstance(expr, sympy.Basic):
            return expr
        merge_sizes(sizes, {size.name: size for size in sizes_in(expr)})
        expr = to_kernel(expr.xreplace(renaming))
        stray = sorted(a.name for a in expr.atoms(Axis))
        if stray:
            raise LanguageError(
                f"{tensor.name} uses index {stray[0]}, which is neither one of its own axes "
                "nor an axis it reduces over; pass a reduce axis in axis= of the reduction "
                "that uses it, or index with the compute's own lambda parameters"
            )
        return expr

    return convert


def _lower_stage(tensor, names, sizes, size_ranges):
    renaming = {axis: names.fresh(axis.name) for axis in tensor.axes}
    indices = tuple(renaming[axis] for axis in tensor.axes)
    loop_vars = list(indices)
    extents = [to_kernel(e) for e in loop_extents(tensor.shape, loop_vars)]
    body = tensor.body
    init = None
    convert = _in_kernel(tensor, renaming, sizes)
    if isinstance(body, ReduceExpr):
        # A ragged reduction's extent names the batch axis, renamed like the others.
        reduce_axes = tuple((names.fresh(axis.name), convert(sympy.sympify(extent)))
                            for axis, extent in body.axes)
        renaming.update({old: new for (old, _), (new, _) in zip(body.axes, reduce_axes)})
        value = rewrite(body.value, lambda node: node, convert)
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
        stmt = ir.Store(tensor.buffer, indices, rewrite(body, lambda node: node, convert))
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


def _ragged_dims(tensor):
    """The ragged dims `tensor` needs the lengths of: in its shape and its reductions."""
    extents = list(tensor.shape)
    if isinstance(tensor.body, ReduceExpr):
        extents += [axis.extent for axis, _ in tensor.body.axes]
    return [e.of if isinstance(e, ir.CausalDim) else e for e in extents
            if isinstance(e, (ir.RaggedDim, ir.CausalDim))]


def _kernel_dim(dim):
    return ir.RaggedDim(dim.name, to_kernel(dim.batch), dim.max)


def _ragged_tables(tensors, params):
    """The kernel's ragged dims and the prelude's prefix-sum tables its buffers read. The
    caller passes a ragged dim's lengths only with a ragged argument (a qc.RaggedArray),
    so each dim the kernel uses must be the ragged dim of an argument."""
    dims, users, prelude = {}, {}, {}
    for tensor in tensors:
        for dim in _ragged_dims(tensor):
            if dims.setdefault(dim.name, dim) != dim:
                raise LanguageError(
                    f"ragged dim {dim.name} is declared twice with different batches or "
                    "maxima; declare it once and reuse it"
                )
            users.setdefault(dim.name, tensor.name)
        layout = tensor.buffer.layout
        if isinstance(layout, Ragged):
            dim = _kernel_dim(dims[layout.dim])
            prelude[layout.offsets_table] = layout.prefix_sum(dim.batch)
    carried = {name for p in params if p.is_ragged for name in p.layout.dim_names}
    for name, dim in dims.items():
        if name not in carried:
            raise LanguageError(
                f"ragged dim {name} sets an extent of {users[name]}, but no input or output "
                f"of the kernel is ragged over {name}, so the caller has no way to pass its "
                f"lengths; read an input ragged over it (qc.placeholder(({dim.batch}, {name}, "
                f"...))) or output a tensor ragged over it, which the caller passes as a "
                "qc.RaggedArray"
            )
    kernel_dims = tuple(_kernel_dim(dim) for dim in dims.values())
    return kernel_dims, tuple(prelude[name] for name in sorted(prelude))


def _check_sizes_bound(size_ranges, params):
    """Every size must appear in an argument's shape: a call binds sizes from the shapes
    of the arrays it is given, and has nothing else to bind one from."""
    shown = set()
    for buffer in params:
        for extent in buffer.shape:
            shown |= sympy.sympify(extent).free_symbols
    for size in size_ranges:
        if size not in shown:
            raise LanguageError(
                f"size {size} is used by the program but no input or output has a dimension "
                f"of size {size}, so a call has no array to read it from; give an input a "
                f"dimension of size {size}, or use a constant")


def lower(outputs, name="kernel"):
    """The naive kernel computing `outputs` (a tensor or list of tensors)."""
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    if not outputs:
        raise LanguageError("lower() needs at least one output tensor")
    for tensor in outputs:
        if tensor.is_placeholder:
            raise LanguageError(f"output {tensor.name} is a placeholder; outputs must be computes")
    order = _topological(outputs)
    sizes = {}
    for tensor in order:
        merge_sizes(sizes, tensor.sizes)
    size_ranges = {symbol(name): size.range for name, size in sizes.items()}
    names = _Names(sizes)
    stages = [_lower_stage(t, names, sizes, size_ranges) for t in order if not t.is_placeholder]
    body = ir.seq(*stages)
    output_ids = {id(t) for t in outputs}
    for tensor in reversed(order):
        if not tensor.is_placeholder and id(tensor) not in output_ids:
            body = ir.Alloc(tensor.buffer, "global", body)
    inputs = [t.buffer for t in order if t.is_placeholder]
    _check_sizes_bound(size_ranges, inputs + [t.buffer for t in outputs])
    shape_vars = tuple(ir.ShapeVar(size, lo, hi) for size, (lo, hi) in size_ranges.items())
    ragged_dims, prelude = _ragged_tables(order, inputs + [t.buffer for t in outputs])
    return ir.Kernel(
        name=name,
        params=tuple(inputs + [t.buffer for t in outputs]),
        body=body,
        outputs=tuple(t.name for t in outputs),
        shape_vars=shape_vars,
        prelude=prelude,
        ragged_dims=ragged_dims,
    )
