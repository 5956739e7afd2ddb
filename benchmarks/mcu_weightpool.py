"""Question: how many fewer instructions does a bit-serial weight-pool convolution execute
than int8 convolutions on Cortex-M, and what does it cost in accuracy and storage?

Counts the instructions executed under unicorn (neither QEMU nor unicorn models cycles,
so instructions are the repeatable cost) for one larger conv layer (32 -> 32 channels,
3x3, 16x16 input, padding 1) and for a whole inference of the digits CNN: on a Cortex-M3
against the plain-C int8 loop of CMSIS-NN's reference path (the paper's baseline), and on
a Cortex-M4 against the SMLAD int8 kernel, with the bit-serial kernels at activation
widths 1..8. Every emulated output is checked against the numpy integer reference.
ratio_vs_int8 = int8 instructions / bit-serial instructions (above 1: bit-serial wins).
Also reports storage, test accuracy (float, int8, pooled at every width) and the flash
and RAM of the emitted Cortex-M4 project. Writes benchmarks/results/mcu_weightpool.json
(with the host it ran on) and mcu_weightpool.png.

    python benchmarks/mcu_weightpool.py [--quick]
"""

import argparse
import sys
import tempfile

import common

# Nothing here is timed on the host, but numpy trains and quantizes the model: like every
# benchmark it runs OpenBLAS's own kernel choice (OPENBLAS_CORETYPE unset before numpy).
common.unpin_openblas()

import numpy as np  # noqa: E402

from quiltc import mcu  # noqa: E402
from quiltc.demo.mcu import pooled_digits  # noqa: E402
from quiltc.mcu.model import conv_layer_source  # noqa: E402
from quiltc.recipes.mcu import ConvShape  # noqa: E402
from quiltc.runtime_c import mcu_toolchain  # noqa: E402
from quiltc.runtime_c.mcu_boards import board_for_core  # noqa: E402
from quiltc.runtime_c.unicorn_run import call_function  # noqa: E402

LAYER = ConvShape(h=16, w=16, cin=32, cout=32, kh=3, kw=3, stride=1, padding=1)
QUICK_LAYER = ConvShape(h=8, w=8, cin=16, cout=16, kh=3, kw=3, stride=1, padding=1)
POOL_SIZE = 64
BITS = range(1, 9)
# The widths the targets name (2 and 4) and the int8-equivalent one.
QUICK_BITS = (2, 4, 8)
CORES = {"m3": "int8_plain", "m4": "int8_smlad"}
PROJECT_BITS = 4
TARGETS = {"layer m3 ratio at b=4": 2.8, "layer m4 ratio at b=2": 2.0,
           "pooled layers storage ratio": 7.5}


def layer_instructions(kind, shape, core, act_bits, folder):
    """Instructions of one call of the conv layer `shape`, its output checked."""
    layer = conv_layer_source(kind, shape, act_bits=act_bits, pool_size=POOL_SIZE)
    board = board_for_core(core)
    elf = mcu_toolchain.compile_elf({"layer.c": layer.source}, board.machine,
                                    f"{folder}/{core}_{kind}_{act_bits}", [layer.function])
    bits = act_bits if kind == "bitserial" else 8
    x = np.random.default_rng(1).integers(0, 1 << bits, (shape.h, shape.w, shape.cin),
                                          dtype=np.uint8)
    call = call_function(elf, layer.function, [x, np.zeros(layer.output_size, np.uint8)],
                         core=core)
    want = np.asarray(layer.reference(x)).reshape(-1)
    if not np.array_equal(call.arrays[1], want):
        raise SystemExit(f"the emulated {kind} layer on the {core} differs from numpy")
    return call.instructions


