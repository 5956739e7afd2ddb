"""The Cortex-M project builder: a hand-written model (mcu_fixture/) with the board files
builds with arm-none-eabi-gcc for each board, runs on QEMU's emulated board and prints
the classes numpy predicts; bad boards, oversized models, broken C and missing tools end
in errors a user can act on."""

import pathlib
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quiltc.ir.errors import BuildError, QuiltError, ToolchainMissing
from quiltc.runtime_c import mcu_toolchain
from quiltc.runtime_c.mcu_boards import BOARDS, check_fits, find_board

from support.helpers import require_mcu_toolchain
from support.tiers import examples

FIXTURE = pathlib.Path(__file__).parent / "mcu_fixture"
INPUT_SIZE, OUTPUT_SIZE = 16, 4


def fixture_predictions(inputs):
    """What mcu_fixture/model.c computes, in numpy: argmax of (x . w) >> 4, saturated."""
    classes = np.arange(OUTPUT_SIZE)[:, None]
    positions = np.arange(INPUT_SIZE)[None, :]
    weights = (7 * classes + 3 * positions) % 11 - 5
    scores = np.clip((inputs.astype(np.int32) @ weights.T) >> 4, -128, 127)
    return scores.argmax(axis=1).tolist()


def write_fixture_project(path, board, inputs, model_source=None):
    files = mcu_toolchain.board_files(board)
    files["model.h"] = (FIXTURE / "model.h").read_text()
    files["model.c"] = model_source or (FIXTURE / "model.c").read_text()
    files.update(mcu_toolchain.test_input_files(inputs))
    return mcu_toolchain.write_files(path, files)


@pytest.mark.toolchain
@settings(max_examples=examples(4))
@given(count=st.integers(0, 6), seed=st.integers(0, 2**32 - 1))
def test_the_fixture_runs_on_the_cortex_m4_and_prints_numpys_classes(tmp_path_factory,
                                                                     count, seed):
    require_mcu_toolchain()
    inputs = np.random.default_rng(seed).integers(-128, 128, (count, INPUT_SIZE), np.int8)
    path = write_fixture_project(tmp_path_factory.mktemp("m4"), "mps2-an386", inputs)
    assert mcu_toolchain.run_predictions(path) == fixture_predictions(inputs)


@pytest.mark.toolchain
@pytest.mark.parametrize("board", ["mps2-an385", "mps2-an500"])
def test_the_fixture_runs_on_the_other_boards(tmp_path, board):
    require_mcu_toolchain()
    inputs = np.random.default_rng(7).integers(-128, 128, (5, INPUT_SIZE), np.int8)
    path = write_fixture_project(tmp_path, board, inputs)
    assert mcu_toolchain.run_predictions(path) == fixture_predictions(inputs)
    assert f"-M {board}" in (path / "Makefile").read_text()


@pytest.mark.toolchain
def test_hard_float_code_runs_because_reset_enables_the_fpu(tmp_path):
    require_mcu_toolchain()
    source = (FIXTURE / "model.c").read_text().replace(
        "acc >>= 4;", "acc = (int32_t)((float)acc * 0.0625f);")
    inputs = np.random.default_rng(3).integers(-128, 128, (4, INPUT_SIZE), np.int8)
    path = write_fixture_project(tmp_path, "mps2-an386", inputs, source)
    elf = mcu_toolchain.build_project(path)
    disassembly = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], check=True,
                                 capture_output=True, text=True).stdout
    assert "vmul.f32" in disassembly
    classes = np.arange(OUTPUT_SIZE)[:, None]
    weights = (7 * classes + 3 * np.arange(INPUT_SIZE)[None, :]) % 11 - 5
    scaled = np.trunc((inputs.astype(np.int32) @ weights.T).astype(np.float32)
                      * np.float32(0.0625))
    assert mcu_toolchain.run_predictions(path) == np.clip(scaled, -128, 127).argmax(1).tolist()


@pytest.mark.toolchain
def test_size_reports_flash_and_ram_including_the_stack_reserve(tmp_path):
    require_mcu_toolchain()
    inputs = np.zeros((3, INPUT_SIZE), np.int8)
    elf = mcu_toolchain.build_project(write_fixture_project(tmp_path, "mps2-an386", inputs))
    flash, ram = mcu_toolchain.elf_size(elf)
    board = find_board("mps2-an386")
    assert 3 * INPUT_SIZE < flash < 4096
    assert board.stack_bytes <= ram < board.stack_bytes + 256


@pytest.mark.toolchain
def test_a_c_error_raises_build_error_naming_the_project(tmp_path):
    require_mcu_toolchain()
    path = write_fixture_project(tmp_path, "mps2-an386", np.zeros((1, INPUT_SIZE), np.int8),
                                 "int quiltc_model_run(const signed char *in, signed char *out)"
                                 " { return in[0] + ; }\n")
    with pytest.raises(BuildError, match=r"error: expected expression") as caught:
        mcu_toolchain.build_project(path)
    assert caught.value.source_path == str(path)


