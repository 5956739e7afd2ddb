"""compute_inline: property tests against the interpreter, compiled C and numpy, what the
kernel looks like afterwards, and its errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc

from support import helpers, programs
from support.tiers import examples

EXTENTS = st.sampled_from([1, 2, 3, 5, 7, 8])
FACTORS = st.sampled_from([1, 2, 3, 4])


@settings(max_examples=examples(25))
@given(rows=EXTENTS, columns=EXTENTS, symbolic=st.booleans(),
       inlined=st.sampled_from([("H",), ("G",), ("H", "G"), ("G", "H")]),
       factor=st.none() | FACTORS, seed=st.integers(0, 2**16))
def test_compute_inline_in_a_bias_gelu_chain(rows, columns, symbolic, inlined, factor, seed):
    sch = qc.Schedule(programs.bias_gelu(rows, columns, symbolic))
    for name in inlined:
        sch.compute_inline(name)
    if factor is not None:
        sch.split(sch.loops("Y")[1], factor)
    for name in inlined:
        assert f"{name} = alloc" not in repr(sch) and f"{name}[" not in repr(sch)
    helpers.check_schedule(sch, *programs.bias_gelu_arrays(seed, rows, columns))


@given(rows=EXTENTS, columns=EXTENTS, symbolic=st.booleans(), factor=st.none() | FACTORS,
       seed=st.integers(0, 2**16))
def test_compute_inline_of_the_exponentials_of_a_softmax(rows, columns, symbolic, factor, seed):
    sch = qc.Schedule(programs.row_softmax(rows, columns, symbolic))
    sch.compute_inline("exps")
    if factor is not None:
        sch.split("j_3", factor)
    helpers.check_schedule(sch, *programs.row_softmax_arrays(seed, rows, columns))


def test_compute_inline_substitutes_the_readers_indices():
    A = qc.placeholder((3, 5), "float32", "A")
    P = qc.compute((3, 5), lambda i, j: A[i, j] * 2.0 + qc.cast(j, "float32"), "P")
    T = qc.compute((5, 3), lambda i, j: P[j, i] - P[j, 4 - i], "T")
    sch = qc.Schedule(T)
    sch.compute_inline("P")
    assert "T[i_1, j_1] = (((A[j_1, i_1] * 2.0) + float32(i_1)) - ((A[j_1, 4 - i_1] * 2.0) " \
           "+ float32(4 - i_1)))" in repr(sch)
    A_value = helpers.random_array(np.random.default_rng(3), (3, 5))
    P_value = A_value * np.float32(2.0) + np.arange(5, dtype=np.float32)
    helpers.check_schedule(sch, {"A": A_value}, {"T": (P_value - P_value[:, ::-1]).T})


def test_compute_inline_replays_from_its_trace():
    sch = qc.Schedule(programs.bias_gelu(3, 4))
    sch.compute_inline("H")
    sch.compute_inline("G")
    replayed = sch.trace.replay(qc.Schedule(programs.bias_gelu(3, 4)))
    assert replayed.kernel == sch.kernel


@pytest.mark.parametrize("producer, message", [
    pytest.param("row_max", r"compute_inline: asked to inline row_max .*row_max is a reduction "
                 r"\(nanmax over a loop\).*Use compute_at\('row_max', loop\)", id="reduction"),
    pytest.param("softmax", r"compute_inline: .*softmax is an output of the kernel", id="output"),
    pytest.param("X", r"no statement writes X \(it is an input", id="input"),
])
def test_compute_inline_in_a_softmax_refuses_what_it_cannot_inline(producer, message):
    sch = qc.Schedule(programs.row_softmax(3, 5))
    with pytest.raises(qc.ScheduleError, match=message):
        sch.compute_inline(producer)


def test_compute_inline_after_splitting_the_producer_is_refused():
    sch = qc.Schedule(programs.bias_gelu(3, 5))
    sch.split("j", 2)
    with pytest.raises(qc.ScheduleError, match=r"H is stored at \[i, j_i \+ 2\*j_o\] inside loops "
                       r"that are not exactly one loop per index.*Apply compute_inline before"):
        sch.compute_inline("H")


def test_compute_inline_of_an_unknown_buffer_is_refused():
    sch = qc.Schedule(programs.bias_gelu(3, 5))
    with pytest.raises(qc.ScheduleError, match=r"no buffer called 'Z'"):
        sch.compute_inline("Z")
