"""The `quiltc` command (also `python -m quiltc.cli`).

    quiltc emit-mcu OUT [--act-bits B] [--pool-size P] [--board BOARD]
                        [--weights FILE.npz] [--test-inputs N] [--run]

emit-mcu compresses the digits CNN (trained and cached on first use, or loaded from
FILE.npz, arrays in get_weights() order) with a weight pool and writes a Cortex-M project
to OUT that `make -C OUT run` runs under QEMU.
"""

import argparse
import pathlib
import sys

import numpy as np

from .ir.errors import QuiltError
from .nn.bitserial import check_act_bits
from .runtime_c.mcu_boards import BOARDS


def _parser():
    parser = argparse.ArgumentParser(prog="quiltc", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    emit = commands.add_parser(
        "emit-mcu", help="write a Cortex-M project for the weight-pooled digits CNN",
        description="Compress the digits CNN with a network-wide weight pool and write a "
                    "Cortex-M project (make builds it, make run runs it under QEMU).")
    emit.add_argument("out", metavar="OUT", help="folder to write the project into")
    emit.add_argument("--act-bits", type=int, default=8, metavar="B",
                      help="activation bits of the pooled layers, 1..8 (default 8)")
    emit.add_argument("--pool-size", type=int, default=64, metavar="P",
                      help="weight vectors in the network-wide pool, 2..256 (default 64)")
    emit.add_argument("--board", default="mps2-an386", choices=sorted(BOARDS),
                      help="QEMU board to build for (default mps2-an386, a Cortex-M4)")
    emit.add_argument("--weights", metavar="FILE.npz",
                      help="digits CNN weights (np.savez of get_weights()) instead of the "
                           "trained, cached model")
    emit.add_argument("--test-inputs", type=int, default=20, metavar="N",
                      help="digits test images embedded in main.c (default 20)")
    emit.add_argument("--overwrite", action="store_true",
                      help="write into OUT even when it holds files quiltc did not write "
                           "(only the project's own files are replaced)")
    emit.add_argument("--run", action="store_true",
                      help="also build the project, run it under QEMU and compare its "
                           "predictions with the numpy integer reference")
    emit.set_defaults(handler=emit_mcu)
    return parser


def _digits_model(weights_path):
    from .nn.digits import digits_cnn, trained_digits_model

    if weights_path is None:
        return trained_digits_model()
    model = digits_cnn()
    try:
        with np.load(weights_path) as archive:
            model.set_weights([archive[f"arr_{i}"] for i in range(len(archive.files))])
    except (OSError, ValueError, KeyError) as error:
        raise QuiltError(f"cannot read weights from {weights_path}: {error}; save them with "
                         "np.savez(path, *model.get_weights())") from None
    return model


def emit_mcu(arguments):
    """Handle `quiltc emit-mcu`: compress, emit, and (with --run) build, run and check."""
    from .mcu import project as mcu
    from .nn import weightpool
    from .nn.digits import load_digits
    from .runtime_c import mcu_toolchain

    check_act_bits(arguments.act_bits)
    if arguments.test_inputs < 0:
        raise QuiltError(f"--test-inputs {arguments.test_inputs}: pass 0 or more")
    # Before a minute of training, not after it.
    mcu.check_project_folder(pathlib.Path(arguments.out), arguments.overwrite)
    x_train, y_train, x_test, y_test = load_digits()
    model = _digits_model(arguments.weights)
    # Fine-tuning with the pool fixed is what keeps a pooled model accurate (the paper's
    # recipe): without it the digits CNN drops from about 99% to about 70%.
    pooled = weightpool.compress(model, calib=x_train, pool_size=arguments.pool_size,
                                 train=(x_train, y_train))
    inputs = x_test[:arguments.test_inputs]
    path = mcu.emit_project(pooled, arguments.out, board=arguments.board,
                            act_bits=arguments.act_bits, test_inputs=inputs,
                            overwrite=arguments.overwrite)
    expected = [int(c) for c in pooled.predict(inputs, act_bits=arguments.act_bits)]
    accuracy = float(np.mean(np.array(expected) == y_test[:len(expected)])) if expected else 0.0
    storage = pooled.storage_bytes()
    print(f"wrote {path} for {arguments.board} with act_bits={arguments.act_bits}, "
          f"pool of {arguments.pool_size}: parameters {storage['pooled_bytes']} bytes "
          f"({storage['ratio']:.2f}x smaller than int8); {len(expected)} test inputs, "
          f"reference accuracy {accuracy:.3f}")
    if not arguments.run:
        print(f"build and run it with: make -C {path} run")
        return 0
    got = mcu_toolchain.run_predictions(path)
    flash, ram = mcu_toolchain.elf_size(path / mcu_toolchain.ELF_NAME)
    same = got == expected
    print(f"ran under qemu-system-arm -M {arguments.board}: flash {flash} bytes, RAM {ram} "
          f"bytes; predictions {'equal' if same else 'DIFFER FROM'} the numpy reference")
    return 0 if same else 1


def main(argv=None):
    """Entry point of the `quiltc` command; returns the exit status."""
    arguments = _parser().parse_args(argv)
    try:
        return arguments.handler(arguments)
    except QuiltError as error:
        print(f"quiltc: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
