"""Question: is quiltc's fused graph module as fast as the best peer on memory-bound and
fused-epilogue cases?

Eight float32 cases (fusion_cases.py): layer_norm [4096, 768], softmax [12288, 128],
bias_gelu_tanh and bias_gelu_erf [4096, 3072], residual_layer_norm [4096, 768],
matmul_bias_gelu [4096, 768] x [768, 3072], branches [4096, 768] and the BERT-base layer
exported to ONNX (batch 8, sequence 128). Contenders, each timed in its own block after a
quiet gap on the same fixed-seed data with 2 threads: numpy op by op (reported, not a
peer), torch eager, torch.compile (Inductor, default mode, compile time excluded),
jax.jit (XLA CPU), onnxruntime (ORT_ENABLE_ALL) and quiltc.graph.compile at level 3.
Every output is checked against numpy before it is timed; a mismatch is printed and not
timed. Memory-bound cases are timed hot (the same arrays again and again) and cold (caches
flushed before each call), with effective GB/s against the DRAM bandwidth measured in the
run (STREAM's triad: cold_dram_share) and against a stream that reads one array and writes
another (cold_copy_share): every line a kernel stores is first fetched, so a case that
writes as much as it reads meets that lower ceiling first. glibc keeps freed memory for
every contender alike (KEEP_FREED_MEMORY). quiltc also runs its fusion ablation (levels
0-3: ms, kernel calls, intermediate and peak workspace bytes), and the BERT layer's
compile time is taken cold and cached.
Writes results/fusion.json and fusion.png.

    python benchmarks/fusion.py [--quick] [--cases layer_norm,softmax] [--bert PATH]
"""

import argparse
import functools
import importlib
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import common
import limits

common.unpin_openblas()  # OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE go before numpy loads
# glibc gives blocks over 32 MiB back to the OS when they are freed, so each call's fresh
# 48 MiB output page-faults anew: about 1 us a 4 KiB page here, as long as the DRAM traffic
# itself. onnxruntime keeps its own arena and is spared; these settings (read by glibc at
# start, hence the re-execution) give every contender the same reuse of freed memory.
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(1 << 40), "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}
if any(os.environ.get(name) != value for name, value in KEEP_FREED_MEMORY.items()):
    os.environ.update(KEEP_FREED_MEMORY)
    sys.stdout.flush()
    os.execve(sys.executable, sys.orig_argv, os.environ)
# XLA sizes its CPU thread pool from the cores the process may run on and has no thread
# count of its own: hold the whole process (every library alike) to THREADS cores.
_allowed_cores = sorted(os.sched_getaffinity(0))
if len(_allowed_cores) > common.THREADS:
    os.sched_setaffinity(0, _allowed_cores[:common.THREADS])
os.environ.setdefault("JAX_PLATFORMS", "cpu")  # no probing for accelerators at import

import fusion_cases  # noqa: E402
import numpy as np  # noqa: E402
from fusion_report import CONTENDERS, LEVELS, PEERS, geomean, plot, print_tables  # noqa: E402

import quiltc as qc  # noqa: E402
from quiltc.driver.timing import measure_after_quiet  # noqa: E402
from quiltc.progress import progress_bar  # noqa: E402

PEER_MODULES = {"torch_eager": ("torch",), "torch_compile": ("torch",), "jax_jit": ("jax",),
                "onnxruntime": ("onnx", "onnxruntime")}
QUESTION = " ".join(__doc__.split("\n\n")[0].split())
DEFAULT_BERT = (pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "data" /
                "models" / "bert_base_layer.onnx")


def unavailable_contenders():
    """{contender: why it is skipped}: peers whose libraries do not import, and quiltc
    while quiltc.graph.compile does not exist."""
    skipped = {}
    for contender, modules in PEER_MODULES.items():
        for module in modules:
            try:
                importlib.import_module(module)
            except ImportError:
                skipped[contender] = f"{module} is not importable (pip install -e '.[bench]')"
                break
    if not hasattr(qc.graph, "compile"):
        skipped["quiltc"] = "quiltc.graph.compile does not exist yet"
    return skipped


