"""quiltc.mcu.emit_project: the project written for a weight-pooled model builds with
arm-none-eabi-gcc, runs on QEMU's Cortex-M4 board and prints pm.predict's classes for
the embedded test inputs; boards, act_bits and models too big for a board are refused
with errors naming the fix."""

import numpy as np
import pytest

import quiltc as qc
from quiltc import nn, weightpool
from quiltc.ir.errors import QuiltError, ShapeError
from quiltc.mcu import declared_bytes
from quiltc.runtime_c import mcu_toolchain
from quiltc.runtime_c.mcu_boards import find_board

from support.helpers import require_mcu_toolchain, require_tool


@pytest.fixture(scope="module")
def digits():
    from quiltc.digits import load_digits

    return load_digits()


@pytest.fixture(scope="module")
def pooled(digits):
    """A small digits CNN with one pooled conv, trained briefly, compressed."""
    x_train, y_train, _, _ = digits
    model = nn.Sequential([
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dense(4 * 4 * 16, 10),
    ], seed=1)
    model.fit(x_train, y_train, epochs=1, lr=3e-3)
    return weightpool.compress(model, calib=x_train[:200], pool_size=16, vector_len=8)


@pytest.mark.slow
@pytest.mark.toolchain
@pytest.mark.parametrize("act_bits", [1, 3, 8])
def test_the_project_prints_the_numpy_reference_predictions_under_qemu(
        tmp_path, pooled, digits, act_bits):
    require_mcu_toolchain()
    x_test = digits[2][:12]
    path = qc.mcu.emit_project(pooled, tmp_path / "project", board="mps2-an386",
                               act_bits=act_bits, test_inputs=x_test)
    got = mcu_toolchain.run_predictions(path)
    assert got == [int(c) for c in pooled.predict(x_test, act_bits=act_bits)]
    flash, ram = mcu_toolchain.elf_size(path / mcu_toolchain.ELF_NAME)
    tables, buffers = declared_bytes({p.name: p.read_text() for p in path.glob("*.c")})
    assert tables < flash and buffers < ram
    readme = (path / "README.txt").read_text()
    assert "int quiltc_model_run(const int8_t *in, int8_t *out);" in readme


@pytest.mark.slow
@pytest.mark.toolchain
def test_the_same_project_runs_on_the_cortex_m3_board(tmp_path, pooled, digits):
    require_mcu_toolchain()
    x_test = digits[2][12:20]
    path = qc.mcu.emit_project(pooled, tmp_path, board="mps2-an385", act_bits=4,
                               test_inputs=x_test)
    assert mcu_toolchain.run_predictions(path) == \
        [int(c) for c in pooled.predict(x_test, act_bits=4)]


@pytest.mark.slow
@pytest.mark.toolchain
def test_without_test_inputs_main_prints_only_done(tmp_path, pooled):
    require_mcu_toolchain()
    assert mcu_toolchain.run_predictions(qc.mcu.emit_project(pooled, tmp_path)) == []


@pytest.mark.parametrize("act_bits", [0, 9, 2.5])
def test_act_bits_outside_1_to_8_are_refused(tmp_path, pooled, act_bits):
    with pytest.raises(QuiltError, match=rf"act_bits={act_bits!r} is not supported.*1..8"):
        qc.mcu.emit_project(pooled, tmp_path, act_bits=act_bits)
    assert not any(tmp_path.iterdir())


def test_a_float_model_is_refused_with_the_step_it_misses(tmp_path, digits):
    model = nn.Sequential([nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Dense(288, 10)])
    with pytest.raises(QuiltError, match=r"got Sequential; quantize the network first"):
        qc.mcu.emit_project(model, tmp_path, test_inputs=digits[2][:2])


def test_unknown_boards_are_refused_with_the_boards_that_exist(tmp_path, pooled):
    with pytest.raises(QuiltError, match=r"unknown board 'lm3s6965evb'.*mps2-an385.*"
                                         r"mps2-an386.*mps2-an500"):
        qc.mcu.emit_project(pooled, tmp_path, board="lm3s6965evb")


