"""Graph fusion: the partitioner's rules and cuts, feedback into the override list, fused
modules against the op-by-op numpy evaluation and onnx's reference evaluator (random
graphs, both BERT layers, several sizes through one module), the memory plan, the
module's files built into a C program of the user's, and bad calls."""

import ctypes
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.graph import Graph, entry, partition
from quiltc.ir.index import symbol

from support.helpers import SANITIZE, require_tool
from support.tiers import examples

onnx = pytest.importorskip("onnx", reason="install it with: pip install onnx")
from onnx.reference import ReferenceEvaluator  # noqa: E402

from support.onnx_graphs import onnx_models  # noqa: E402

F32 = np.float32
DATA = Path(__file__).resolve().parents[1] / "data"
# The BERT-base export is 28 MB, so it stays in the shared data folder beside the repository
# (or where QUILTC_MODELS_DIR points) and its test skips where that folder is not.
BERT_BASE = Path(os.environ.get(
    "QUILTC_MODELS_DIR", Path(__file__).resolve().parents[3] / "shared" / "data" / "models"),
) / "bert_base_layer.onnx"


def fuse(graph, **options):
    """qc.graph.compile, built with ASan and UBSan under test_sanitize.py."""
    return qc.graph.compile(graph, sanitize=SANITIZE, **options)


@pytest.fixture(autouse=True)
def _own_overrides(tmp_path, monkeypatch):
    """Each test reads and writes its own override list."""
    monkeypatch.setenv("QUILTC_FUSION_OVERRIDES", str(tmp_path / "overrides.json"))


def _layer_norm_graph(columns=768):
    tokens = qc.var("T", 1, 4096)
    g = Graph()
    x, residual = g.input("x", (tokens, columns)), g.input("r", (tokens, columns))
    gamma = g.constant("gamma", np.linspace(0.5, 1.5, columns, dtype=F32))
    beta = g.constant("beta", np.linspace(-1, 1, columns, dtype=F32))
    g.output(g.layer_norm(g.add(x, residual), gamma, beta))
    return g


def _matmul_gelu_graph():
    tokens = qc.var("T", 1, 256)
    g = Graph()
    x = g.input("x", (tokens, 48))
    weights = g.constant("w", np.linspace(-1, 1, 48 * 40, dtype=F32).reshape(48, 40) / 8)
    bias = g.constant("b", np.linspace(-1, 1, 40, dtype=F32))
    g.output(g.gelu_erf(g.add(g.matmul(x, weights), bias)))
    return g


# ------------------------------------------------------------------------ the partitioner

@pytest.mark.parametrize("level, partitions", [(0, 10), (1, 3), (2, 1)])
def test_residual_layer_norm_partitions_by_level(level, partitions):
    plan = partition(_layer_norm_graph(), level)
    assert len(plan.partitions) == partitions
    assert f"level {level}" in str(plan)
    if level == 1:
        reasons = {refusal.reason for refusal in plan.refusals}
        assert "reduction stitching is fusion level 2 (this plan is level 1)" in reasons
        assert any("cycle" in reason for reason in reasons)


def test_matmul_takes_its_epilogue_and_not_its_operands():
    g = _matmul_gelu_graph()
    plan = partition(g, 1)
    assert [part.kind for part in plan.partitions] == ["opaque"]
    tokens = qc.var("T", 1, 64)
    g = Graph()
    x = g.input("x", (tokens, 8))
    weights = g.constant("w", np.eye(8, dtype=F32))
    g.output(g.matmul(g.exp(x), weights))
    plan = partition(g, 2)
    assert len(plan.partitions) == 2
    assert [refusal.reason for refusal in plan.refusals] == [
        "a matmul reads its operands whole from memory"]


def test_matmul_epilogue_stops_at_a_reduction():
    tokens = qc.var("T", 1, 64)
    g = Graph()
    x = g.input("x", (tokens, 8))
    product = g.matmul(x, g.constant("w", np.eye(8, dtype=F32)))
    g.output(g.softmax(g.add(product, x)))
    plan = partition(g, 2)
    assert len(plan.partitions) == 2
    assert any("stops at a reduction" in refusal.reason for refusal in plan.refusals)


def test_a_gather_reads_its_table_from_memory():
    g = Graph()
    table = g.input("table", (10, 4))
    picked = g.gather(g.exp(table), g.constant("rows", np.array([3, -1, 0])), axis=0)
    g.output(g.add(picked, picked))
    plan = partition(g, 2)
    assert len(plan.partitions) == 2
    module = fuse(g, record=False)
    values = np.linspace(-1, 1, 40, dtype=F32).reshape(10, 4)
    np.testing.assert_allclose(module(table=values), g.evaluate(table=values), rtol=1e-6)


