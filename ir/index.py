"""Index arithmetic: sympy symbols for loops and sizes, interval bounds, and the
rule table that simplifies floor division and modulo under known loop ranges.

Loop and shape variables are nonnegative integer symbols, so `//` and `%` only ever
see nonnegative operands and print as C's exact `/` and `%`.
"""

import functools

import sympy

Expr = sympy.Expr


def symbol(name):
    """The one sympy symbol for a loop or shape variable called `name`."""
    return sympy.Symbol(name, integer=True, nonnegative=True)


# A table's range may depend on the entry looked up: `TABLE_ARGUMENT` in the range stands
# for the argument of each application (`L_pos(f)` lies in [0, L_len(L_row(f)) - 1]).
TABLE_ARGUMENT = sympy.Symbol("table_argument", integer=True, nonnegative=True)


def table(name):
    """An auxiliary lookup table (row offsets, fused-loop maps): `table("L_off")(b)`."""
    return sympy.Function(name, integer=True, nonnegative=True)


def as_expr(value):
    """Turn an int or sympy expression into a sympy integer expression."""
    if isinstance(value, sympy.Basic):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"an index must be an int or a sympy expression, not {value!r}")
    return sympy.Integer(value)


def floordiv(a, b):
    """`a // b` on nonnegative integer expressions."""
    return sympy.floor(as_expr(a) / as_expr(b))


def bounds(expr, ranges, floors_as_mods=False):
    """Inclusive (lo, hi) of `expr` when each symbol s in `ranges` lies in ranges[s].

    `ranges` is ordered outermost first: a range may name outer symbols (`k in [0, K-1]`),
    so symbols are eliminated innermost first, which keeps `k - K` provably negative.
    A key may also be a table function (`table("L_len")`): each application of it lies in
    its range, where TABLE_ARGUMENT stands for the application's argument. Symbols not in
    `ranges` stand for themselves. The bounds are sound but may be loose: they are what
    the simplifier, the verifier and region inference rely on. With `floors_as_mods` each
    floor is spelled through a modulo (see `_floors_as_mods`): tighter for signs, which is
    what `proves` asks, but the ends no longer read as floors.
    """
    tidy = _floors_as_mods if floors_as_mods else sympy.expand
    lo = hi = tidy(as_expr(expr))
    for key in reversed(list(ranges)):
        single = {key: ranges[key]}
        if _mentions(lo, key):
            lo = tidy(_interval(lo, single)[0])
        if _mentions(hi, key):
            hi = tidy(_interval(hi, single)[1])
    return lo, hi


def _floors_as_mods(expr):
    """`expr` expanded, with each floor(a / d) spelled (a - a % d) / d, so a whole number
    of tiles cancels against the extent it came from: `4*(E // 4) - E` becomes `-(E % 4)`,
    which interval bounds see is at most 0."""
    expr = sympy.expand(expr)
    if not expr.has(sympy.floor):
        return expr

    def as_mod(node):
        numerator, denominator = sympy.together(node.args[0]).as_numer_denom()
        if not (denominator.is_Integer and denominator > 1):
            return node
        numerator = sympy.expand(numerator)
        return (numerator - sympy.Mod(numerator, denominator)) / denominator

    return sympy.expand(expr.replace(lambda node: isinstance(node, sympy.floor), as_mod))


def _mentions(expr, key):
    """Whether `expr` uses the symbol or the table function `key`."""
    return key in expr.free_symbols if isinstance(key, sympy.Symbol) else expr.has(key)


