"""Joint search over every tuning shape with one cost model (DietCode), and per-shape
search of the same space (the Ansor analogue) as the baseline.

Both draw candidates from a seeded generator and measure through a `Measurer`, which
asks the records database first: a search restarted with the same seed redraws the same
candidates, finds the finished ones recorded, and measures only what is left (that is
what `quiltc tune --resume` relies on).
"""

import json
import time
from dataclasses import dataclass, field

from ..driver.build import render
from ..ir.errors import QuiltError
from .cost import CostModel
from .measure import MeasureTask, shape_key
from .space import describe, host_limits, mutate, sample, seeded, try_sketch

TARGET = "c"
# One pair in EXPLORE of each batch is drawn at random rather than by the model.
EXPLORE = 4


@dataclass
class Tuning:
    """What a search found: seconds by shape key and trace JSON, how many measurements
    it ran (recorded ones found again count too) and the wall time it took."""

    times: dict = field(default_factory=dict)
    measurements: int = 0
    seconds: float = 0.0

    def best(self, shape):
        """(trace JSON, seconds) of the fastest candidate measured at `shape` (a key)."""
        measured = {trace: s for trace, s in self.times.get(shape, {}).items() if s is not None}
        if not measured:
            raise QuiltError(f"no candidate was measured successfully at {shape}; the "
                             "records' errors say why (Database.records)")
        trace = min(measured, key=measured.get)
        return trace, measured[trace]


class Measurer:
    """Measures (candidate, shape) pairs through an executor, the database first."""

    def __init__(self, workload, database, executor, progress=None):
        self.workload, self.database, self.executor = workload, database, executor
        self.progress = progress
        self._built = {}

    def schedule(self, decisions):
        """(trace JSON, rendered unit) of a candidate, or None when the program refuses it."""
        key = json.dumps(decisions, sort_keys=True)
        if key not in self._built:
            sch = try_sketch(self.workload, decisions)
            self._built[key] = (None if sch is None else
                                (self.workload.candidate(decisions, sch), render([sch])))
        return self._built[key]

    def measure(self, pairs, tuning):
        """Measure each (decisions, point) pair not yet in `tuning` or the database;
        returns {(decisions JSON, shape key): seconds} (None: refused or failed)."""
        seconds, pending = {}, {}
        for decisions, point in pairs:
            key = (json.dumps(decisions, sort_keys=True), shape_key(point))
            built = self.schedule(decisions)
            if built is None:
                seconds[key] = None
                continue
            trace, rendered = built
            shape = key[1]
            if trace in tuning.times.get(shape, {}):
                seconds[key] = tuning.times[shape][trace]
                continue
            recorded = self.database.lookup(self.workload.hash, TARGET, shape, trace)
            if recorded is not None:
                self._record(tuning, shape, trace, recorded.seconds, decisions)
                seconds[key] = recorded.seconds
                continue
            waiting = pending.setdefault((trace, shape), [decisions, [], None])
            waiting[1].append(key)
            waiting[2] = MeasureTask(self.workload.hash, shape, trace, rendered.kernels[0],
                                     rendered.source, rendered.declarations,
                                     tuple(sorted(point.items())))
        for task, result in self.executor.map([task for *_, task in pending.values()]):
            self.database.add(task.workload, TARGET, task.shape, task.trace, result)
            decisions, keys, _ = pending[(task.trace, task.shape)]
            self._record(tuning, task.shape, task.trace, result.seconds, decisions)
            seconds.update(dict.fromkeys(keys, result.seconds))
        return seconds

    def _record(self, tuning, shape, trace, seconds, decisions):
        tuning.times.setdefault(shape, {})[trace] = seconds
        tuning.measurements += 1
        if self.progress is not None:
            self.progress(shape, describe(decisions), seconds, tuning)


