"""Executors: where a tuner's MeasureTasks are built and timed.

    with executor_for("local") as executor:          # or "serial", or "tcp://host:8786"
        for task, result in executor.map(tasks):     # in completion order
            db.add(task.workload, "c", task.shape, task.trace, result)

Every executor works in two phases. Builds (gcc, the expensive part) run in parallel, once
per distinct source, filling the on-disk build cache; a failed build is yielded at once.
Measurements then run one at a time, after every build of the batch has finished: kernels
timed side by side, or beside a running gcc, would share cores and memory bandwidth and
report each other's load as their own time.
"""

import abc
import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from ..driver.build import load_library
from ..ir.errors import QuiltError
from .measure import MeasureResult, run_task
from .worker import MeasuringProcess


def _first_line(failure):
    text = str(failure).strip()
    return text.splitlines()[0] if text else type(failure).__name__


def build_task(task):
    """Build `task`'s source through the on-disk cache: (seconds it took, error or None).
    Any failure becomes the error, so a bad candidate never stops a batch."""
    start = time.perf_counter()
    try:
        load_library(task.source, task.declarations)
    except QuiltError as failure:
        return time.perf_counter() - start, _first_line(failure)
    except Exception as failure:  # cffi rejecting declarations, say
        return time.perf_counter() - start, f"{type(failure).__name__}: {_first_line(failure)}"
    return time.perf_counter() - start, None


def measure_task(task, build_seconds):
    """Time `task` (already built, so run_task finds it in the cache) and report the
    build phase's seconds with it."""
    try:
        measured = run_task(task)
    except Exception as failure:  # what run_task lets through: a size missing from task.sizes
        return MeasureResult(None, build_seconds, f"{type(failure).__name__}: "
                                                  f"{_first_line(failure)}")
    return MeasureResult(measured.seconds, build_seconds, measured.error)


def _by_source(tasks):
    """{(source, declarations): [tasks]}: one candidate measured at several shapes shares
    one build."""
    groups = {}
    for task in tasks:
        groups.setdefault((task.source, task.declarations), []).append(task)
    return groups


class Executor(abc.ABC):
    """Runs MeasureTasks: `map(tasks)` yields (task, MeasureResult) pairs as they complete
    (in no promised order); `close()` releases its workers; a context manager."""

    @abc.abstractmethod
    def map(self, tasks):
        """Build and measure every task of `tasks`; yields (task, MeasureResult)."""

    @abc.abstractmethod
    def close(self):
        """Release the executor's workers; idempotent."""

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.close()


class LocalExecutor(Executor):
    """Builds in `workers` threads (default: one per core this process may run on; each
    waits on its own gcc), then measures one task at a time in a measuring subprocess;
    `workers=0` does both serially in this process."""

    def __init__(self, workers=None):
        """`workers`: parallel builds; None for one per core, 0 for no threads at all."""
        self.workers = len(os.sched_getaffinity(0)) if workers is None else workers
        if self.workers < 0:
            raise QuiltError(f"workers={workers} is negative; pass 0 to run in this "
                             "process, or a positive number of parallel builds")
        self._builders = None
        self._measurer = MeasuringProcess()

    def map(self, tasks):
        """Build and measure every task of `tasks`; yields (task, MeasureResult)."""
        groups = _by_source(tasks)
        if self.workers == 0:
            for group in groups.values():
                build_seconds, error = build_task(group[0])
                for task in group:
                    yield task, (MeasureResult(None, build_seconds, error) if error
                                 else measure_task(task, build_seconds))
            return
        if self._builders is None:
            self._builders = ThreadPoolExecutor(self.workers)
        futures = {self._builders.submit(build_task, group[0]): group
                   for group in groups.values()}
        built = []
        for future in as_completed(futures):
            build_seconds, error = future.result()
            if error:
                for task in futures[future]:
                    yield task, MeasureResult(None, build_seconds, error)
            else:
                built.extend((task, build_seconds) for task in futures[future])
        # Measured in a process of its own, neither this one nor a builder: a candidate
        # that crashes (SIGSEGV) takes down only that process, and only its OpenMP thread
        # pool exists.
        for task, build_seconds in built:
            yield task, self._measurer.measure(task, build_seconds)

    def close(self):
        """Stop the build threads and the measuring process."""
        if self._builders is not None:
            self._builders.shutdown(wait=True)
            self._builders = None
        self._measurer.close()


def _distributed():
    try:
        import dask.distributed
    except ImportError:
        raise QuiltError("the Dask executor needs dask.distributed; install it with: "
                         "pip install 'dask[distributed]'") from None
    return dask.distributed


def _build_on_worker(task):
    from dask.distributed import get_worker

    return (*build_task(task), get_worker().address)


class DaskExecutor(Executor):
    """Builds on any worker of a Dask cluster, then measures one task at a time, on the
    worker that built it where it is still there (its cache holds the library). Every
    worker must be able to import quiltc and run its C compiler."""

    def __init__(self, address_or_client):
        """`address_or_client`: a scheduler address ("tcp://host:8786"), a
        dask.distributed.Client, or a cluster (LocalCluster, ...) to connect to. A client
        passed in stays open at close(); one made here is closed."""
        distributed = _distributed()
        if isinstance(address_or_client, distributed.Client):
            self.client, self._owns_client = address_or_client, False
        else:
            try:
                self.client = distributed.Client(address_or_client)
            except OSError as failure:
                raise QuiltError(f"cannot reach the Dask scheduler at {address_or_client!r} "
                                 f"({failure}); start one with `dask scheduler` and workers "
                                 "with `dask worker ADDRESS`") from None
            self._owns_client = True

    def map(self, tasks):
        """Build and measure every task of `tasks`; yields (task, MeasureResult)."""
        distributed = _distributed()
        groups = list(_by_source(tasks).values())
        # pure=False: a task's result is a measurement, never something to deduplicate.
        futures = self.client.map(_build_on_worker, [group[0] for group in groups],
                                  pure=False)
        group_of = {future.key: group for future, group in zip(futures, groups)}
        built = []
        try:
            for future in distributed.as_completed(futures):
                try:
                    build_seconds, error, worker = future.result()
                except Exception as failure:  # KilledWorker and the like
                    build_seconds, error, worker = 0.0, f"the build failed: {failure!r}", None
                for task in group_of[future.key]:
                    if error:
                        yield task, MeasureResult(None, build_seconds, error)
                    else:
                        built.append((task, build_seconds, worker))
        finally:
            self.client.cancel(futures)
        for task, build_seconds, worker in built:
            future = self.client.submit(measure_task, task, build_seconds, pure=False,
                                        workers=[worker], allow_other_workers=True)
            try:
                result = future.result()
            except Exception as failure:  # the kernel killed its worker
                result = MeasureResult(None, build_seconds,
                                       f"the measuring worker died: {failure!r}")
            yield task, result

    def close(self):
        """Close the client if this executor made it."""
        if self._owns_client:
            self.client.close()
            self._owns_client = False


def executor_for(spec=None):
    """The executor `spec` names: None or "local" (processes on this machine), "serial"
    (this process, for debugging), or a Dask scheduler address "tcp://host:port"."""
    if spec is None or spec == "local":
        return LocalExecutor()
    if spec == "serial":
        return LocalExecutor(workers=0)
    if isinstance(spec, str) and "://" in spec:
        return DaskExecutor(spec)
    raise QuiltError(f"unknown executor {spec!r}; use 'local', 'serial' or a Dask scheduler "
                     "address such as 'tcp://host:8786'")
