"""Loop-carried dependences: may two iterations of a loop touch the same element?

vectorize, parallel and bind run a loop's iterations at once, so they need every
iteration to keep to elements of its own in each buffer written inside the loop:

    for i in range(M):                      for k in range(K):
        for j in range(N):                      for j in range(N):
            B[i, j] = A[i, j] * 2                   C[i, j] += A[i, k] * B[k, j]

    iteration i keeps to row i: independent   every iteration of k accumulates into
                                              C[i, j]: k carries a reduction

The test is a sufficient one. Along one view of the elements (the flat offset, or one
index), every access must be `stride*v + rest` with one positive stride and every rest
inside one stride-wide window, so iteration v keeps to [stride*v + lo, stride*v + lo +
stride). A fused loop's `f // N` and `f % N` are taken apart into two iterations
(quotient and remainder), which must each be independent.
"""

import dataclasses

import sympy

from ..ir import nodes as ir
from ..ir.index import bounds, floordiv, proves, simplify, symbol
from ..ir.verify import guard_facts
from ..ir.walk import children
from .nest import get_at, ranges_on_path, walk_paths

# Fusing more loops than this into one is taken apart no further.
_MAX_FUSED_DEPTH = 3


@dataclasses.dataclass(frozen=True)
class Access:
    """One read or write inside the loop, with the ranges of the loops and the guards
    around it that lie inside the loop."""

    stmt: ir.Stmt
    buffer: ir.Buffer
    indices: tuple
    is_write: bool
    inner_ranges: dict
    guards: tuple

    def element(self):
        return f"{self.buffer.name}[{', '.join(str(i) for i in self.indices)}]"


def _loads(value):
    found = []
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, ir.Load):
            found.append(current)
        stack.extend(child for child in children(current) if isinstance(child, ir.Value))
    return found


def accesses(stmt, private, inner_ranges=None, guards=(), out=None):
    """Every Access under `stmt`; buffers named in `private` (or allocated under `stmt`,
    hence private to one iteration) are left out."""
    inner_ranges = {} if inner_ranges is None else inner_ranges
    out = [] if out is None else out
    if isinstance(stmt, ir.For):
        ranges = dict(inner_ranges)
        ranges[stmt.var] = (sympy.Integer(0), stmt.extent - 1)
        accesses(stmt.body, private, ranges, guards, out)
    elif isinstance(stmt, ir.Alloc):
        accesses(stmt.body, private | {stmt.buffer.name}, inner_ranges, guards, out)
    elif isinstance(stmt, ir.If):
        accesses(stmt.then, private, inner_ranges, guards + (stmt.cond,), out)
        if stmt.otherwise is not None:
            accesses(stmt.otherwise, private, inner_ranges, guards, out)
    else:
        for child in children(stmt):
            if isinstance(child, ir.Stmt):
                accesses(child, private, inner_ranges, guards, out)
                continue
            for load in _loads(child):
                if load.buffer.name not in private:
                    out.append(Access(stmt, load.buffer, load.indices, False, inner_ranges, guards))
        if isinstance(stmt, (ir.Store, ir.Reduce)) and stmt.buffer.name not in private:
            out.append(Access(stmt, stmt.buffer, stmt.indices, True, inner_ranges, guards))
    return out


def _without_mod(expr):
    # On nonnegative operands x % m == x - m*(x // m); spelling it so lets a fused loop's
    # (f // N)*N + f % N collapse back to f.
    expr = sympy.expand(expr).replace(
        lambda e: isinstance(e, sympy.Mod),
        lambda e: e.args[0] - e.args[1] * sympy.floor(e.args[0] / e.args[1]),
    )
    return sympy.expand(expr)


def _linear_part(expr, var):
    """(stride, rest) with expr == stride*var + rest and both parts free of var, or None."""
    rest, dependent = expr.as_independent(var, as_Add=True)
    stride = sympy.expand(dependent / var)
    if stride.has(var) or rest.has(var):
        return None
    return stride, rest


def _windows(expr, access):
    """Candidate (lo, hi) bounds of `expr` over the loops inside the loop: plain interval
    bounds, and bounds with a guarded sum `u + rest < limit` taken as one variable
    (split's guards keep `i_o*8 + i_i` below the extent, which i_i's range alone cannot)."""
    candidates = [bounds(expr, access.inner_ranges)]
    for guarded, limit in guard_facts(access.guards):
        for loop_var in sorted(guarded.free_symbols & set(access.inner_ranges), key=str):
            rest = sympy.expand(guarded - loop_var)
            if loop_var in rest.free_symbols or loop_var not in expr.free_symbols:
                continue
            stand_in = symbol(f"{loop_var}_guarded")
            ranges = dict(access.inner_ranges)
            ranges[stand_in] = (bounds(guarded, access.inner_ranges)[0], limit - 1)
            moved = sympy.expand(expr.xreplace({loop_var: stand_in - rest}))
            candidates.append(bounds(moved, ranges))
    return candidates


def _fits(high, low, stride, var, ranges):
    return not (high.has(var) or low.has(var)) and proves(sympy.Le(high - low, stride - 1), ranges)


