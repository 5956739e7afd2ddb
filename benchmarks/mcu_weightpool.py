"""Question: how many fewer instructions (and, estimated, cycles) does a bit-serial
weight-pool convolution execute than the int8 convolutions embedded users run on
Cortex-M, and what does it cost in accuracy and storage?

Counts the instructions executed under unicorn for one larger conv layer (32 -> 32
channels, 3x3, 16x16 input, padding 1) on a Cortex-M3 and a Cortex-M4: Arm's CMSIS-NN
(`arm_convolve_wrapper_s8`, built from CMSIS_NN_DIR or the shared copy, see cmsis_nn.py;
the column is left out when neither exists), quiltc's own int8 kernels (the plain loop
and the SMLAD one, each on both cores; the fewer-instruction one is `int8_instructions`)
and the bit-serial kernels at activation widths 1..8 (each under the schedule
mcu.schedule_search picks for the core by counting, its default beside it), then one
whole inference of the digits CNN. Beside the conv, quiltc's int8 depthwise conv
(16x16x32, 3x3, padding 1) and dense layer (256 -> 64) against CMSIS-NN's
arm_depthwise_conv_wrapper_s8 and
arm_fully_connected_per_channel_s8 on the same weights and data ("other_layers", ratio =
quiltc / CMSIS-NN instructions: below 1, quiltc runs fewer). Every emulated output is
checked against the numpy integer reference.
ratio_vs_int8 = instructions of the better of quiltc's int8 and CMSIS-NN / bit-serial
instructions (above 1: bit-serial wins). Beside every layer count stands
`cycles_estimate`: an estimate, not a measurement (neither QEMU nor unicorn models time),
from the per-instruction cycle table of Arm's Technical Reference Manuals in
quiltc.runtime_c.mcu_cycles. Also reports storage, test accuracy (float, int8, pooled at
every width) and the flash and RAM of the emitted Cortex-M4 project. Writes
benchmarks/results/mcu_weightpool.json (with the host it ran on) and mcu_weightpool.png.

    python benchmarks/mcu_weightpool.py [--quick]
"""

import argparse
import sys
import tempfile

import common

# Nothing here is timed on the host, but numpy trains and quantizes the model: like every
# benchmark it runs OpenBLAS's own kernel choice (OPENBLAS_CORETYPE unset before numpy).
common.unpin_openblas()

import cmsis_nn  # noqa: E402
import numpy as np  # noqa: E402

from quiltc import mcu  # noqa: E402
from quiltc.demo.mcu import pooled_digits  # noqa: E402
from quiltc.mcu.model import (  # noqa: E402
    conv_layer_source,
    dense_layer_source,
    depthwise_layer_source,
)
from quiltc.mcu.schedule_search import search_schedule  # noqa: E402
from quiltc.progress import progress_bar  # noqa: E402
from quiltc.recipes.mcu import ConvShape  # noqa: E402
from quiltc.recipes.mcu_bitserial import VECTOR_LEN, default_groups_per_step  # noqa: E402
from quiltc.runtime_c import mcu_toolchain  # noqa: E402
from quiltc.runtime_c.mcu_boards import board_for_core  # noqa: E402
from quiltc.runtime_c.mcu_cycles import call_with_cycles  # noqa: E402

LAYER = ConvShape(h=16, w=16, cin=32, cout=32, kh=3, kw=3, stride=1, padding=1)
QUICK_LAYER = ConvShape(h=8, w=8, cin=16, cout=16, kh=3, kw=3, stride=1, padding=1)
# The depthwise layer has the conv's geometry, one filter per channel; dense: (cin, cout).
DEPTHWISE_LAYER, QUICK_DEPTHWISE_LAYER = LAYER, QUICK_LAYER
DENSE_LAYER, QUICK_DENSE_LAYER = (256, 64), (64, 16)
POOL_SIZE = 64
BITS = range(1, 9)
# The widths the targets name (2 and 4) and the int8-equivalent one.
QUICK_BITS = (2, 4, 8)
CORES = ("m3", "m4")
INT8_KINDS = ("int8_plain", "int8_smlad")
# The int8 conv a whole model gets on each core (the board's DSP extension decides).
DIGITS_INT8_KERNEL = {"m3": "int8_plain", "m4": "int8_smlad"}
PROJECT_BITS = 4
# name: (goal, "at least" or "at most").
TARGETS = {"layer m3 quiltc int8 / CMSIS-NN instructions": (1.10, "at most"),
           "layer m4 quiltc int8 / CMSIS-NN instructions": (1.10, "at most"),
           "layer m3 ratio at b=4": (2.0, "at least"), "layer m4 ratio at b=2": (2.0, "at least"),
           "pooled layers storage ratio": (7.5, "at least")}
