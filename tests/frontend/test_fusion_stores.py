"""Fused modules write an output that only the caller reads with streaming stores where
its nest is bound by memory, and compute the same values as the graph evaluated op by op,
into arrays of the module's own or the caller's, on or off a cache-line boundary."""

import numpy as np
import pytest

import quiltc as qc
from quiltc.graph import Graph

from support.helpers import stream_every_loop

F32 = np.float32
STREAMED = "quiltc_stream_line(quiltc_row + quiltc_line_start, quiltc_line);"


@pytest.fixture(autouse=True)
def _own_overrides(tmp_path, monkeypatch):
    """Each test reads and writes its own override list."""
    monkeypatch.setenv("QUILTC_FUSION_OVERRIDES", str(tmp_path / "overrides.json"))


def _layer_norm(g, x, columns):
    gamma = g.constant("gamma", np.linspace(0.5, 1.5, columns, dtype=F32))
    beta = g.constant("beta", np.linspace(-1, 1, columns, dtype=F32))
    return g.layer_norm(x, gamma, beta)


@pytest.mark.parametrize("columns", [100, 128])
def test_a_layer_norm_output_is_streamed_and_matches_the_graph(columns):
    g = Graph()
    x = g.input("x", (qc.var("T", 1, 64), columns))
    g.output(_layer_norm(g, x, columns))
    with stream_every_loop():
        module = qc.graph.compile(g, record=False, cache=False)
    assert module.source.count("sch.stream(") == 1 and STREAMED in module.source
    for rows in (1, 7, 64):
        values = np.random.default_rng(rows).standard_normal((rows, columns), dtype=F32)
        np.testing.assert_allclose(module(x=values), g.evaluate(x=values), rtol=1e-5,
                                   atol=1e-5)


def test_given_output_arrays_off_a_line_boundary_are_written_whole():
    g = Graph()
    x = g.input("x", (qc.var("T", 1, 64), 100))
    g.output(_layer_norm(g, x, 100))
    with stream_every_loop():
        module = qc.graph.compile(g, record=False, cache=False)
    values = np.random.default_rng(3).standard_normal((9, 100), dtype=F32)
    storage = np.full(9 * 100 + 1, np.nan, F32)
    shifted = storage[1:].reshape(9, 100)  # 4 bytes past numpy's alignment
    assert shifted.ctypes.data % 64 != 0
    got = module(x=values, out=shifted)
    assert got is shifted and np.isnan(storage[0])
    np.testing.assert_allclose(shifted, g.evaluate(x=values), rtol=1e-5, atol=1e-5)


def test_an_output_read_again_inside_the_module_is_not_streamed():
    g = Graph()
    x = g.input("x", (qc.var("T", 1, 64), 96))
    normed = _layer_norm(g, x, 96)
    g.output(normed, g.relu(normed))
    with stream_every_loop():
        module = qc.graph.compile(g, record=False, cache=False)
    # the relu's output is streamed; the layer norm's, which the relu reads, is not
    assert module.source.count("sch.stream(") == 1
    values = np.random.default_rng(5).standard_normal((11, 96), dtype=F32)
    for got, want in zip(module(x=values), g.evaluate(x=values)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_an_output_computed_by_a_costly_function_is_stored_plainly():
    g = Graph()
    x = g.input("x", (qc.var("T", 1, 64), 96))
    g.output(g.tanh(x))
    module = qc.graph.compile(g, record=False, cache=False)
    assert "sch.stream(" not in module.source and "quiltc_stream" not in module.source
    values = np.linspace(-4, 4, 5 * 96, dtype=F32).reshape(5, 96)
    np.testing.assert_allclose(module(x=values), np.tanh(values), rtol=1e-5, atol=1e-6)
