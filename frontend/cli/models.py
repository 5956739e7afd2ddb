"""`quiltc fuse`, `quiltc compress` and `quiltc emit-mcu`: the jobs on a whole model.

fuse partitions and fuses an ONNX model into one C module and writes NAME.c, NAME.h,
NAME.weights and the built library to OUT, with the plan it followed (plan.txt).
compress replaces a CNN's conv weights by indices into one k-means weight pool and saves
the result (`qc.weightpool.load_pooled` reads it back; emit-mcu --pooled takes it).
emit-mcu compresses a CNN with a weight pool and writes a Cortex-M project to OUT that
`make -C OUT run` runs under QEMU: the ONNX model MODEL.onnx (qc.nn.from_onnx), or the
built-in digits CNN (trained and cached on first use, or loaded from FILE.npz, arrays in
get_weights() order).
"""

import pathlib

import numpy as np

from ..ir.errors import QuiltError
from ..nn.bitserial import check_act_bits
from ..runtime_c.mcu_boards import BOARDS


def _add_compression_options(parser):
    """The options compress and emit-mcu share: the pool, the data, the fine-tuning."""
    parser.add_argument("--act-bits", type=int, default=8, metavar="B",
                        help="activation bits of the pooled layers, 1..8 (default 8)")
    parser.add_argument("--pool-size", type=int, default=64, metavar="P",
                        help="weight vectors in the network-wide pool, 2..256 (default 64)")
    parser.add_argument("--calib", metavar="FILE.npy",
                        help="float images (np.save of an array) that calibrate MODEL.onnx's "
                             "activations, NCHW as the ONNX input, or NHWC; needed unless the "
                             "model takes the 1x8x8 digits, which are used then")
    parser.add_argument("--labels", metavar="FILE.npy",
                        help="integer class labels of the --calib images: fine-tune the "
                             "pooled model on them (without them it is not fine-tuned)")
    parser.add_argument("--epochs", type=int, default=8, metavar="N",
                        help="fine-tuning epochs with the pool fixed, 0 for none (default 8)")


