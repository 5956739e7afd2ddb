"""Index arithmetic: interval bounds, the simplifier's rules, and printing."""

import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from quiltc.ir.index import IndexSpelling, bounds, floordiv, print_index, proves, simplify, symbol

from support.tiers import examples

io, ii, fo, fi, k, K, N = (symbol(n) for n in ["io", "ii", "fo", "fi", "k", "K", "N"])


def test_split_indices_simplify_back():
    ranges = {ii: (0, 7)}
    assert simplify(floordiv(io * 8 + ii, 8), ranges) == io
    assert simplify(sympy.Mod(io * 8 + ii, 8), ranges) == ii


def test_fuse_then_split_by_symbolic_extent_simplifies():
    ranges = {N: (1, 9), fi: (0, N - 1)}
    assert simplify(floordiv(fo * N + fi, N), ranges) == fo
    assert simplify(sympy.Mod(fo * N + fi, N), ranges) == fi


def test_floor_keeps_what_it_cannot_prove():
    assert simplify(floordiv(fo * 12 + fi, 4), {fi: (0, 5)}) == 3 * fo + floordiv(fi, 4)


def test_a_quotient_by_a_symbolic_extent_stays_below_the_outer_extent():
    # A loop fused from (3, N): its index f < 3N gives f // N in [0, 2], which needs the
    # divisor to be at least 1 wherever the division runs.
    f = symbol("f")
    ranges = {N: (1, 4096), f: (0, 3 * N - 1)}
    assert proves(sympy.Lt(floordiv(f, N), 3), ranges)
    assert not proves(sympy.Lt(floordiv(f, N), 2), ranges)
    assert bounds(1 / N, {N: (1, 8)}) == (sympy.Rational(1, 8), 1)
    assert bounds(1 / N, {k: (0, 3)}) == (1 / N, 1 / N)  # a size left symbolic cancels


def test_min_picks_the_provably_smaller_side():
    assert simplify(sympy.Min(ii + 1, 8), {ii: (0, 7)}) == ii + 1


def test_bounds_eliminate_inner_variables_first():
    ranges = {K: (1, 64), k: (0, K - 1)}
    assert bounds(k - K, ranges) == (-64, -1)
    assert proves(sympy.Lt(k, K), ranges)
    assert not proves(sympy.Lt(k, K - 1), ranges)


@settings(max_examples=examples(60))
@given(
    factor=st.integers(1, 17),
    outer=st.integers(0, 20),
    inner_fraction=st.floats(0, 0.999),
)
def test_simplified_split_index_evaluates_like_the_original(factor, outer, inner_fraction):
    inner = int(inner_fraction * factor)
    ranges = {ii: (0, factor - 1)}
    original = floordiv(io * factor + ii, factor) * 100 + sympy.Mod(io * factor + ii, factor)
    simplified = simplify(original, ranges)
    values = {io: outer, ii: inner}
    assert simplified.xreplace(values) == original.xreplace(values)



def test_a_split_never_leaves_a_negative_rest_to_divide():
    # The last tile of a fused loop, peeled: p + 15K - 5 is never negative, but split as
    # 15K + (p - 5) it left C (which truncates toward zero) to divide p - 5 (a fuzz finding).
    p = symbol("p")
    ranges = {p: (0, 4), K: (1, 16)}
    assert simplify(floordiv(p + 15 * K - 5, 15), ranges) == K - 1
    assert simplify(sympy.Mod(p + 15 * K - 5, 15), ranges) == p + 10
    wider = {p: (0, 40), K: (1, 16)}
    assert simplify(floordiv(p + 15 * K - 5, 15), wider) == K - 1 + floordiv(p + 10, 15)
    assert simplify(sympy.Mod(p + 15 * K - 5, 15), wider) == sympy.Mod(p + 10, 15)


class _TruncatingSpelling(IndexSpelling):
    """Division and remainder as C computes them on int64_t: truncated toward zero."""

    floordiv = "_c_divide({a}, {b})"
    mod = "_c_remainder({a}, {b})"


def _c_divide(a, b):
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b > 0) else -quotient


def _c_remainder(a, b):
    return a - b * _c_divide(a, b)


@settings(max_examples=examples(80))
@given(outer_coefficient=st.integers(-20, 20), inner_coefficient=st.integers(-6, 6),
       constant=st.integers(-40, 40), divisor=st.integers(2, 17), inner_last=st.integers(0, 9),
       outer_last=st.integers(0, 5))
def test_the_simplifier_keeps_quotients_that_c_computes_exactly(
        outer_coefficient, inner_coefficient, constant, divisor, inner_last, outer_last):
    # Whatever the simplifier splits off, C's truncating / and % must still give floor and
    # modulo wherever they gave them before (sympy itself may already have split an integer
    # part off at construction, leaving a negative dividend: that input is not an index).
    ranges = {io: (0, outer_last), ii: (0, inner_last)}
    numerator = outer_coefficient * io + inner_coefficient * ii + constant
    points = [{io: o, ii: i} for o in range(outer_last + 1) for i in range(inner_last + 1)]
    for original in (floordiv(numerator, divisor), sympy.Mod(numerator, divisor)):
        if all(_as_c_computes(original, point) == original.xreplace(point) for point in points):
            simplified = simplify(original, ranges)
            for point in points:
                assert _as_c_computes(simplified, point) == original.xreplace(point), (
                    original, simplified, point)


def _as_c_computes(expr, point):
    text = print_index(expr, _TruncatingSpelling())
    return eval(text, {"_c_divide": _c_divide, "_c_remainder": _c_remainder,
                       **{symbol.name: value for symbol, value in point.items()}})

def test_print_index_spells_integer_division_and_tables():
    offsets = sympy.Function("row_offsets", integer=True, nonnegative=True)
    expr = floordiv(io * 3 + ii, 4) + sympy.Mod(ii, 5) + offsets(io)
    text = print_index(expr, IndexSpelling())
    assert "/ 4)" in text and "% 5)" in text and "row_offsets[io]" in text
    assert eval(text.replace("row_offsets[io]", "7").replace("/", "//"), {"io": 3, "ii": 2}) == (
        int(expr.xreplace({io: 3, ii: 2}).subs(offsets(3), 7))
    )
