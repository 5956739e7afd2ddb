"""Lowering: a graph of tensors becomes one kernel of naive loop nests, one nest per
compute in dependency order. Placeholders and outputs become parameters; intermediate
tensors become buffers allocated around the whole body. Reductions lower to a `Reduce`
statement whose initialisation runs at the reduction's first iteration (`decompose`
moves it out)."""

from .ir import nodes as ir
from .ir.errors import LanguageError
from .ir.index import symbol
from .ir.walk import substitute
from .lang import ReduceExpr


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


def _lower_stage(tensor, names):
    renaming = {axis: names.fresh(axis.name) for axis in tensor.axes}
    body = tensor.body
    reduce_axes = ()
    if isinstance(body, ReduceExpr):
        reduce_axes = tuple((names.fresh(axis.name), extent) for axis, extent in body.axes)
        renaming.update({old: new for (old, _), (new, _) in zip(body.axes, reduce_axes)})
        value = substitute(body.value, renaming)
        indices = tuple(renaming[axis] for axis in tensor.axes)
        stmt = ir.Reduce(
            tensor.buffer, indices, body.combiner, value, tuple(v for v, _ in reduce_axes)
        )
    else:
        value = substitute(body, renaming)
        stmt = ir.Store(tensor.buffer, tuple(renaming[axis] for axis in tensor.axes), value)
    for loop_var, extent in reversed(reduce_axes):
        stmt = ir.For(loop_var, extent, stmt)
    for axis, extent in reversed(list(zip(tensor.axes, tensor.shape))):
        stmt = ir.For(renaming[axis], extent, stmt)
    return stmt


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
                raise LanguageError(f"size {size} is declared with ranges {size_ranges[size]} and {rng}")
    names = _Names(str(size) for size in size_ranges)
    stages = [_lower_stage(t, names) for t in order if not t.is_placeholder]
    body = ir.seq(*stages)
    output_ids = {id(t) for t in outputs}
    for tensor in reversed(order):
        if not tensor.is_placeholder and id(tensor) not in output_ids:
            body = ir.Alloc(tensor.buffer, "global", body)
    inputs = [t.buffer for t in order if t.is_placeholder]
    shape_vars = tuple(ir.ShapeVar(size, lo, hi) for size, (lo, hi) in size_ranges.items())
    return ir.Kernel(
        name=name,
        params=tuple(inputs + [t.buffer for t in outputs]),
        body=body,
        outputs=tuple(t.name for t in outputs),
        shape_vars=shape_vars,
    )
