"""Question: does attention scheduled as one pass over tiles of keys (online softmax,
flash-style) beat quiltc's three-pass schedule, which writes each (sequence, head)
pair's length x length scores and probabilities and reads them back?

Side by side in one process with 2 threads, on the same inputs: the first 32 sequences of
each of CoRa's eight length files (../shared/data/seqlens/), 8 heads x 64, float32. The
contenders are quiltc's `attention.attention` (three passes, its register-blocked score
and context blocks) and `ops.online_attention.attention` (one pass), and, where torch is
installed, PyTorch's scaled_dot_product_attention one sequence at a time (what a user
without a ragged library runs). Each is timed in its own block after a quiet gap. Prints
times, the ratio three-pass / one-pass per dataset and their geomean, each schedule's
share of the useful-FLOP limit (real pairs only, against the FMA peak measured in the
run); writes results/online_attention.json and online_attention.png.

    python benchmarks/online_attention.py [--datasets race mrpc ...] [--quick]
"""

import argparse
import math
import sys

import common
import limits

common.unpin_openblas()  # OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE go before numpy loads

import numpy as np  # noqa: E402
from ragged_encoder import DATASETS, HEAD_SIZE, HEADS, HIDDEN, batch_lengths  # noqa: E402

import quiltc as qc  # noqa: E402
from quiltc import attention  # noqa: E402
from quiltc.driver.timing import measure_after_quiet  # noqa: E402
from quiltc.ops import online_attention  # noqa: E402
from quiltc.progress import progress_bar  # noqa: E402

BATCH = 32
QUICK_DATASETS = ["cola", "mrpc"]


def useful_flops(lengths):
    """Multiply-adds x 2 of attention's two products over each sequence's real pairs."""
    lengths = lengths.astype(np.int64)
    return float(np.sum(4 * lengths * lengths * HIDDEN))


def torch_loop(qkv):
    """PyTorch's SDPA one sequence at a time, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    functional = torch.nn.functional
    rows = [torch.from_numpy(np.ascontiguousarray(row)).view(len(row), 3, HEADS, HEAD_SIZE)
            .permute(1, 2, 0, 3) for row in qkv]

    def run():
        with torch.no_grad():
            return [functional.scaled_dot_product_attention(row[0], row[1], row[2])
                    for row in rows]
    return run


def run(datasets, peak, repeats):
    """{dataset: {contender: ms}} and {dataset: {schedule: useful-FLOP share}}."""
    common.limit_threads()
    rng = np.random.default_rng(0)
    results, shares = {}, {}
    for dataset in progress_bar(datasets, description="datasets", unit="dataset"):
        lengths, longest = batch_lengths(dataset, BATCH)
        rows = [rng.standard_normal((n, 3 * HIDDEN)).astype(np.float32) for n in lengths]
        qkv = qc.RaggedArray.from_list(rows)
        three = attention.attention(qkv, HEADS, HEAD_SIZE, longest)
        one = online_attention.attention(qkv, HEADS, HEAD_SIZE, longest)
        np.testing.assert_allclose(one.values, three.values, rtol=1e-3, atol=1e-4)
        contenders = {
            "three_pass": lambda: attention.attention(qkv, HEADS, HEAD_SIZE, longest),
            "one_pass": lambda: online_attention.attention(qkv, HEADS, HEAD_SIZE, longest),
            "torch_loop": torch_loop(rows),
        }
        row = {name: None if fn is None else
               round(measure_after_quiet(fn, repeats=repeats, min_seconds=0.2) * 1e3, 3)
               for name, fn in contenders.items()}
        results[dataset] = row
        shares[dataset] = {name: round(useful_flops(lengths) / (row[name] / 1e3) / 1e9 / peak, 3)
                           for name in ("three_pass", "one_pass")}
        print(f"  {dataset:>8}: " + ", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    return results, shares


def geomean(results, numerator, denominator):
    """Geometric mean over datasets of numerator time / denominator time."""
    ratios = [row[numerator] / row[denominator] for row in results.values()
              if row[numerator] is not None]
    return round(math.exp(np.mean(np.log(ratios))), 3) if ratios else None


def print_table(results, shares, summary):
    print(f"\n{BATCH} sequences, times in ms; x = three-pass time / one-pass time")
    print(f"{'dataset':>9} {'three':>9} {'one':>9} {'torch':>9} {'x':>6} "
          f"{'share 3':>8} {'share 1':>8}")
    for dataset, row in results.items():
        torch_ms = f"{row['torch_loop']:9.1f}" if row["torch_loop"] else f"{'-':>9}"
        print(f"{dataset:>9} {row['three_pass']:9.1f} {row['one_pass']:9.1f} {torch_ms} "
              f"{row['three_pass'] / row['one_pass']:6.2f} "
              f"{shares[dataset]['three_pass']:8.1%} {shares[dataset]['one_pass']:8.1%}")
    print(f"{'geomean':>9} {'':>29} {summary['three_pass_over_one_pass']:6.2f}")


def plot(results, folder):
    """Per dataset, each schedule's speed-up over PyTorch one sequence at a time (or the
    one-pass schedule's over the three-pass one without torch)."""
    plt = common.pyplot()
    if plt is None:
        return
    figure, axis = plt.subplots(figsize=(8, 4))
    datasets = list(results)
    x = np.arange(len(datasets))
    base = "torch_loop" if all(row["torch_loop"] for row in results.values()) else "three_pass"
    for offset, name in ((-0.2, "three_pass"), (0.2, "one_pass")):
        axis.bar(x + offset, [row[base] / row[name] for row in results.values()], 0.4,
                 label=name.replace("_", "-"))
    common.ratio_axis(axis, datasets, f"speed-up over {base.replace('_', ' ')}",
                      f"ragged attention, {BATCH} sequences, {HEADS} heads x {HEAD_SIZE}")
    figure.tight_layout()
    figure.savefig(folder / "online_attention.png", dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS)
    parser.add_argument("--quick", action="store_true",
                        help=f"{' and '.join(QUICK_DATASETS)} unless given, results to a "
                             "temporary folder")
    arguments = parser.parse_args()
    datasets = arguments.datasets or (QUICK_DATASETS if arguments.quick else list(DATASETS))
    folder = common.output_folder(arguments.quick)
    measured = limits.measure_limits(repeats=2 if arguments.quick else 5)
    print(f"threads: {common.THREADS}; useful-FLOP limit {measured['peak_gflops']:.0f} GFLOP/s "
          "(FMA peak, measured)")
    results, shares = run(datasets, measured["peak_gflops"], 3 if arguments.quick else 7)
    summary = {"three_pass_over_one_pass": geomean(results, "three_pass", "one_pass"),
               "torch_loop_over_one_pass": geomean(results, "torch_loop", "one_pass"),
               "torch_loop_over_three_pass": geomean(results, "torch_loop", "three_pass")}
    print_table(results, shares, summary)
    path = common.write_json("online_attention", {
        "threads": common.THREADS, "batch": BATCH,
        "model": {"heads": HEADS, "head_size": HEAD_SIZE, "dtype": "float32"},
        "schedule": {"rows": online_attention.ROWS, "key_tile": online_attention.KEY_TILE},
        "peak_gflops": measured["peak_gflops"],
        "results": results, "geomean": summary, "useful_flop_share": shares,
        "limits": measured, "host": common.host_report(),
    }, folder)
    print(f"wrote {path}")
    plot(results, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
