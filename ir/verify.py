"""Checks every kernel must pass: each is a named `check_*` function that raises
VerifyError with the offending statement marked in the printed kernel.

`verify(kernel)` runs them all; schedules and builds call it so that no transform can hand
an ill-formed kernel to a backend.
"""

import numpy as np
import sympy
from sympy.core.function import AppliedUndef

from . import nodes as ir
from .dtypes import boolean
from .errors import VerifyError
from .index import bounds, proves, symbol, table
from .layout import as_whole_tiles, round_up
from .printer import render, show
from .verify_gpu import check_gpu
from .walk import children, exprs_of


def _fail(kernel, node, message):
    raise VerifyError(f"{message}\n{render(kernel, mark=node)}")


def _walk_scoped(kernel, visit):
    """Call visit(node, scope) for each statement, scope holding the enclosing loops,
    the guard conditions and the allocated buffers."""

    def go(node, loops, guards, allocs):
        visit(node, loops, guards, allocs)
        if isinstance(node, ir.For):
            go(node.body, loops + (node,), guards, allocs)
        elif isinstance(node, ir.If):
            go(node.then, loops, guards + (node.cond,), allocs)
            if node.otherwise is not None:
                go(node.otherwise, loops, guards + (sympy.Not(node.cond),), allocs)
        elif isinstance(node, ir.Alloc):
            go(node.body, loops, guards, allocs + (node.buffer,))
        else:
            for child in children(node):
                if isinstance(child, ir.Stmt):
                    go(child, loops, guards, allocs)

    go(kernel.body, (), (), ())


def _loads(node):
    """Loads in a statement's own values (not in nested statements)."""
    found = []
    stack = [c for c in children(node) if isinstance(c, ir.Value)]
    while stack:
        value = stack.pop()
        if isinstance(value, ir.Load):
            found.append(value)
        stack.extend(children(value))
    return found


def _own_exprs(node):
    """The index expressions a statement evaluates itself: a loop's extent, a guard's
    condition, a store's indices and the indices and Index values in its value."""
    exprs = list(exprs_of(node))
    for load in _loads(node):
        exprs.extend(sympy.sympify(expr) for expr in load.indices)
    stack = [c for c in children(node) if isinstance(c, ir.Value)]
    while stack:
        value = stack.pop()
        if isinstance(value, ir.Index):
            exprs.append(value.expr)
        stack.extend(children(value))
    return exprs


def _free_symbols(node):
    symbols = set()
    for expr in _own_exprs(node):
        symbols |= expr.free_symbols
    return symbols


def check_bound_variables(kernel):
    """Every symbol an index uses is a loop variable in scope or a shape variable."""
    sizes = {v.symbol for v in kernel.shape_vars}

    def visit(node, loops, guards, allocs):
        bound = sizes | {loop.var for loop in loops}
        free = _free_symbols(node) - bound
        if free:
            names = ", ".join(sorted(map(str, free)))
            _fail(kernel, node, f"variables {names} are used outside the loops that bind them")

    _walk_scoped(kernel, visit)


def check_unique_loops(kernel):
    """No loop variable is bound twice, and none shadows a shape variable."""
    seen = {v.symbol for v in kernel.shape_vars}

    def visit(node, loops, guards, allocs):
        if isinstance(node, ir.For):
            if node.var in seen:
                _fail(kernel, node, f"loop variable {node.var} is bound more than once")
            seen.add(node.var)

    _walk_scoped(kernel, visit)


def check_buffers_known(kernel):
    """Every buffer accessed is a parameter or allocated around the access."""
    params = {p.name for p in kernel.params}

    def visit(node, loops, guards, allocs):
        names = params | {b.name for b in allocs}
        accessed = [load.buffer for load in _loads(node)]
        if isinstance(node, (ir.Store, ir.Reduce)):
            accessed.append(node.buffer)
        for buffer in accessed:
            if buffer.name not in names:
                _fail(kernel, node, f"buffer {buffer.name} is used outside its allocation")

    _walk_scoped(kernel, visit)


def guard_facts(guards):
    """(lhs, limit) for each guard fact `lhs < limit` (or `lhs <= limit - 1`) in the
    conjunctions `guards`: the upper limits that enclosing guards put on index sums."""
    for guard in guards:
        for fact in sympy.And.make_args(guard):
            if isinstance(fact, (sympy.StrictGreaterThan, sympy.GreaterThan)):
                fact = fact.reversed
            if isinstance(fact, sympy.StrictLessThan):
                yield fact.lhs, fact.rhs
            elif isinstance(fact, sympy.LessThan):
                yield fact.lhs, fact.rhs + 1