def add_commands(commands, common):
    """Add fuse, compress and emit-mcu to the `quiltc` subcommands."""
    fuse = commands.add_parser(
        "fuse", parents=[common], help="fuse an ONNX model into one C module",
        description="Partition an ONNX model's graph, fuse each partition into one loop "
                    "nest, and write one C module (NAME.c, NAME.h, NAME.weights, the built "
                    "library and plan.txt) a program can call.",
        epilog="example: quiltc fuse bert_layer.onnx -o out/ --size seq=1:512")
    fuse.add_argument("model", metavar="MODEL.onnx", help="the ONNX model")
    fuse.add_argument("-o", "--out", required=True, metavar="OUT", help="folder to write to")
    fuse.add_argument("--level", type=int, default=3, choices=range(4),
                      help="fusion level: 0 none, 1 loops, 2 reductions stitched, 3 also "
                           "independent partitions side by side (default 3)")
    fuse.add_argument("--name", default="model", help="the entry point's name (default model)")
    fuse.add_argument("--size", action="append", default=[], metavar="DIM=LO:HI",
                      help="the range of a symbolic dim (default 1:4096); repeat for others")
    fuse.add_argument("--plot", action="store_true", help="also draw the plan to plan.png")
    fuse.add_argument("--tuned", metavar="DB",
                      help="run the matmul partitions with the register blocks tuned for "
                           "this model in DB (qc.autotune.tune_graph); others keep the "
                           "defaults")
    fuse.set_defaults(handler=fuse_model)
    compress = commands.add_parser(
        "compress", parents=[common], help="compress a CNN's weights into a weight pool",
        description="Replace the conv weights of a CNN (an ONNX model, or the built-in digits "
                    "CNN with weights from WEIGHTS.npz) by indices into one k-means pool, "
                    "fine-tune with the pool fixed, report storage and accuracy, and save "
                    "the pooled model (emit-mcu --pooled takes it).",
        epilog="example: quiltc compress digits.npz --pool-size 64 --act-bits 4 -o pooled.npz")
    compress.add_argument("model", metavar="MODEL.onnx|WEIGHTS.npz",
                          help="a CNN exported to ONNX, or the digits CNN's weights "
                               "(np.savez of get_weights())")
    compress.add_argument("-o", "--out", required=True, metavar="POOLED.npz",
                          help="where to save the pooled model")
    _add_compression_options(compress)
    compress.set_defaults(handler=compress_model)
    emit = commands.add_parser(
        "emit-mcu", parents=[common], help="write a Cortex-M project for a weight-pooled CNN",
        description="Compress a CNN (an ONNX model, or the built-in digits CNN) with a "
                    "network-wide weight pool and write a Cortex-M project (make builds it, "
                    "make run runs it under QEMU).",
        epilog="example: quiltc emit-mcu my_cnn.onnx out/ --calib images.npy "
               "--labels labels.npy --act-bits 4 --run")
    emit.add_argument("model", metavar="MODEL.onnx", nargs="?",
                      help="a CNN exported to ONNX (a chain of Conv, Relu, Clip, pools, "
                           "Flatten, Gemm, BatchNormalization; see qc.nn.from_onnx); "
                           "default: the built-in digits CNN")
    emit.add_argument("out", metavar="OUT", help="folder to write the project into")
    _add_compression_options(emit)
    emit.add_argument("--board", default="mps2-an386", choices=sorted(BOARDS),
                      help="QEMU board to build for (default mps2-an386, a Cortex-M4)")
    emit.add_argument("--weights", metavar="FILE.npz",
                      help="digits CNN weights (np.savez of get_weights()) instead of the "
                           "trained, cached model")
    emit.add_argument("--pooled", metavar="POOLED.npz",
                      help="a model quiltc compress saved (of MODEL.onnx, or of the digits "
                           "CNN): emit it as it is instead of compressing again")
    emit.add_argument("--test-inputs", type=int, default=20, metavar="N",
                      help="test images embedded in main.c: the digits test split's, or the "
                           "first --calib images (default 20)")
    emit.add_argument("--overwrite", action="store_true",
                      help="write into OUT even when it holds files quiltc did not write "
                           "(only the project's own files are replaced)")
    emit.add_argument("--run", action="store_true",
                      help="also build the project, run it under QEMU and compare its "
                           "predictions with the numpy integer reference")
    emit.set_defaults(handler=emit_mcu)


def _size_ranges(specs):
    """{dim: (lo, hi)} from --size DIM=LO:HI arguments."""
    ranges = {}
    for spec in specs:
        name, _, bounds = spec.partition("=")
        lo, _, hi = bounds.partition(":")
        if not (name and lo.isdigit() and hi.isdigit()):
            raise QuiltError(f"--size {spec!r}: write DIM=LO:HI, e.g. --size seq=1:512")
        ranges[name] = (int(lo), int(hi))
    return ranges


def fuse_model(arguments):
    """Handle `quiltc fuse`: import, fuse, build, and write the module's files."""
    import shutil

    from .. import graph

    model = graph.from_onnx(arguments.model, sizes=_size_ranges(arguments.size) or None)
    choices = _tuned_choices(arguments.tuned, model)
    module = graph.compile(model, level=arguments.level, name=arguments.name,
                           matmul_choices=choices)
    paths = module.write(arguments.out)
    library = pathlib.Path(arguments.out) / f"lib{arguments.name}.so"
    shutil.copyfile(module.library_path, library)
    (pathlib.Path(arguments.out) / "plan.txt").write_text(f"{module.plan}\n\n{module.memory}\n")
    if arguments.plot:
        module.plan.draw(pathlib.Path(arguments.out) / "plan.png")
    tuned = f", {len(choices)} matmul partitions tuned" if choices else ""
    print(f"{len(model.nodes)} ops in {module.calls} kernels "
          f"({module.launches} launches{tuned}), compiled in {module.compile_seconds:.1f} s")
    print("wrote " + ", ".join(str(path) for path in [*paths, library]))
    return 0


