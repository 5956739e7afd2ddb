"""One measurement of one candidate: the unit of work a tuner hands to an executor.

A `MeasureTask` carries everything a worker needs and nothing it must import from the
tuner's process: the scheduled kernel (IR nodes pickle), its rendered C, and the concrete
sizes. `run_task` builds the C through the shared build cache (gcc is the expensive part
of tuning, so it runs wherever the task runs), calls the kernel on random inputs of those
sizes and returns the seconds per call of the fastest repeat. Local processes and Dask
workers run the same function.
"""

import json
import time
from dataclasses import dataclass

import numpy as np

from ..driver.build import load_library
from ..driver.timing import measure
from ..ir.errors import QuiltError
from ..runtime_c.call import CompiledKernel


@dataclass(frozen=True)
class MeasureTask:
    """Measure `kernel` (rendered as `source` with `declarations`) at `sizes` (size name
    -> int). `workload` (its hash), `shape` (the tuned sizes as JSON) and `trace` (the
    candidate's trace JSON) identify the record the result becomes."""

    workload: str
    shape: str
    trace: str
    kernel: object
    source: str
    declarations: str
    sizes: tuple
    repeats: int = 5


@dataclass(frozen=True)
class MeasureResult:
    """The seconds of one call (None when the candidate failed, with `error` saying
    why) and the seconds the build took (0 when the cache had it)."""

    seconds: float | None
    build_seconds: float
    error: str | None = None


def shape_key(sizes):
    """The canonical JSON of a shape (size name -> int), as records store it."""
    return json.dumps(dict(sorted(sizes.items())), separators=(",", ":"))


def random_arguments(kernel, sizes, seed=0):
    """Random inputs for every input parameter of `kernel` at `sizes` (name -> int)."""
    generator = np.random.default_rng(seed)
    binding = {str(var.symbol): value for var, value in
               ((var, sizes[str(var.symbol)]) for var in kernel.shape_vars)}
    arguments = {}
    for buffer in kernel.params:
        if buffer.name in kernel.outputs:
            continue
        shape = tuple(int(_value(extent, binding)) for extent in buffer.shape)
        arguments[buffer.name] = generator.standard_normal(shape).astype(buffer.dtype.numpy)
    return arguments


def _value(extent, binding):
    free = {symbol: binding[str(symbol)] for symbol in getattr(extent, "free_symbols", ())}
    return extent.subs(free) if free else extent


def run_task(task):
    """Build and time `task`'s kernel; a failure to build or run becomes the result's
    error rather than an exception, so one bad candidate never stops a tuning."""
    start = time.perf_counter()
    try:
        library = load_library(task.source, task.declarations)
    except QuiltError as failure:
        return MeasureResult(None, time.perf_counter() - start, str(failure).splitlines()[0])
    build_seconds = time.perf_counter() - start
    kernel = CompiledKernel(task.kernel, task.source, library)
    arguments = random_arguments(task.kernel, dict(task.sizes))
    try:
        # The fastest repeat: on a shared machine other work only ever adds time, and
        # a tuner ranks candidates by what they can do.
        seconds = measure(lambda: kernel(**arguments), warmup=1, repeats=task.repeats,
                          min_seconds=0.02, statistic=min)
    except QuiltError as failure:
        return MeasureResult(None, build_seconds, str(failure).splitlines()[0])
    return MeasureResult(seconds, build_seconds)
