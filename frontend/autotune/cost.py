"""The cost model: cost(micro-kernel, shape) = work / (throughput(micro-kernel) x
adaptation(micro-kernel, shape)) + a per-call term.

The adaptation term is analytic (DietCode's): the padding efficiency of the row loop
(useful rows over the rows the row blocks cover) times the balance of the parallel
blocks over the threads (blocks over whole rounds of blocks). The throughput is learned:
a ridge regression of log(GFLOP/s) on features of the candidate's decisions (block
shape, accumulators, panel, order, parallel loop, packing, tail). Least squares, not a boosted
tree: tuning measures a few dozen candidates, too few for trees to beat a linear model in
a handful of well-chosen features, and numpy solves it in microseconds, so every
measurement, on whichever shape, refits the one model all shapes share.
"""

import itertools
import math

import numpy as np

from ..runtime_c.host import openmp_threads
from .space import ORDERS, PACKS, PANELS, PARALLEL, TAILS

# Each call pays this much before its first multiply-add (the cffi call and OpenMP's
# fork-join); it decides the smallest shapes.
CALL_SECONDS = 5e-6
RIDGE = 1e-2
ARRANGEMENTS = list(itertools.product(ORDERS, PARALLEL, PACKS))


def adaptation(workload, decisions, point, thread_count=None):
    """Padding efficiency x core balance of `decisions` at `point` (1 is perfect)."""
    thread_count = thread_count or openmp_threads()
    rows = workload.rows_at(point)
    row_blocks = -(-rows // decisions["rows"])
    padding = rows / (row_blocks * decisions["rows"])
    if decisions["parallel"] == "rows":
        blocks = row_blocks
    else:
        blocks = workload.column_extent // (decisions["cols"] * decisions["panel"])
    rounds = -(-blocks // thread_count)
    balance = blocks / (rounds * thread_count)
    return padding * balance


def features(decisions, lanes):
    """The regression's inputs for one candidate: the block's shape (rows, vectors,
    accumulators), the panel, the tail, and one indicator per arrangement (order x
    parallel loop x packing), since what an arrangement costs depends on all three."""
    vectors = decisions["cols"] // lanes
    accumulators = decisions["rows"] * vectors / 16
    row = [1.0, decisions["rows"] / 8, vectors / 2, accumulators, accumulators ** 2,
           math.log2(decisions["panel"]) / 4, 1.0 / decisions["rows"], 1.0 / vectors]
    row += [float(decisions["tail"] == tail) for tail in TAILS[1:]]
    row += [float(decisions["panel"] == panel) for panel in PANELS[1:]]
    arrangement = (decisions["order"], decisions["parallel"], decisions["pack"])
    row += [float(arrangement == other) for other in ARRANGEMENTS[1:]]
    return row


class CostModel:
    """Predicted seconds of any candidate at any shape of one workload, refitted by
    `update` from every measurement."""

    def __init__(self, workload, lanes):
        self.workload = workload
        self.lanes = lanes
        self.samples = []
        self.weights = None

    def throughput_of(self, decisions, point, seconds):
        """The micro-kernel GFLOP/s a measurement implies, adaptation and call removed."""
        useful = max(seconds - CALL_SECONDS, seconds * 0.05)
        return self.workload.flops(point) / useful / 1e9 / adaptation(self.workload, decisions,
                                                                      point)

    def update(self, decisions, point, seconds):
        """Add one measurement (None seconds: the candidate failed and teaches nothing)."""
        if seconds is None:
            return
        self.samples.append((features(decisions, self.lanes),
                             math.log(self.throughput_of(decisions, point, seconds))))
        inputs = np.array([sample[0] for sample in self.samples])
        targets = np.array([sample[1] for sample in self.samples])
        gram = inputs.T @ inputs + RIDGE * len(self.samples) * np.eye(inputs.shape[1])
        gram[0, 0] -= RIDGE * len(self.samples)
        self.weights = np.linalg.solve(gram + 1e-9 * np.eye(inputs.shape[1]), inputs.T @ targets)

    def throughput(self, decisions):
        """Predicted micro-kernel GFLOP/s (a neutral 1.0 before the first measurement)."""
        if self.weights is None:
            return 1.0
        return math.exp(float(np.dot(self.weights, features(decisions, self.lanes))))

    def predict(self, decisions, point):
        """Predicted seconds of one call at `point`."""
        rate = self.throughput(decisions) * 1e9 * adaptation(self.workload, decisions, point)
        return self.workload.flops(point) / rate + CALL_SECONDS
