"""Question: on real sequence-length distributions, how does quiltc's ragged multi-head
attention and transformer encoder layer compare with what a PyTorch user runs?

Side by side in one process with 2 threads, on the same inputs, for batch 32 and batch
128 (the first batch of each length file in ../shared/data/seqlens/), the model of the
CoRa benchmarks: hidden 512, 8 heads x 64, FFN 2048, float32, tanh-GELU. Peers:
  padded  PyTorch CPU on the batch padded to its own longest sequence, key-padding mask
  nested  PyTorch jagged nested tensors (q, k, v projected apart: SDPA refuses chunks)
  loop    PyTorch, one sequence at a time
"mha" is the attention core (QKV of every token in, per-head softmax(QK^T/8)V out);
"encoder" the whole post-norm layer. Each contender is timed in its own block after a
quiet gap, with OpenBLAS free to pick this CPU's kernel (OPENBLAS_CORETYPE unset). Prints
times, ratios (peer time / quiltc time) per dataset, geomeans, and quiltc's share of the
useful-FLOP limit (real tokens' FLOPs only, against the 2-core FMA peak measured in the
run); writes results/ragged_encoder.json (with the host, the kernels each library ran and
the measured limits) and ragged_encoder.png.

    python benchmarks/ragged_encoder.py [--batches 32 128] [--datasets race mnli ...] [--quick]
"""

import argparse
import math
import pathlib
import sys
import time

import common
import limits

common.unpin_openblas()  # OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE go before numpy loads

import numpy as np  # noqa: E402

import quiltc as qc  # noqa: E402
from quiltc import attention, encoder  # noqa: E402
from quiltc.driver.timing import QUIET_GAP_S, measure, measure_after_quiet  # noqa: E402
from quiltc.progress import progress_bar  # noqa: E402

SEQLENS = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "seqlens"
DATASETS = ("race", "wiki_512", "squadv2", "wiki_128", "mnli", "xnli", "mrpc", "cola")
HIDDEN, HEADS, HEAD_SIZE, FFN = 512, 8, 64, 2048
PEERS = ("padded", "nested", "loop")
QUICK_BATCHES, QUICK_DATASETS = [8], ["cola", "mrpc"]


def batch_lengths(dataset, batch):
    """The first `batch` lengths of the dataset's file and the file's maximum."""
    lengths = np.loadtxt(SEQLENS / f"{dataset}.txt", dtype=np.int32)
    return lengths[:batch], int(lengths.max())


def useful_flops(lengths, op):
    """Multiply-adds x 2 of the real tokens only: attention's two L x L products, plus the
    four projections for the encoder layer."""
    lengths = lengths.astype(np.int64)
    attention = float(np.sum(4 * lengths * lengths * HIDDEN))
    if op == "mha":
        return attention
    return attention + float(np.sum(2 * lengths * HIDDEN * (4 * HIDDEN + 2 * FFN)))


def sgemm_rate():
    """GFLOP/s numpy's sgemm reaches in this run on 1024^3 (how loaded the machine is)."""
    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    return 2 * 1024**3 / measure_after_quiet(lambda: a @ a, repeats=5) / 1e9


class TorchPeers:
    """The three PyTorch versions of both ops, on torch copies of the same weights."""

    def __init__(self, torch, weights):
        self.torch, self.functional = torch, torch.nn.functional
        self.w = {name: torch.from_numpy(value) for name, value in weights.items()}
        self.in_q, self.in_k, self.in_v = self.w["self_attn.in_proj_weight"].chunk(3)
        self.bias_q, self.bias_k, self.bias_v = self.w["self_attn.in_proj_bias"].chunk(3)

    def _heads(self, x):
        return x.unflatten(-1, (HEADS, HEAD_SIZE)).transpose(1, 2)

    def attention(self, q, k, v, mask=None):
        """softmax(q k^T / sqrt(d)) v over (batch, length, hidden) tensors."""
        out = self.functional.scaled_dot_product_attention(
            self._heads(q), self._heads(k), self._heads(v), attn_mask=mask)
        return out.transpose(1, 2).flatten(-2)

    def layer(self, x, mask=None):
        """The post-norm encoder layer with tanh-GELU (nn.TransformerEncoderLayer's math)."""
        f, w = self.functional, self.w
        q = f.linear(x, self.in_q, self.bias_q)
        k = f.linear(x, self.in_k, self.bias_k)
        v = f.linear(x, self.in_v, self.bias_v)
        attended = self.attention(q, k, v, mask)
        projected = f.linear(attended, w["self_attn.out_proj.weight"], w["self_attn.out_proj.bias"])
        first = f.layer_norm(projected + x, (HIDDEN,), w["norm1.weight"], w["norm1.bias"])
        expanded = f.gelu(f.linear(first, w["linear1.weight"], w["linear1.bias"]),
                          approximate="tanh")
        contracted = f.linear(expanded, w["linear2.weight"], w["linear2.bias"])
        return f.layer_norm(contracted + first, (HIDDEN,), w["norm2.weight"], w["norm2.bias"])

    def runners(self, op, ragged):
        """{peer: callable} on `ragged` (QKV values for "mha", hidden states for "encoder")."""
        torch = self.torch
        lengths = torch.from_numpy(ragged.lengths.astype(np.int64))
        padded = torch.from_numpy(ragged.to_padded())
        longest = padded.shape[1]
        keep = torch.arange(longest)[None, :] < lengths[:, None]
        mask = keep[:, None, None, :]
        rows = [torch.from_numpy(np.ascontiguousarray(row))[None] for row in ragged]
        nested = ragged.to_torch_nested()
        if op == "mha":
            parts = [torch.nested.nested_tensor_from_jagged(
                torch.from_numpy(np.ascontiguousarray(
                    ragged.values[:, k * HIDDEN:(k + 1) * HIDDEN])),
                torch.from_numpy(ragged.offsets.astype(np.int64))) for k in range(3)]
            return {
                "padded": lambda: self.attention(*padded.chunk(3, dim=-1), mask),
                "nested": lambda: self.attention(*parts),
                "loop": lambda: [self.attention(*row.chunk(3, dim=-1)) for row in rows],
            }
        return {
            "padded": lambda: self.layer(padded, mask),
            "nested": lambda: self.layer(nested),
            "loop": lambda: [self.layer(row) for row in rows],
        }


