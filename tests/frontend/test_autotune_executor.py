"""quiltc.autotune.executor: every task comes back with a result, built in parallel and
measured one at a time, locally or on a Dask cluster; a candidate that does not compile,
or that kills the process timing it, becomes an error result."""

import dataclasses
import os
import sys

import pytest

import quiltc as qc
from quiltc.autotune.database import Database
from quiltc.autotune.executor import DaskExecutor, LocalExecutor, executor_for
from quiltc.autotune.measure import MeasureTask, shape_key
from quiltc.driver.build import render
from quiltc.ir.errors import QuiltError
from quiltc.recipes.cpu import matmul_program, schedule_matmul

from support.helpers import require_cc

BLOCKS = [(4, 16), (2, 8), (8, 16)]
SIZES = [20, 64]


@pytest.fixture(scope="module")
def tasks():
    """Three schedules of one matmul, each measured at two values of M: six tasks, three
    builds."""
    M = qc.var("M", 1, 256)
    _, _, c = matmul_program(M, 32, 16)
    made = []
    for rows, cols in BLOCKS:
        schedule = schedule_matmul(c, rows=rows, cols=cols, vector=8)
        rendered = render([schedule])
        for size in SIZES:
            made.append(MeasureTask("matmul", shape_key({"M": size}), schedule.trace.as_json(),
                                    rendered.kernels[0], rendered.source,
                                    rendered.declarations, (("M", size),), repeats=3))
    return made


def _broken(task):
    return dataclasses.replace(task, trace="broken", source=task.source + "\nnot C at all(\n")


def _trapping(task):
    """`task` with a kernel of the same signature that executes an illegal instruction."""
    source = "#include <stdint.h>\n" + task.declarations.replace(";", " { __builtin_trap(); }")
    return dataclasses.replace(task, trace="trap", source=source)


def _keys(pairs):
    return {(task.workload, task.shape, task.trace) for task, _ in pairs}


@pytest.mark.parametrize("workers", [0, 2])
def test_every_task_is_measured_and_a_bad_source_is_an_error(tasks, workers):
    require_cc()
    batch = [*tasks, _broken(tasks[0])]
    with LocalExecutor(workers=workers) as executor:
        pairs = list(executor.map(batch))
    assert sorted(map(id, (task for task, _ in pairs))) == sorted(map(id, batch))
    results = {task.trace if task.trace == "broken" else (task.trace, task.shape): result
               for task, result in pairs}
    broken = results.pop("broken")
    assert broken.seconds is None and "failed" in broken.error
    assert len(results) == len(tasks)
    for result in results.values():
        assert result.error is None and result.seconds > 0 and result.build_seconds >= 0


def test_a_kernel_that_kills_its_measuring_process_is_an_error(tasks):
    require_cc()
    with LocalExecutor(workers=1) as executor:
        pairs = list(executor.map([_trapping(tasks[0]), tasks[1]]))
        assert [task.trace for task, _ in pairs] == ["trap", tasks[1].trace]
        (_, trapped), (_, measured) = pairs
        assert trapped.seconds is None and "measuring process died" in trapped.error
        assert measured.error is None and measured.seconds > 0
        # The executor replaced its measuring process and carries on.
        [(_, again)] = executor.map([tasks[2]])
        assert again.seconds > 0


def test_executor_for_names():
    assert executor_for("serial").workers == 0
    assert executor_for(None).workers == executor_for("local").workers == os.cpu_count()
    with pytest.raises(QuiltError, match="unknown executor 'gpu'"):
        executor_for("gpu")
    with pytest.raises(QuiltError, match="negative"):
        LocalExecutor(workers=-1)


def test_dask_missing_is_a_readable_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(QuiltError, match=r"pip install 'dask\[distributed\]'"):
        DaskExecutor("tcp://127.0.0.1:8786")


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("dask.distributed",
                                      reason="install it with: pip install 'dask[distributed]'")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield client


def test_dask_and_local_executors_record_the_same_candidates(tasks, dask_client, tmp_path):
    require_cc()
    batch = [*tasks, _broken(tasks[0])]
    with DaskExecutor(dask_client) as executor:
        dask_pairs = list(executor.map(batch))
    assert dask_client.status == "running"  # a client passed in is left open
    with LocalExecutor(workers=2) as executor:
        local_pairs = list(executor.map(batch))
    assert _keys(dask_pairs) == _keys(local_pairs) == _keys((task, None) for task in batch)

    def stored(pairs, path):
        with Database(path) as db:
            for task, result in pairs:
                db.add(task.workload, "c", task.shape, task.trace, result)
            return {(r.workload, shape_key(r.shape), r.trace) for r in db.records("matmul")
                    if r.seconds is not None}

    successful = stored(dask_pairs, tmp_path / "dask.sqlite")
    assert successful == stored(local_pairs, tmp_path / "local.sqlite")
    assert successful == _keys((task, None) for task in tasks)
    broken = next(result for task, result in dask_pairs if task.trace == "broken")
    assert broken.seconds is None and "failed" in broken.error
