"""The tables and the plot of benchmarks/fusion.py."""

import math

import numpy as np

import common

PEERS = ("torch_eager", "torch_compile", "jax_jit", "onnxruntime")
CONTENDERS = ("numpy", *PEERS, "quiltc")
LEVELS = (0, 1, 2, 3)

def geomean(values):
    """The geometric mean of the values that are not None, or None when none are left."""
    values = [value for value in values if value]
    return round(math.exp(sum(map(math.log, values)) / len(values)), 3) if values else None


def cell(entry, key):
    """A table cell: the figure, or why there is none."""
    if key in entry:
        return f"{entry[key]:>10.3f}"
    for reason, shown in (("skipped", "skip"), ("mismatch", "WRONG"), ("error", "FAILED")):
        if reason in entry:
            return f"{shown:>10}"
    return f"{'-':>10}"


def print_tables(cases, ablations, compile_time, measured):
    """Times per contender with quiltc's ratio to the best peer, GB/s for the memory-bound
    cases, the ablation and the compile times."""
    names = "".join(f"{contender:>14}" for contender in CONTENDERS)
    cold = [name for name, result in cases.items() if "cold_best_peer" in result]
    tables = [("ms", "hot ms"), ("cold_ms", "cold ms (caches flushed before each call)")]
    for key, title in tables if cold else tables[:1]:
        print(f"\n{title}; vs best = best peer's time / quiltc's time")
        print(f"{'case':<20}{names}{'best peer':>14}{'vs best':>9}")
        prefix = "cold_" if key == "cold_ms" else ""
        for name, result in cases.items():
            if key == "ms" or f"{prefix}best_peer" in result:
                ratio = result[f"{prefix}vs_best_peer"]
                print(f"{name:<20}" + "".join(f"{cell(result[c], key):>14}" for c in CONTENDERS)
                      + f"{result[f'{prefix}best_peer'] or '-':>14}"
                      + (f"{ratio:>9.2f}" if ratio else f"{'-':>9}"))
    if cold:
        print(f"\neffective GB/s, cold (inputs + weights + output bytes / time); DRAM "
              f"{measured['bandwidth_gbs']} GB/s measured (triad), "
              f"{measured.get('copy_bandwidth_gbs', '-')} GB/s reading one array and writing "
              f"another\n{'case':<20}{names}")
    for name in cold:
        print(f"{name:<20}" + "".join(f"{cell(cases[name][c], 'cold_gbs'):>14}"
                                      for c in CONTENDERS))
    if ablations:
        print(f"\nquiltc ablation\n{'case':<20}{'level':>6}{'ms':>10}{'calls':>7}"
              f"{'intermediate MiB':>18}{'peak MiB':>10}")
        for name, rows in ablations.items():
            for level, row in rows.items():
                print(f"{name:<20}{level:>6}{cell(row, 'ms')}" + (
                    f"{row['calls']:>7}{row['intermediate_bytes'] / 2**20:>18.2f}"
                    f"{row['peak_bytes'] / 2**20:>10.2f}" if "calls" in row else ""))
    if compile_time:
        print(f"\nBERT-base layer from ONNX: import {compile_time['import_s']:.2f} s, compile cold "
              f"{compile_time['cold_s']:.2f} s, cached {compile_time['cached_s']:.2f} s (new "
              f"process), {compile_time['in_process_repeat_s'] * 1e3:.1f} ms (same process)")


def grouped_bars(axis, names, series, ylabel, title):
    """One group of bars per case, one bar per entry of `series` ({label: heights})."""
    x, width = np.arange(len(names)), 0.8 / len(series)
    for k, (label, heights) in enumerate(series.items()):
        axis.bar(x + (k - (len(series) - 1) / 2) * width, heights, width, label=label)
    axis.axhline(1.0, color="black", linewidth=0.8)
    axis.set_xticks(x, names, rotation=20)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def plot(cases, ablations, folder):
    """Top: each contender's speed relative to the best peer (hot, log scale); bottom: the
    speed-up of each quiltc fusion level over level 0."""
    plt = common.pyplot()
    if plt is None:
        return
    names = list(cases)
    figure, (ratios, levels) = plt.subplots(2, 1, figsize=(max(9, 1.5 * len(names) + 2), 8))
    grouped_bars(ratios, names, {contender: [
        cases[n][cases[n]["best_peer"]]["ms"] / cases[n][contender]["ms"]
        if cases[n]["best_peer"] and "ms" in cases[n][contender] else np.nan for n in names]
        for contender in CONTENDERS}, "best peer's time / contender's time",
        "float32, 2 threads, hot caches")
    ratios.set_yscale("log")
    grouped_bars(levels, names, {f"level {level}": [
        ablations[n]["0"]["ms"] / ablations[n][str(level)]["ms"]
        if "ms" in ablations.get(n, {}).get("0", {}) and "ms" in ablations[n][str(level)]
        else np.nan for n in names] for level in LEVELS},
        "speed-up over level 0 (unfused)", "quiltc fusion ablation" + (
            "" if ablations else ": quiltc not run"))
    figure.tight_layout()
    figure.savefig(folder / "fusion.png", dpi=120)
