"""The verifier's named checks, each with a kernel that breaks it."""

import pytest
import sympy

import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.ir.errors import VerifyError
from quiltc.ir.index import proves, symbol
from quiltc.ir.layout import as_whole_tiles, round_up
from quiltc.ir.verify import verify

i, j = symbol("i"), symbol("j")
N = symbol("N")
a = ir.Buffer("a", qc.float32, (N,))
out = ir.Buffer("out", qc.float32, (N,))
SIZES = (ir.ShapeVar(N, 1, 32),)


def _kernel(body):
    return ir.Kernel("k", (a, out), body, ("out",), SIZES)


def test_a_correct_kernel_passes():
    verify(_kernel(ir.For(i, N, ir.Store(out, (i,), ir.Load(a, (i,))))))


def test_unbound_variable():
    with pytest.raises(VerifyError, match="variables j are used outside the loops"):
        verify(_kernel(ir.For(i, N, ir.Store(out, (j,), ir.Load(a, (i,))))))


def test_loop_variable_bound_twice():
    body = ir.seq(
        ir.For(i, N, ir.Store(out, (i,), ir.Load(a, (i,)))),
        ir.For(i, N, ir.Store(out, (i,), ir.Load(a, (i,)))),
    )
    with pytest.raises(VerifyError, match="bound more than once"):
        verify(_kernel(body))


def test_read_past_the_end_is_rejected_and_marked():
    body = ir.For(i, N + 1, ir.Store(out, (sympy.Min(i, N - 1),), ir.Load(a, (i,))))
    with pytest.raises(VerifyError, match=r"index i of a .* may leave its bounds") as caught:
        verify(_kernel(body))
    assert ">>" in str(caught.value)


def test_a_guard_makes_a_padded_loop_legal():
    guarded = ir.If(sympy.Lt(i, N), ir.Store(out, (i,), ir.Load(a, (i,))))
    verify(_kernel(ir.For(i, N + 3, guarded)))


def test_buffer_used_outside_its_allocation():
    scratch = ir.Buffer("scratch", qc.float32, (4,))
    body = ir.For(i, N, ir.Store(out, (i,), ir.Load(scratch, (0,))))
    with pytest.raises(VerifyError, match="scratch is used outside its allocation"):
        verify(_kernel(body))


M = symbol("M")
o, r = symbol("o"), symbol("r")
EMPTY_ALLOWED = (ir.ShapeVar(M, 0, 32),)


def _clamped_rows(guarded):
    """Blocks of 4 rows over M (which may be 0) reading row min(row + 1, M - 1): the
    clamp's M - 1 is -1 when M is 0, but a row guard keeps such blocks out."""
    source, target = ir.Buffer("a", qc.float32, (M,)), ir.Buffer("out", qc.float32, (M,))
    row = 4 * o + r
    store = ir.Store(target, (row,), ir.Load(source, (sympy.Min(row + 1, M - 1),)))
    body = ir.If(sympy.Lt(row, M), store) if guarded else store
    nest = ir.For(o, (M + 3) // 4, ir.For(r, 4, body))
    return ir.Kernel("k", (source, target), nest, ("out",), EMPTY_ALLOWED)


def test_a_clamp_below_a_row_guard_stays_in_bounds():
    verify(_clamped_rows(guarded=True))
    with pytest.raises(VerifyError, match=r"index Min\(M - 1, 4\*o \+ r \+ 1\) of a .* may "
                                          r"leave its bounds"):
        verify(_clamped_rows(guarded=False))


def test_a_loop_over_whole_tiles_stays_inside_storage_padded_to_them():
    t = symbol("t")
    ranges = {M: (sympy.Integer(0), sympy.Integer(64)),
              t: (sympy.Integer(0), sympy.floor((M + 15) / 16) - 1)}
    padded = round_up(M, 16)
    assert not proves(sympy.Lt(16 * t + 15, padded), ranges)
    assert proves(sympy.Lt(16 * t + 15, as_whole_tiles(padded)), ranges)
    assert as_whole_tiles(M + 3) == M + 3
    # Only round_up's spelling is rewritten: M % 4 is no ((4 - 1) * X) % 4 of an integer X.
    assert as_whole_tiles(M + sympy.Mod(M, 4)) == M + sympy.Mod(M, 4)
