"""The verifier's named checks, each with a kernel that breaks it."""

import pytest
import sympy

import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.ir.errors import VerifyError
from quiltc.ir.index import symbol
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
