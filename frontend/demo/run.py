"""`python -m quiltc.demo` (or `make demo`): declare, schedule, print, build, run and time
a matmul and a row softmax, checked against numpy, then run a ragged transformer encoder
layer on real sequence lengths beside PyTorch padded (numpy where torch is absent), fuse
a BERT layer from ONNX into one C module, and compress a CNN for a Cortex-M."""

import os
import pathlib
import textwrap

# Set before the first kernel loads OpenMP; a caller's own setting wins. OpenMP's wait
# policy stays at its default: each timing starts after a quiet gap
# (measure_after_quiet), so threads left spinning by the library timed before are idle.
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np

from ..driver.build import build
from ..driver.timing import measure_after_quiet
from ..ir.arrays import RaggedArray
from ..ops import encoder
from ..recipes.cpu import matmul_program, schedule_matmul, schedule_softmax, softmax_program
from .fusion import demo_fusion
from .mcu import demo_mcu


def _banner(title):
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))


def _show(sch, fn, source_lines=40):
    print("schedule trace (replayable Python):")
    print(textwrap.indent(str(sch.trace), "    "))
    print("\nscheduled IR:")
    print(textwrap.indent(repr(sch.kernel), "    "))
    lines = fn.source.splitlines()
    print(f"\ngenerated C (first {min(source_lines, len(lines))} of {len(lines)} lines):")
    print(textwrap.indent("\n".join(lines[:source_lines]), "    "))


def demo_matmul(size=512):
    _banner(f"matmul {size}x{size}x{size}, float32")
    _, _, c = matmul_program(size, size, size)
    sch = schedule_matmul(c)
    fn = build(sch, target="c")
    _show(sch, fn)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(np.float32)
    b = rng.standard_normal((size, size)).astype(np.float32)
    out = fn(A=a, B=b)
    error = float(np.max(np.abs(out - a @ b)))
    flops = 2.0 * size**3
    quiltc_s = measure_after_quiet(lambda: fn(A=a, B=b))
    numpy_s = measure_after_quiet(lambda: a @ b)
    print(f"\nmax |quiltc - numpy| = {error:.2e}  ({'correct' if error < 1e-2 else 'WRONG'})")
    print(f"quiltc {quiltc_s * 1e3:8.2f} ms  {flops / quiltc_s / 1e9:7.1f} GFLOP/s")
    print(f"numpy  {numpy_s * 1e3:8.2f} ms  {flops / numpy_s / 1e9:7.1f} GFLOP/s")
    print(f"ratio quiltc/numpy (throughput): {numpy_s / quiltc_s:.2f}x")
    return error < 1e-2


def demo_softmax(rows=4096, cols=1024):
    _banner(f"row softmax {rows}x{cols}, float32")
    x_tensor, stages, out_tensor = softmax_program(rows, cols)
    sch = schedule_softmax(stages, out_tensor)
    fn = build(sch, target="c")
    _show(sch, fn, source_lines=30)
    x = np.random.default_rng(1).standard_normal((rows, cols)).astype(np.float32)

    def numpy_softmax():
        shifted = np.exp(x - x.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    error = float(np.max(np.abs(fn(X=x) - numpy_softmax())))
    quiltc_s = measure_after_quiet(lambda: fn(X=x))
    numpy_s = measure_after_quiet(numpy_softmax)
    print(f"\nmax |quiltc - numpy| = {error:.2e}  ({'correct' if error < 1e-5 else 'WRONG'})")
    print(f"quiltc {quiltc_s * 1e3:8.2f} ms")
    print(f"numpy  {numpy_s * 1e3:8.2f} ms")
    print(f"speed-up over numpy: {numpy_s / quiltc_s:.2f}x")
    return error < 1e-5


SEQLENS = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "seqlens"


def _demo_lengths(dataset, batch):
    """The first `batch` lengths of a dataset in ../shared/data/seqlens/, or lengths drawn
    like MRPC's (20..112) where that folder is absent."""
    path = SEQLENS / f"{dataset}.txt"
    if path.exists():
        return dataset, np.loadtxt(path, dtype=np.int32)[:batch]
    return "random", np.random.default_rng(2).integers(20, 113, size=batch).astype(np.int32)


def _torch_padded_layer(torch, weights, ragged, heads):
    """A callable running PyTorch's encoder layer on the batch padded to its longest row."""
    hidden = ragged.values.shape[1]
    layer = torch.nn.TransformerEncoderLayer(
        hidden, heads, weights["linear1.weight"].shape[0], dropout=0.0, batch_first=True,
        activation=lambda t: torch.nn.functional.gelu(t, approximate="tanh")).eval()
    layer.load_state_dict({name: torch.from_numpy(value) for name, value in weights.items()})
    padded = torch.from_numpy(ragged.to_padded())
    mask = (torch.arange(padded.shape[1])[None, :]
            >= torch.tensor(ragged.lengths, dtype=torch.long)[:, None])

    def run():
        with torch.no_grad():
            return layer(padded, src_key_padding_mask=mask).numpy()

    return run


def demo_ragged_encoder(dataset="mrpc", batch=32, hidden=512, heads=8, ffn=2048):
    name, lengths = _demo_lengths(dataset, batch)
    _banner(f"ragged transformer encoder layer, {name} lengths, batch {batch}")
    print(f"hidden {hidden}, {heads} heads, FFN {ffn}, float32; lengths {lengths.min()}.."
          f"{lengths.max()}, {lengths.sum()} real tokens of {batch * lengths.max()} padded")
    weights = encoder.random_weights(hidden, ffn)
    layer = encoder.EncoderLayer(weights, heads, int(lengths.max()))
    rng = np.random.default_rng(3)
    ragged = RaggedArray(rng.standard_normal((int(lengths.sum()), hidden)).astype(np.float32),
                         lengths)
    result = layer(ragged)
    quiltc_s = measure_after_quiet(lambda: layer(ragged), warmup=1, repeats=3)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None:
        print("torch is not installed, so numpy (per sequence) stands in: pip install "
              "torch==2.13.0 (or pip install -e '.[bench]') to compare with PyTorch")
        expected = encoder.reference_encoder_layer(list(ragged), weights, heads)
        peer_s = measure_after_quiet(
            lambda: encoder.reference_encoder_layer(list(ragged), weights, heads),
            warmup=1, repeats=3)
        peer = "numpy per sequence"
    else:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
        run = _torch_padded_layer(torch, weights, ragged, heads)
        padded = run()
        expected = [padded[b, :n] for b, n in enumerate(lengths)]
        peer_s = measure_after_quiet(run, warmup=1, repeats=3)
        peer = "PyTorch padded"
    error = max(float(np.max(np.abs(got - want)))
                for got, want in zip(result, expected) if len(got))
    print(f"\nmax |quiltc - {peer}| = {error:.2e}  ({'agrees' if error < 1e-3 else 'DISAGREES'})")
    print(f"quiltc (ragged)     {quiltc_s * 1e3:8.1f} ms")
    print(f"{peer:<19} {peer_s * 1e3:8.1f} ms")
    print(f"speed-up over {peer}: {peer_s / quiltc_s:.2f}x")
    return error < 1e-3


def main():
    threads = os.environ.get("OMP_NUM_THREADS", "all cores")
    print(f"quiltc demo (OpenMP threads: {threads})")
    results = [demo_matmul(), demo_softmax(), demo_ragged_encoder(), demo_fusion(_banner),
               demo_mcu(_banner)]
    _banner("summary")
    print("all results match numpy" if all(results) else "SOME RESULTS DIFFER FROM NUMPY")
    return 0 if all(results) else 1