def _tuned_choices(database, model):
    """The matmul choices `database` holds for `model` (None without a database)."""
    if database is None:
        return None
    from ..autotune import load_graph

    if not pathlib.Path(database).is_file():
        raise QuiltError(f"--tuned {database}: no such database; make it with "
                         "qc.autotune.tune_graph(model, database, shapes)")
    choices = load_graph(database, model)
    if not choices:
        raise QuiltError(f"--tuned {database}: it holds no tuning of this model's matmul "
                         "partitions; make it with qc.autotune.tune_graph(model, database, "
                         "shapes)")
    return choices


def _digits_model(weights_path):
    from ..nn.digits import digits_cnn, trained_digits_model

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


DIGITS_SHAPE = (8, 8, 1)


def _saved_array(path, what):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise QuiltError(f"cannot read {what} from {path}: {error}; save them with "
                         "np.save(path, array)") from None


def _calibration_images(path, input_shape):
    """The float images of --calib as NHWC: NCHW (the ONNX input's layout) first."""
    images = _saved_array(path, "calibration images")
    h, w, c = input_shape
    if images.dtype.kind == "f" and images.ndim == 4 and len(images):
        if images.shape[1:] == (c, h, w):
            return images.transpose(0, 2, 3, 1).astype(np.float32)
        if images.shape[1:] == (h, w, c):
            return images.astype(np.float32)
    raise QuiltError(f"--calib {path} holds {images.dtype} of shape {images.shape}; the model "
                     f"takes float images (n, {c}, {h}, {w}) NCHW or (n, {h}, {w}, {c}) NHWC")


def _model_and_data(arguments):
    """(model, calibration images, their labels or None, test images, their labels or
    None) for emit-mcu's arguments."""
    from ..nn.digits import digits_cnn, load_digits
    from ..nn.onnx_cnn import from_onnx

    if arguments.model is None:
        x_train, y_train, x_test, y_test = load_digits()
        # A pooled model brings its weights: the architecture is all it needs.
        model = (digits_cnn() if getattr(arguments, "pooled", None) is not None
                 else _digits_model(arguments.weights))
        return model, x_train, y_train, x_test, y_test
    model = from_onnx(arguments.model)
    if arguments.calib is not None:
        images = _calibration_images(arguments.calib, model.input_shape)
        labels = None
        if arguments.labels is not None:
            labels = _saved_array(arguments.labels, "labels")
            if labels.dtype.kind not in "iu" or labels.shape != (len(images),):
                raise QuiltError(f"--labels {arguments.labels} holds {labels.dtype} of shape "
                                 f"{labels.shape}; pass one integer class per --calib image "
                                 f"({len(images)})")
        return model, images, labels, images, None
    if model.input_shape != DIGITS_SHAPE:
        h, w, c = model.input_shape
        raise QuiltError(f"{arguments.model} takes {c}x{h}x{w} images, not the 1x8x8 digits; "
                         "pass calibration images of its input with --calib FILE.npy")
    # The split PyTorch digits models usually report (scikit-learn's plain split), so the
    # embedded test images are ones such a model did not train on.
    x_train, y_train, x_test, y_test = load_digits(stratify=False)
    return model, x_train, y_train, x_test, y_test


def _check_compression_arguments(arguments):
    check_act_bits(arguments.act_bits)
    for option, value in (("--test-inputs", getattr(arguments, "test_inputs", 0)),
                          ("--epochs", arguments.epochs)):
        if value < 0:
            raise QuiltError(f"{option} {value}: pass 0 or more")
    if arguments.model is not None and arguments.weights is not None:
        raise QuiltError("--weights loads weights into the built-in digits CNN, and "
                         f"{arguments.model} brings its own; pass one or the other")
    if arguments.model is None and arguments.calib is not None:
        raise QuiltError("--calib calibrates an ONNX model; the built-in digits CNN "
                         "calibrates on the digits: pass MODEL.onnx before OUT")
    if arguments.labels is not None and arguments.calib is None:
        raise QuiltError("--labels names the classes of the --calib images; pass --calib too")


