"""Wall-clock timing the way quiltc's benchmarks and demo report it: warm-up calls,
then the median of several repeats (these machines are noisy; medians of one run are
what get compared)."""

import statistics
import time


def measure(fn, warmup=2, repeats=7, min_seconds=0.05, statistic=statistics.median):
    """Seconds of one call of `fn()`: the `statistic` (median) of `repeats` repeats, each
    looping until `min_seconds` pass."""
    for _ in range(warmup):
        fn()
    calls = 1
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    if first < min_seconds:
        calls = max(1, int(min_seconds / max(first, 1e-9)))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls)
    return statistic(samples)
