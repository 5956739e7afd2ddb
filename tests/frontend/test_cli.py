"""The `quiltc` command: `emit-mcu` compresses the digits CNN (weights from a file here,
to keep the test fast) or an ONNX CNN (the PyTorch digits model, calibrated on the digits;
a small one calibrated on images from a file), writes a Cortex-M project, and with --run
builds it and checks the emulated predictions against numpy; bad arguments end with
status 2 and a message."""

import os
import pathlib
import subprocess
import sys

import cffi
import numpy as np
import pytest

import quiltc as qc
from quiltc.cli import main
from quiltc.runtime_c import mcu_toolchain

from support.helpers import require_mcu_toolchain

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"


@pytest.mark.slow
@pytest.mark.toolchain
def test_emit_mcu_writes_a_project_that_runs_like_the_reference(tmp_path, weights_file,
                                                                 capsys):
    require_mcu_toolchain()
    out = tmp_path / "digits"
    status = main(["emit-mcu", str(out), "--weights", str(weights_file), "--act-bits", "2",
                   "--pool-size", "16", "--test-inputs", "6", "--board", "mps2-an385",
                   "--run"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "predictions equal the numpy reference" in printed
    assert "-M mps2-an385" in (out / "Makefile").read_text()
    assert len(mcu_toolchain.run_predictions(out)) == 6


@pytest.mark.slow
def test_emit_mcu_without_run_names_the_make_command(tmp_path, weights_file, capsys):
    assert main(["emit-mcu", str(tmp_path / "p"), "--weights", str(weights_file),
                 "--pool-size", "8", "--test-inputs", "0"]) == 0
    assert f"make -C {tmp_path / 'p'} run" in capsys.readouterr().out
    assert (tmp_path / "p" / "model.h").exists()


def test_bad_act_bits_end_with_status_2_and_the_range(tmp_path, weights_file, capsys):
    assert main(["emit-mcu", str(tmp_path), "--weights", str(weights_file),
                 "--act-bits", "9"]) == 2
    assert "act_bits=9 is not supported" in capsys.readouterr().err


def test_an_unreadable_weights_file_is_named(tmp_path, capsys):
    broken = tmp_path / "broken.npz"
    broken.write_text("not an archive")
    assert main(["emit-mcu", str(tmp_path / "p"), "--weights", str(broken)]) == 2
    assert f"cannot read weights from {broken}" in capsys.readouterr().err


def test_weights_of_another_architecture_are_refused_with_the_shapes(tmp_path, capsys):
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, np.zeros((3, 3, 1, 4), np.float32), np.zeros(4, np.float32))
    assert main(["emit-mcu", str(tmp_path / "p"), "--weights", str(wrong)]) == 2
    assert "set_weights got 2 arrays" in capsys.readouterr().err


def test_unknown_boards_stop_at_argument_parsing(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["emit-mcu", "out", "--board", "stm32"])
    assert stopped.value.code == 2
    assert "invalid choice: 'stm32'" in capsys.readouterr().err


def test_python_dash_m_runs_the_same_command():
    result = subprocess.run([sys.executable, "-m", "quiltc.cli", "emit-mcu", "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0
    for option in ("MODEL.onnx", "--act-bits", "--pool-size", "--board", "--weights", "--calib",
                   "--labels", "--epochs", "--test-inputs"):
        assert option in result.stdout
    assert "NCHW as the ONNX input, or NHWC" in " ".join(result.stdout.split())


def _small_cnn_file(folder, input_shape=(3, 8, 8)):
    """An ONNX CNN with one poolable conv (8 input channels after a ReLU), saved in
    `folder`: Conv 3->8, Relu, Conv 8->8, Relu, GlobalAveragePool, Flatten, Gemm 8->4."""
    onnx = pytest.importorskip("onnx", reason="install it with: pip install onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"w1": rng.standard_normal((8, input_shape[0], 3, 3)),
               "w2": rng.standard_normal((8, 8, 3, 3)), "w3": rng.standard_normal((4, 8))}
    nodes = [helper.make_node("Conv", ["image", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "w3"], ["logits"], name="classifier", transB=1)]
    graph = helper.make_graph(
        nodes, "small",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", *input_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(value.astype(np.float32), name)
         for name, value in weights.items()])
    path = folder / "small.onnx"
    onnx.save(helper.make_model(graph), path)
    return path


@pytest.mark.slow
@pytest.mark.toolchain
def test_emit_mcu_runs_a_pytorch_digits_cnn_from_onnx_like_the_reference(tmp_path):
    require_mcu_toolchain()
    pytest.importorskip("onnx", reason="install it with: pip install onnx")
    out = tmp_path / "digits"
    result = subprocess.run(
        [sys.executable, "-m", "quiltc.cli", "emit-mcu", str(DATA / "digits_cnn_torch.onnx"),
         str(out), "--act-bits", "4", "--pool-size", "32", "--epochs", "1",
         "--test-inputs", "8", "--run"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "pool of 32: parameters 7608 bytes (4.68x smaller than int8)" in result.stdout
    assert "8 test inputs, reference accuracy 1.000" in result.stdout
    assert "predictions equal the numpy reference" in result.stdout


@pytest.mark.slow
def test_emit_mcu_calibrates_an_onnx_model_on_nchw_or_nhwc_images(tmp_path, capsys):
    model = _small_cnn_file(tmp_path)
    images = np.random.default_rng(1).random((40, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "nchw.npy", images)
    np.save(tmp_path / "nhwc.npy", images.transpose(0, 2, 3, 1))
    np.save(tmp_path / "labels.npy", np.arange(40) % 4)
    assert main(["emit-mcu", str(model), str(tmp_path / "a"), "--calib",
                 str(tmp_path / "nchw.npy"), "--pool-size", "4", "--test-inputs", "3"]) == 0
    assert "pool of 4 (not fine-tuned)" in capsys.readouterr().out
    assert main(["emit-mcu", str(model), str(tmp_path / "b"), "--calib",
                 str(tmp_path / "nhwc.npy"), "--labels", str(tmp_path / "labels.npy"),
                 "--epochs", "1", "--pool-size", "4", "--test-inputs", "3"]) == 0
    printed = capsys.readouterr().out
    assert "pool of 4: parameters" in printed and "3 test inputs\n" in printed
    assert "#define QUILTC_INPUT_SIZE 192" in (tmp_path / "b" / "model.h").read_text()


@pytest.mark.parametrize("arguments, message", [
    ([], "small.onnx takes 3x8x8 images, not the 1x8x8 digits; pass calibration images of "
         "its input with --calib FILE.npy"),
    (["--calib", "{folder}/digits.npy"], "holds float32 of shape (5, 8, 8, 1); the model takes "
                                         "float images (n, 3, 8, 8) NCHW or (n, 8, 8, 3) NHWC"),
    (["--calib", "{folder}/missing.npy"], "cannot read calibration images from"),
    (["--weights", "w.npz"], "--weights loads weights into the built-in digits CNN"),
    (["--labels", "l.npy"], "--labels names the classes of the --calib images; pass --calib"),
    (["--epochs", "-1"], "--epochs -1: pass 0 or more"),
])
def test_emit_mcu_refuses_bad_model_arguments_in_one_line(tmp_path, capsys, arguments, message):
    model = _small_cnn_file(tmp_path)
    np.save(tmp_path / "digits.npy", np.zeros((5, 8, 8, 1), np.float32))
    arguments = [argument.format(folder=tmp_path) for argument in arguments]
    assert main(["emit-mcu", str(model), str(tmp_path / "out"), *arguments]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_emit_mcu_names_the_onnx_node_it_cannot_import(tmp_path, capsys):
    model = _small_cnn_file(tmp_path, input_shape=(3, 8, 6))
    assert main(["emit-mcu", str(model), str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "node 'g' (GlobalAveragePool): the map is 8x6" in error
    assert error.count("\n") == 1


def test_fuse_writes_a_module_a_program_can_load(tmp_path):
    """Through the console script, as a user runs it."""
    pytest.importorskip("onnx", reason="install it with: pip install onnx")
    model = DATA / "bert_layer_small.onnx"
    out = tmp_path / "out"
    result = subprocess.run(
        [str(pathlib.Path(sys.executable).with_name("quiltc")), "fuse", str(model), "-o",
         str(out), "--name", "bert", "--size", "seq=1:64"], capture_output=True, text=True,
        env={**os.environ, "QUILTC_FUSION_OVERRIDES": str(tmp_path / "overrides.json")})
    assert result.returncode == 0, result.stderr
    assert "60 ops in 14 kernels" in result.stdout
    assert {path.name for path in out.iterdir()} == {"bert.c", "bert.h", "bert.weights",
                                                     "libbert.so", "plan.txt"}
    assert "fusion plan (level 3)" in (out / "plan.txt").read_text()
    ffi = cffi.FFI()
    ffi.cdef("int64_t bert_workspace_bytes(int64_t batch, int64_t seq);")
    library = ffi.dlopen(str(out / "libbert.so"))
    assert library.bert_workspace_bytes(2, 16) > 0


@pytest.mark.parametrize("arguments, message", [
    (["fuse", "missing.onnx", "-o", "out"], "cannot read an ONNX model from missing.onnx"),
    (["fuse", "model.onnx", "-o", "out", "--size", "seq"], "write DIM=LO:HI"),
])
def test_fuse_refuses_with_one_line_and_status_2(arguments, message, capsys):
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


@pytest.mark.slow
def test_fuse_runs_the_matmul_choices_tuned_for_the_model(tmp_path, capsys, monkeypatch):
    # Tuned on the model as imported; fused with a narrower range of seq, which leaves the
    # partitions' kernels, and so their tuning, the same.
    pytest.importorskip("onnx", reason="install it with: pip install onnx")
    monkeypatch.setenv("QUILTC_FUSION_OVERRIDES", str(tmp_path / "overrides.json"))
    model, database = str(DATA / "bert_layer_small.onnx"), str(tmp_path / "bert.db")
    choices = qc.autotune.tune_graph(model, database, {"batch": [1], "seq": [8]}, trials=1,
                                     verify=0, executor="serial", progress=False)
    assert main(["fuse", model, "-o", str(tmp_path / "out"), "--tuned", database,
                 "--size", "seq=1:64"]) == 0
    assert f"{len(choices)} matmul partitions tuned" in capsys.readouterr().out


def test_fuse_refuses_a_database_without_a_tuning_of_the_model(tmp_path, capsys):
    pytest.importorskip("onnx", reason="install it with: pip install onnx")
    model = str(DATA / "bert_layer_small.onnx")
    missing = ["fuse", model, "-o", str(tmp_path), "--tuned", str(tmp_path / "none.db")]
    assert main(missing) == 2
    assert "no such database" in capsys.readouterr().err
    qc.autotune.Database(str(tmp_path / "empty.db")).close()
    empty = ["fuse", model, "-o", str(tmp_path), "--tuned", str(tmp_path / "empty.db")]
    assert main(empty) == 2
    error = capsys.readouterr().err
    assert "holds no tuning of this model's matmul partitions" in error
    assert error.count("\n") == 1