def _guarded(index, extent, ranges, guards):
    """True when the guards `g < b` around an access prove index < extent.

    Either index - g <= extent - b for one guard, or, with each guarded sum `v + rest`
    taken as one variable t in [lo(g), b - 1] (which only widens the ranges, so stays
    sound), the rewritten index provably stays below extent. The second form sees
    through scaled and split guards: `j_i + 2*j_o_i + 4*j_o_o` under `j_o_i + 2*j_o_o < 1`.
    """
    facts = list(guard_facts(guards))
    for lhs, limit in facts:
        # lhs <= limit - 1 holds, so index < extent whenever index - lhs <= extent - limit.
        if proves(sympy.Le(index - lhs, extent - limit), ranges):
            return True
    widened, rewritten, substitutions = dict(ranges), sympy.expand(index), []
    # Longer guarded sums first: a guard of an outer split also covers the inner split's
    # sum, and a stand-in variable is never replaced again.
    facts.sort(key=lambda fact: -len(sympy.Add.make_args(sympy.expand(fact[0]))))
    for number, (lhs, limit) in enumerate(facts):
        # expanded as the index is (expand reaches inside floors), so their terms compare
        lhs = sympy.expand(lhs)
        for substitution in substitutions:
            lhs = sympy.expand(lhs.xreplace(substitution))
        for term in sorted(sympy.Add.make_args(lhs), key=str):
            if not (term.is_Symbol or isinstance(term, (sympy.floor, sympy.Mod))):
                continue
            rest = sympy.expand(lhs - term)
            is_stand_in = term in widened and term not in ranges
            if is_stand_in or rest.has(term) or not rewritten.has(term):
                continue
            stand_in = symbol(f"guarded_{number}")
            widened[stand_in] = (bounds(lhs, widened)[0], limit - 1)
            substitutions.append({term: stand_in - rest})
            rewritten = sympy.expand(rewritten.xreplace(substitutions[-1]))
            break
    return proves(sympy.Lt(rewritten, extent), widened)


def value_range(value, ranges):
    """Inclusive (lo, hi) that an integer Value provably stays in: its dtype's range,
    narrowed by constants, index bounds, max/min clamps, masks with `&` and the value
    range declared on a loaded buffer."""
    if isinstance(value, ir.Const):
        return int(value.value), int(value.value)
    if isinstance(value, ir.Load) and value.buffer.value_range is not None:
        return value.buffer.value_range
    if isinstance(value, ir.Index):
        return bounds(sympy.expand(value.expr), ranges)
    if value.dtype == boolean:
        return 0, 1
    info = np.iinfo(value.dtype.numpy)
    whole = (int(info.min), int(info.max))
    if isinstance(value, ir.Cast) and not value.value.dtype.is_float:
        lo, hi = value_range(value.value, ranges)
        return (lo, hi) if whole[0] <= lo and hi <= whole[1] else whole
    if isinstance(value, ir.Bin) and value.op in ("max", "min", "&"):
        (a_lo, a_hi), (b_lo, b_hi) = value_range(value.a, ranges), value_range(value.b, ranges)
        if value.op == "max":
            return sympy.Max(a_lo, b_lo), sympy.Max(a_hi, b_hi)
        if value.op == "min":
            return sympy.Min(a_lo, b_lo), sympy.Min(a_hi, b_hi)
        # A mask by a nonnegative value keeps only its bits: 0 <= x & m <= m.
        for lo, hi in ((b_lo, b_hi), (a_lo, a_hi)):
            if proves(sympy.Ge(lo, 0), ranges):
                return sympy.Integer(0), hi
    return whole


def _below(index, extent, ranges):
    """True when index < extent provably, the extent read as whole tiles if padded."""
    return (proves(sympy.Lt(index, extent), ranges)
            or proves(sympy.Lt(index, as_whole_tiles(extent)), ranges))


def _nonnegative(index, ranges, guards):
    """True when index >= 0 by the ranges, or by a guard `g < b` around the access
    (b - 1 - g >= 0 holds there): a clamp Min(i, L - 1) under `r < L` cannot go below 0
    even where an empty row's L - 1 is -1, since the guard keeps such rows out."""
    if proves(sympy.Ge(index, 0), ranges):
        return True
    if isinstance(index, sympy.Min):
        return all(_nonnegative(arg, ranges, guards) for arg in index.args)
    if isinstance(index, sympy.Max):
        return any(_nonnegative(arg, ranges, guards) for arg in index.args)
    # Scaled by the index's coefficients too: `16*T - 16 + i` under `1 <= T` is
    # 16 * (T - 1) + i.
    scales = {1} | {abs(term.as_coeff_Mul()[0])
                    for term in sympy.Add.make_args(sympy.expand(index))
                    if term.as_coeff_Mul()[0].is_Integer and term.as_coeff_Mul()[0] != 0}
    return any(proves(sympy.Ge(index - scale * (limit - 1 - lhs), 0), ranges)
               for lhs, limit in guard_facts(guards) for scale in scales)