def _overlap(found, view, var, ranges):
    """None when, along `view`, each iteration of `var` keeps to its own window of
    elements; else (what may overlap, the access to blame)."""
    windows = []
    for access in found:
        linear = _linear_part(view(access), var)
        if access.is_write and (linear is None or linear[0] == 0):
            verb = "accumulates into" if isinstance(access.stmt, ir.Reduce) else "writes"
            why = (
                f"which does not depend on {var}" if linear is not None
                else f"which may be the same element for several values of {var}"
            )
            return (f"loop {var} carries a reduction: every iteration {verb} "
                    f"{access.element()}, {why}"), access
        if linear is None:
            return (f"loop {var} carries a dependence through {access.buffer.name}: "
                    f"{access.element()} is read where other iterations may write it"), access
        windows.append((access, linear[0], _windows(linear[1], access)))
    first, stride, _ = windows[0]
    name = first.buffer.name
    for access, other_stride, _ in windows:
        if other_stride != stride:
            return (f"loop {var} carries a dependence through {name}: {first.element()} and "
                    f"{access.element()} step through it at different strides"), access
    if not proves(sympy.Ge(stride, 1), ranges):
        return (f"loop {var} carries a dependence through {name}: its stride {stride} may be "
                "zero"), first
    for access, _, candidates in windows:
        for other, _, other_candidates in windows:
            if not any(
                _fits(high, low, stride, var, ranges)
                for _, high in candidates
                for low, _ in other_candidates
            ):
                return (f"loop {var} carries a dependence through {name}: {access.element()} "
                        f"and {other.element()} may reach the same element from different "
                        "iterations"), access
    return None


def _divisors(found, var):
    """The divisors N of every `x // N` and `x % N` whose x involves `var`."""
    divisors = set()
    for access in found:
        for index in access.indices:
            for node in sympy.preorder_traversal(sympy.sympify(index)):
                if isinstance(node, sympy.Mod) and node.args[0].has(var):
                    divisors.add(node.args[1])
                elif isinstance(node, sympy.floor) and node.args[0].has(var):
                    numerator, denominator = sympy.together(node.args[0]).as_numer_denom()
                    if denominator != 1:
                        divisors.add(denominator)
    return sorted(divisors, key=str)


def _taken_apart(found, var, extent, ranges, depth):
    """True when `var` = divisor*quotient + remainder makes both the quotient's and the
    remainder's iterations independent, for some divisor of a fused loop."""
    if depth >= _MAX_FUSED_DEPTH:
        return False
    for divisor in _divisors(found, var):
        quotient, remainder = symbol(f"{var}_quotient"), symbol(f"{var}_remainder")
        quotient_range = (sympy.Integer(0), floordiv(extent - 1, divisor))
        remainder_range = (sympy.Integer(0), divisor - 1)
        both = {**ranges, quotient: quotient_range, remainder: remainder_range}
        mapping = {var: divisor * quotient + remainder}

        def rewrite(access, inner_ranges):
            indices = tuple(
                simplify(sympy.sympify(e).xreplace(mapping), both) for e in access.indices
            )
            guards = tuple(guard.xreplace(mapping) for guard in access.guards)
            return dataclasses.replace(access, indices=indices, guards=guards,
                                       inner_ranges=inner_ranges)

        by_quotient = [rewrite(a, {remainder: remainder_range, **a.inner_ranges}) for a in found]
        by_remainder = [rewrite(a, a.inner_ranges) for a in found]
        if independent(by_quotient, quotient, quotient_range[1] + 1, both, depth + 1) is None and (
            independent(by_remainder, remainder, divisor, both, depth + 1) is None
        ):
            return True
    return False


def independent(found, var, extent, ranges, depth=0):
    """None when the iterations of `var` touch disjoint elements of the buffer that
    `found` (all accesses of one buffer) reach; else (obstacle, access to blame)."""
    views = [lambda access: _without_mod(access.buffer.offset(access.indices))]
    views += [
        lambda access, dim=dim: _without_mod(access.indices[dim])
        for dim in range(len(found[0].indices))
    ]
    overlaps = [_overlap(found, view, var, ranges) for view in views]
    if not all(overlaps) or _taken_apart(found, var, extent, ranges, depth):
        return None
    return overlaps[0]


def carried_dependence(kernel, path, private_scopes=()):
    """None when the iterations of the loop at `path` may run at once; else (what stands
    in the way, the statement to blame).

    Buffers allocated inside the loop, or in one of `private_scopes` (per-thread "local"
    memory for GPU threads), belong to one iteration and are not checked.
    """
    loop = get_at(kernel.body, path)
    ranges = ranges_on_path(kernel, path)
    if proves(sympy.Le(loop.extent, 1), ranges):
        return None
    private = frozenset(
        stmt.buffer.name
        for _, stmt in walk_paths(kernel.body)
        if isinstance(stmt, ir.Alloc) and stmt.scope in private_scopes
    )
    found = accesses(loop.body, private)
    for name in sorted({access.buffer.name for access in found if access.is_write}):
        of_buffer = [access for access in found if access.buffer.name == name]
        overlap = independent(of_buffer, loop.var, loop.extent, ranges)
        if overlap is not None:
            obstacle, access = overlap
            return obstacle, access.stmt
    return None