def _pooled(arguments, model, x_train, y_train):
    """(the pooled model, whether it was fine-tuned): compressed here, or --pooled's."""
    from ..nn import weightpool

    if getattr(arguments, "pooled", None) is not None:
        return weightpool.load_pooled(arguments.pooled, model), True
    # Fine-tuning with the pool fixed is what keeps a pooled model accurate (the paper's
    # recipe): without it the digits CNN drops from about 99% to about 70%.
    tune = y_train is not None and arguments.epochs > 0
    pooled = weightpool.compress(model, calib=x_train, pool_size=arguments.pool_size,
                                 train=(x_train, y_train) if tune else None,
                                 epochs=max(arguments.epochs, 1))
    return pooled, tune


def compress_model(arguments):
    """Handle `quiltc compress`: import or load, compress, report, save."""
    from ..nn import weightpool

    is_onnx = arguments.model.endswith(".onnx")
    arguments.model, arguments.weights = ((arguments.model, None) if is_onnx
                                          else (None, arguments.model))
    _check_compression_arguments(arguments)
    model, x_train, y_train, x_test, y_test = _model_and_data(arguments)
    pooled, tuned = _pooled(arguments, model, x_train, y_train)
    weightpool.save_pooled(pooled, arguments.out)
    storage = pooled.storage_bytes()
    report = (f"pool of {arguments.pool_size}{'' if tuned else ' (not fine-tuned)'}: "
              f"parameters {storage['int8_bytes']} -> {storage['pooled_bytes']} bytes "
              f"({storage['ratio']:.2f}x smaller than int8)")
    if y_test is not None:
        report += (f"; accuracy at act_bits={arguments.act_bits}: "
                   f"{pooled.accuracy(x_test, y_test, arguments.act_bits):.3f}")
    print(report)
    print(f"wrote {arguments.out}")
    return 0


def emit_mcu(arguments):
    """Handle `quiltc emit-mcu`: import or load, compress, emit, and (with --run) build,
    run and check."""
    from ..mcu import project as mcu
    from ..runtime_c import mcu_toolchain

    _check_compression_arguments(arguments)
    # Before a minute of training, not after it.
    mcu.check_project_folder(pathlib.Path(arguments.out), arguments.overwrite)
    model, x_train, y_train, x_test, y_test = _model_and_data(arguments)
    pooled, tune = _pooled(arguments, model, x_train, y_train)
    inputs = x_test[:arguments.test_inputs]
    path = mcu.emit_project(pooled, arguments.out, board=arguments.board,
                            act_bits=arguments.act_bits, test_inputs=inputs,
                            overwrite=arguments.overwrite)
    expected = [int(c) for c in pooled.predict(inputs, act_bits=arguments.act_bits)]
    storage = pooled.storage_bytes()
    accuracy = ""
    if y_test is not None and expected:
        right = np.mean(np.array(expected) == y_test[:len(expected)])
        accuracy = f", reference accuracy {right:.3f}"
    print(f"wrote {path} for {arguments.board} with act_bits={arguments.act_bits}, "
          f"pool of {len(pooled.pool)}{'' if tune else ' (not fine-tuned)'}: parameters "
          f"{storage['pooled_bytes']} bytes ({storage['ratio']:.2f}x smaller than int8); "
          f"{len(expected)} test inputs{accuracy}")
    if not arguments.run:
        print(f"build and run it with: make -C {path} run")
        return 0
    got = mcu_toolchain.run_predictions(path)
    flash, ram = mcu_toolchain.elf_size(path / mcu_toolchain.ELF_NAME)
    same = got == expected
    print(f"ran under qemu-system-arm -M {arguments.board}: flash {flash} bytes, RAM {ram} "
          f"bytes; predictions {'equal' if same else 'DIFFER FROM'} the numpy reference")
    return 0 if same else 1
