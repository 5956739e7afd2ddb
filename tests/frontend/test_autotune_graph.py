"""Tuned matmul partitions inside a fused graph module."""

import json

import numpy as np
import pytest

import quiltc as qc
from quiltc.autotune import partitions, space
from quiltc.graph.lower import constant_arrays
from quiltc.graph.partition import partition
from quiltc.graph.schedules import default_matmul

from support.helpers import require_cc


def _dense_relu_graph(rng):
    """relu(x @ w + b) over a symbolic row count T and a product of two inputs (not a
    dense layer: never tuned), with numpy's reference."""
    graph = qc.graph.Graph()
    rows = qc.var("T", 1, 256)
    x = graph.input("x", (rows, 24))
    other = graph.input("other", (rows, 24))
    w = rng.standard_normal((24, 64)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    dense = graph.relu(graph.add(graph.matmul(x, graph.constant("w", w)), graph.constant("b", b)))
    graph.output(dense, graph.matmul(other, graph.transpose(x, perm=(1, 0))))

    def reference(x, other):
        return np.maximum(x @ w + b, np.float32(0)), other @ x.T

    return graph, reference


def test_tuned_matmul_partitions_run_their_choice_for_every_size(tmp_path):
    require_cc()
    rng = np.random.default_rng(0)
    graph, reference = _dense_relu_graph(rng)
    database = str(tmp_path / "graph.db")
    choices = qc.autotune.tune_graph(graph, database, {"T": [5, 100]}, trials=4, verify=1,
                                     executor="serial", progress=False)
    # One dense layer tuned: the product of two inputs has no weight to pack.
    assert len(choices) == 1
    (choice,) = choices.values()
    assert (choice["order"], choice["parallel"], choice["pack"], choice["tail"]) == \
        partitions.GRAPH_ARRANGEMENT
    module = qc.graph.compile(graph, matmul_choices=choices, cache=False, record=False)
    # The dense layer's output (relu, its third op: v2) is split by the chosen block.
    assert f"sch.split('v2_0', {choice['rows']})" in module.source
    assert f"sch.split('v2_1', {choice['cols']})" in module.source
    for size in (1, 5, 17, 100, 256):
        x, other = (rng.standard_normal((size, 24)).astype(np.float32) for _ in range(2))
        for got, expected in zip(module(x=x, other=other), reference(x, other)):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # The untuned schedule was measured at both shapes.
    default = default_matmul(*_dense_partition(graph))
    with qc.autotune.Database(database) as records:
        seeded = [record.shape for record in records.records(next(iter(choices)))
                  if _block(json.loads(record.trace)["decisions"]) == default]
    assert sorted(shape["T"] for shape in seeded) == [5, 100]
    # The records alone give the same choices; a database without them gives none.
    assert qc.autotune.load_graph(database, graph) == choices
    assert qc.autotune.load_graph(str(tmp_path / "empty.db"), graph) == {}


def _dense_partition(graph):
    """(the partition of the graph's dense layer, the graph's constants)."""
    dense = next(part for part in partition(graph, 2).partitions
                 if part.kind == "opaque" and any(node.op == "relu" for node in part.nodes))
    return dense, constant_arrays(graph)


def _block(decisions):
    return decisions["rows"], decisions["cols"], decisions["panel"]


def test_a_partition_workload_searches_the_graphs_arrangement_only():
    graph, _ = _dense_relu_graph(np.random.default_rng(1))
    dense, constants = _dense_partition(graph)
    workload = partitions.PartitionWorkload(dense, constants, {"T": [5, 100]})
    assert (workload.column_extent, workload.reduction_extent) == (64, 24)
    assert workload.rows_at({"T": 37}) == 37
    candidates = space.space(workload)
    assert candidates and {(c["order"], c["parallel"], c["pack"], c["tail"])
                           for c in candidates} == {partitions.GRAPH_ARRANGEMENT}
    assert all(64 % (c["cols"] * c["panel"]) == 0 for c in candidates)
    # The untuned schedule is measured first, so tuning never picks a slower one.
    assert [_block(c) for c in workload.seeds()] == [default_matmul(dense, constants)]
    # A candidate is recorded with its decisions beside the trace that replays it.
    sch = workload.sketch(candidates[0])
    assert json.loads(workload.candidate(candidates[0], sch))["decisions"] == candidates[0]


def test_a_product_of_two_inputs_is_not_a_tunable_partition():
    graph, _ = _dense_relu_graph(np.random.default_rng(2))
    constants = constant_arrays(graph)
    product = next(part for part in partition(graph, 2).partitions
                   if part.kind == "opaque" and not any(node.op == "relu" for node in part.nodes))
    with pytest.raises(qc.QuiltError, match="not a constant 2-D weight: only dense layers"):
        partitions.PartitionWorkload(product, constants, {"T": [5]})