def test_an_override_cuts_its_pattern_and_says_why(tmp_path):
    path = tmp_path / "overrides.json"
    path.write_text(json.dumps([{"pattern": "reduce_nanmax -[broadcast]-> sub",
                                 "reason": "measured slower fused"}]))
    tokens = qc.var("T", 1, 64)
    g = Graph()
    g.output(g.softmax(g.input("x", (tokens, 16))))
    plan = partition(g, 2)
    assert len(plan.partitions) == 2
    assert "override: measured slower fused" in str(plan)


# ------------------------------------------------------------------------------ feedback

def test_feedback_splits_a_refused_partition_and_the_next_compile_reads_it(tmp_path):
    # The row sum is read by two outputs; the one that is not the partition's widest
    # cannot be computed inside the other's row loop, so compute_at refuses it.
    tokens = qc.var("T", 1, 64)
    g = Graph()
    x = g.input("x", (tokens, 16))
    total = g.reduce_sum(x, axes=(1,))
    g.output(g.sub(x, total), g.mul(total, g.scalar(2.0, total)))
    module = fuse(g, level=2)
    assert module.learned and module.learned[0][0] == "reduce_sum -[broadcast]-> sub"
    values = np.linspace(-1, 1, 5 * 16, dtype=F32).reshape(5, 16)
    for got, want in zip(module(x=values), g.evaluate(x=values)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    recorded = json.loads((tmp_path / "overrides.json").read_text())
    assert {entry["pattern"] for entry in recorded} >= {module.learned[0][0]}
    plan = partition(g, 2)
    assert any(refusal.reason.startswith("override: compute_at") for refusal in plan.refusals)


# ------------------------------------------------------------------ fused modules, checked

@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_residual_layer_norm_matches_numpy_at_every_level(level):
    g = _layer_norm_graph(columns=40)
    module = fuse(g, level=level, record=False)
    for rows in (1, 7, 33):
        rng = np.random.default_rng(rows)
        x, residual = (rng.standard_normal((rows, 40), dtype=F32) for _ in range(2))
        np.testing.assert_allclose(module(x=x, r=residual), g.evaluate(x=x, r=residual),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape, tile", [((96, 128), 8), ((12, 128), 4), ((9, 128), 1),
                                         ((96, 768), 1), (("T", 128), 1), ((4, 3, 2, 64), 8)])