@pytest.mark.slow
@pytest.mark.toolchain
def test_int8_rows_embed_as_given_and_other_shapes_are_refused(tmp_path, pooled, digits):
    require_mcu_toolchain()
    x_test = digits[2][:5]
    rows = pooled.quantize_input(x_test).reshape(5, -1)
    path = qc.mcu.emit_project(pooled, tmp_path / "rows", act_bits=5, test_inputs=rows)
    assert mcu_toolchain.run_predictions(path) == [int(c) for c in pooled.predict(x_test, 5)]
    with pytest.raises(ShapeError, match=r"test inputs hold 49 values each but the model "
                                         r"takes 64"):
        qc.mcu.emit_project(pooled, tmp_path / "bad", test_inputs=np.zeros((2, 7, 7, 1)))


def test_a_model_too_big_for_the_boards_ram_names_the_sizes(tmp_path):
    side = 512
    model = nn.Sequential([
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(side),
        nn.Flatten(), nn.Dense(8, 2),
    ])
    calib = np.random.default_rng(0).uniform(0, 1, (1, side, side, 1)).astype(np.float32)
    pm = weightpool.compress(model, calib=calib, pool_size=4)
    board = find_board("mps2-an386")
    with pytest.raises(QuiltError, match=r"does not fit mps2-an386 \(cortex-m4\): it needs "
                                         rf"\d+ bytes of RAM \(the board has "
                                         rf"{board.ram_bytes - board.stack_bytes} besides"):
        qc.mcu.emit_project(pm, tmp_path / "big", act_bits=4)
    assert not (tmp_path / "big").exists()


def test_a_model_too_big_for_the_boards_flash_names_the_sizes(tmp_path):
    dense_outputs = 8200  # 512 x 8200 int8 weights: just over the 4 MiB of flash
    model = nn.Sequential([
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Dense(8 * 8 * 8, dense_outputs),
    ])
    calib = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 1)).astype(np.float32)
    pm = weightpool.compress(model, calib=calib, pool_size=4)
    flash = find_board("mps2-an500").flash_bytes
    with pytest.raises(QuiltError, match=rf"does not fit mps2-an500 \(cortex-m7\): it needs "
                                         rf"\d+ bytes of flash \(the board has {flash}\); use "
                                         r"a smaller model"):
        qc.mcu.emit_project(pm, tmp_path / "big", board="mps2-an500")
    assert not (tmp_path / "big").exists()


def test_declared_bytes_counts_const_tables_as_flash_and_buffers_as_ram():
    source = ("static const int8_t weights[3][4] = {0};\nconst int16_t lut[256][16] = {0};\n"
              "static uint8_t buffer[100] __attribute__((aligned(4)));\n"
              "int32_t accumulators[2][3];\nstatic const float unknown[8];\n"
              "int8_t helper(int i);\n")
    assert declared_bytes({"model.c": source, "model.h": "int8_t ignored[1000];"}) == \
        (12 + 256 * 16 * 2, 100 + 24)


@pytest.mark.slow
@pytest.mark.toolchain
@pytest.mark.parametrize("board", ["mps2-an385", "mps2-an386"])
def test_emulated_runs_give_the_reference_scores_and_count_each_bit_plane(pooled, digits,
                                                                          board):
    require_tool(mcu_toolchain.COMPILER, mcu_toolchain.MCU_INSTALL_HINT)
    pytest.importorskip("unicorn", reason="install the test extra: pip install -e '.[test]'")
    images = digits[2][:2]
    counts = []
    for act_bits in (2, 3):
        run = qc.mcu.emulated_run(pooled, images, act_bits, board)
        quant = pooled.quantized(act_bits)
        np.testing.assert_array_equal(run.scores, quant.forward_int(quant.quantize_input(images)))
        counts.append(run.instructions[0])
    # one more bit-plane per pooled conv: more work, but less than twice as much
    assert counts[0] < counts[1] < 2 * counts[0]
