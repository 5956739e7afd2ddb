"""Wall-clock timing the way quiltc's benchmarks and demo report it: warm-up calls,
then the median of several repeats (these machines are noisy; medians of one run are
what get compared), each library's block after a quiet gap (`measure_after_quiet`)."""

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


# OpenMP's threads spin a few milliseconds after a parallel region (its default policy)
# and OpenBLAS's about 0.1 s: a library timed inside that window shares the cores with
# them (numpy's matmul ran more than ten times slower beside spinning quiltc threads).
QUIET_GAP_S = 0.5


def measure_after_quiet(fn, gap_seconds=QUIET_GAP_S, **options):
    """`measure(fn, **options)` after `gap_seconds` of sleep, so the threads another
    library left spinning are idle before `fn`'s block starts: how to time libraries one
    after another in one process."""
    time.sleep(gap_seconds)
    return measure(fn, **options)
