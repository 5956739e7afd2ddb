"""distribute (loop fission): one loop per statement, kept only where no two statements
meet across iterations; results against numpy, refusals by message."""

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import interp
from quiltc.ir import nodes as ir
from quiltc.ir.index import symbol

from support import helpers
from support.tiers import examples


def _chain():
    """S = 2 A computed at T's loop, T = S + B: a loop over two statements."""
    size = qc.var("N", 1, 64)
    a = qc.placeholder((size,), "float32", "A")
    b = qc.placeholder((size,), "float32", "Bv")
    doubled = qc.compute((size,), lambda i: a[i] * np.float32(2), "S")
    total = qc.compute((size,), lambda i: doubled[i] + b[i], "T")
    sch = qc.Schedule(total)
    loop, = sch.loops("T")
    sch.compute_at("S", loop)
    return sch, loop


@settings(max_examples=examples(10), deadline=None)
@given(size=st.integers(1, 64), split=st.sampled_from([1, 3, 8]))
def test_distributed_loops_compute_what_the_fused_one_did(size, split):
    sch, loop = _chain()
    first, second = sch.distribute(loop)
    sch.split(second, split)
    helpers.require_cc()
    fn = qc.build(sch)
    a = np.arange(size, dtype=np.float32)
    b = np.ones(size, np.float32)
    np.testing.assert_allclose(fn(A=a, Bv=b), a * np.float32(2) + b)
    np.testing.assert_allclose(interp.run(sch.kernel, A=a, Bv=b)["T"], a * np.float32(2) + b)
    assert str(sch.trace).splitlines()[-2] == f"{first}, {second} = sch.distribute('{first}')"
    assert list(sch.loops("S")) == [first]
    assert list(sch.loops("T")) == [symbol(f"{second}_o"), symbol(f"{second}_i")]


def _reads_ahead():
    """for i: S[i] = A[i]; T[i] = S[min(i + 1, N - 1)]: the second statement reads what the
    first writes in the next iteration, so fission would read the new S, not the old."""
    n, i = symbol("N"), symbol("i")
    a, s, t = (ir.Buffer(name, qc.float32, (n,)) for name in ("A", "S", "T"))
    body = ir.For(i, n, ir.seq(ir.Store(s, (i,), ir.Load(a, (i,))),
                               ir.Store(t, (i,), ir.Load(s, (sympy.Min(i + 1, n - 1),)))))
    return ir.Kernel("reads_ahead", (a, s, t), body, ("S", "T"), (ir.ShapeVar(n, 1, 64),))


def test_statements_that_meet_across_iterations_are_refused():
    sch = qc.Schedule(_reads_ahead())
    with pytest.raises(qc.ScheduleError, match=r"distribute loop i over the statements of its "
                                               r"body.*loop i carries a dependence through S.*"
                                               r"keep dependent statements in one loop"):
        sch.distribute("i")


def test_a_loop_over_one_statement_is_refused():
    sch, loop = _chain()
    first, second = sch.distribute(loop)
    with pytest.raises(qc.ScheduleError, match=rf"the body of loop {second} is one Store, not a "
                                               r"sequence"):
        sch.distribute(second)


def _guarded_pair():
    """for i < N: if 2 i < N: {S[i] = 2 A[i]; T[i] = S[i] + A[i]}: one guard around both
    statements, as split_op inside a guarded row leaves them."""
    n, i = symbol("N"), symbol("i")
    a, s, t = (ir.Buffer(name, qc.float32, (n,)) for name in ("A", "S", "T"))
    doubled = ir.Store(s, (i,), ir.Load(a, (i,)) * 2.0)
    total = ir.Store(t, (i,), ir.Load(s, (i,)) + ir.Load(a, (i,)))
    body = ir.For(i, n, ir.If(sympy.Lt(2 * i, n), ir.seq(doubled, total)))
    return ir.Kernel("guarded_pair", (a, s, t), body, ("S", "T"), (ir.ShapeVar(n, 1, 16),))


def test_a_guard_around_the_statements_guards_each_distributed_loop():
    sch = qc.Schedule(_guarded_pair())
    first, second = sch.distribute("i")
    text = qc.ir.render(sch.kernel)
    assert text.count("if 2*i < N:") == 1 and text.count(f"if 2*{second} < N:") == 1
    for size in (1, 4, 7):
        a = np.arange(size, dtype=np.float32) + np.float32(1)
        zeros = np.zeros(size, np.float32)
        got = interp.run(sch.kernel, A=a, S=zeros, T=zeros.copy())
        want = np.where(2 * np.arange(size) < size, a * np.float32(3), np.float32(0))
        np.testing.assert_allclose(got["T"], want)
