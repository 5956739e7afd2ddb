"""The `quiltc` command: `emit-mcu` compresses the digits CNN (weights from a file here,
to keep the test fast), writes a Cortex-M project, and with --run builds it and checks
the emulated predictions against numpy; bad arguments end with status 2 and a message."""

import pathlib
import subprocess
import sys

import cffi
import numpy as np
import pytest

from quiltc.cli import main
from quiltc.digits import digits_cnn
from quiltc.runtime_c import mcu_toolchain

from support.helpers import require_mcu_toolchain


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "digits.npz"
    np.savez(path, *digits_cnn(seed=5).get_weights())
    return path


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
    for option in ("--act-bits", "--pool-size", "--board", "--weights", "--test-inputs"):
        assert option in result.stdout


def test_fuse_writes_a_module_a_program_can_load(tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnx", reason="install it with: pip install onnx")
    monkeypatch.setenv("QUILTC_FUSION_OVERRIDES", str(tmp_path / "overrides.json"))
    model = pathlib.Path(__file__).resolve().parents[1] / "data" / "bert_layer_small.onnx"
    out = tmp_path / "out"
    status = main(["fuse", str(model), "-o", str(out), "--name", "bert", "--size", "seq=1:64"])
    assert status == 0, capsys.readouterr().err
    assert "60 ops in 14 kernels" in capsys.readouterr().out
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
