"""The front door: `tune` a workload into a dispatcher, `load` one from the records.

    with qc.autotune.Database("dense.db") as db:
        dispatcher = qc.autotune.tune(workload, db, trials=40)
        Y = dispatcher(X=x, W=w)                 # any T in the range, tuned or not
    dispatcher = qc.autotune.load("dense.db", workload)   # no measuring

A tuning killed part way and run again with the same seed and database redraws the same
candidates and finds the finished ones recorded (`quiltc tune --resume`).
"""

import contextlib

from ..ir.errors import QuiltError
from ..progress import bars_shown, progress_bar
from .database import Database
from .dispatch import Dispatcher
from .executor import executor_for
from .measure import shape_key
from .search import TARGET, Measurer, joint_search, per_shape_search


def tune(workload, database, trials=40, verify=2, executor=None, seed=0, per_shape=False,
         progress=None):
    """Tune `workload` (jointly over its shapes, or each shape alone with `per_shape`) with
    `trials` measurements recorded in `database` (a Database or a path) through
    `executor` (an executor; None for parallel local builds and a measuring process,
    "serial", or a Dask scheduler address), and return the Dispatcher, its `tuning`
    (times, measurements, seconds) attached. `progress` shows a bar on a terminal
    (default) or not."""
    with opened(database, executor) as (database, executor):
        tuning = search(workload, database, executor, trials, verify, seed, per_shape, progress)
    return Dispatcher(workload, tuning.times, tuning=tuning)


@contextlib.contextmanager
def opened(database, executor):
    """(Database, executor) from a Database or a path and an executor or what tune takes
    for one; those opened here are closed on leaving."""
    owned_database = not isinstance(database, Database)
    database = Database(database) if owned_database else database
    owned_executor = executor is None or isinstance(executor, str)
    executor = executor_for(executor) if owned_executor else executor
    try:
        yield database, executor
    finally:
        if owned_executor:
            executor.close()
        if owned_database:
            database.close()


def search(workload, database, executor, trials=40, verify=2, seed=0, per_shape=False,
           progress=None):
    """The Tuning of one search of `workload` (see tune), its measurements recorded in
    `database`."""
    bar = _progress_bar(workload, trials, verify, per_shape, progress)
    try:
        measurer = Measurer(workload, database, executor, bar.update_with if bar else None)
        if per_shape:
            return per_shape_search(workload, measurer, trials, seed=seed)
        return joint_search(workload, measurer, trials, verify, seed=seed)
    finally:
        if bar:
            bar.close()


def load(database, workload):
    """The dispatcher the records of `workload` in `database` (a Database or a path) make,
    built without measuring anything."""
    times = recorded_times(database, workload.hash)
    if not times:
        raise QuiltError(f"the database holds no successful measurement of {workload!r}; "
                         "tune it first (qc.autotune.tune or quiltc tune)")
    return Dispatcher(workload, times)


def recorded_times(database, workload_hash):
    """{shape key: {candidate text: seconds}} of the successful records of the workload
    named `workload_hash` in `database` (a Database or a path)."""
    owned = not isinstance(database, Database)
    database = Database(database) if owned else database
    try:
        records = database.records(workload_hash, TARGET)
    finally:
        if owned:
            database.close()
    times = {}
    for record in records:
        if record.seconds is not None:
            times.setdefault(shape_key(record.shape), {})[record.trace] = record.seconds
    return times


class _Bar:
    """A tqdm bar over measurements showing the best time per shape so far."""

    def __init__(self, bar, shapes):
        self.bar, self.best = bar, dict.fromkeys(shapes)

    def update_with(self, shape, description, seconds, tuning):
        if seconds is not None and (self.best.get(shape) is None or seconds < self.best[shape]):
            self.best[shape] = seconds
        shown = " ".join(f"{_short(shape)}:{seconds * 1e3:.2f}ms"
                         for shape, seconds in self.best.items() if seconds is not None)
        self.bar.set_postfix_str(f"{description} | best {shown}", refresh=False)
        self.bar.update(1)

    def close(self):
        self.bar.close()


def _short(shape):
    return shape.strip("{}").replace('"', "").replace(":", "=")


def _progress_bar(workload, trials, verify, per_shape, progress):
    """A bar when `progress` is True, or None and quiltc.progress shows bars; else None."""
    if progress is False or (progress is None and not bars_shown()):
        return None
    shapes = workload.shape_keys()
    total = trials * len(shapes) if per_shape else trials + verify * len(shapes)
    return _Bar(progress_bar(total=total, description=f"tuning {workload.name}", unit="trial",
                             shown=True), shapes)
