"""quiltc.autotune: the workload, the space, the cost model, the dispatcher, tune and load."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.autotune import cost, space
from quiltc.autotune.dispatch import Leaf, Split, fit_tree, render_tree, select, tree_text
from quiltc.autotune.search import Measurer, joint_search, per_shape_search

from support.tiers import examples


def dense(rows_per_size=4, depth=32, width=32, hi=40, name="T"):
    """Y[rows_per_size * T, width] = X @ W, the workload the tests tune."""
    size = qc.var(name, 1, hi)
    x = qc.placeholder((rows_per_size * size, depth), "float32", "X")
    w = qc.placeholder((depth, width), "float32", "W")
    k = qc.reduce_axis(depth, "k")
    return qc.compute((rows_per_size * size, width),
                      lambda i, j: qc.sum(x[i, k] * w[k, j], axis=k), "Y")


def arrays(workload, point, seed=0):
    generator = np.random.default_rng(seed)
    rows = workload.rows_at(point)
    x = generator.standard_normal((rows, workload.reduction_extent)).astype(np.float32)
    w = generator.standard_normal((workload.reduction_extent, workload.column_extent))
    return x, w.astype(np.float32)


def test_workload_reads_the_contraction():
    workload = qc.autotune.Workload(dense(), shapes={"T": [3, 17, 40]})
    assert (workload.column_extent, workload.reduction_extent) == (32, 32)
    assert workload.rows_at({"T": 17}) == 68
    assert workload.flops({"T": 1}) == 2 * 4 * 32 * 32
    assert workload.shape_keys() == ['{"T":3}', '{"T":17}', '{"T":40}']
    assert workload.hash == qc.autotune.Workload(dense(), shapes={"T": [5]}).hash
    assert workload.hash != qc.autotune.Workload(dense(width=64), shapes={"T": [5]}).hash


@pytest.mark.parametrize("shapes, message", [
    ({"T": [0, 5]}, "outside T's range [1, 40]"),
    ({"N": [5]}, "the program's sizes are T"),
    ({"T": [5.5]}, "outside T's range"),
    ([5, 6], "shapes= takes {size name: [values]}"),
])
def test_workload_refuses_bad_shapes(shapes, message):
    with pytest.raises(qc.QuiltError, match=message.replace("[", r"\[").replace("]", r"\]")
                       .replace("{", r"\{").replace("}", r"\}")):
        qc.autotune.Workload(dense(), shapes=shapes)


def test_workload_refuses_what_the_space_cannot_schedule():
    size = qc.var("T", 1, 8)
    x = qc.placeholder((size, 4), "float32", "X")
    y = qc.compute((size, 4), lambda i, j: x[i, j] + x[i, j], "Y")
    with pytest.raises(qc.QuiltError, match="dense contraction"):
        qc.autotune.Workload(y, shapes={"T": [4]})


def test_the_space_comes_from_the_host_not_the_shape():
    limits = space.HostLimits(lanes=8, accumulators=12, l2_bytes=1 << 20)
    blocks = space.blocks(limits)
    assert (6, 16) in blocks and (12, 8) in blocks
    assert all(rows * cols // 8 <= 12 and cols % 8 == 0 for rows, cols in blocks)
    small = qc.autotune.Workload(dense(), shapes={"T": [3]})
    large = qc.autotune.Workload(dense(), shapes={"T": [40]})
    assert space.space(small, limits) == space.space(large, limits)
    # 4 * T rows: blocks of 2 and 4 rows never leave a partial block, so no local padding.
    assert not any(c["tail"] == "local" and c["rows"] in (2, 4) for c in space.space(small, limits))
    assert any(c["tail"] == "local" and c["rows"] == 3 for c in space.space(small, limits))


@settings(max_examples=examples(12), deadline=None)
@given(data=st.data())
def test_every_candidate_computes_the_product(data):
    workload = qc.autotune.Workload(dense(rows_per_size=3), shapes={"T": [5]})
    candidates = space.space(workload)
    decisions = data.draw(st.sampled_from(candidates))
    size = data.draw(st.integers(1, 40))
    kernel = qc.build(space.sketch(workload, decisions))
    x, w = arrays(workload, {"T": size}, seed=size)
    np.testing.assert_allclose(kernel(X=x, W=w), x @ w, rtol=1e-4, atol=1e-4)


def test_mutation_changes_one_choice():
    workload = qc.autotune.Workload(dense(rows_per_size=3), shapes={"T": [5]})
    rng = space.seeded(1)
    start = space.space(workload)[0]
    for _ in range(20):
        neighbour = space.mutate(start, workload, rng)
        changed = {key for key in start if start[key] != neighbour[key]}
        assert neighbour != start and (changed <= {"rows", "cols"} or len(changed) == 1)


def test_adaptation_is_padding_times_balance():
    workload = qc.autotune.Workload(dense(rows_per_size=1), shapes={"T": [5]})
    decisions = {"rows": 4, "cols": 16, "panel": 1, "order": "panels-outer", "pack": False,
                 "parallel": "rows", "tail": "guard"}
    # 5 rows in 2 blocks of 4: padding 5/8; 2 blocks on 2 threads: balance 1.
    assert cost.adaptation(workload, decisions, {"T": 5}, thread_count=2) == pytest.approx(5 / 8)
    # 9 rows, 3 blocks on 2 threads: padding 9/12, balance 3/4.
    assert cost.adaptation(workload, decisions, {"T": 9}, thread_count=2) == pytest.approx(
        9 / 12 * 3 / 4)
    by_panels = dict(decisions, parallel="panels")
    assert cost.adaptation(workload, by_panels, {"T": 8}, thread_count=2) == pytest.approx(1.0)


def test_the_model_learns_which_block_is_faster():
    workload = qc.autotune.Workload(dense(rows_per_size=8, width=64), shapes={"T": [4]})
    model = cost.CostModel(workload, lanes=16)
    fast = {"rows": 8, "cols": 32, "panel": 1, "order": "panels-outer", "parallel": "rows",
            "pack": False, "tail": "guard"}
    slow = dict(fast, rows=2, cols=16)
    for size in (2, 4, 8, 16):
        point = {"T": size}
        for decisions, rate in ((fast, 100e9), (slow, 20e9)):
            seconds = workload.flops(point) / (rate * cost.adaptation(workload, decisions, point))
            model.update(decisions, point, seconds + cost.CALL_SECONDS)
    assert model.predict(fast, {"T": 11}) < model.predict(slow, {"T": 11})
    assert model.throughput(fast) == pytest.approx(100, rel=0.05)
    assert model.throughput(slow) == pytest.approx(20, rel=0.05)


TIMES = {'{"T":3}': {"a": 1.0, "b": 2.0},
         '{"T":17}': {"a": 3.0, "b": 1.0},
         '{"T":40}': {"a": 9.0, "b": 1.0, "c": 0.5}}


def test_set_cover_and_tree_pick_the_winner_of_each_shape():
    chosen = select(TIMES)
    assert set(chosen) == {"a", "b", "c"}
    tree = fit_tree(TIMES, ["a", "b", "c"])
    assert tree == Split("T", 10, Leaf(0), Split("T", 28, Leaf(1), Leaf(2)))
    assert tree_text(tree, ["k0", "k1", "k2"]).splitlines() == [
        "if T <= 10:", "    k0", "else:", "    if T <= 28:", "        k1", "    else:",
        "        k2"]
    c = render_tree(tree, ["k0", "k1", "k2"], "X, W, Y, T")
    assert "if (T <= 10) {" in c and "k2(X, W, Y, T);" in c


def test_a_kernel_close_enough_everywhere_covers_all_shapes():
    times = {'{"T":1}': {"a": 1.0, "b": 1.01}, '{"T":9}': {"a": 1.02, "b": 1.0}}
    assert len(select(times)) == 1
    assert isinstance(fit_tree(times, select(times)), Leaf)


@pytest.fixture
def tuned(tmp_path):
    workload = qc.autotune.Workload(dense(rows_per_size=3), shapes={"T": [2, 17, 40]})
    path = tmp_path / "records.db"
    dispatcher = qc.autotune.tune(workload, str(path), trials=8, verify=1,
                                  executor="serial", progress=False)
    return workload, path, dispatcher


def test_the_dispatcher_is_right_for_every_size(tuned):
    workload, _, dispatcher = tuned
    for point in workload.every_point():
        x, w = arrays(workload, point, seed=point["T"])
        np.testing.assert_allclose(dispatcher(X=x, W=w), x @ w, rtol=1e-4, atol=1e-4)
    assert "dense_k0" in repr(dispatcher)
    assert "void dense(" in dispatcher.source


def test_load_rebuilds_the_dispatcher_without_measuring(tuned):
    workload, path, dispatcher = tuned
    with qc.autotune.Database(str(path)) as database:
        before = database.count(workload.hash)
        loaded = qc.autotune.load(database, workload)
        assert database.count(workload.hash) == before
    assert loaded.traces == dispatcher.traces and loaded.tree == dispatcher.tree
    x, w = arrays(workload, {"T": 23})
    np.testing.assert_allclose(loaded(X=x, W=w), x @ w, rtol=1e-4, atol=1e-4)


def test_load_without_records_says_to_tune_first(tmp_path):
    workload = qc.autotune.Workload(dense(), shapes={"T": [3]})
    with pytest.raises(qc.QuiltError, match="tune it first"):
        qc.autotune.load(str(tmp_path / "empty.db"), workload)


def test_joint_search_measures_fewer_than_per_shape(tmp_path):
    workload = qc.autotune.Workload(dense(rows_per_size=3), shapes={"T": [2, 17, 40]})
    with qc.autotune.Database(str(tmp_path / "r.db")) as database, \
            qc.autotune.LocalExecutor(workers=0) as executor:
        measurer = Measurer(workload, database, executor)
        joint = joint_search(workload, measurer, trials=6, verify=1)
        alone = per_shape_search(workload, Measurer(workload, database, executor), trials=6)
    assert joint.measurements <= 6 + 3
    assert alone.measurements == 18
    for shape in workload.shape_keys():
        trace, seconds = joint.best(shape)
        assert seconds > 0 and json.loads(trace)["format"] == "quiltc.trace"


def test_the_dispatcher_names_the_kernel_it_runs(tuned):
    workload, _, dispatcher = tuned
    names = {dispatcher.kernel_for(point) for point in workload.every_point()}
    assert names == set(dispatcher.names)


def test_each_kernel_of_the_dispatcher_runs_alone(tuned):
    workload, _, dispatcher = tuned
    x, w = arrays(workload, {"T": 7})
    for name in dispatcher.names:
        np.testing.assert_allclose(dispatcher.kernel(name)(X=x, W=w), x @ w, rtol=1e-4,
                                   atol=1e-4)


def test_a_shape_where_every_candidate_failed_is_named():
    workload = qc.autotune.Workload(dense(), shapes={"T": [3, 17]})
    times = {'{"T":3}': {"a": 1.0}, '{"T":17}': {"a": None}}
    with pytest.raises(qc.QuiltError, match=r'no candidate ran at \{"T":17\}'):
        qc.autotune.Dispatcher(workload, times)