def _interval(expr, ranges):
    """One pass of interval arithmetic over `expr`; see `bounds`."""
    expr = as_expr(expr)
    if expr.is_Integer:
        return expr, expr
    if expr.is_Symbol:
        return ranges.get(expr, (expr, expr))
    if isinstance(expr, sympy.core.function.AppliedUndef):
        if expr.func not in ranges:
            return expr, expr
        argument = {TABLE_ARGUMENT: expr.args[0]}
        return tuple(sympy.sympify(end).xreplace(argument) for end in ranges[expr.func])
    if expr.is_Add:
        lo, hi = sympy.Integer(0), sympy.Integer(0)
        for term in expr.args:
            term_lo, term_hi = _interval(term, ranges)
            lo, hi = lo + term_lo, hi + term_hi
        return lo, hi
    if expr.is_Mul:
        coeff, rest = expr.as_coeff_Mul()
        if coeff != 1:
            rest_lo, rest_hi = _interval(rest, ranges)
            if coeff >= 0:
                return coeff * rest_lo, coeff * rest_hi
            return coeff * rest_hi, coeff * rest_lo
        lo, hi = sympy.Integer(1), sympy.Integer(1)
        for factor in expr.args:  # all factors of index products are nonnegative
            factor_lo, factor_hi = _interval(factor, ranges)
            lo, hi = lo * factor_lo, hi * factor_hi
        return lo, hi
    if isinstance(expr, sympy.floor):
        lo, hi = _interval(expr.args[0], ranges)
        return sympy.floor(lo), sympy.floor(hi)
    if expr.is_Pow and expr.exp == -1 and expr.base.is_integer and expr.base.is_nonnegative:
        base_lo, base_hi = (sympy.sympify(end) for end in _interval(expr.base, ranges))
        if base_lo == base_hi:
            return 1 / base_lo, 1 / base_hi
        # The divisor of a floor division (a fused loop's extent): where it is 0 the loop
        # it divides is empty, so whenever the division runs the divisor is at least 1.
        return 1 / base_hi, (1 / base_lo if _provably(base_lo >= 1) else sympy.Integer(1))
    if isinstance(expr, sympy.Mod):
        value_lo, value_hi = _interval(expr.args[0], ranges)
        divisor = expr.args[1]
        if value_lo == value_hi == expr.args[0]:
            # Untouched by these ranges: kept whole, so it cancels against itself
            # (`l - (L + L % 4)` with l < L + L % 4) until its own symbols go.
            return expr, expr
        if _provably(value_hi < divisor) and _provably(value_lo >= 0):
            return value_lo, value_hi
        return sympy.Integer(0), divisor - 1
    if isinstance(expr, (sympy.Min, sympy.Max)):
        pairs = [_interval(arg, ranges) for arg in expr.args]
        pick = type(expr)
        return pick(*(p[0] for p in pairs)), pick(*(p[1] for p in pairs))
    return expr, expr


def _provably(relation):
    return relation is sympy.true or relation == True  # noqa: E712 (sympy booleans)


def proves(relation, ranges):
    """True when `relation` (a < b, a <= b, ...) holds for every value in `ranges`."""
    relation = sympy.sympify(relation)
    if relation in (sympy.true, sympy.false):
        return relation is sympy.true
    # Only the ranges of the symbols the relation names matter, in their order; schedules
    # re-verify the same accesses after every step, so the answers are kept.
    names = relation.free_symbols | relation.atoms(sympy.core.function.AppliedUndef)
    relevant = _relevant_ranges(ranges, names)
    return _proves_cached(relation, relevant)


def _relevant_ranges(ranges, names):
    """The entries of `ranges` that `names` need, with the entries their bounds name."""
    needed, kept = set(names), {}
    for key in reversed(list(ranges)):
        mentioned = key in needed or (not isinstance(key, sympy.Symbol) and any(
            isinstance(name, sympy.core.function.AppliedUndef) and name.func == key
            for name in needed))
        if mentioned:
            kept[key] = ranges[key]
            for end in ranges[key]:
                end = sympy.sympify(end)
                needed |= end.free_symbols | end.atoms(sympy.core.function.AppliedUndef)
    return tuple(reversed(kept.items()))


@functools.lru_cache(maxsize=65536)
def _proves_cached(relation, relevant):
    ranges = dict(relevant)
    difference = _distribute_extremum(sympy.expand(relation.lhs - relation.rhs))
    # Floors as they stand keep `2*(f // 2) + f % 2` tight; spelled through modulos they
    # cancel against the extent they came from (`4*(E // 4) <= E`). Either proof holds.
    return any(_proves_by_bounds(relation, bounds(difference, ranges, floors_as_mods=spelling))
               for spelling in (False, True))


def _distribute_extremum(expr):
    """`Min(a, b) + c` as `Min(a + c, b + c)` (and Max alike), so a clamp `Min(i, T - 1)`
    compared with `T` cancels inside each argument instead of standing apart."""
    if not expr.is_Add:
        return expr
    extrema = [term for term in expr.args if isinstance(term, (sympy.Min, sympy.Max))]
    if len(extrema) != 1:
        return expr
    rest = expr - extrema[0]
    return type(extrema[0])(*(sympy.expand(argument + rest) for argument in extrema[0].args),
                            evaluate=False)


def _proves_by_bounds(relation, difference_bounds):
    lo, hi = difference_bounds
    # A Min is below a bound when any of its arguments is, a Max above one likewise.
    if isinstance(hi, sympy.Min) and type(relation) in (sympy.StrictLessThan, sympy.LessThan):
        return any(_proves_by_bounds(relation, (lo, argument)) for argument in hi.args)
    if isinstance(lo, sympy.Max) and type(relation) in (sympy.StrictGreaterThan,
                                                        sympy.GreaterThan):
        return any(_proves_by_bounds(relation, (argument, hi)) for argument in lo.args)
    checks = {
        sympy.StrictLessThan: hi < 0,
        sympy.LessThan: hi <= 0,
        sympy.StrictGreaterThan: lo > 0,
        sympy.GreaterThan: lo >= 0,
    }
    check = checks.get(type(relation))
    return check is not None and _provably(sympy.sympify(check))


