"""Question: is one jointly tuned quiltc dispatcher (quiltc.autotune, DietCode-style) faster
than every library at every size of a dynamic dimension, for a fraction of the tuning a
per-shape tuner spends?

Y[16T, 2304] = X[16T, 768] @ W[768, 2304] (BERT-base QKV at batch 16), float32, 2 threads,
T = 1..128, tuned on T in {5, 24, 43, 62, 81, 100, 119, 128}. Contenders, each timed in
its own block after a quiet gap (warm-up, repeated calls, median): numpy (OpenBLAS, its
own kernel choice), torch, torch.compile (dynamic=True, compiled once), jax.jit (compiled
per T before that T is timed), quiltc (the joint dispatcher), quiltc_per_shape (per-shape
tuning's dispatcher: the Ansor analogue) and quiltc_t128 (the joint winner at the largest
tuned T for every T: the Nimble analogue). quiltc is checked against numpy at every T,
the others at a few. Also times one register block with a partial row block three ways:
guarded, locally padded, globally padded (zero rows appended to X in the timed call).
Writes results/dynamic_gemm.json and dynamic_gemm.png.

    python benchmarks/dynamic_gemm.py [--quick] [--trials 40] [--per-shape-trials 40] [--db DIR]

--db DIR keeps the tuning records: run again with the same DIR and the tuners find every
recorded candidate instead of measuring it (tuning seconds then shrink to look-ups).
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

import common
import limits

common.unpin_openblas()  # OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE go before numpy loads
# XLA sizes its CPU thread pool from the cores the process may run on and has no thread
# count of its own: hold the process to THREADS cores, every library alike (as fusion.py
# does). Only in the script itself: the tuner's spawned processes re-run this top level.
ALL_CORES = sorted(os.sched_getaffinity(0))
if __name__ == "__main__" and len(ALL_CORES) > common.THREADS:
    os.sched_setaffinity(0, ALL_CORES[:common.THREADS])
os.environ.setdefault("JAX_PLATFORMS", "cpu")  # no probing for accelerators at import

import numpy as np  # noqa: E402

import quiltc as qc  # noqa: E402
from quiltc.autotune import space  # noqa: E402
from quiltc.driver.timing import measure, measure_after_quiet  # noqa: E402
from quiltc.progress import progress_bar  # noqa: E402
from quiltc.schedule.trace import Trace  # noqa: E402

QUESTION = " ".join(__doc__.split("\n\n")[0].split()[1:])
ROWS_PER_T, DEPTH, WIDTH = 16, 768, 2304
FULL = {"hi": 128, "tuned": [5, 24, 43, 62, 81, 100, 119, 128], "repeats": 5}
QUICK = {"hi": 16, "tuned": [2, 9, 16], "repeats": 3, "trials": 8}
PEERS = ("numpy", "torch", "torch_compile", "jax")
TAIL_T = (1, 5, 43, 100, 127)
TOLERANCE = {"rtol": 1e-3, "atol": 1e-3}


def dense(rows):
    """Y[rows, WIDTH] = X[rows, DEPTH] @ W[DEPTH, WIDTH] as a quiltc program."""
    x = qc.placeholder((rows, DEPTH), "float32", "X")
    w = qc.placeholder((DEPTH, WIDTH), "float32", "W")
    k = qc.reduce_axis(DEPTH, "k")
    return qc.compute((rows, WIDTH), lambda i, j: qc.sum(x[i, k] * w[k, j], axis=k), "Y")


def build_trace(workload, trace):
    """One fixed kernel from a tuned trace JSON."""
    return qc.build(Trace.from_json(trace).replay(qc.Schedule(workload.kernel)))


def tune_on_every_core(workload, database, **options):
    """qc.autotune.tune with this thread's cores widened to all, so the build processes it
    spawns (they inherit the mask) compile on every core; the pin comes back after."""
    pinned = os.sched_getaffinity(0)
    os.sched_setaffinity(0, ALL_CORES)
    try:
        return qc.autotune.tune(workload, database, **options)
    finally:
        os.sched_setaffinity(0, pinned)


def quiltc_runner(fn, w):
    return lambda x, y: lambda: fn(X=x, W=w, out={"Y": y})


def peer_runners(w, compile_seconds):
    """{peer: make(x, y) -> no-argument call} for the peers that import; one line for each
    that does not. `compile_seconds` collects torch.compile's and jax's compile times."""
    makers = {"numpy": lambda x, y: lambda: np.matmul(x, w, out=y)}
    try:
        import torch
    except ImportError:
        print("torch and torch_compile skipped: torch is not installed (pip install -e '.[bench]')")
    else:
        w_torch = torch.from_numpy(w)
        compiled = torch.compile(lambda a, b: torch.matmul(a, b), dynamic=True)

        def eager(x, y):
            x_torch, y_torch = torch.from_numpy(x), torch.from_numpy(y)  # views, no copies
            return lambda: torch.matmul(x_torch, w_torch, out=y_torch)

        def torch_compile(x, y):
            x_torch = torch.from_numpy(x)
            if "torch_compile" not in compile_seconds:  # dynamic=True: the one compile
                start = time.perf_counter()
                compiled(x_torch, w_torch)
                compile_seconds["torch_compile"] = time.perf_counter() - start
            return lambda: compiled(x_torch, w_torch)

        makers.update(torch=eager, torch_compile=torch_compile)
    try:
        import jax
    except ImportError:
        print("jax skipped: jax is not installed (pip install -e '.[bench]')")
    else:
        jitted, w_jax = jax.jit(lambda a, b: a @ b), jax.device_put(w)

        def jax_jit(x, y):
            x_jax = jax.device_put(x)
            start = time.perf_counter()  # a new T is a new shape: XLA compiles again
            jitted(x_jax, w_jax).block_until_ready()
            compile_seconds["jax"] = compile_seconds.get("jax", 0.0) + time.perf_counter() - start
            return lambda: jitted(x_jax, w_jax).block_until_ready()

        makers["jax"] = jax_jit
    common.limit_threads()  # torch's pool (set_num_threads) and any pool loaded with it
    return makers


def checked_gflops(run, y, reference, flops, repeats, check=True):
    """{"gflops"} of `run` timed in its own block, or {"mismatch"} against numpy's
    `reference` (then not timed). `y` is filled with NaN first so a contender that writes
    nothing cannot pass on an earlier contender's output."""
    if check:
        y.fill(np.nan)
        got = np.asarray(run())
        if got.shape != reference.shape:
            return {"mismatch": f"shape {got.shape}, expected {reference.shape}"}
        if not np.allclose(got, reference, **TOLERANCE):
            return {"mismatch": f"max |error| {np.nanmax(np.abs(got - reference)):.3g}, "
                                f"NaNs {int(np.isnan(got).sum())}"}
    return {"gflops": round(flops / measure_after_quiet(run, repeats=repeats) / 1e9, 3)}