def _gathered_dims(load):
    return {dim: value for dim, value in enumerate(load.gather) if value is not None}


def check_in_bounds(kernel):
    """Every index provably stays inside its buffer, by loop ranges or enclosing guards."""
    base_ranges = kernel.ranges()

    def visit(node, loops, guards, allocs):
        ranges = dict(base_ranges)
        for loop in loops:
            ranges[loop.var] = (sympy.Integer(0), loop.extent - 1)
        accesses = [(load.buffer, load.indices, _gathered_dims(load)) for load in _loads(node)]
        if isinstance(node, (ir.Store, ir.Reduce)):
            accesses.append((node.buffer, node.indices, {}))
        for buffer, indices, gathered in accesses:
            for dim, value in gathered.items():
                lo, hi = value_range(value, ranges)
                extent = buffer.extent(dim, indices)
                if not (proves(sympy.Ge(lo, 0), ranges) and proves(sympy.Lt(hi, extent), ranges)):
                    _fail(kernel, node,
                          f"gathered index {render(value)} of {buffer.name} (dim {dim}, extent "
                          f"{extent}) ranges over [{lo}, {hi}]; clamp it with qc.minimum/"
                          "qc.maximum or mask it with & to stay inside the extent")
            for dim, index in enumerate(indices):
                if dim in gathered:
                    continue
                extent = buffer.extent(dim, indices)
                low_ok = _nonnegative(index, ranges, guards)
                high_ok = _below(index, extent, ranges) or _guarded(
                    index, extent, ranges, guards
                )
                if not (low_ok and high_ok):
                    lo, hi = bounds(sympy.expand(index), ranges)
                    _fail(
                        kernel,
                        node,
                        f"index {index} of {buffer.name} (dim {dim}, extent {extent}) may leave "
                        f"its bounds: it ranges over [{lo}, {hi}]; add a guard (split with "
                        "guard=True) or pad the loop",
                    )

    _walk_scoped(kernel, visit)


def table_sizes(kernel):
    """{table name: number of entries} for the ragged tables a kernel reads: the
    caller's lengths (one per row), prefix sums (one more than their rows), row orders,
    and a fused loop's row and position maps (one per flat position)."""
    sizes = {dim.lengths_table: dim.batch for dim in kernel.ragged_dims}
    totals = {}
    for entry in kernel.prelude:
        if isinstance(entry, ir.PrefixSum):
            sizes[entry.table] = entry.count + 1
            if entry.factors == ((entry.lengths, False),) and entry.pad == 1:
                totals[entry.lengths] = table(entry.table)(entry.count)
        elif isinstance(entry, ir.RowOrder):
            sizes[entry.table] = entry.count
    for entry in kernel.prelude:
        if isinstance(entry, ir.FlatRows) and entry.lengths in totals:
            sizes[entry.rows] = sizes[entry.positions] = round_up(totals[entry.lengths],
                                                                  entry.pad)
    return sizes


def check_table_reads(kernel):
    """Every lookup into a ragged table provably stays inside it: in indices, and also in
    loop extents and guard conditions, which run before the statements inside them, so
    only the loops and guards around them can keep their lookups in range."""
    sizes, base_ranges = table_sizes(kernel), kernel.ranges()

    def visit(node, loops, guards, allocs):
        ranges = dict(base_ranges)
        for loop in loops:
            ranges[loop.var] = (sympy.Integer(0), loop.extent - 1)
        reads = set()
        for expr in _own_exprs(node):
            reads |= expr.atoms(AppliedUndef)
        for read in sorted(reads, key=str):
            name, argument = read.func.__name__, read.args[0]
            if name not in sizes:
                _fail(kernel, node, f"{show(read)} reads table {name}, which the kernel "
                                    "neither takes nor computes in its prelude")
            size = sizes[name]
            if not (proves(sympy.Ge(argument, 0), ranges) and (
                    proves(sympy.Lt(argument, size), ranges)
                    or _guarded(argument, size, ranges, guards))):
                lo, hi = bounds(sympy.expand(argument), ranges)
                _fail(kernel, node,
                      f"{show(read)} may read table {name} ({size} entries) out of range: "
                      f"its argument ranges over [{lo}, {hi}]; a guard on that index must "
                      "enclose this loop or condition, not sit inside it")

    _walk_scoped(kernel, visit)


CHECKS = [check_bound_variables, check_unique_loops, check_buffers_known, check_in_bounds,
          check_table_reads]


def verify(kernel, barriers=True):
    """Run every check on `kernel`; raises VerifyError at the first violation, and
    ScheduleError for GPU bindings that no GPU can run (see verify_gpu). `barriers=False`
    lets missing GPU barriers pass (a schedule's insert_barriers pass may add them)."""
    for check in CHECKS:
        check(kernel)
    return check_gpu(kernel, barriers)
