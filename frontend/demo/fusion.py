"""The fusion part of `make demo`: a Hugging Face BERT layer exported to ONNX (hidden 256,
4 heads; the copy in the repository's tests/data) is imported, partitioned, fused into one
C module, checked against onnx's reference evaluator and timed beside numpy op by op.
Without onnx or the model file it says what is missing and goes on."""

import importlib.util
import pathlib
import textwrap

import numpy as np

from ..driver.timing import measure_after_quiet
from ..graph import compile as compile_graph
from ..graph import from_onnx

MODEL = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "bert_layer_small.onnx"
BATCH, SEQ = 4, 96


def demo_fusion(banner):
    """Run the fusion demo; True when the fused module agrees with the reference."""
    banner(f"fused BERT layer from ONNX (hidden 256), batch {BATCH}, seq {SEQ}")
    if importlib.util.find_spec("onnx") is None:
        print("onnx is not installed, so the fusion demo is skipped: pip install onnx")
        return True
    if not MODEL.exists():
        print(f"{MODEL} is not here (it comes with the repository), so the fusion demo is "
              "skipped")
        return True
    from onnx.reference import ReferenceEvaluator

    graph = from_onnx(MODEL)
    module = compile_graph(graph)
    print(textwrap.indent(str(module.plan), "    "))
    print(f"\n{module.calls} kernels in {module.launches} launches; workspace "
          f"{module.peak_bytes(batch=BATCH, seq=SEQ) / 2**20:.2f} MiB for "
          f"{module.intermediate_bytes(batch=BATCH, seq=SEQ) / 2**20:.2f} MiB of "
          f"intermediates; compiled in {module.compile_seconds:.1f} s (cached next time)")
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((BATCH, SEQ, 256)).astype(np.float32)
    mask = np.ones((BATCH, SEQ), np.int64)
    mask[1, SEQ // 2:] = 0
    got = module(hidden=hidden, mask=mask)
    want = ReferenceEvaluator(str(MODEL)).run(None, {"hidden": hidden, "mask": mask})[0]
    error = float(np.max(np.abs(got - want)))
    agrees = bool(np.allclose(got, want, rtol=1e-4, atol=1e-5))
    fused_s = measure_after_quiet(lambda: module(hidden=hidden, mask=mask))
    numpy_s = measure_after_quiet(lambda: graph.evaluate(hidden=hidden, mask=mask),
                                  repeats=3)
    print(f"\nmax |quiltc - onnx reference| = {error:.2e}  "
          f"({'agrees' if agrees else 'DISAGREES'})")
    print(f"quiltc (fused)   {fused_s * 1e3:8.2f} ms")
    print(f"numpy op by op   {numpy_s * 1e3:8.2f} ms")
    print(f"speed-up over numpy op by op: {numpy_s / fused_s:.2f}x")
    return agrees
