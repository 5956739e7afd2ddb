"""This host's limits, measured in the run rather than written down: the float32 FMA peak
of its vector ISA and its DRAM bandwidth (STREAM's triad, and its scale for kernels that
read one array and write another), all with the benchmarks' thread count. A benchmark
states its results as shares of these, so a figure measured on an AVX2 machine never
stands as the limit of an AVX-512 one.

The kernels are generated C built through quiltc's own toolchain driver and build cache
(gcc -O3 -march=native -fopenmp) and timed inside C with omp_get_wtime. No numpy runs, so
neither OPENBLAS_CORETYPE nor OpenBLAS's threads touch the figures.
"""

import common

# Independent FMA chains per thread: enough to cover a 4-cycle FMA latency on two pipes,
# few enough to stay in 16 vector registers beside the two operands.
CHAINS = 12
# float32 elements per triad array: 3 x 64 MiB, far beyond any last-level cache here.
STREAM_ELEMENTS = 1 << 24
SIGNATURE = """
double fma_seconds(int threads, long iterations, float seed, float *sink);
double stream_seconds(int threads, long elements, int repeats, int triad);
"""


def limits_source(lanes):
    """C for an FMA-throughput loop over `lanes`-wide vectors and STREAM-style triad and
    scale loops."""
    chains = range(CHAINS)
    declare = "\n".join(f"        lanes_t acc{c} = x + (float)({c} + omp_get_thread_num());"
                        for c in chains)
    update = "\n".join(f"            acc{c} = acc{c} * scale + step;" for c in chains)
    total = " + ".join(f"acc{c}" for c in chains)
    return f"""#include <omp.h>
#include <stdlib.h>

typedef float lanes_t __attribute__((vector_size({lanes * 4})));

double fma_seconds(int threads, long iterations, float seed, float *sink) {{
    double start = omp_get_wtime();
    #pragma omp parallel num_threads(threads)
    {{
        /* a run-time seed and a fixed point below 1/(1-scale) keep every chain live and
           free of overflow and denormals */
        lanes_t zero = {{0}};
        lanes_t x = zero + seed, scale = zero + 0.9999f, step = zero + 1e-4f;
{declare}
        for (long i = 0; i < iterations; i++) {{
{update}
        }}
        lanes_t sum = {total};
        float folded = 0.0f;
        for (int lane = 0; lane < {lanes}; lane++) folded += sum[lane];
        sink[omp_get_thread_num()] = folded;
    }}
    return omp_get_wtime() - start;
}}

double stream_seconds(int threads, long elements, int repeats, int triad) {{
    float *a = malloc(elements * sizeof(float));
    float *b = malloc(elements * sizeof(float));
    float *c = malloc(elements * sizeof(float));
    if (!a || !b || !c) {{ free(a); free(b); free(c); return -1.0; }}
    /* first touch by the threads that stream the pages later */
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < elements; i++) {{ a[i] = 0.0f; b[i] = 1.0f; c[i] = 2.0f; }}
    double best = 1e30;
    for (int r = 0; r < repeats; r++) {{
        float s = (float)(r + 1);
        double start = omp_get_wtime();
        if (triad) {{
            #pragma omp parallel for num_threads(threads) schedule(static)
            for (long i = 0; i < elements; i++) a[i] = b[i] + s * c[i];
        }} else {{
            #pragma omp parallel for num_threads(threads) schedule(static)
            for (long i = 0; i < elements; i++) a[i] = s * b[i];
        }}
        double seconds = omp_get_wtime() - start;
        if (seconds < best) best = seconds;
    }}
    volatile float keep = a[elements - 1];
    (void)keep;
    free(a); free(b); free(c);
    return best;
}}
"""


def load_kernels(lanes):
    """The compiled limits kernels (cffi library), built once and cached like any kernel."""
    from quiltc.runtime_c import DEFAULT_CACHE, find_toolchain

    return DEFAULT_CACHE.load(limits_source(lanes), SIGNATURE, find_toolchain())


def fma_peak_gflops(library, lanes, repeats, threads=common.THREADS):
    """The best float32 GFLOP/s of `repeats` FMA-throughput runs of about 0.2 s each."""
    sink = library.ffi.new("float[]", threads)
    flops_per_iteration = 2.0 * CHAINS * lanes * threads
    probe = 1 << 20
    seconds = library.handle.fma_seconds(threads, probe, 1.0, sink)
    iterations = max(probe, int(probe * 0.2 / max(seconds, 1e-6)))
    best = min(library.handle.fma_seconds(threads, iterations, 1.0, sink)
               for _ in range(repeats))
    return flops_per_iteration * iterations / best / 1e9


def stream_bandwidth_gbs(library, repeats, triad=True, threads=common.THREADS):
    """Best GB/s over arrays far larger than the caches of a[i] = b[i] + s*c[i] (`triad`,
    two reads and one write counted, as STREAM does) or of a[i] = s*b[i] (one read and one
    write: the traffic of a kernel that reads one array and writes another)."""
    seconds = library.handle.stream_seconds(threads, STREAM_ELEMENTS, repeats, int(triad))
    if seconds <= 0:
        raise MemoryError(f"cannot allocate 3 x {STREAM_ELEMENTS * 4 >> 20} MiB for the streams")
    return (3 if triad else 2) * 4 * STREAM_ELEMENTS / seconds / 1e9


def measure_limits(repeats=5):
    """{"peak_gflops", "bandwidth_gbs", "method"} for this host with THREADS threads."""
    # imported here: quiltc loads numpy, which must wait for unpin_openblas
    from quiltc.runtime_c.host import host_isa

    lanes = host_isa().float32_lanes
    library = load_kernels(lanes)
    peak = fma_peak_gflops(library, lanes, repeats)
    bandwidth = stream_bandwidth_gbs(library, repeats)
    # Stores fetch each line before writing it, so a stream with a larger share of writes
    # moves more bytes than it counts: the scale stream is a copy-like kernel's ceiling.
    copy = stream_bandwidth_gbs(library, repeats, triad=False)
    return {"peak_gflops": round(peak, 1), "bandwidth_gbs": round(bandwidth, 1),
            "copy_bandwidth_gbs": round(copy, 1),
            "threads": common.THREADS, "vector_lanes": lanes,
            "method": f"best of {repeats}: {CHAINS} independent float32 FMA chains of "
                      f"{lanes}-lane vectors per thread; STREAM triad over 3 x "
                      f"{STREAM_ELEMENTS * 4 >> 20} MiB (2 reads + 1 write counted); scale "
                      "a[i] = s*b[i] over 2 of them (1 read + 1 write counted)"}