def test_short_rows_are_computed_in_tiles_of_rows(shape, tile):
    # A tile's every pass (max, exp, sum, scale) runs over `tile` rows: up to 1024
    # elements and 8 rows, a divisor of a known row count; one row where the count is a
    # size, a row already long, or nothing larger divides it. The rows of a softmax over
    # the last of four dims are the other three fused: 24 rows of 64.
    g = Graph()
    x = g.input("x", tuple(qc.var("T", 1, 64) if dim == "T" else dim for dim in shape))
    g.output(g.softmax(x))
    module = fuse(g, record=False)
    row_splits = re.findall(r"sch\.split\('v4_0\w*', (\d+)\)", module.source)
    assert row_splits == ([str(tile)] if tile > 1 else [])
    values = np.random.default_rng(0).standard_normal(
        tuple(12 if dim == "T" else dim for dim in shape), dtype=F32) * F32(4)
    np.testing.assert_allclose(module(x=values), g.evaluate(x=values), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("composite", ["softmax", "log_softmax"])
def test_a_nan_or_infinity_in_a_row_gives_that_row_as_numpy_gives_it(composite):
    # The stabilising max passes over NaN (reduce_nanmax); the NaN's exp still makes the
    # row's sum NaN. Rows: plain, one NaN, all NaN, one +inf, all -inf.
    g = Graph()
    x = g.input("x", (5, 40))
    g.output(getattr(g, composite)(x))
    module = fuse(g, record=False)
    values = np.random.default_rng(0).standard_normal((5, 40), dtype=F32)
    values[1, 7] = values[2] = np.nan
    values[3, 30] = np.inf
    values[4] = -np.inf
    with np.errstate(invalid="ignore"):
        shifted = values - values.max(axis=1, keepdims=True)
        total = np.exp(shifted).sum(axis=1, keepdims=True)
        want = np.exp(shifted) / total if composite == "softmax" else shifted - np.log(total)
        got = module(x=values)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert np.isnan(got[1:]).all() and not np.isnan(got[0]).any()


@pytest.mark.parametrize("level", [1, 2, 3])
def test_layer_norm_is_fused_without_a_refusal_at_every_level(level):
    # At level 1 the statistics arrive from another partition, so 1 / sqrt(var + eps) is a
    # small value broadcast to the rows with no reduction before it: computed once, with
    # add and sqrt inlined into it (compute_at of sqrt inside its nest had been refused
    # and recorded as a cut).
    g = Graph()
    x = g.input("x", (64, 96))
    gamma = g.constant("gamma", np.linspace(0.5, 1.5, 96, dtype=F32))
    beta = g.constant("beta", np.linspace(-1, 1, 96, dtype=F32))
    g.output(g.layer_norm(x, gamma, beta))
    module = fuse(g, level=level, record=False)
    assert module.learned == []
    assert module.calls == (3 if level == 1 else 1)
    values = np.random.default_rng(0).standard_normal((64, 96), dtype=F32)
    np.testing.assert_allclose(module(x=values), g.evaluate(x=values), rtol=1e-5, atol=1e-5)


def test_a_mask_broadcast_to_every_row_is_computed_once_before_the_rows():
    # BERT's attention mask: (1 - float(mask)) * -10000 over [batch, seq], added to
    # scores [batch, heads, seq, seq]. Inlined, the int64 cast ran once per score, twice
    # (max and exp); computed once it is one [batch, seq] nest before the row loop.
    batch, seq = qc.var("B", 1, 8), qc.var("S", 1, 64)
    g = Graph()
    scores = g.input("scores", (batch, 4, seq, seq))
    mask = g.input("mask", (batch, seq), dtype="int64")
    keep = g.cast(g.reshape(mask, shape=(batch, 1, 1, seq)), dtype="float32")
    bias = g.mul(g.sub(g.scalar(1.0, keep), keep), g.scalar(-10000.0, keep))
    g.output(g.softmax(g.add(scores, bias)))
    module = fuse(g, record=False)
    assert module.calls == 1
    nests = re.findall(r"sch\.parallel\('(v\d+)_", module.source)
    assert len(nests) == 2  # the bias, then the softmax's rows
    assert not re.search(rf"sch\.compute_(inline|at)\('{nests[0]}'", module.source)
    rng = np.random.default_rng(0)
    for rows, length in ((3, 5), (8, 64), (1, 1)):
        values = rng.standard_normal((rows, 4, length, length), dtype=F32)
        keeps = (rng.random((rows, length)) < 0.7).astype(np.int64)
        np.testing.assert_allclose(module(scores=values, mask=keeps),
                                   g.evaluate(scores=values, mask=keeps), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("level", [0, 1])
def test_matmul_with_gelu_epilogue_at_every_row_count(level):
    g = _matmul_gelu_graph()
    module = fuse(g, level=level, record=False)
    assert module.calls == (7 if level == 0 else 1)  # matmul add mul erf mul add mul
    for rows in (1, 5, 8, 17, 64):
        x = np.linspace(-2, 2, rows * 48, dtype=F32).reshape(rows, 48)
        np.testing.assert_allclose(module(x=x), g.evaluate(x=x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [("B", "T", 24), (2, "T", 24), ("T", 24)])
def test_a_matmul_epilogue_written_out_midway_stays_one_partition(shape):
    # y = x @ w + b is an output and also read by relu; 520 columns take the panel groups
    # that threads share out with the batch or the row blocks, and leave a tail block.
    sizes = {"T": qc.var("T", 1, 64), "B": qc.var("B", 1, 8)}
    g = Graph()
    x = g.input("x", tuple(sizes.get(dim, dim) for dim in shape))
    weights = g.constant("w", np.linspace(-1, 1, 24 * 520, dtype=F32).reshape(24, 520))
    y = g.add(g.matmul(x, weights), g.constant("b", np.linspace(-1, 1, 520, dtype=F32)))
    g.output(y, g.relu(y))
    module = fuse(g)
    assert module.calls == 1 and not module.learned
    assert "sch.fold_storage" in module.source  # the product's block is one local array
    for rows in (1, 9, 33):
        concrete = tuple({"T": rows, "B": 3}.get(dim, dim) for dim in shape)
        values = np.linspace(-2, 2, int(np.prod(concrete)), dtype=F32).reshape(concrete)
        for got, want in zip(module(x=values), g.evaluate(x=values)):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_column_panels_divide_the_columns_whatever_the_l2_allows(monkeypatch):
    # An L2 with room for panels of 5 register blocks while the output has 12: a panel
    # count that left a partial last panel made the product's compute_at unprovable.
    from quiltc.graph import schedules

    _, columns, _ = schedules.matmul_block()
    depth, width = 64, 12 * columns
    monkeypatch.setattr(schedules, "cache_sizes", lambda: {"L2": 2 * 4 * depth * columns * 5})
    g = Graph()
    x = g.input("x", (qc.var("B", 1, 4), qc.var("T", 1, 32), depth))
    weights = g.constant("w", np.linspace(-1, 1, depth * width, dtype=F32).reshape(depth, width))
    g.output(g.relu(g.matmul(x, weights)))
    module = fuse(g, record=False, cache=False)
    assert module.calls == 1
    values = np.linspace(-2, 2, 2 * 7 * depth, dtype=F32).reshape(2, 7, depth)
    np.testing.assert_allclose(module(x=values), g.evaluate(x=values), rtol=1e-4, atol=1e-4)


@settings(max_examples=examples(12), suppress_health_check=[HealthCheck.too_slow])
@given(model=onnx_models(), level=st.integers(0, 3), rows=st.lists(st.integers(1, 40),
                                                                     min_size=1, max_size=2))
def test_random_graphs_match_numpy_and_the_onnx_reference(model, level, rows):
    g = qc.graph.from_onnx(model)
    module = fuse(g, level=level, record=False)
    reference = ReferenceEvaluator(model)
    columns = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    bias = np.linspace(-1, 1, columns, dtype=F32)
    for count in rows:
        x = np.random.default_rng(count).uniform(-2, 2, (count, columns)).astype(F32)
        got = module(x=x, bias=bias)
        got = got if isinstance(got, tuple) else (got,)
        for fused, by_op, onnx_value in zip(got, _as_tuple(g.evaluate(x=x, bias=bias)),
                                            reference.run(None, {"x": x, "bias": bias})):
            np.testing.assert_allclose(fused, by_op, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(fused, onnx_value, rtol=1e-4, atol=1e-5)


def _as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def _bert_inputs(batch, seq, hidden):
    rng = np.random.default_rng(batch * 100 + seq)
    mask = np.ones((batch, seq), np.int64)
    mask[-1, seq // 2 + 1:] = 0
    return rng.standard_normal((batch, seq, hidden), dtype=F32), mask


@pytest.mark.parametrize("level", [0, 3])
def test_small_bert_layer_matches_the_reference_for_several_sizes(level):
    path = DATA / "bert_layer_small.onnx"
    module = fuse(path, level=level, record=False)
    reference = ReferenceEvaluator(str(path))
    for batch, seq in ((1, 7), (2, 16), (3, 33), (1, 1)):
        hidden, mask = _bert_inputs(batch, seq, 256)
        want = reference.run(None, {"hidden": hidden, "mask": mask})[0]
        np.testing.assert_allclose(module(hidden=hidden, mask=mask), want, rtol=1e-4, atol=1e-5)
    assert module.peak_bytes(batch=2, seq=16) < module.intermediate_bytes(batch=2, seq=16)


@pytest.mark.slow
def test_bert_base_layer_matches_the_reference():
    if not BERT_BASE.exists():
        pytest.skip(f"{BERT_BASE} is not on this machine")
    module = fuse(BERT_BASE, record=False)
    reference = ReferenceEvaluator(str(BERT_BASE))
    for batch, seq in ((1, 5), (2, 19)):
        hidden, mask = _bert_inputs(batch, seq, 768)
        want = reference.run(None, {"hidden": hidden, "mask": mask})[0]
        np.testing.assert_allclose(module(hidden=hidden, mask=mask), want, rtol=1e-4, atol=1e-5)


def test_a_second_compile_comes_from_the_cache(c_compiles):
    g = _layer_norm_graph(columns=24)
    first = fuse(g, record=False)
    compiled = len(c_compiles)
    second = fuse(g, record=False)
    assert len(c_compiles) == compiled
    assert second.source == first.source
    x = np.ones((3, 24), F32)
    np.testing.assert_allclose(second(x=x, r=x), g.evaluate(x=x, r=x), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- the memory plan

def test_intermediates_share_the_workspace_when_their_lifetimes_do_not_overlap():
    module = fuse(_layer_norm_graph(columns=32), level=0, record=False)
    slots = module.memory.slots
    assert sum(len(tenants) for tenants in slots) == 9
    assert len(slots) < 9
    assert module.peak_bytes(T=100) < module.intermediate_bytes(T=100)


# ------------------------------------------------------------ the files a user builds

def test_written_files_build_into_a_program_that_computes_the_graph(tmp_path):
    require_tool("cc", "apt-get install -y gcc")
    g = _matmul_gelu_graph()
    module = fuse(g, name="gelu_layer", record=False)
    source, header, weights = module.write(tmp_path)
    x = np.linspace(-2, 2, 9 * 48, dtype=F32).reshape(9, 48)
    x.tofile(tmp_path / "x.bin")
    (tmp_path / "main.c").write_text(_MAIN)
    program = tmp_path / "program"
    subprocess.run(["cc", "-O2", "-fopenmp", "-std=c99", str(tmp_path / "main.c"), source,
                    "-o", str(program), "-lm"], check=True, capture_output=True)
    subprocess.run([str(program), weights, str(tmp_path / "x.bin"), str(tmp_path / "y.bin")],
                   check=True, cwd=tmp_path)
    got = np.fromfile(tmp_path / "y.bin", F32).reshape(9, 40)
    np.testing.assert_allclose(got, g.evaluate(x=x), rtol=1e-4, atol=1e-5)
    assert "gelu_layer_workspace_bytes" in Path(header).read_text()


_MAIN = r"""
#define _POSIX_C_SOURCE 200112L
#include <stdio.h>
#include <stdlib.h>
#include "gelu_layer.h"

static void *read_all(const char *path, long *size)
{
    FILE *file = fopen(path, "rb");
    fseek(file, 0, SEEK_END);
    *size = ftell(file);
    fseek(file, 0, SEEK_SET);
    void *data;
    if (posix_memalign(&data, 64, *size + 64) != 0) exit(1);
    if (fread(data, 1, *size, file) != (size_t)*size) exit(1);
    fclose(file);
    return data;
}

int main(int argc, char **argv)
{
    long weights_size, input_size;
    char *weights = read_all(argv[1], &weights_size);
    float *x = read_all(argv[2], &input_size);
    int64_t rows = input_size / (48 * sizeof(float));
    float *y = malloc(rows * 40 * sizeof(float));
    void *workspace;
    if (posix_memalign(&workspace, 64, gelu_layer_workspace_bytes(rows) + 64) != 0) return 1;
    gelu_layer(x, y, weights, workspace, rows);
    FILE *out = fopen(argv[3], "wb");
    fwrite(y, sizeof(float), rows * 40, out);
    fclose(out);
    return 0;
}
"""


# --------------------------------------------------------------------------- bad calls

def test_bad_calls_are_shape_errors_naming_the_input():
    module = fuse(_layer_norm_graph(columns=16), record=False)
    x = np.ones((4, 16), F32)
    module(x=x, r=x)  # a shape checked once is remembered; the bad calls below still fail
    with pytest.raises(qc.ShapeError, match="missing input 'r'"):
        module(x=x)
    with pytest.raises(qc.ShapeError, match="unknown inputs y"):
        module(x=x, r=x, y=x)
    with pytest.raises(qc.ShapeError, match="input 'r' has shape"):
        module(x=x, r=np.ones((5, 16), F32))
    with pytest.raises(qc.ShapeError, match="outside its range"):
        module(x=np.ones((5000, 16), F32), r=np.ones((5000, 16), F32))


def test_a_module_called_at_new_sizes_grows_its_workspace_and_stays_right():
    g = _matmul_gelu_graph()
    module = fuse(g, level=0, record=False)
    for rows in (3, 200, 3, 64):
        x = np.linspace(-2, 2, rows * 48, dtype=F32).reshape(rows, 48)
        np.testing.assert_allclose(module(x=x), g.evaluate(x=x), rtol=1e-4, atol=1e-5)
        # A non-contiguous float64 input is converted, and kept alive through the call.
        wide = np.asfortranarray(x.astype(np.float64))
        np.testing.assert_allclose(module(x=wide), g.evaluate(x=x), rtol=1e-4, atol=1e-5)


def test_the_plan_draws(tmp_path):
    pytest.importorskip("matplotlib", reason="install it with: pip install matplotlib")
    plan = partition(qc.graph.from_onnx(DATA / "bert_layer_small.onnx"), 2)
    plan.draw(tmp_path / "plan.png")
    assert (tmp_path / "plan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(tmp_path / "plan.png") > 10_000


# ------------------------------------------------------------------------- layer III

def test_side_by_side_pays_for_small_kernels_and_not_for_large_equal_ones():
    from quiltc.graph.entry import REGION_COST, side_by_side_pays

    assert side_by_side_pays([REGION_COST // 10] * 3, threads=2)
    assert not side_by_side_pays([100 * REGION_COST] * 3, threads=2)
    assert side_by_side_pays([100 * REGION_COST] * 2, threads=2)


def test_independent_partitions_share_one_parallel_region_at_level_3():
    tokens = qc.var("T", 1, 64)
    g = Graph()
    x = g.input("x", (tokens, 8))
    branches = [g.matmul(x, g.constant(f"w{n}", np.full((8, 8), n + 1, F32) / 8))
                for n in range(3)]
    g.output(g.add(g.add(branches[0], branches[1]), branches[2]))
    two = fuse(g, level=2, record=False)
    three = fuse(g, level=3, record=False)
    assert two.calls == three.calls == two.launches == 3   # two matmuls, one with the adds
    assert three.launches == 2
    assert "#pragma omp parallel sections" in three.source
    values = np.linspace(-1, 1, 13 * 8, dtype=F32).reshape(13, 8)
    np.testing.assert_allclose(three(x=values), g.evaluate(x=values), rtol=1e-5, atol=1e-6)
    # Running side by side, the two branches' outputs are live at once: no shared slot.
    assert len(three.memory.slots) == 2


def test_outputs_can_be_written_into_given_arrays():
    g = Graph()
    x = g.input("x", (qc.var("T", 1, 64), 16))
    g.output(g.softmax(x), g.relu(x))
    module = fuse(g, record=False)
    values = np.linspace(-3, 3, 5 * 16, dtype=F32).reshape(5, 16)
    probabilities, positive = np.empty((5, 16), F32), np.empty((5, 16), F32)
    got = module(x=values, out=(probabilities, positive))
    assert got[0] is probabilities and got[1] is positive
    for written, want in zip(got, g.evaluate(x=values)):
        np.testing.assert_allclose(written, want, rtol=1e-5, atol=1e-7)
    # in place: the input is read from a copy before the outputs are written
    inplace = values.copy()
    module(x=inplace, out=(inplace, positive))
    np.testing.assert_allclose(inplace, g.evaluate(x=values)[0], rtol=1e-5, atol=1e-7)
    with pytest.raises(qc.ShapeError, match=r"out= takes 2 array\(s\), one per output"):
        module(x=values, out=probabilities)
    with pytest.raises(qc.ShapeError, match=r"out= for output \w+ must be a writeable "
                                            r"C-contiguous float32\[5, 16\] numpy array; "
                                            r"got float64\[5, 16\]"):
        module(x=values, out=(np.empty((5, 16)), positive))
    with pytest.raises(qc.ShapeError, match="out= arrays share memory"):
        module(x=values, out=(probabilities, probabilities))


def test_the_entry_point_floors_sizes_whose_dividend_may_be_negative(tmp_path):
    # The entry point has no kernel's helpers: its macros floor as sympy does where C's /
    # and % would truncate, and take maxima.
    require_tool("gcc", "apt-get install -y gcc")
    rows, columns = symbol("B"), symbol("T")
    expr = (sympy.Max(rows, 2 * columns) + 64 * sympy.floor((columns - 3) / sympy.Integer(2))
            + sympy.Mod(columns - 5, 4))
    text = entry.c_expression(expr)
    assert "QUILTC_GRAPH_FLOORDIV(" in text and "QUILTC_GRAPH_MAX(" in text
    macros = "\n".join(entry.macro_definitions(text))
    source = tmp_path / "size.c"
    source.write_text(f"#include <stdint.h>\n{macros}\n"
                      f"int64_t size(int64_t B, int64_t T) {{ return {text}; }}\n")
    subprocess.run(["gcc", "-shared", "-fPIC", str(source), "-o", str(tmp_path / "size.so")],
                   check=True)
    size = ctypes.CDLL(str(tmp_path / "size.so")).size
    size.restype, size.argtypes = ctypes.c_int64, [ctypes.c_int64, ctypes.c_int64]
    for b in range(0, 4):
        for t in range(0, 9):
            assert size(b, t) == expr.xreplace({rows: b, columns: t}), (b, t)