def joint_search(workload, measurer, trials=40, verify=2, batch=8, seed=0):
    """Tune every shape of `workload` at once: `trials` measurements chosen by one shared
    cost model, each candidate measured on the shape it is predicted to serve best, then
    the `verify` best predicted candidates of each shape measured there."""
    start = time.perf_counter()
    tuning = Tuning()
    model, measured = _search(workload, measurer, tuning, workload.points, trials, batch, seed,
                              workload.weights)
    candidates = [json.loads(key) for key, value in measured.items() if value != float("inf")]
    final = [(decisions, point) for point in workload.points
             for decisions in sorted(candidates, key=lambda c: model.predict(c, point))[:verify]]
    measurer.measure(final, tuning)
    tuning.seconds = time.perf_counter() - start
    return tuning


def per_shape_search(workload, measurer, trials=40, batch=8, seed=0):
    """The baseline: each shape tuned on its own (its own model and `trials` measurements),
    as a per-shape auto-scheduler does."""
    start = time.perf_counter()
    tuning = Tuning()
    for point in workload.points:
        _search(workload, measurer, tuning, [point], trials, batch, seed)
    tuning.seconds = time.perf_counter() - start
    return tuning


def _search(workload, measurer, tuning, points, trials, batch, seed, weights=None):
    """The workload's seeds measured at every point, then rounds of: draw a pool (random
    candidates and neighbours of the best so far), let the model pick the most promising
    unmeasured ones, measure them, refit. Returns the model and {candidate JSON: its
    seconds per micro-kernel GFLOP}."""
    rng, limits = seeded(seed), host_limits()
    model, measured = CostModel(workload, limits.lanes), {}
    _measure_into(model, measured, measurer, tuning,
                  [(decisions, point) for decisions in workload.seeds() for point in points])
    while len(measured) < trials:
        pool = sample(workload, 128, rng, limits)
        best = sorted(measured, key=measured.get)[:4]
        pool += [mutate(json.loads(key), workload, rng, limits) for key in best for _ in range(8)]
        chosen = _most_promising(model, pool, points, measured,
                                 min(batch, trials - len(measured)), weights)
        if not chosen:
            break
        _measure_into(model, measured, measurer, tuning, chosen)
    return model, measured


def _measure_into(model, measured, measurer, tuning, pairs):
    """Measure (decisions, point) `pairs`, refit `model` with each and enter each in
    `measured` (a candidate measured at several points keeps its last)."""
    seconds = measurer.measure(pairs, tuning)
    for decisions, point in pairs:
        key = json.dumps(decisions, sort_keys=True)
        value = seconds[(key, shape_key(point))]
        model.update(decisions, point, value)
        measured[key] = _relative(model, value, decisions, point)


def _relative(model, seconds, decisions, point):
    """A measurement as seconds per micro-kernel GFLOP (its adaptation to the shape taken
    out), so candidates measured on different shapes rank against each other."""
    if seconds is None:
        return float("inf")
    return 1.0 / model.throughput_of(decisions, point, seconds)


def _most_promising(model, pool, points, measured, count, weights=None):
    """Up to `count` unmeasured (candidate, shape) pairs. The shapes take turns (heaviest
    first): each nominates the candidate the model predicts fastest there among those not
    yet taken, to be measured on it, so every shape's best guesses get measured and each
    measurement is on the shape its candidate is meant for. A quarter of the pairs are
    drawn at random instead (the pool's order is random), so the search keeps exploring
    where a model fitted to few measurements predicts badly."""
    unique = {json.dumps(c, sort_keys=True): c for c in pool}
    fresh = {key: c for key, c in unique.items() if key not in measured}
    weights = weights or [1.0] * len(points)
    turns = [points[n] for n in sorted(range(len(points)), key=lambda n: -weights[n])]
    greedy = 0 if model.weights is None else count - count // EXPLORE
    chosen = []
    while fresh and len(chosen) < count:
        point = turns[len(chosen) % len(turns)]
        if len(chosen) < greedy:
            key = min(fresh, key=lambda k: model.predict(fresh[k], point))
        else:
            key = next(iter(fresh))
        chosen.append((fresh.pop(key), point))
    return chosen
