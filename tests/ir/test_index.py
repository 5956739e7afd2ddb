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


def test_print_index_spells_integer_division_and_tables():
    offsets = sympy.Function("row_offsets", integer=True, nonnegative=True)
    expr = floordiv(io * 3 + ii, 4) + sympy.Mod(ii, 5) + offsets(io)
    text = print_index(expr, IndexSpelling())
    assert "/ 4)" in text and "% 5)" in text and "row_offsets[io]" in text
    assert eval(text.replace("row_offsets[io]", "7").replace("/", "//"), {"io": 3, "ii": 2}) == (
        int(expr.xreplace({io: 3, ii: 2}).subs(offsets(3), 7))
    )
