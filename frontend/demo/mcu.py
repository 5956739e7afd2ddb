"""The Cortex-M part of `make demo`: the digits CNN (trained once, then cached) is
compressed with a network-wide weight pool, emitted as a Cortex-M4 project, built with
arm-none-eabi-gcc and run under QEMU, and its instruction counts under unicorn are set
beside the int8 kernels'. Without the toolchain it names the install command and goes on.
"""

import importlib.util
import tempfile

import numpy as np

from ..ir.errors import ToolchainMissing
from ..mcu import project as mcu
from ..nn import weightpool
from ..nn.digits import load_digits, trained_digits_model
from ..nn.qmodel import quantize
from ..runtime_c import mcu_toolchain
from ..runtime_c.mcu_boards import find_board

POOL_SIZE = 64
DEMO_BITS = 4
TEST_INPUTS = 20


def pooled_digits(pool_size=POOL_SIZE):
    """(float model, int8 QuantModel, pooled model, load_digits() tuple): the trained
    digits CNN, its int8 quantization, and its weight-pool compression fine-tuned on the
    training split (the paper's recipe)."""
    data = load_digits()
    x_train, y_train = data[0], data[1]
    model = trained_digits_model()
    int8_model = quantize(model, x_train, 8)
    pooled = weightpool.compress(model, calib=x_train, pool_size=pool_size,
                                 train=(x_train, y_train))
    return model, int8_model, pooled, data


def _print_instructions(int8_model, pooled, image):
    print("\ninstructions per inference under unicorn (fewer is faster):")
    for board, baseline, widths in (("mps2-an385", "plain-C int8", (DEMO_BITS,)),
                                    ("mps2-an386", "SMLAD int8", (2, DEMO_BITS))):
        core = find_board(board).cpu
        int8_count = mcu.emulated_run(int8_model, image, 8, board).instructions[0]
        print(f"  {core:<10} {baseline:<16} {int8_count:>10,}")
        for bits in widths:
            count = mcu.emulated_run(pooled, image, bits, board).instructions[0]
            print(f"  {core:<10} {f'bit-serial b={bits}':<16} {count:>10,}  "
                  f"({baseline} / bit-serial = {int8_count / count:.2f})")


def demo_mcu(banner):
    """Run the Cortex-M demo, printing under `banner(title)`; True unless the emulated
    board's predictions differ from the numpy integer reference."""
    banner("bit-serial weight pools on Cortex-M: the digits CNN")
    if importlib.util.find_spec("sklearn") is None:
        print("skipping the Cortex-M demo: its digits data set ships with scikit-learn; "
              "add it with: pip install 'quiltc[data]'")
        return True
    print("digits CNN: trained on the first run (about a minute), then loaded from the cache")
    model, int8_model, pooled, (_, _, x_test, y_test) = pooled_digits()
    storage = pooled.storage_bytes()
    print(f"pool of {POOL_SIZE} int8 vectors of 8; pooled conv weights "
          f"{storage['pooled_layers_int8_bytes']} -> {storage['pooled_layers_bytes']} bytes "
          f"({storage['pooled_layers_ratio']:.2f}x), whole model {storage['ratio']:.2f}x")
    accuracies = {bits: pooled.accuracy(x_test, y_test, bits) for bits in (2, DEMO_BITS, 8)}
    print(f"test accuracy: float {model.accuracy(x_test, y_test):.4f}, int8 "
          f"{int8_model.accuracy(x_test, y_test):.4f}, pooled "
          + ", ".join(f"b={bits} {acc:.4f}" for bits, acc in accuracies.items()))
    inputs = x_test[:TEST_INPUTS]
    expected = [int(c) for c in pooled.predict(inputs, act_bits=DEMO_BITS)]
    with tempfile.TemporaryDirectory() as folder:
        path = mcu.emit_project(pooled, folder, board="mps2-an386", act_bits=DEMO_BITS,
                                test_inputs=inputs)
        try:
            got = mcu_toolchain.run_predictions(path)
            flash, ram = mcu_toolchain.elf_size(path / mcu_toolchain.ELF_NAME)
        except ToolchainMissing as missing:
            print(f"\nskipping the Cortex-M build and run: {missing}")
            return True
    same = got == expected
    print(f"\nemitted, built with arm-none-eabi-gcc and run under qemu-system-arm -M "
          f"mps2-an386 (b={DEMO_BITS}): flash {flash} bytes, RAM {ram} bytes")
    print(f"QEMU predictions {got[:10]}... {'equal' if same else 'DIFFER FROM'} the numpy "
          f"integer reference; {np.mean(np.array(got) == y_test[:len(got)]):.2f} correct")
    if importlib.util.find_spec("unicorn") is None:
        print("instruction counts need unicorn: pip install unicorn (or pip install -e '.[test]')")
    else:
        _print_instructions(int8_model, pooled, x_test[:1])
    return same
