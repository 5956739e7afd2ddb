"""compute_inline: property tests against the interpreter, compiled C and numpy, what the
kernel looks like afterwards, and its errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import helpers
import quiltc as qc

EXTENTS = st.sampled_from([1, 2, 3, 5, 7, 8])
FACTORS = st.sampled_from([1, 2, 3, 4])


def _size(name, extent, symbolic):
    return qc.var(name, 1, 16) if symbolic else extent


def gelu_program(rows, columns, symbolic):
    """H = X + b (bias), G = tanh-GELU(H), Y = G * s: two elementwise intermediates."""
    N, C = _size("N", rows, symbolic), _size("C", columns, symbolic)
    X = qc.placeholder((N, C), "float32", "X")
    b = qc.placeholder((C,), "float32", "b")
    s = qc.placeholder((C,), "float32", "s")
    H = qc.compute((N, C), lambda i, j: X[i, j] + b[j], "H")
    G = qc.compute(
        (N, C),
        lambda i, j: 0.5 * H[i, j] * (1.0 + qc.tanh(0.7978846 * (H[i, j] + 0.044715 * H[i, j]
                                                                 * H[i, j] * H[i, j]))),
        "G",
    )
    return qc.compute((N, C), lambda i, j: G[i, j] * s[j], "Y")


def gelu_reference(X, b, s):
    H = X + b
    inner = np.float32(0.7978846) * (H + np.float32(0.044715) * H * H * H)
    return np.float32(0.5) * H * (np.float32(1.0) + np.tanh(inner)) * s


def softmax_program(rows, columns, symbolic):
    """Row softmax: M = row max, E = exp(X - M), S = row sum of E, Y = E / S."""
    N, K = _size("N", rows, symbolic), _size("K", columns, symbolic)
    X = qc.placeholder((N, K), "float32", "X")
    k = qc.reduce_axis(K, "k")
    M = qc.compute((N,), lambda i: qc.max(X[i, k], axis=k), "M")
    E = qc.compute((N, K), lambda i, j: qc.exp(X[i, j] - M[i]), "E")
    k2 = qc.reduce_axis(K, "k2")
    S = qc.compute((N,), lambda i: qc.sum(E[i, k2], axis=k2), "S")
    return qc.compute((N, K), lambda i, j: E[i, j] / S[i], "Y")


def softmax_reference(X):
    E = np.exp(X - X.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


@settings(max_examples=25, deadline=None)
@given(rows=EXTENTS, columns=EXTENTS, symbolic=st.booleans(),
       inlined=st.sampled_from([("H",), ("G",), ("H", "G"), ("G", "H")]),
       factor=st.none() | FACTORS, seed=st.integers(0, 2**16))
def test_compute_inline_in_a_bias_gelu_chain(rows, columns, symbolic, inlined, factor, seed):
    sch = qc.Schedule(gelu_program(rows, columns, symbolic))
    for name in inlined:
        sch.compute_inline(name)
    if factor is not None:
        sch.split(sch.loops("Y")[1], factor)
    for name in inlined:
        assert f"{name} = alloc" not in repr(sch) and f"{name}[" not in repr(sch)
    rng = np.random.default_rng(seed)
    X = helpers.random_array(rng, (rows, columns))
    b, s = helpers.random_array(rng, (columns,)), helpers.random_array(rng, (columns,))
    helpers.check_schedule(sch, {"X": X, "b": b, "s": s}, {"Y": gelu_reference(X, b, s)})


@settings(max_examples=20, deadline=None)
@given(rows=EXTENTS, columns=EXTENTS, symbolic=st.booleans(), factor=st.none() | FACTORS,
       seed=st.integers(0, 2**16))
def test_compute_inline_of_the_exponentials_of_a_softmax(rows, columns, symbolic, factor, seed):
    sch = qc.Schedule(softmax_program(rows, columns, symbolic))
    sch.compute_inline("E")
    if factor is not None:
        sch.split("j_1", factor)
    X = helpers.random_array(np.random.default_rng(seed), (rows, columns))
    helpers.check_schedule(sch, {"X": X}, {"Y": softmax_reference(X)})


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
    sch = qc.Schedule(gelu_program(3, 4, symbolic=False))
    sch.compute_inline("H")
    sch.compute_inline("G")
    replayed = sch.trace.replay(qc.Schedule(gelu_program(3, 4, symbolic=False)))
    assert replayed.kernel == sch.kernel


def test_compute_inline_of_a_reduction_is_refused():
    sch = qc.Schedule(softmax_program(3, 5, symbolic=False))
    with pytest.raises(qc.ScheduleError, match=r"compute_inline: asked to inline M .*M is a "
                       r"reduction \(max over a loop\).*Use compute_at\('M', loop\)"):
        sch.compute_inline("M")


def test_compute_inline_of_an_output_is_refused():
    sch = qc.Schedule(softmax_program(3, 5, symbolic=False))
    with pytest.raises(qc.ScheduleError, match=r"compute_inline: .*Y is an output of the kernel"):
        sch.compute_inline("Y")


def test_compute_inline_of_an_input_is_refused():
    sch = qc.Schedule(softmax_program(3, 5, symbolic=False))
    with pytest.raises(qc.ScheduleError, match=r"no statement writes X \(it is an input"):
        sch.compute_inline("X")


def test_compute_inline_after_splitting_the_producer_is_refused():
    sch = qc.Schedule(gelu_program(3, 5, symbolic=False))
    sch.split("j", 2)
    with pytest.raises(qc.ScheduleError, match=r"H is stored at \[i, j_i \+ 2\*j_o\] inside loops "
                       r"that are not exactly one loop per index.*Apply compute_inline before"):
        sch.compute_inline("H")


def test_compute_inline_of_an_unknown_buffer_is_refused():
    sch = qc.Schedule(gelu_program(3, 5, symbolic=False))
    with pytest.raises(qc.ScheduleError, match=r"no buffer called 'Z'"):
        sch.compute_inline("Z")
