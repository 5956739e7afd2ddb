"""The graph IR: building with symbolic dims, shape rules, printing, and the op-by-op
numpy evaluation that fused modules will be checked against."""

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.graph import PRIMITIVES, Graph

from support.tiers import examples

F32 = np.float32


def _bert_tail(hidden=8):
    """layer norm, then softmax and erf-GELU of it, over (T, hidden) with T symbolic."""
    tokens = qc.var("T", 1, 512)
    g = Graph()
    x = g.input("x", (tokens, hidden))
    gamma = g.constant("gamma", np.linspace(0.5, 1.5, hidden, dtype=F32))
    beta = g.constant("beta", np.linspace(-1, 1, hidden, dtype=F32))
    normed = g.layer_norm(x, gamma, beta)
    g.output(g.softmax(normed), g.gelu_erf(normed), g.gelu_tanh(normed))
    return g, gamma, beta


def _reference_tail(x, gamma, beta):
    mean = x.mean(axis=-1, keepdims=True)
    normed = (x - mean) / np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True)
                                  + F32(1e-5)) * gamma + beta
    exps = np.exp(normed - normed.max(axis=-1, keepdims=True))
    erf = np.vectorize(math.erf)(normed / np.sqrt(2)).astype(F32)
    tanh = np.tanh(F32(np.sqrt(2 / np.pi)) * (normed + F32(0.044715) * normed ** 3))
    return (exps / exps.sum(axis=-1, keepdims=True), F32(0.5) * normed * (1 + erf),
            F32(0.5) * normed * (1 + tanh))


@settings(max_examples=examples(20), deadline=None)
@given(tokens=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_composites_evaluate_like_numpy_for_any_number_of_tokens(tokens, seed):
    g, _, _ = _bert_tail()
    x = np.random.default_rng(seed).standard_normal((tokens, 8)).astype(F32)
    gamma, beta = (g.constants[name][1] for name in ("gamma", "beta"))
    for got, want in zip(g.evaluate(x=x), _reference_tail(x, gamma, beta)):
        assert got.dtype == np.float32 and got.shape == (tokens, 8)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_graph_prints_one_line_per_op_with_symbolic_shapes():
    g, _, _ = _bert_tail()
    text = str(g)
    assert text.splitlines()[0] == "graph(x: [T, 8] float32):"
    assert "t3 = reduce_mean(x, axes=(1,), keepdims=True)  : [T, 1] float32" in text
    assert "= 1e-05" in text
    assert text.splitlines()[-1].startswith("    return ")
    assert len(g.nodes) == len(re.findall(r"^    \w+ = \w+\(", text, re.MULTILINE))


def test_every_primitive_has_a_kind_the_partitioner_knows():
    assert {p.kind for p in PRIMITIVES.values()} == {"elementwise", "reduce", "injective",
                                                     "opaque"}


def test_shapes_broadcast_reduce_transpose_reshape_and_multiply():
    tokens, heads = qc.var("T", 1, 64), 2
    g = Graph()
    x = g.input("x", (tokens, 1, 8))
    w = g.input("w", (8, 6))
    bias = g.input("bias", (6,))
    projected = g.add(g.matmul(g.reshape(x, shape=(tokens, 8)), w), bias)
    split = g.transpose(g.reshape(projected, shape=(tokens, heads, 3)), perm=(1, 0, 2))
    total = g.reduce_sum(split, axes=(-1,), keepdims=False)
    assert projected.shape == (tokens, 6) and split.shape == (heads, tokens, 3)
    assert total.shape == (heads, tokens)
    g.output(total)
    rng = np.random.default_rng(1)
    xv, wv, bv = (rng.standard_normal(s).astype(F32) for s in ((5, 1, 8), (8, 6), (6,)))
    want = ((xv.reshape(5, 8) @ wv + bv).reshape(5, 2, 3).transpose(1, 0, 2)).sum(axis=-1)
    np.testing.assert_allclose(g.evaluate(x=xv, w=wv, bias=bv), want, rtol=1e-5)


@pytest.mark.parametrize("build, error, message", [
    (lambda g, x: g.add(x, g.input("y", (qc.var("S", 1, 9), 8))), qc.ShapeError,
     r"add t\d+: dims T and S do not broadcast"),
    (lambda g, x: g.add(x, g.input("y", (3,))), qc.ShapeError,
     r"add t\d+: dims 8 and 3 do not broadcast"),
    (lambda g, x: g.matmul(x, g.input("y", (7, 2))), qc.ShapeError,
     r"matmul t\d+: matmul of \(T, 8\) and \(7, 2\) needs"),
    (lambda g, x: g.reshape(x, shape=(3, 3)), qc.ShapeError,
     r"cannot reshape \(T, 8\) \(8\*T elements\) to \(3, 3\) \(9 elements\)"),
    (lambda g, x: g.where(x, x, x), qc.ShapeError, r"the condition x is float32"),
    (lambda g, x: g.add(x, g.input("i", (8,), "int32")), qc.ShapeError,
     r"inputs of different dtypes \(x float32, i int32\); cast one first"),
    (lambda g, x: g.reduce_sum(x, axes=(2,)), qc.ShapeError, r"axes \(2,\) out of range"),
    (lambda g, x: g.apply("conv", x), qc.LanguageError, r"'conv' is not a primitive op"),
    (lambda g, x: g.exp(x, x), qc.LanguageError, r"exp takes 1 inputs, got 2"),
    (lambda g, x: g.input("x", (3,)), qc.LanguageError, r"already has a value called 'x'"),
])
def test_bad_nodes_are_refused_as_they_are_added(build, error, message):
    g = Graph()
    x = g.input("x", (qc.var("T", 1, 64), 8))
    with pytest.raises(error, match=message):
        build(g, x)


@pytest.mark.parametrize("arrays, message", [
    ({}, r"missing input 'x'"),
    ({"x": np.ones((4, 3), F32)}, r"input 'x' has shape \(4, 3\), expected x: \[T, 8\]"),
    ({"x": np.ones(8, F32)}, r"expected rank 2"),
    ({"x": np.ones((513, 8), F32)}, r"size T = 513 is outside its range \[1, 512\]"),
])
def test_evaluation_checks_its_inputs(arrays, message):
    g, _, _ = _bert_tail()
    with pytest.raises(qc.ShapeError, match=message):
        g.evaluate(**arrays)