def time_every_t(hi, contenders, x_full, w, y_full, check_at, repeats):
    """{T: {contender: {"gflops"} | {"mismatch"}}}, T outermost so that drift in the host's
    load falls on every contender alike."""
    results = {}
    for t in progress_bar(range(1, hi + 1), description="timing every T", unit="T"):
        rows = ROWS_PER_T * t
        x, y = x_full[:rows], y_full[:rows]  # leading rows: C-contiguous views
        reference = x @ w
        results[t] = {name: checked_gflops(make(x, y), y, reference, 2 * rows * DEPTH * WIDTH,
                                           repeats, check=name == "quiltc" or t in check_at)
                      for name, make in contenders.items()}
        print(f"  T={t:<4}" + "  ".join(f"{name} {entry.get('gflops', 'MISMATCH')}"
                                        for name, entry in results[t].items()), flush=True)
    return results


def dispatcher_overhead(dispatcher, x, w, y, rounds=5):
    """{"dispatcher", "alone"}: microseconds per call at T=1 (where overhead weighs most) of
    the dispatcher and of the kernel it picks there, called directly in the same library;
    only the tree's branch differs. Blocks alternate and each keeps its fastest repeat:
    the difference is microseconds in a millisecond call, which the medians of a busy
    host would bury."""
    calls = {"dispatcher": quiltc_runner(dispatcher, w)(x, y),
             "alone": quiltc_runner(dispatcher.kernel(dispatcher.kernel_for({"T": 1})),
                                    w)(x, y)}
    samples = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            samples[name].append(measure(call, repeats=9, min_seconds=0.02, statistic=min))
    return {name: round(min(seconds) * 1e6, 2) for name, seconds in samples.items()}