def check_against_peers(peers, layer, ragged):
    """quiltc's encoder layer agrees with PyTorch padded on the real tokens."""
    torch = peers.torch
    with torch.no_grad():
        expected = peers.runners("encoder", ragged)["padded"]().numpy()
    got = layer(ragged)
    error = max((float(np.abs(row - expected[b, :len(row)]).max()) for b, row in enumerate(got)
                 if len(row)), default=0.0)
    if error > 1e-3:
        raise SystemExit(f"quiltc and PyTorch disagree by {error:.2e}")


def time_one(torch, fn):
    """Median seconds of `fn` in its own block after a quiet gap and one warm-up call: five
    repeats of at least 0.2 s each (one call of a few milliseconds, timed alone, swung by
    1.5x between runs); runs slower than a second are timed once more only (the nested peer
    takes tens of seconds at batch 128)."""
    # no_grad, not inference_mode: jagged nested tensors made outside inference mode
    # refuse to run inside it ("Cannot set version_counter for inference tensor").
    with torch.no_grad():
        time.sleep(QUIET_GAP_S)
        start = time.perf_counter()
        fn()
        first = time.perf_counter() - start
        return measure(fn, warmup=0, repeats=1 if first > 1.0 else 5, min_seconds=0.2)


def run(batches, datasets, peak):
    """({batch: {op: {dataset: ms per contender}}}, quiltc's share of `peak` likewise), each
    contender timed in its own block on the same inputs."""
    import torch

    common.limit_threads()
    weights = encoder.random_weights(HIDDEN, FFN)
    peers = TorchPeers(torch, weights)
    rng = np.random.default_rng(0)
    results, shares = {}, {}
    for batch in batches:
        for dataset in progress_bar(datasets, description=f"batch {batch}", unit="dataset"):
            lengths, longest = batch_lengths(dataset, batch)
            layer = encoder.EncoderLayer(weights, HEADS, longest)
            tokens = qc.RaggedArray(
                rng.standard_normal((int(lengths.sum()), HIDDEN)).astype(np.float32), lengths)
            qkv = qc.RaggedArray(
                rng.standard_normal((int(lengths.sum()), 3 * HIDDEN)).astype(np.float32), lengths)
            check_against_peers(peers, layer, tokens)
            inputs = {"mha": qkv, "encoder": tokens}
            quiltc_runs = {"mha": lambda: attention.attention(qkv, HEADS, HEAD_SIZE, longest),
                           "encoder": lambda: layer(tokens)}
            for op in ("mha", "encoder"):
                row = {"quiltc_ms": time_one(torch, quiltc_runs[op]) * 1e3}
                for peer, fn in peers.runners(op, inputs[op]).items():
                    try:
                        row[f"{peer}_ms"] = time_one(torch, fn) * 1e3
                    except RuntimeError as error:
                        print(f"  {peer} failed on {dataset}: {str(error).splitlines()[0]}")
                        row[f"{peer}_ms"] = None
                row = {key: None if value is None else round(value, 3)
                       for key, value in row.items()}
                results.setdefault(str(batch), {}).setdefault(op, {})[dataset] = row
                share = useful_flops(lengths, op) / (row["quiltc_ms"] / 1e3) / 1e9 / peak
                shares.setdefault(str(batch), {}).setdefault(op, {})[dataset] = round(share, 3)
                print(f"  batch {batch} {dataset:>8} {op:>7}: " + ", ".join(
                    f"{k} {v}" for k, v in row.items()), flush=True)
    return results, shares