class QuiltcBuilds:
    """quiltc's graph of one case and its module at each level, each built once, when first
    asked for: the quiltc column times the ablation's last-level module."""

    def __init__(self, case):
        self.case, self.modules = case, {}

    @functools.cached_property
    def graph(self):
        """The case as a quiltc Graph."""
        return self.case.quiltc_graph(qc)

    def module(self, level):
        """The graph compiled at fusion `level`."""
        if level not in self.modules:
            self.modules[level] = qc.graph.compile(self.graph, level=level)
        return self.modules[level]

    def refusals(self):
        """{level: [(pattern, reason)]} of the fusions the primitives refused in this run's
        compiles (each split its partition, and was recorded for the later ones)."""
        return {level: module.learned for level, module in self.modules.items()
                if module.learned}


def prepare(contender, case, builds):
    """A no-argument callable running `case` in `contender`, inputs and weights already
    converted to its array type; its first call compiles where the contender compiles."""
    arrays = {**case.inputs, **case.params}
    if contender == "numpy":
        function = case.function(fusion_cases.NumpyOps())
        return lambda: function(arrays)
    if contender in ("torch_eager", "torch_compile"):
        import torch

        function = case.function(fusion_cases.TorchOps(torch))
        if contender == "torch_compile":
            # Every case's function shares one code object: without a reset, Dynamo counts
            # each case as a recompile of the last and falls back to eager at its limit.
            torch._dynamo.reset()
            function = torch.compile(function)
        tensors = {name: torch.from_numpy(array) for name, array in arrays.items()}
        return lambda: function(tensors)
    if contender == "jax_jit":
        import jax

        function = jax.jit(case.function(fusion_cases.JaxOps(jax)))
        # jax computes in 32 bits unless x64 is switched on: the int64 mask goes in as int32
        on_device = {name: jax.numpy.asarray(array.astype(np.int32) if array.dtype == np.int64
                                             else array) for name, array in arrays.items()}
        return lambda: function(on_device).block_until_ready()
    if contender == "onnxruntime":
        import onnx
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads, options.inter_op_num_threads = common.THREADS, 1
        session = onnxruntime.InferenceSession(case.onnx_model(onnx), options,
                                               providers=["CPUExecutionProvider"])
        if case.onnx_batch_of_one:
            feeds = {name: array[None] for name, array in case.inputs.items()}  # views
            return lambda: session.run(None, feeds)[0][0]
        return lambda: session.run(None, case.inputs)[0]
    module = builds.module(LEVELS[-1])
    return lambda: module(**case.inputs)


def one_line(error):
    """An exception as one line: its type and the first line of its message."""
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:300]}"


def disagreement(output, reference, tolerance):
    """None when `output` matches `reference` within `tolerance` (rtol, atol, reason), else
    a line saying where and by how much it differs."""
    rtol, atol, _ = tolerance
    got = np.asarray(output)
    if got.shape != reference.shape:
        return f"shape {got.shape}, expected {reference.shape}"
    if np.allclose(got, reference, rtol=rtol, atol=atol):
        return None
    error = np.abs(got.astype(np.float64) - reference)
    error[np.isnan(error)] = np.inf  # a NaN is the worst error of all
    where = np.unravel_index(np.argmax(error), error.shape)
    return (f"max |error| {error[where]:.3g} at {tuple(map(int, where))}: got "
            f"{float(got[where]):.7g}, expected {float(reference[where]):.7g} (rtol {rtol}, "
            f"atol {atol}); NaNs: {int(np.isnan(got).sum())}")


