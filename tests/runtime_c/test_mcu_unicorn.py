"""Emulated calls under unicorn: functions built with arm-none-eabi-gcc return numpy's
results, array arguments come back written, and the per-block instruction count equals
a per-instruction count (but for IT-block instructions whose condition fails) and the
count read off hand-written assembly."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quiltc.ir.errors import QuiltError
from quiltc.runtime_c import mcu_toolchain
from quiltc.runtime_c.unicorn_run import call_function, thumb_instruction_count

from support.helpers import require_tool
from support.mcu_sources import DOT_INT8
from support.tiers import examples

pytest.importorskip("unicorn", reason="install the test extra: pip install -e '.[test]'")

SOURCE = DOT_INT8 + r"""
void add_scalar(int16_t *x, int n, int16_t value)
{
    for (int i = 0; i < n; i++)
        x[i] += value;
}

int weighted_sum6(int a, int b, int c, int d, int e, int f)
{
    return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f;
}

/* 1 + 3n + 2 instructions for n >= 1. */
__attribute__((naked)) int count_down(int n)
{
    __asm__ volatile("movs r1, #0\n"
                     "1: adds r1, r1, #1\n"
                     "subs r0, r0, #1\n"
                     "bne 1b\n"
                     "mov r0, r1\n"
                     "bx lr\n");
}

/* 1 + 6n + 2 instructions for n >= 1, conditional adds whose condition fails included. */
__attribute__((naked)) int sum_positive(const int8_t *x, int n)
{
    __asm__ volatile("movs r2, #0\n"
                     "1: ldrsb r3, [r0], #1\n"
                     "cmp r3, #0\n"
                     "it gt\n"
                     "addgt r2, r2, r3\n"
                     "subs r1, r1, #1\n"
                     "bne 1b\n"
                     "mov r0, r2\n"
                     "bx lr\n");
}
"""
FUNCTIONS = ["dot_int8", "add_scalar", "weighted_sum6", "count_down", "sum_positive"]


@pytest.fixture(scope="module", params=["m3", "m4"])
def elf(request, tmp_path_factory):
    require_tool(mcu_toolchain.COMPILER, mcu_toolchain.MCU_INSTALL_HINT)
    board = {"m3": "mps2-an385", "m4": "mps2-an386"}[request.param]
    path = tmp_path_factory.mktemp(request.param)
    return request.param, mcu_toolchain.compile_elf({"functions.c": SOURCE}, board, path,
                                                     FUNCTIONS)


def as_int32(word):
    return int(np.uint32(word).view(np.int32))


@pytest.mark.toolchain
@settings(max_examples=examples(10))
@given(n=st.integers(1, 300), seed=st.integers(0, 2**32 - 1))
def test_dot_product_matches_numpy_and_both_counts_agree(elf, n, seed):
    core, path = elf
    rng = np.random.default_rng(seed)
    a, b = (rng.integers(-128, 128, n).astype(np.int8) for _ in range(2))
    by_block = call_function(path, "dot_int8", [a, b, n], core=core)
    by_instruction = call_function(path, "dot_int8", [a, b, n], core=core,
                                   per_instruction=True)
    assert as_int32(by_block.result) == int(a.astype(np.int32) @ b.astype(np.int32))
    assert by_block.instructions == by_instruction.instructions


@pytest.mark.toolchain
@settings(max_examples=examples(10))
@given(n=st.integers(1, 500))
def test_counts_equal_the_instructions_of_hand_written_loops(elf, n):
    core, path = elf
    counted = call_function(path, "count_down", [n], core=core)
    assert (counted.result, counted.instructions) == (n, 1 + 3 * n + 2)
    x = np.random.default_rng(n).integers(-128, 128, n).astype(np.int8)
    summed = call_function(path, "sum_positive", [x, n], core=core)
    exact = call_function(path, "sum_positive", [x, n], core=core, per_instruction=True)
    assert summed.result == int(x[x > 0].astype(np.int64).sum())
    assert summed.instructions == 1 + 6 * n + 2
    # The per-instruction hook never sees a conditional add whose condition failed.
    assert exact.instructions == summed.instructions - int(np.count_nonzero(x <= 0))


@pytest.mark.toolchain
def test_arrays_come_back_written_and_stack_arguments_arrive(elf):
    core, path = elf
    x = np.arange(-50, 50, dtype=np.int16)
    call = call_function(path, "add_scalar", [x, x.size, -7], core=core)
    np.testing.assert_array_equal(call.arrays[0], x - 7)
    np.testing.assert_array_equal(x, np.arange(-50, 50, dtype=np.int16))
    assert as_int32(call_function(path, "weighted_sum6", [1, -2, 3, 4, -5, 6],
                                  core=core).result) == 1 - 4 + 9 + 16 - 25 + 36


@pytest.mark.toolchain
def test_an_unknown_function_is_named_with_what_the_file_defines(elf):
    core, path = elf
    with pytest.raises(QuiltError, match=r"defines no symbol 'conv2d' .*dot_int8"):
        call_function(path, "conv2d", [], core=core)


def test_thumb_instruction_lengths_come_from_the_first_halfword():
    movs_r0_1 = bytes([0x01, 0x20])
    add_w_r0_r1_r2 = bytes([0x01, 0xEB, 0x02, 0x00])
    bl = bytes([0x00, 0xF0, 0x00, 0xF8])
    assert thumb_instruction_count(movs_r0_1 + add_w_r0_r1_r2 + movs_r0_1 + bl) == 4
    assert thumb_instruction_count(b"") == 0