def tail_strategies(workload, x_full, w, hi, repeats):
    """GFLOP/s of one register block whose rows leave a partial block, with its tail
    guarded, locally padded, or globally padded (zero rows appended in the timed call)."""
    host = space.host_limits()
    cols = 2 * host.lanes
    rows = max(r for r, c in space.blocks(host) if c == cols and ROWS_PER_T % r)
    # The recipe's arrangement: two-block panels, row blocks split among the threads.
    decisions = {"rows": rows, "cols": cols, "panel": 2, "order": "panels-outer",
                 "parallel": "rows", "pack": False, "tail": "local"}
    blocks = qc.var("B", 1, -(-ROWS_PER_T * hi // rows))
    padded = qc.autotune.Workload(dense(rows * blocks), shapes={"B": [1]}, name="dense_padded")
    kernels = {tail: qc.build(space.sketch(workload, {**decisions, "tail": tail}))
               for tail in ("guard", "local")}
    padded_kernel = qc.build(space.sketch(padded, {**decisions, "tail": "guard"}))
    results = {}
    for t in (t for t in TAIL_T if t <= hi):
        m = ROWS_PER_T * t
        x, total = x_full[:m], -(-m // rows) * rows
        zeros = np.zeros((total - m, DEPTH), np.float32)
        y, y_padded = np.empty((m, WIDTH), np.float32), np.empty((total, WIDTH), np.float32)
        runs = {tail: quiltc_runner(fn, w)(x, y) for tail, fn in kernels.items()}
        runs["global"] = lambda: padded_kernel(X=np.concatenate([x, zeros]), W=w,
                                               out={"Y": y_padded})[:m]
        results[t] = {name: checked_gflops(run, y_padded[:m] if name == "global" else y, x @ w,
                                           2 * m * DEPTH * WIDTH, repeats)
                      for name, run in runs.items()}
    return {"decisions": decisions, "partial_rows": {t: ROWS_PER_T * t % rows for t in results},
            "gflops": results}


def geomean(values):
    values = [v for v in values if v]
    return round(float(np.exp(np.mean(np.log(values)))), 3) if values else None


def target(value, goal, **extra):
    return {"value": value, "target": goal, "met": bool(value and value >= goal), **extra}


def summarize(per_t, contenders, joint, per_shape):
    """Geomeans, the best peer, quiltc's ratio to the best peer at each T, and the targets."""
    gflops = {name: {t: row[name].get("gflops") for t, row in per_t.items()} for name in contenders}
    means = {name: geomean(by_t.values()) for name, by_t in gflops.items()}
    peers = [p for p in PEERS if means.get(p)]
    best_peer = max(peers, key=means.get) if peers else None
    ratios = {t: round(gflops["quiltc"][t] / max(gflops[p][t] for p in peers), 3)
              for t in per_t if peers and all(gflops[n][t] for n in ("quiltc", *peers))}
    worst_t = min(ratios, key=ratios.get) if ratios else None
    versus_best = best_peer and means["quiltc"] and round(means["quiltc"] / means[best_peer], 3)
    versus_per_shape = (means["quiltc"] and means["quiltc_per_shape"]
                        and round(means["quiltc"] / means["quiltc_per_shape"], 3))
    fewer = round(per_shape.tuning.measurements / joint.tuning.measurements, 2)
    targets = {
        "geomean_vs_best_peer": target(versus_best, 1.1, best_peer=best_peer),
        "every_T_vs_best_peer": target(ratios.get(worst_t), 0.95, worst_T=worst_t),
        "joint_vs_per_shape": {**target(versus_per_shape, 0.95), "measurement_ratio": fewer,
                               "met": bool(versus_per_shape and versus_per_shape >= 0.95
                                           and fewer >= 5)}}
    return {"geomean": means, "best_peer": best_peer, "quiltc_vs_best_peer_per_T": ratios,
            "targets": targets}


def print_report(per_t, names, tuned, summary, overhead_us, compile_seconds, tails):
    shown = sorted({1, *tuned, *(t for t in per_t if t % 8 == 0)} & set(per_t))
    print(f"\nGFLOP/s ({common.THREADS} threads; * tuned T)\n{'T':>5} "
          + " ".join(f"{name:>16}" for name in names))
    for t in shown:
        print(f"{t:>4}{'*' if t in tuned else ' '} " + " ".join(
            f"{per_t[t][n].get('gflops', float('nan')):>16.1f}" for n in names))
    print(f"{'geo':>5} " + " ".join(f"{summary['geomean'][n] or float('nan'):>16.1f}"
                                    for n in names))
    targets = summary["targets"]
    print(f"\nquiltc geomean / best peer's ({summary['best_peer']}): "
          f"{targets['geomean_vs_best_peer']['value']}; worst T against that T's best peer: "
          f"T={targets['every_T_vs_best_peer']['worst_T']} at "
          f"{targets['every_T_vs_best_peer']['value']}\njoint / per-shape geomean: "
          f"{targets['joint_vs_per_shape']['value']} with "
          f"{targets['joint_vs_per_shape']['measurement_ratio']}x fewer measurements; "
          f"dispatcher overhead at T=1: {overhead_us} us; compile seconds: "
          + ", ".join(f"{k} {v:.1f}" for k, v in compile_seconds.items()))
    print(f"tails of the {tails['decisions']['rows']}x{tails['decisions']['cols']} block "
          "(GFLOP/s guard / local / global): " + "; ".join(
              f"T={t} " + " / ".join(str(e.get("gflops", "MISMATCH")) for e in row.values())
              for t, row in tails["gflops"].items()))


def plot(per_t, names, tuned, folder):
    plt = common.pyplot()
    if plt is None:
        return
    figure, axes = plt.subplots(figsize=(9, 5))
    for name in names:
        axes.plot(sorted(per_t), [per_t[t][name].get("gflops", np.nan) for t in sorted(per_t)],
                  label=name, linewidth=2 if name == "quiltc" else 1)
    for t in tuned:
        axes.axvline(t, color="grey", linewidth=0.5, linestyle=":")
    axes.set(xlabel="T (X has 16T rows; dotted: tuned T)", ylabel=f"GFLOP/s "
             f"({common.THREADS} threads)", title="X[16T, 768] @ W[768, 2304], float32")
    axes.legend()
    figure.tight_layout()
    figure.savefig(folder / "dynamic_gemm.png", dpi=120)


def main():
    parser = argparse.ArgumentParser(description=QUESTION)
    parser.add_argument("--quick", action="store_true", help="T in 1..16 tuned on {2, 9, 16}, "
                        "8 trials each way, results to a temporary folder")
    parser.add_argument("--trials", type=int, default=40, help="joint tuning measurements")
    parser.add_argument("--per-shape-trials", type=int, default=40,
                        help="per-shape tuning measurements per tuned T")
    parser.add_argument("--db", type=pathlib.Path, help="folder of the tuning records, "
                        "reused when run again (default: a fresh temporary folder)")
    arguments = parser.parse_args()
    setup = QUICK if arguments.quick else FULL
    hi, tuned = setup["hi"], setup["tuned"]
    trials = {"joint": setup.get("trials", arguments.trials), "verify": 2,
              "per_shape": setup.get("trials", arguments.per_shape_trials)}
    folder = common.output_folder(arguments.quick)
    db_folder = arguments.db or pathlib.Path(tempfile.mkdtemp(prefix="quiltc-dynamic-gemm-"))
    db_folder.mkdir(parents=True, exist_ok=True)
    reused = any(db_folder.glob("*.sqlite"))
    common.limit_threads()
    measured = limits.measure_limits(repeats=2 if arguments.quick else 5)
    print(f"threads: {common.THREADS}; measured limits: FMA peak {measured['peak_gflops']} "
          f"GFLOP/s, DRAM {measured['bandwidth_gbs']} GB/s; numpy uses {common.blas_description()}")

    workload = qc.autotune.Workload(dense(ROWS_PER_T * qc.var("T", 1, hi)), shapes={"T": tuned})
    # a database each: per-shape tuning would find the joint tuning's records and leave
    # their measuring out of its wall seconds
    joint = tune_on_every_core(workload, db_folder / "joint.sqlite", trials=trials["joint"],
                               verify=trials["verify"])
    per_shape = tune_on_every_core(workload, db_folder / "per_shape.sqlite",
                                   trials=trials["per_shape"], per_shape=True)
    tuning = {name: {"measurements": d.tuning.measurements, "seconds": round(d.tuning.seconds, 1),
                     "tree": repr(d)} for name, d in (("joint", joint), ("per_shape", per_shape))}
    print(f"tuning (records in {db_folder}{', reused' if reused else ''}): " + "; ".join(
        f"{name} {t['measurements']} measurements in {t['seconds']} s"
        for name, t in tuning.items()) + f"\n{joint!r}")

    rng = np.random.default_rng(0)
    x_full = rng.standard_normal((ROWS_PER_T * hi, DEPTH)).astype(np.float32)
    w = rng.standard_normal((DEPTH, WIDTH)).astype(np.float32)
    y_full = np.empty((ROWS_PER_T * hi, WIDTH), np.float32)
    compile_seconds = {}
    contenders = peer_runners(w, compile_seconds)
    largest = build_trace(workload, joint.tuning.best(workload.shape_keys()[-1])[0])
    contenders.update({name: quiltc_runner(fn, w) for name, fn in (
        ("quiltc", joint), ("quiltc_per_shape", per_shape), ("quiltc_t128", largest))})
    check_at = {1, tuned[0], hi // 2 + 1, hi}
    print(f"\ntiming T = 1..{hi}; every contender checked against numpy at T in "
          f"{sorted(check_at)}, quiltc at every T")
    per_t = time_every_t(hi, contenders, x_full, w, y_full, check_at, setup["repeats"])
    at_t1 = dispatcher_overhead(joint, x_full[:ROWS_PER_T], w, y_full[:ROWS_PER_T])
    overhead_us = round(at_t1["dispatcher"] - at_t1["alone"], 2)
    tails = tail_strategies(workload, x_full, w, hi, setup["repeats"])

    dynamo = sys.modules.get("torch._dynamo.utils")  # dynamic=True: 1 unless it recompiled
    names = list(contenders)
    summary = summarize(per_t, names, joint, per_shape)
    print_report(per_t, names, tuned, summary, overhead_us, compile_seconds, tails)
    mismatches = [f"{where}T={t} {name}"
                  for where, table in (("", per_t), ("tail ", tails["gflops"]))
                  for t, row in table.items() for name, e in row.items() if "mismatch" in e]
    path = common.write_json("dynamic_gemm", {
        "question": QUESTION, "threads": common.THREADS, "blas": common.blas_description(),
        "workload": {"X": "[16T, 768]", "W": "[768, 2304]", "T": [1, hi], "tuned_T": tuned,
                     "dtype": "float32", "quiltc_t128_from_T": tuned[-1]},
        "per_T": per_t, **summary,
        "tuning": {**tuning, "trials": trials, "db": str(db_folder), "reused_db": reused},
        "tail_strategies": tails,
        "dispatcher_overhead_us": overhead_us, "dispatcher_vs_kernel_alone_at_T1_us": at_t1,
        "compile_seconds": {k: round(v, 2) for k, v in compile_seconds.items()},
        "torch_compile_graphs": dynamo.counters["stats"]["unique_graphs"] if dynamo else None,
        "decision_tree": repr(joint), "mismatches": mismatches,
        "load_average_1_5_15_min": os.getloadavg(),
        "limits": measured, "host": common.host_report(),
    }, folder)
    print(f"wrote {path}")
    plot(per_t, names, tuned, folder)
    if mismatches:
        print(f"MISMATCHES (not timed): {', '.join(mismatches)}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