class CacheFlusher:
    """Evicts the caches before a cold call by reading a buffer of twice the last-level
    cache (64 MiB at least), one slice per benchmark thread so that both cores' L2s are
    swept too; the previous call's dirty output lines are written back here, untimed.

    Flushing rather than rotating copies of the inputs: the L3 of these hosts reaches
    hundreds of MiB (300 MiB on the VM this was written on), which would take dozens of
    copies of every input in each library's own array type, kept alive at once."""

    def __init__(self):
        size = max(64 << 20, 2 * last_level_cache_bytes())
        # ones, not zeros: untouched calloc pages all map the one zero page, which caches
        self.slices = np.array_split(np.ones(size // 4, np.float32), common.THREADS)
        self.pool = ThreadPoolExecutor(common.THREADS)  # numpy drops the GIL in reductions
        self.bytes = size

    def flush(self):
        list(self.pool.map(np.max, self.slices))


def last_level_cache_bytes():
    """The largest cache the kernel reports for CPU 0, in bytes (0 when it reports none)."""
    sizes = [0]
    for index in pathlib.Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        text = (index / "size").read_text().strip()
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        sizes.append(int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text))
    return max(sizes)


def measure_cold(run, flusher, repeats):
    """Median seconds of single calls of `run`, each straight after a cache flush. No quiet
    gap first: it follows the same contender's hot block, so no other library's threads
    can still be running."""
    samples = []
    for _ in range(repeats):
        flusher.flush()
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def time_case(case, reference, skipped, flusher, repeats, builds):
    """{contender: {"ms", "cold_ms"} | {"skipped"} | {"mismatch"} | {"error"}} for `case`."""
    results = {}
    for contender in CONTENDERS:
        if contender in skipped:
            results[contender] = {"skipped": skipped[contender]}
            continue
        try:
            run = prepare(contender, case, builds)
            problem = disagreement(run(), reference, case.tolerance)
        except Exception as error:  # a contender that cannot run a case: say so, time the rest
            print(f"  {case.name:<20} {contender:<14} FAILED, not timed: {one_line(error)}")
            results[contender] = {"error": one_line(error)}
            continue
        if problem:
            print(f"  {case.name:<20} {contender:<14} MISMATCH against numpy, not timed: {problem}")
            results[contender] = {"mismatch": problem}
            continue
        entry = {"ms": round(measure_after_quiet(run, repeats=repeats) * 1e3, 4)}
        if case.memory_bound:
            entry["cold_ms"] = round(measure_cold(run, flusher, repeats) * 1e3, 4)
        print(f"  {case.name:<20} {contender:<14} " + "  ".join(
            f"{key} {value:.3f}" for key, value in entry.items()), flush=True)
        results[contender] = entry
    return results


def summarize(case, results, reference, measured):
    """Add GB/s (memory-bound cases) and GFLOP/s (cases with matmuls) to each timed entry
    and return the case's own figures: bytes, FLOPs, best peer and quiltc's ratio to it."""
    moved = sum(array.nbytes for array in (*case.inputs.values(), *case.params.values()))
    moved += reference.nbytes
    for entry in results.values():
        if "ms" not in entry:
            continue
        if case.memory_bound:
            for key in ("", "cold_"):
                entry[f"{key}gbs"] = round(moved / entry[f"{key}ms"] / 1e6, 2)
            entry["cold_dram_share"] = round(entry["cold_gbs"] / measured["bandwidth_gbs"], 3)
            entry["cold_copy_share"] = round(entry["cold_gbs"] / measured["copy_bandwidth_gbs"],
                                             3)
        if case.flops:
            entry["gflops"] = round(case.flops / entry["ms"] / 1e6, 2)
            entry["peak_share"] = round(entry["gflops"] / measured["peak_gflops"], 3)
    summary = {"bytes": int(moved), "flops": case.flops, "tolerance": {
        "rtol": case.tolerance[0], "atol": case.tolerance[1], "why": case.tolerance[2]},
        "shapes": {name: list(array.shape) for name, array in case.inputs.items()},
        "note": case.note}
    for key in ("ms", "cold_ms") if case.memory_bound else ("ms",):
        timed = {peer: results[peer][key] for peer in PEERS if key in results[peer]}
        best = min(timed, key=timed.get) if timed else None
        quiltc_ms = results["quiltc"].get(key)
        prefix = "cold_" if key == "cold_ms" else ""
        summary[f"{prefix}best_peer"] = best
        summary[f"{prefix}vs_best_peer"] = (round(timed[best] / quiltc_ms, 3)
                                           if best and quiltc_ms else None)
    return summary


def ablation(case, reference, repeats, builds, column):
    """{level: {"ms", "calls", "intermediate_bytes", "peak_bytes"} | {"mismatch"} |
    {"error"}} for quiltc levels 0-3; the last level's ms is the quiltc column's."""
    graph = builds.graph
    # module.intermediate_bytes and peak_bytes take the graph's symbolic sizes by name
    sizes = {str(dim): extent for value in graph.inputs
             for dim, extent in zip(value.shape, case.inputs[value.name].shape)
             if getattr(dim, "is_Symbol", False)}
    rows = {}
    for level in LEVELS:
        try:
            module = builds.module(level)
            row = {"calls": module.calls, "peak_bytes": module.peak_bytes(**sizes),
                   "intermediate_bytes": module.intermediate_bytes(**sizes)}
            problem = disagreement(module(**case.inputs), reference, case.tolerance)
        except Exception as error:  # a level that fails to build: report it, run the others
            print(f"  {case.name:<20} level {level} FAILED: {one_line(error)}")
            rows[str(level)] = {"error": one_line(error)}
            continue
        if problem:
            print(f"  {case.name:<20} level {level} MISMATCH against numpy, not timed: {problem}")
            row["mismatch"] = problem
        elif level == LEVELS[-1] and "ms" in column:
            row["ms"] = column["ms"]
        else:
            row["ms"] = round(measure_after_quiet(
                lambda: module(**case.inputs), repeats=repeats) * 1e3, 4)
        rows[str(level)] = row
    return rows


# Run in a fresh process so that no Python-level memo of an earlier compile counts.
COMPILE_TIMER = """
import json, sys, time
import quiltc as qc
start = time.perf_counter()
graph = qc.graph.from_onnx(sys.argv[1])
imported = time.perf_counter() - start
seconds = []
for _ in range(2):
    start = time.perf_counter()
    qc.graph.compile(graph, level=3)
    seconds.append(time.perf_counter() - start)
print(json.dumps({"import_s": imported, "first_s": seconds[0], "second_s": seconds[1]}))
"""


def compile_times(path):
    """Seconds to import the ONNX file and to compile it at level 3: cold (first compile of a
    process over an empty build cache), cached (first compile of a second process over the
    cache the first filled) and repeated (the second compile within that process)."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="quiltc-cache-") as fresh:
        environment = {**os.environ, "QUILTC_CACHE_DIR": fresh}
        # the fusion overrides compile learns live beside the build cache unless this
        # points elsewhere: a cold compile starts without them too
        environment.pop("QUILTC_FUSION_OVERRIDES", None)
        for _ in range(2):
            done = subprocess.run([sys.executable, "-c", COMPILE_TIMER, str(path)],
                                  env=environment, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError((done.stderr.strip().splitlines() or ["no output"])[-1])
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {"import_s": round(runs[0]["import_s"], 3), "cold_s": round(runs[0]["first_s"], 3),
            "cached_s": round(runs[1]["first_s"], 3),
            "in_process_repeat_s": round(runs[1]["second_s"], 4)}


def main():
    parser = argparse.ArgumentParser(description=QUESTION)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, 3 repeats, results to a temporary folder")
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--bert", type=pathlib.Path, default=DEFAULT_BERT,
                        help="the exported BERT-base layer (default: %(default)s)")
    arguments = parser.parse_args()
    selected = fusion_cases.select(arguments.cases, arguments.quick, arguments.bert)
    # Refusals recorded by earlier compiles on this machine would cut partitions here too:
    # the run starts from the rule table alone and reports what it learns (quiltc_refusals).
    overrides = tempfile.TemporaryDirectory(prefix="quiltc-fusion-overrides-")
    os.environ["QUILTC_FUSION_OVERRIDES"] = os.path.join(overrides.name, "overrides.json")
    folder = common.output_folder(arguments.quick)
    skipped = unavailable_contenders()
    for contender, why in skipped.items():
        print(f"{contender} skipped: {why}")
    common.limit_threads()
    measured = limits.measure_limits(repeats=2 if arguments.quick else 5)
    flusher = CacheFlusher()
    repeats = 3 if arguments.quick else 9
    print(f"threads: {common.THREADS}; measured limits: FMA peak {measured['peak_gflops']} "
          f"GFLOP/s, DRAM {measured['bandwidth_gbs']} GB/s (triad; "
          f"{measured['copy_bandwidth_gbs']} GB/s reading one array, writing another); "
          f"cold calls follow a read of "
          f"{flusher.bytes >> 20} MiB; numpy uses {common.blas_description()}")
    cases, ablations, compile_time = {}, {}, None
    load_at_start = os.getloadavg()  # other work on this host shows in every figure
    for case in progress_bar(selected, description="fusion cases", unit="case"):
        reference = case.function(fusion_cases.NumpyOps())({**case.inputs, **case.params})
        builds = QuiltcBuilds(case)
        results = time_case(case, reference, skipped, flusher, repeats, builds)
        cases[case.name] = {**results, **summarize(case, results, reference, measured)}
        cases[case.name]["quiltc_refusals"] = builds.refusals()
        if "quiltc" not in skipped:
            try:
                ablations[case.name] = ablation(case, reference, repeats, builds,
                                                results["quiltc"])
            except Exception as error:  # a graph quiltc cannot build: report, carry on
                print(f"  {case.name:<20} ablation FAILED: {one_line(error)}")
        if case.name == "bert_base_layer" and "quiltc" not in skipped:
            if arguments.quick:  # two fresh processes and a cold build: tens of seconds
                print("  compile time: not measured with --quick")
                continue
            try:
                compile_time = compile_times(case.path)
            except RuntimeError as error:
                print(f"  compile time not measured: {error}")
    summary = geomean(result["vs_best_peer"] for result in cases.values())
    print_tables(cases, ablations, compile_time, measured)
    print(f"\ngeomean of quiltc vs best peer (hot): {summary}")
    for name, result in cases.items():
        if result["note"]:
            print(f"note, {name}: {result['note']}")
        for level, refused in result["quiltc_refusals"].items():
            print(f"fusion refused, {name} level {level}: "
                  + "; ".join(f"{pattern} ({reason})" for pattern, reason in refused))
    mismatches = [f"{name}/{contender}" for name, result in cases.items()
                  for contender in CONTENDERS if "mismatch" in result[contender]]
    mismatches += [f"{name}/quiltc level {level}" for name, rows in ablations.items()
                   for level, row in rows.items() if "mismatch" in row]
    path = common.write_json("fusion", {
        "question": QUESTION,
        "threads": common.THREADS,
        "cases": cases,
        "geomean_vs_best_peer": summary,
        "geomean_cold_vs_best_peer": geomean(r.get("cold_vs_best_peer") for r in cases.values()),
        "ablation": ablations,
        "compile_time": compile_time,
        "cold_cache": {"flush_bytes": flusher.bytes,
                       "method": "before each cold call, every benchmark thread reads its slice "
                                 "of a buffer twice the last-level cache"},
        "malloc_environment": KEEP_FREED_MEMORY,
        "load_average_1_5_15_min": {"start": load_at_start, "end": os.getloadavg()},
        "mismatches": mismatches,
        "limits": measured,
        "host": common.host_report(),
    }, folder)
    print(f"wrote {path}")
    plot(cases, ablations, folder)
    if mismatches:
        print(f"MISMATCHES (not timed): {', '.join(mismatches)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