CYCLES_NOTE = ("cycles_estimate: an estimate, not a measurement: each executed instruction "
               "priced by the Cortex-M3/M4 Technical Reference Manuals' timing tables "
               "(zero wait states, pipeline refill P = 2), see quiltc.runtime_c.mcu_cycles")


def layer_input(dims, bits):
    """A layer's input: uint8 activations of `bits` bits in an array of shape `dims`
    ((h, w, cin), or (cin,) for a dense layer), seed 1."""
    return np.random.default_rng(1).integers(0, 1 << bits, dims, dtype=np.uint8)


def source_counts(layer, x, core, folder):
    """{"instructions", "cycles_estimate", "cycles_by_class"} of one call of the
    LayerSource `layer` on `x`, built in `folder`, its output checked against numpy."""
    elf = mcu_toolchain.compile_elf({"layer.c": layer.source}, board_for_core(core).machine,
                                    folder, [layer.function])
    call, estimate = call_with_cycles(elf, layer.function,
                                      [x, np.zeros(layer.output_size, np.uint8)], core)
    if not np.array_equal(call.arrays[1], np.asarray(layer.reference(x)).reshape(-1)):
        raise SystemExit(f"the emulated {layer.kind} layer on the {core} differs from numpy")
    return {"instructions": call.instructions, "cycles_estimate": estimate.cycles,
            "cycles_by_class": estimate.by_class}


def layer_counts(kind, shape, core, act_bits, folder):
    """source_counts of quiltc's conv layer `shape` of `kind` at `act_bits`."""
    layer = conv_layer_source(kind, shape, act_bits=act_bits, pool_size=POOL_SIZE)
    x = layer_input((shape.h, shape.w, shape.cin), act_bits if kind == "bitserial" else 8)
    return source_counts(layer, x, core, f"{folder}/{core}_{kind}_{act_bits}")


def cmsis_library():
    """cmsis_nn.library_folder(), or None said in one line."""
    library = cmsis_nn.library_folder()
    if library is None:
        print(f"CMSIS-NN not found (set {cmsis_nn.ENVIRONMENT_VARIABLE} or add "
              f"{cmsis_nn.SHARED_COPY}): its column is left out")
    return library


def cmsis_counts(library, shape, folder):
    """{core: CMSIS-NN's counts} for the conv layer, or None without the library."""
    if library is None:
        return None
    x = layer_input((shape.h, shape.w, shape.cin), 8)
    reference = conv_layer_source("int8_plain", shape).reference(x)
    counts = {"library": str(library)}
    for core in CORES:
        counts[core] = cmsis_nn.measure(library, cmsis_nn.conv_layer(shape), core, x,
                                        reference, f"{folder}/{core}_cmsis_nn")
    return counts


def quiltc_against_cmsis(name, layer_for, library_layer, x, library, folder):
    """{core: {"quiltc", "cmsis_nn", "ratio", "cycles_ratio"}}: the counts of quiltc's
    LayerSource `layer_for(core)` and of CMSIS-NN's LibraryLayer `library_layer` on `x`,
    and quiltc's over CMSIS-NN's instructions and estimated cycles (None without the
    library)."""
    result = {}
    for core in CORES:
        layer = layer_for(core)
        quiltc = source_counts(layer, x, core, f"{folder}/{core}_{name}")
        entry = {"quiltc": quiltc, "cmsis_nn": None, "ratio": None, "cycles_ratio": None}
        if library is not None:
            cmsis = cmsis_nn.measure(library, library_layer, core, x, layer.reference(x),
                                     f"{folder}/{core}_{name}_cmsis_nn")
            entry.update(cmsis_nn=cmsis,
                         ratio=round(quiltc["instructions"] / cmsis["instructions"], 3),
                         cycles_ratio=round(quiltc["cycles_estimate"]
                                            / cmsis["cycles_estimate"], 3))
        result[core] = entry
    return result