@pytest.mark.toolchain
def test_a_program_too_big_for_flash_fails_at_link_time_with_the_overflow(tmp_path):
    require_mcu_toolchain()
    board = find_board("mps2-an385")
    big = (FIXTURE / "model.c").read_text() + (
        f"const int8_t quiltc_padding[{board.flash_bytes}] = {{1}};\n"
        "int quiltc_touch(int i) { return quiltc_padding[i]; }\n")
    path = write_fixture_project(tmp_path, board.machine, np.zeros((1, INPUT_SIZE), np.int8),
                                 big.replace("return 0;", "return quiltc_touch(in[0] & 1) - 1;"))
    with pytest.raises(BuildError, match=r"region `FLASH' overflowed"):
        mcu_toolchain.build_project(path)


@pytest.mark.toolchain
def test_a_library_builds_from_its_own_folder_with_its_own_flags_and_libc(tmp_path):
    """compile_elf's library arguments, as the CMSIS-NN baseline uses them: sources and
    headers read where they are, -O3 without -ffreestanding, newlib's memcpy linked."""
    require_mcu_toolchain()
    pytest.importorskip("unicorn", reason="install the test extra: pip install -e '.[test]'")
    from quiltc.runtime_c.unicorn_run import call_function

    library = tmp_path / "library"
    (library / "include").mkdir(parents=True)
    (library / "include" / "rotate.h").write_text(
        "#include <stdint.h>\nvoid rotate_right(uint32_t *x, int n);\n")
    # A copy of a length known only at run time stays a call into newlib.
    (library / "rotate.c").write_text(
        '#include <string.h>\n#include "rotate.h"\n'
        "void rotate_right(uint32_t *x, int n)\n{\n    uint32_t last = x[n - 1];\n"
        "    memmove(x + 1, x, (unsigned)(n - 1) * sizeof *x);\n    x[0] = last;\n}\n")
    harness = ('#include "rotate.h"\n'
               "void rotate_twice(uint32_t *x, int n)\n{\n"
               "    rotate_right(x, n);\n    rotate_right(x, n);\n}\n")
    elf = mcu_toolchain.compile_elf({"harness.c": harness}, "mps2-an386", tmp_path / "build",
                                    ["rotate_twice"], library_sources=[library / "rotate.c"],
                                    include_dirs=[library / "include"], cflags=("-O3",),
                                    libraries=("-lc", "-lgcc"))
    x = np.arange(9, dtype=np.uint32)
    out = call_function(elf, "rotate_twice", [x, x.size], core="m4").arrays[0]
    np.testing.assert_array_equal(out, np.roll(x, 2))


def test_unknown_boards_are_refused_with_the_list_of_boards():
    with pytest.raises(QuiltError, match=r"unknown board 'stm32f4'.*mps2-an385 \(cortex-m3\), "
                                         r"mps2-an386 \(cortex-m4\), mps2-an500 \(cortex-m7\)"):
        mcu_toolchain.board_files("stm32f4")


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_check_fits_names_the_sizes_and_the_board(board):
    spec = find_board(board)
    check_fits(spec, spec.flash_bytes, spec.ram_bytes - spec.stack_bytes)
    with pytest.raises(QuiltError, match=rf"the model does not fit {board} .*needs "
                                         rf"{spec.flash_bytes + 1} bytes of flash \(the board "
                                         rf"has {spec.flash_bytes}\)"):
        check_fits(spec, spec.flash_bytes + 1, 0)
    with pytest.raises(QuiltError, match=rf"needs 5000000 bytes of RAM \(the board has "
                                         rf"{spec.ram_bytes - spec.stack_bytes} besides"):
        check_fits(spec, 0, 5_000_000)


def test_missing_tools_raise_toolchain_missing_with_the_apt_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainMissing, match=r"arm-none-eabi-gcc was not found on PATH. "
                                               r"Install it with: apt-get update && apt-get "
                                               r"install -y --no-install-recommends "
                                               r"gcc-arm-none-eabi libnewlib-arm-none-eabi "
                                               r"qemu-system-arm"):
        mcu_toolchain.build_project(tmp_path)


def test_test_inputs_must_be_int8():
    with pytest.raises(QuiltError, match=r"test inputs must be int8 once quantized, got float32"):
        mcu_toolchain.test_input_files(np.zeros((2, INPUT_SIZE), np.float32))


@pytest.mark.toolchain
def test_the_install_script_returns_at_once_when_the_toolchain_is_there():
    require_mcu_toolchain()
    script = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "install-mcu-toolchain.sh"
    result = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