def counts_by_core(int8_count, bitserial_count, widths):
    """{core: {"int8_instructions", "bitserial": {b: {"instructions", "ratio_vs_int8"}}}}
    for each activation width b in `widths`."""
    result = {}
    for core in CORES:
        base = int8_count(core)
        result[core] = {"int8_kernel": CORES[core], "int8_instructions": base, "bitserial": {}}
        for bits in widths:
            count = bitserial_count(core, bits)
            result[core]["bitserial"][str(bits)] = {
                "instructions": count, "ratio_vs_int8": round(base / count, 3)}
        print(f"  {core}: int8 ({CORES[core]}) {base:,}; bit-serial "
              + ", ".join(f"b={b} {v['instructions']:,} ({v['ratio_vs_int8']:.2f})"
                          for b, v in result[core]["bitserial"].items()))
    return result


def model_instructions(model, quant, image, act_bits, core):
    """Instructions of one emulated quiltc_model_run of `model` at `act_bits`, its scores
    checked against those of `quant`, the model's numpy integer reference."""
    run = mcu.emulated_run(model, image, act_bits, board_for_core(core).machine)
    if not np.array_equal(run.scores, quant.forward_int(quant.quantize_input(image))):
        raise SystemExit(f"the emulated digits CNN on the {core} at b={act_bits} differs "
                         "from numpy")
    return run.instructions[0]


def project_size(model, act_bits, inputs, expected, folder):
    """(flash, RAM) of the emitted Cortex-M4 project, whose QEMU run must print `expected`."""
    path = mcu.emit_project(model, folder, board="mps2-an386", act_bits=act_bits,
                            test_inputs=inputs)
    if mcu_toolchain.run_predictions(path) != [int(c) for c in expected]:
        raise SystemExit(f"the project in {folder} prints other classes than numpy under QEMU")
    return mcu_toolchain.elf_size(path / mcu_toolchain.ELF_NAME)