def other_layers(library, depthwise_shape, dense_sizes, folder):
    """{"depthwise": {"shape", core: ...}, "dense": {"shape", core: ...}}: quiltc's int8
    depthwise conv of `depthwise_shape` and dense layer `dense_sizes` = (cin, cout)
    against CMSIS-NN's, as quiltc_against_cmsis counts them."""
    cin, cout = dense_sizes
    depthwise = quiltc_against_cmsis(
        "depthwise", lambda core: depthwise_layer_source(depthwise_shape),
        cmsis_nn.depthwise_layer(depthwise_shape),
        layer_input((depthwise_shape.h, depthwise_shape.w, depthwise_shape.cin), 8), library,
        folder)
    # The dense kernel a whole model gets on each core (smlad where the core has DSP).
    variants = {core: kind.split("_")[1] for core, kind in DIGITS_INT8_KERNEL.items()}
    dense = quiltc_against_cmsis("dense", lambda core: dense_layer_source(
                                     cin, cout, schedule={"variant": variants[core]}),
                                 cmsis_nn.dense_layer(cin, cout), layer_input((cin,), 8),
                                 library, folder)
    return {"depthwise": {"shape": vars(depthwise_shape), **depthwise},
            "dense": {"shape": {"cin": cin, "cout": cout}, "quiltc_variant": variants, **dense}}


def print_other_layers(others):
    """quiltc's and CMSIS-NN's instructions and estimated cycles for the depthwise and
    dense layers, per core, with quiltc / CMSIS-NN ("-" without the library)."""
    def cell(value, width, spec=","):
        return f"{'-' if value is None else format(value, spec):>{width}}"

    depthwise, dense = others["depthwise"]["shape"], others["dense"]["shape"]
    labels = {"depthwise": f"depthwise {depthwise['h']}x{depthwise['w']}x{depthwise['cin']} "
                           f"{depthwise['kh']}x{depthwise['kw']} pad {depthwise['padding']}",
              "dense": f"dense {dense['cin']} -> {dense['cout']}"}
    print(f"{'layer':<30}{'core':>5}{'quiltc':>12}{'CMSIS-NN':>12}{'ratio':>7}"
          f"{'quiltc cycles':>15}{'CMSIS-NN cycles':>17}{'ratio':>7}")
    for name, label in labels.items():
        for core in CORES:
            entry = others[name][core]
            cmsis = entry["cmsis_nn"] or {}
            print(f"{label:<30}{core:>5}{cell(entry['quiltc']['instructions'], 12)}"
                  f"{cell(cmsis.get('instructions'), 12)}{cell(entry['ratio'], 7, '.2f')}"
                  f"{cell(entry['quiltc']['cycles_estimate'], 15)}"
                  f"{cell(cmsis.get('cycles_estimate'), 17)}"
                  f"{cell(entry['cycles_ratio'], 7, '.2f')}")
    print("ratio: quiltc / CMSIS-NN (below 1: quiltc runs fewer)")