def _split_by_divisor(numerator, divisor):
    """Terms of `numerator` whose coefficient is a multiple of `divisor`, and the rest."""
    multiple, rest = sympy.Integer(0), sympy.Integer(0)
    for term in sympy.Add.make_args(numerator):
        if sympy.fraction(sympy.cancel(term / divisor))[1] == 1:
            multiple += term
        else:
            rest += term
    return multiple, rest


def _split_nonnegative(numerator, divisor, ranges):
    """(multiple, rest) as _split_by_divisor gives them, with whole divisors moved from the
    rest into the multiple until the rest is provably nonnegative; None where its lower
    bound is unknown. C's `/` and `%` truncate toward zero, so an index must never divide
    a negative rest: `(p + 15*K - 5) // 15` is `K - 1 + (p + 10) // 15`, not
    `K + (p - 5) // 15`, which C reads as K for p < 5."""
    multiple, rest = _split_by_divisor(numerator, divisor)
    if proves(sympy.Ge(rest, 0), ranges):
        return multiple, rest
    low = bounds(rest, ranges)[0]
    if not (low.is_Integer and divisor.is_Integer):
        return None
    shift = (low // divisor) * divisor
    return multiple + shift, sympy.expand(rest - shift)


def _floor_rule(expr, ranges):
    """floor((d*q + r) / d) -> q + floor(r / d) for r >= 0, and -> q when 0 <= r < d."""
    numerator, divisor = sympy.together(expr.args[0]).as_numer_denom()
    if divisor == 1 or (divisor.is_Integer and divisor < 1):
        return None
    split = _split_nonnegative(sympy.expand(numerator), divisor, ranges)
    if split is None:
        return None
    multiple, rest = split
    if proves(sympy.Lt(rest, divisor), ranges):
        return sympy.expand(multiple / divisor)
    if multiple != 0:
        return sympy.expand(multiple / divisor) + sympy.floor(rest / divisor)
    return None


def _mod_rule(expr, ranges):
    """(d*q + r) % d -> r % d for r >= 0, and -> r when 0 <= r < d."""
    value, divisor = expr.args
    split = _split_nonnegative(sympy.expand(value), divisor, ranges)
    if split is None:
        return None
    multiple, rest = split
    if proves(sympy.Lt(rest, divisor), ranges):
        return rest
    if multiple != 0:
        return sympy.Mod(rest, divisor)
    return None


def _min_max_rule(expr, ranges):
    """Min(a, b) -> a when a <= b provably (and the mirror cases for Max)."""
    first, *others = expr.args
    for candidate in expr.args:
        rest = [arg for arg in expr.args if arg is not candidate]
        relate = sympy.Le if isinstance(expr, sympy.Min) else sympy.Ge
        if all(proves(relate(candidate, other), ranges) for other in rest):
            return candidate
    return None


# (node type, rule): each rule returns a simpler equal expression, or None to leave it.
RULES = [
    (sympy.floor, _floor_rule),
    (sympy.Mod, _mod_rule),
    (sympy.Min, _min_max_rule),
    (sympy.Max, _min_max_rule),
]


def simplify(expr, ranges):
    """Apply RULES bottom-up until nothing changes: `(io*8 + ii) // 8 -> io` for ii < 8."""
    expr = as_expr(expr)
    if not expr.has(sympy.floor, sympy.Mod, sympy.Min, sympy.Max):
        return expr
    names = expr.free_symbols | expr.atoms(sympy.core.function.AppliedUndef)
    return _simplify_cached(expr, _relevant_ranges(ranges, names))


@functools.lru_cache(maxsize=65536)
def _simplify_cached(expr, relevant):
    ranges = dict(relevant)
    for _ in range(8):
        before = expr
        for node_type, rule in RULES:
            expr = expr.replace(
                lambda node, node_type=node_type: isinstance(node, node_type),
                lambda node, rule=rule: _apply(node, rule, ranges),
            )
        if expr == before:
            return expr
    return expr


def _apply(node, rule, ranges):
    if not isinstance(node, sympy.Basic) or node.is_Atom:
        return node
    replaced = rule(node, ranges)
    return node if replaced is None else replaced


class IndexSpelling:
    """How one target language spells integer operations; see `print_index`. `floordiv`
    and `mod` serve dividends that are nonnegative by their form (`_nonnegative_form`);
    others take `signed_floordiv` and `signed_mod`, for languages whose division
    truncates."""

    floordiv = "({a} / {b})"
    mod = "({a} % {b})"
    signed_floordiv = None
    signed_mod = None
    minimum = "min({args})"
    maximum = "max({args})"
    conjunction = " && "
    disjunction = " || "
    negation = "!({a})"
    table = "{name}[{args}]"

    def symbol(self, sym):
        return sym.name


_RELATIONS = {
    sympy.StrictLessThan: "<",
    sympy.LessThan: "<=",
    sympy.StrictGreaterThan: ">",
    sympy.GreaterThan: ">=",
    sympy.Equality: "==",
    sympy.Unequality: "!=",
}


def _nonnegative_form(expr):
    """True when `expr` is nonnegative by its form alone: sums and products of
    nonnegative symbols, tables and constants, and floors, remainders, minima of such
    (sympy's own assumptions stop at a floor)."""
    if expr.is_nonnegative:
        return True
    if isinstance(expr, sympy.floor):
        numerator, denominator = sympy.together(expr.args[0]).as_numer_denom()
        # a divisor that may be 0 never divides when the index runs
        return _nonnegative_form(sympy.expand(numerator)) and bool(denominator.is_nonnegative)
    if isinstance(expr, sympy.Mod):
        return bool(expr.args[1].is_nonnegative)
    if isinstance(expr, sympy.Max):
        return any(_nonnegative_form(arg) for arg in expr.args)
    if isinstance(expr, (sympy.Add, sympy.Mul, sympy.Min)):
        return all(_nonnegative_form(arg) for arg in expr.args)
    if expr.is_Pow and expr.exp.is_Integer and expr.exp > 0:
        return _nonnegative_form(expr.base)
    return False


def print_index(expr, spelling):
    """Source text of a sympy integer expression or condition in `spelling`'s language."""

    def p(e):
        if e.is_Integer:
            return str(int(e))
        if e.is_Symbol:
            return spelling.symbol(e)
        if e is sympy.true:
            return "1"
        if e is sympy.false:
            return "0"
        if e.is_Add:
            positive = [p(t) for t in e.args if not t.could_extract_minus_sign()]
            negative = [p(-t) for t in e.args if t.could_extract_minus_sign()]
            text = " + ".join(positive) if positive else "0"
            return "(" + text + "".join(f" - {n}" for n in negative) + ")"
        if e.is_Mul:
            coeff, rest = e.as_coeff_Mul()
            if coeff == -1:
                return f"(-{p(rest)})"
            if not coeff.is_Integer:
                raise ValueError(f"index {expr} has a fraction outside floor(): {e}")
            return "(" + " * ".join(p(f) for f in e.args) + ")"
        if e.is_Pow and e.exp.is_Integer and e.exp > 0:
            return "(" + " * ".join([p(e.base)] * int(e.exp)) + ")"
        if isinstance(e, sympy.floor):
            numerator, denominator = sympy.together(e.args[0]).as_numer_denom()
            numerator = sympy.expand(numerator)
            # sympy moves integer parts out of a floor when it builds one, so the dividend
            # of an index that never goes negative may (`K + (p - 5) // 15`)
            template = (spelling.signed_floordiv if spelling.signed_floordiv
                        and not _nonnegative_form(numerator) else spelling.floordiv)
            return template.format(a=p(numerator), b=p(denominator))
        if isinstance(e, sympy.Mod):
            template = (spelling.signed_mod if spelling.signed_mod
                        and not _nonnegative_form(e.args[0]) else spelling.mod)
            return template.format(a=p(e.args[0]), b=p(e.args[1]))
        if isinstance(e, (sympy.Min, sympy.Max)):
            template = spelling.minimum if isinstance(e, sympy.Min) else spelling.maximum
            text = p(e.args[0])
            for arg in e.args[1:]:
                text = template.format(args=f"{text}, {p(arg)}")
            return text
        if type(e) in _RELATIONS:
            return f"({p(e.lhs)} {_RELATIONS[type(e)]} {p(e.rhs)})"
        if isinstance(e, sympy.And):
            return "(" + spelling.conjunction.join(p(a) for a in e.args) + ")"
        if isinstance(e, sympy.Or):
            return "(" + spelling.disjunction.join(p(a) for a in e.args) + ")"
        if isinstance(e, sympy.Not):
            return spelling.negation.format(a=p(e.args[0]))
        if isinstance(e, sympy.core.function.AppliedUndef):
            return spelling.table.format(name=e.func.__name__, args=", ".join(p(a) for a in e.args))
        raise ValueError(f"cannot print index expression {e} ({type(e).__name__})")

    return p(sympy.sympify(expr))