def plot(payload, folder):
    """Accuracy and the layer's instruction counts against the activation width."""
    plt = common.pyplot()
    if plt is None:
        return
    bits = list(payload["accuracy"]["pool_bits"])
    widths = [int(b) for b in bits]
    figure, (accuracy_axes, count_axes) = plt.subplots(1, 2, figsize=(11, 4))
    accuracy = payload["accuracy"]
    accuracy_axes.plot(widths, [accuracy["pool_bits"][b] for b in bits], "o-",
                       label="weight pool, b-bit activations")
    accuracy_axes.axhline(accuracy["float"], color="gray", linestyle=":", label="float")
    accuracy_axes.axhline(accuracy["int8"], color="black", linestyle="--", label="int8")
    accuracy_axes.set_xlabel("activation bits b")
    accuracy_axes.set_ylabel("digits test accuracy")
    accuracy_axes.legend()
    for core, color in (("m3", "tab:blue"), ("m4", "tab:orange")):
        layer = payload["layer"][core]
        count_axes.plot(widths, [layer["bitserial"][b]["instructions"] / 1e6 for b in bits],
                        "o-", color=color, label=f"{core} bit-serial")
        count_axes.axhline(layer["int8_instructions"] / 1e6, color=color, linestyle="--",
                           label=f"{core} {layer['int8_kernel']}")
    count_axes.set_xlabel("activation bits b")
    shape = payload["layer_shape"]
    count_axes.set_ylabel(f"million instructions ({shape['cin']}->{shape['cout']} "
                          f"{shape['kh']}x{shape['kw']} conv, {shape['h']}x{shape['w']})")
    count_axes.legend()
    figure.tight_layout()
    figure.savefig(folder / "mcu_weightpool.png", dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"an {QUICK_LAYER.h}x{QUICK_LAYER.w} {QUICK_LAYER.cin}-channel layer, "
                             "widths 2, 4 and 8 only, results to a temporary folder")
    arguments = parser.parse_args()
    shape, widths = (QUICK_LAYER, QUICK_BITS) if arguments.quick else (LAYER, BITS)
    results_folder = common.output_folder(arguments.quick)
    with tempfile.TemporaryDirectory() as folder:
        print(f"conv layer {shape}: instructions under unicorn")
        layer = counts_by_core(
            lambda core: layer_instructions(CORES[core], shape, core, 8, folder),
            lambda core, bits: layer_instructions("bitserial", shape, core, bits, folder), widths)
        model, int8_model, pooled, (_, _, x_test, y_test) = pooled_digits(POOL_SIZE)
        image = x_test[:1]
        print("digits CNN, one inference: instructions under unicorn")
        digits = counts_by_core(
            lambda core: model_instructions(int8_model, int8_model, image, 8, core),
            lambda core, bits: model_instructions(pooled, pooled.quantized(bits), image, bits,
                                                  core), widths)
        inputs = x_test[:20]
        flash, ram = project_size(pooled, PROJECT_BITS, inputs,
                                  pooled.predict(inputs, PROJECT_BITS), f"{folder}/pooled")
        int8_flash, int8_ram = project_size(int8_model, 8, inputs, int8_model.predict(inputs),
                                            f"{folder}/int8")
    accuracy = {"float": model.accuracy(x_test, y_test),
                "int8": int8_model.accuracy(x_test, y_test),
                "pool_int8": pooled.accuracy(x_test, y_test, 8),
                "pool_bits": {str(b): pooled.accuracy(x_test, y_test, b) for b in widths}}
    parts = pooled.storage_bytes()
    # The headline compares what the pool replaces; the whole model sits beside it.
    storage = {"scope": "pooled convs: int8 weights against one-byte indices + the pool",
               "int8_bytes": parts["pooled_layers_int8_bytes"],
               "pooled_bytes": parts["pooled_layers_bytes"],
               "ratio": round(parts["pooled_layers_ratio"], 3),
               "model_int8_bytes": parts["int8_bytes"], "model_pooled_bytes": parts["pooled_bytes"],
               "model_ratio": round(parts["ratio"], 3), "index_bytes": parts["index_bytes"],
               "pool_bytes": parts["pool_bytes"], "lut_bytes": parts["lut_bytes"]}
    measured = {"layer m3 ratio at b=4": layer["m3"]["bitserial"]["4"]["ratio_vs_int8"],
                "layer m4 ratio at b=2": layer["m4"]["bitserial"]["2"]["ratio_vs_int8"],
                "pooled layers storage ratio": storage["ratio"]}
    targets = {name: {"value": measured[name], "target": goal, "met": measured[name] >= goal}
               for name, goal in TARGETS.items()}
    best_gap = min(accuracy["int8"] - accuracy["pool_bits"][str(b)] for b in widths if b <= 4)
    targets["accuracy within 1 point of int8 at some b <= 4"] = {
        "value": round(100 * best_gap, 2), "target": 1.0, "met": best_gap <= 0.01}
    payload = {"layer_shape": vars(shape), "pool_size": POOL_SIZE, "layer": layer,
               "digits_cnn": digits, "storage": storage, "accuracy": accuracy,
               "flash_bytes": flash, "ram_bytes": ram,
               "project": {"board": "mps2-an386", "act_bits": PROJECT_BITS},
               "int8_flash_bytes": int8_flash, "int8_ram_bytes": int8_ram, "targets": targets,
               "host": common.host_report()}
    print(f"\nstorage: pooled convs {storage['int8_bytes']} -> {storage['pooled_bytes']} bytes "
          f"({storage['ratio']:.2f}x); whole model {storage['model_int8_bytes']} -> "
          f"{storage['model_pooled_bytes']} ({storage['model_ratio']:.2f}x); the LUT adds "
          f"{storage['lut_bytes']} bytes of flash")
    print(f"accuracy: float {accuracy['float']:.4f}, int8 {accuracy['int8']:.4f}, pooled "
          + ", ".join(f"b={b} {a:.4f}" for b, a in accuracy["pool_bits"].items()))
    print(f"Cortex-M4 project: pooled b={PROJECT_BITS} flash {flash} / RAM {ram} bytes; "
          f"int8 flash {int8_flash} / RAM {int8_ram} bytes")
    for name, target in targets.items():
        print(f"target {name}: {target['value']} against {target['target']} -> "
              f"{'met' if target['met'] else 'MISSED'}")
    print(f"wrote {common.write_json('mcu_weightpool', payload, results_folder)}")
    plot(payload, results_folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