def geomeans(results):
    """Geometric mean over datasets of peer time / quiltc time, per batch, op and peer."""
    summary = {}
    for batch, ops_results in results.items():
        for op, per_dataset in ops_results.items():
            entry = {}
            for peer in PEERS:
                ratios = [row[f"{peer}_ms"] / row["quiltc_ms"] for row in per_dataset.values()
                          if row[f"{peer}_ms"] is not None]
                entry[f"vs_{peer}"] = (round(math.exp(np.mean(np.log(ratios))), 3)
                                       if ratios else None)
            summary.setdefault(batch, {})[op] = entry
    return summary


def print_table(results, shares, summary):
    """Per batch and op: each contender's ms, the ratios and quiltc's useful-FLOP share."""
    for batch, ops_results in results.items():
        for op, per_dataset in ops_results.items():
            print(f"\nbatch {batch}, {op}: times in ms; ratio = peer time / quiltc time")
            print(f"{'dataset':>9} {'quiltc':>9} {'padded':>9} {'nested':>9} {'loop':>9} "
                  f"{'x padded':>9} {'x nested':>9} {'x loop':>8} {'FLOP share':>10}")
            for dataset, row in per_dataset.items():
                cells = [f"{row[f'{p}_ms']:9.1f}" if row[f"{p}_ms"] is not None else f"{'-':>9}"
                         for p in ("quiltc",) + PEERS]
                ratios = [f"{row[f'{p}_ms'] / row['quiltc_ms']:9.2f}"
                          if row[f"{p}_ms"] else f"{'-':>9}"
                          for p in PEERS]
                print(f"{dataset:>9} {' '.join(cells)} {' '.join(ratios)} "
                      f"{shares[batch][op][dataset]:10.1%}")
            entry = summary[batch][op]
            print(f"{'geomean':>9} {'':>39} " + " ".join(
                f"{entry[f'vs_{p}']:9.2f}" if entry[f"vs_{p}"] else f"{'-':>9}" for p in PEERS))


def plot(results, folder):
    """Per batch, the encoder layer's speed-up over each PyTorch peer, one bar per dataset."""
    plt = common.pyplot()
    if plt is None:
        return
    figure, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for axis, (batch, ops_results) in zip(axes[0], results.items()):
        datasets = list(ops_results["encoder"])
        x = np.arange(len(datasets))
        for offset, peer in zip((-0.25, 0.0, 0.25), PEERS):
            ratios = [(row[f"{peer}_ms"] or 0) / row["quiltc_ms"]
                      for row in ops_results["encoder"].values()]
            axis.bar(x + offset, ratios, 0.25, label=f"vs PyTorch {peer}")
        common.ratio_axis(axis, datasets, "speed-up of quiltc (peer time / quiltc time)",
                          f"encoder layer, batch {batch}")
    figure.tight_layout()
    figure.savefig(folder / "ragged_encoder.png", dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS)
    parser.add_argument("--quick", action="store_true",
                        help=f"batch {QUICK_BATCHES[0]} of {' and '.join(QUICK_DATASETS)} unless "
                             "given, results to a temporary folder")
    arguments = parser.parse_args()
    batches = arguments.batches or (QUICK_BATCHES if arguments.quick else [32, 128])
    datasets = arguments.datasets or (QUICK_DATASETS if arguments.quick else list(DATASETS))
    folder = common.output_folder(arguments.quick)
    try:
        import torch
    except ImportError:
        print("torch is not installed: pip install torch==2.13.0 (or pip install -e '.[bench]')")
        return 1
    measured = limits.measure_limits(repeats=2 if arguments.quick else 5)
    print(f"threads: {common.THREADS}; torch {torch.__version__} "
          f"({torch.backends.cpu.get_cpu_capability()}); numpy uses {common.blas_description()}")
    print(f"model: hidden {HIDDEN}, {HEADS} heads x {HEAD_SIZE}, FFN {FFN}, float32, tanh-GELU, "
          "post-norm")
    sgemm = sgemm_rate()
    print(f"useful-FLOP limit {measured['peak_gflops']:.0f} GFLOP/s (2-core FMA peak, measured); "
          f"DRAM {measured['bandwidth_gbs']:.1f} GB/s; numpy sgemm 1024^3 reaches {sgemm:.1f} "
          "GFLOP/s in this run")
    results, shares = run(batches, datasets, measured["peak_gflops"])
    summary = geomeans(results)
    print_table(results, shares, summary)
    path = common.write_json("ragged_encoder", {
        "threads": common.THREADS,
        "model": {"hidden": HIDDEN, "heads": HEADS, "head_size": HEAD_SIZE, "ffn": FFN,
                  "dtype": "float32", "activation": "tanh-GELU"},
        "peak_gflops": measured["peak_gflops"],
        "bandwidth_gbs": measured["bandwidth_gbs"],
        "sgemm_gflops": round(sgemm, 1),
        "results": results,
        "geomean": summary,
        "useful_flop_share": shares,
        "limits": measured,
        "host": common.host_report(),
    }, folder)
    print(f"wrote {path}")
    plot(results, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