def searched_bitserial(shape, core, bits, folder):
    """source_counts of the bit-serial conv `shape` at `bits` under the schedule
    mcu.schedule_search picks for `core`, with that "schedule", every candidate's count
    and the recipe's default schedule's (the one a whole model gets: no window written
    out, so no flash spent on it)."""
    best, candidates = search_schedule("bitserial", shape, core, act_bits=bits)
    layer = conv_layer_source("bitserial", shape, act_bits=bits, pool_size=POOL_SIZE,
                              schedule=best)
    x = layer_input((shape.h, shape.w, shape.cin), bits)
    counts = source_counts(layer, x, core, f"{folder}/{core}_bitserial_{bits}")
    default = {"groups_per_step": default_groups_per_step(shape.cin // VECTOR_LEN, bits),
               "window_unrolled": False}
    return {**counts, "schedule": best,
            "default_schedule_instructions": next(n for schedule, n in candidates
                                                  if schedule == default),
            "candidates": [{"schedule": schedule, "instructions": n}
                           for schedule, n in candidates]}


def layer_by_core(shape, widths, cmsis, folder):
    """{core: quiltc's int8 kernels, the best of them, the baseline ratio_vs_int8 divides
    (the better of quiltc's int8 and CMSIS-NN) and the bit-serial kernels at `widths`}."""
    result = {}
    for core in progress_bar(CORES, description="layer on each core", unit="core"):
        kinds = {kind: layer_counts(kind, shape, core, 8, folder) for kind in INT8_KINDS}
        best = min(kinds, key=lambda kind: kinds[kind]["instructions"])
        baseline_name, baseline = best, kinds[best]
        if cmsis is not None and cmsis[core]["instructions"] < baseline["instructions"]:
            baseline_name, baseline = "cmsis_nn", cmsis[core]
        entry = {"int8_kernel": best, "int8_instructions": kinds[best]["instructions"],
                 "int8_cycles_estimate": kinds[best]["cycles_estimate"], "int8_kinds": kinds,
                 "baseline": baseline_name, "baseline_instructions": baseline["instructions"],
                 "bitserial": {}}
        for bits in widths:
            counts = searched_bitserial(shape, core, bits, folder)
            counts["ratio_vs_int8"] = round(baseline["instructions"] / counts["instructions"], 3)
            counts["cycles_ratio_vs_int8"] = round(
                baseline["cycles_estimate"] / counts["cycles_estimate"], 3)
            entry["bitserial"][str(bits)] = counts
        result[core] = entry
    return result


def print_layer_table(layer, cmsis):
    """Every kernel's instructions and estimated cycles side by side, per core, with the
    bit-serial ratios against the baseline."""
    rows = [("CMSIS-NN arm_convolve_wrapper_s8", {c: cmsis[c] for c in CORES})] if cmsis else []
    rows += [(f"quiltc {kind}", {c: layer[c]["int8_kinds"][kind] for c in CORES})
             for kind in INT8_KINDS]
    rows += [(f"quiltc bit-serial b={bits}", {c: layer[c]["bitserial"][bits] for c in CORES})
             for bits in layer[CORES[0]]["bitserial"]]
    header = "".join(f"{core + ' instructions':>18}{'cycles (est.)':>15}{'ratio':>7}"
                     for core in CORES)
    print(f"{'kernel':<34}{header}")
    for name, cells in rows:
        line = "".join(f"{cell['instructions']:>18,}{cell['cycles_estimate']:>15,}"
                       + (f"{cell['ratio_vs_int8']:>7.2f}" if "ratio_vs_int8" in cell
                          else f"{'':>7}") for cell in cells.values())
        print(f"{name:<34}{line}")
    print("ratio: the better of quiltc int8 and CMSIS-NN (" + ", ".join(
        f"{core}: {layer[core]['baseline']}" for core in CORES) + ") / bit-serial instructions")


def digits_by_core(int8_count, bitserial_count, widths):
    """{core: {"int8_kernel", "int8_instructions", "bitserial": {b: {"instructions",
    "ratio_vs_int8"}}}} of whole digits CNN inferences, for each width b in `widths`."""
    result = {}
    for core in CORES:
        base = int8_count(core)
        result[core] = {"int8_kernel": DIGITS_INT8_KERNEL[core], "int8_instructions": base,
                        "bitserial": {}}
        for bits in widths:
            count = bitserial_count(core, bits)
            result[core]["bitserial"][str(bits)] = {
                "instructions": count, "ratio_vs_int8": round(base / count, 3)}
        print(f"  {core}: int8 ({DIGITS_INT8_KERNEL[core]}) {base:,}; bit-serial "
              + ", ".join(f"b={b} {v['instructions']:,} ({v['ratio_vs_int8']:.2f})"
                          for b, v in result[core]["bitserial"].items()))
    return result


def searched_schedules(shape):
    """{core: {kernel: the schedule mcu.schedule_search picks on the layer, its count,
    and every candidate's}} for quiltc's int8 kernels: what the recipe's default
    (recipes.mcu.REGISTER_BLOCKS) was chosen from. (The bit-serial kernels' searches are
    in the layer's entries.)"""
    result = {}
    for core in CORES:
        result[core] = {}
        for kind in INT8_KINDS:
            best, counts = search_schedule(kind, shape, core)
            fewest = min(n for _, n in counts)
            result[core][kind] = {
                "best": best, "instructions": fewest,
                "candidates": [{"schedule": schedule, "instructions": n}
                               for schedule, n in counts]}
            print(f"  {core} {kind}: best {best}: {fewest:,} instructions "
                  f"({len(counts)} candidates)")
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
                        "o-", color=color, label=f"{core} bit-serial, searched schedule")
        count_axes.plot(widths, [layer["bitserial"][b]["default_schedule_instructions"] / 1e6
                                 for b in bits], "x:", color=color,
                        label=f"{core} bit-serial, default schedule")
        count_axes.axhline(layer["int8_instructions"] / 1e6, color=color, linestyle="--",
                           label=f"{core} quiltc {layer['int8_kernel']}")
        if payload["cmsis_nn"] is not None:
            count_axes.axhline(payload["cmsis_nn"][core]["instructions"] / 1e6, color=color,
                               linestyle=":", label=f"{core} CMSIS-NN")
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
    depthwise_shape, dense_sizes = ((QUICK_DEPTHWISE_LAYER, QUICK_DENSE_LAYER) if arguments.quick
                                    else (DEPTHWISE_LAYER, DENSE_LAYER))
    results_folder = common.output_folder(arguments.quick)
    with tempfile.TemporaryDirectory() as folder:
        print(f"conv layer {shape}: one call under unicorn; {CYCLES_NOTE}")
        library = cmsis_library()
        cmsis = cmsis_counts(library, shape, folder)
        layer = layer_by_core(shape, widths, cmsis, folder)
        print_layer_table(layer, cmsis)
        print("depthwise and dense layers: quiltc int8 against CMSIS-NN, one call each")
        others = other_layers(library, depthwise_shape, dense_sizes, folder)
        print_other_layers(others)
        schedules = None
        if not arguments.quick:
            print("schedules of quiltc's kernels, searched under unicorn")
            schedules = searched_schedules(shape)
        model, int8_model, pooled, (_, _, x_test, y_test) = pooled_digits(POOL_SIZE)
        image = x_test[:1]
        print("digits CNN, one inference: instructions under unicorn")
        digits = digits_by_core(
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
    if cmsis is not None:
        for core in CORES:
            measured[f"layer {core} quiltc int8 / CMSIS-NN instructions"] = round(
                layer[core]["int8_instructions"] / cmsis[core]["instructions"], 3)
    targets = {}
    for name, (goal, direction) in TARGETS.items():
        value = measured.get(name)
        met = None if value is None else (value >= goal if direction == "at least"
                                          else value <= goal)
        targets[name] = {"value": value, "target": goal, "direction": direction, "met": met}
    best_gap = min(accuracy["int8"] - accuracy["pool_bits"][str(b)] for b in widths if b <= 4)
    targets["accuracy within 1 point of int8 at some b <= 4"] = {
        "value": round(100 * best_gap, 2), "target": 1.0, "direction": "at most",
        "met": best_gap <= 0.01}
    payload = {"layer_shape": vars(shape), "pool_size": POOL_SIZE, "cmsis_nn": cmsis,
               "cycles_estimate_method": CYCLES_NOTE, "layer": layer, "other_layers": others,
               "schedule_search": schedules,
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
        verdict = {True: "met", False: "MISSED", None: "not measured (no CMSIS-NN)"}
        print(f"target {name}: {target['value']} against {target['direction']} "
              f"{target['target']} -> {verdict[target['met']]}")
    print(f"wrote {common.write_json('mcu_weightpool', payload, results_folder)}")
    plot(payload, results_folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
