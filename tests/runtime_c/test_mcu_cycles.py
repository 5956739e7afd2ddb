"""The Cortex-M cycle estimate: hand-written loops built for the M3 and the M4 cost what
the module's table says (pipelined and dependent loads, the address-dependency stall,
stores, MLA's extra cycle on the M3, a refill per taken branch); the profile counts the
same instructions as plain counting and one jump per taken branch; objdump's spellings
classify as the table means."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quiltc.ir.errors import QuiltError
from quiltc.runtime_c import mcu_cycles, mcu_toolchain
from quiltc.runtime_c.elf import read_elf
from quiltc.runtime_c.mcu_cycles import call_with_cycles, estimate_cycles
from quiltc.runtime_c.unicorn_run import call_function

from support.helpers import require_tool
from support.mcu_sources import DOT_INT8
from support.tiers import examples

P = mcu_cycles.PIPELINE_REFILL
SOURCE = DOT_INT8 + r"""
/* Two independent loads a pass: the second is pipelined behind the first. */
__attribute__((naked)) int sum_pairs(const int32_t *x, int n)
{
    __asm__ volatile("movs r2, #0\n"
                     "1: ldr r3, [r0], #4\n"
                     "ldr ip, [r0], #4\n"
                     "add r2, r2, r3\n"
                     "add r2, r2, ip\n"
                     "subs r1, r1, #1\n"
                     "bne 1b\n"
                     "mov r0, r2\n"
                     "bx lr\n");
}

/* Each load's offset is the value the one before loaded (zeros): nothing pipelines,
   and the first load waits a cycle for the movs that wrote its offset. */
__attribute__((naked)) int chase(const int32_t *x, int n)
{
    __asm__ volatile("movs r2, #0\n"
                     "1: ldr r2, [r0, r2]\n"
                     "ldr r2, [r0, r2]\n"
                     "subs r1, r1, #1\n"
                     "bne 1b\n"
                     "mov r0, r2\n"
                     "bx lr\n");
}

/* An immediate-offset store (one cycle) and a register-offset one (two). */
__attribute__((naked)) void fill_twice(int32_t *x, int n, int32_t value)
{
    __asm__ volatile("movs r3, #0\n"
                     "1: str r2, [r0], #4\n"
                     "str r2, [r0, r3]\n"
                     "subs r1, r1, #1\n"
                     "bne 1b\n"
                     "bx lr\n");
}

/* The sum of squares n^2 + ... + 1 through mla. */
__attribute__((naked)) int squares(int n)
{
    __asm__ volatile("movs r2, #0\n"
                     "1: mla r2, r0, r0, r2\n"
                     "subs r0, r0, #1\n"
                     "bne 1b\n"
                     "mov r0, r2\n"
                     "bx lr\n");
}

/* A loop tested at its top: the backward branch is taken once a pass, the exit once. */
__attribute__((naked)) int count_up(int n)
{
    __asm__ volatile("movs r1, #0\n"
                     "1: cbz r0, 2f\n"
                     "adds r1, r1, #1\n"
                     "subs r0, r0, #1\n"
                     "b 1b\n"
                     "2: mov r0, r1\n"
                     "bx lr\n");
}
"""
FUNCTIONS = ["dot_int8", "sum_pairs", "chase", "fill_twice", "squares", "count_up"]
MLA_CYCLES = {"m3": 2, "m4": 1}


@pytest.fixture(scope="module", params=["m3", "m4"])
def elf(request, tmp_path_factory):
    pytest.importorskip("unicorn", reason="install the test extra: pip install -e '.[test]'")
    require_tool(mcu_toolchain.COMPILER, mcu_toolchain.MCU_INSTALL_HINT)
    require_tool(mcu_cycles.DISASSEMBLER, mcu_toolchain.MCU_INSTALL_HINT)
    board = {"m3": "mps2-an385", "m4": "mps2-an386"}[request.param]
    path = tmp_path_factory.mktemp(request.param)
    return request.param, mcu_toolchain.compile_elf({"functions.c": SOURCE}, board, path,
                                                     FUNCTIONS)


def cycles(path, core, function, arguments):
    call, estimate = call_with_cycles(path, function, arguments, core)
    return call, estimate.cycles


@pytest.mark.toolchain
@settings(max_examples=examples(6), deadline=None)
@given(n=st.integers(1, 200))
def test_hand_written_loops_cost_what_the_table_says(elf, n):
    core, path = elf
    words = np.zeros(2 * n + 1, np.int32)
    # movs; per pass ldr 2, pipelined ldr 1, add, add, subs, bne: 7; mov; bx.
    call, estimate = cycles(path, core, "sum_pairs", [np.arange(2 * n, dtype=np.int32), n])
    assert call.result == n * (2 * n - 1)
    assert estimate == 1 + 7 * n + 1 + 1 + P * n
    # Passes after the first: two unpipelined loads, subs, bne. The first load of the
    # first pass stalls a cycle behind the movs that wrote its offset register.
    assert cycles(path, core, "chase", [words, n])[1] == 1 + 6 * n + 1 + 1 + 1 + P * n
    # Passes after the first: str 1 + str 2 + subs + bne; the first register-offset store
    # follows the one-cycle store, which pipelines nothing.
    call, estimate = cycles(path, core, "fill_twice", [words, n, 7])
    assert np.all(call.arrays[0][:n + 1] == 7)
    assert estimate == 1 + 5 * n + 1 + P * n
    call, estimate = cycles(path, core, "squares", [n])
    assert call.result == n * (n + 1) * (2 * n + 1) // 6
    assert estimate == 1 + (MLA_CYCLES[core] + 2) * n + 1 + 1 + P * n


@pytest.mark.toolchain
@settings(max_examples=examples(6), deadline=None)
@given(n=st.integers(0, 300))
def test_the_profile_counts_one_jump_per_taken_branch(elf, n):
    core, path = elf
    call = call_function(path, "count_up", [n], core=core, profile=True)
    plain = call_function(path, "count_up", [n], core=core)
    assert call.result == n
    assert call.instructions == plain.instructions == sum(call.profile.runs.values())
    entry = read_elf(path).symbol("count_up")
    loop_head, backward_branch = entry + 2, entry + 8
    assert call.profile.jumps.get((backward_branch, loop_head), 0) == n
    assert call.profile.runs[loop_head] == n + 1
    # The call's entry, the n backward branches, cbz's exit and the return.
    assert sum(call.profile.jumps.values()) == n + 3
    assert estimate_cycles(path, call.profile, core).cycles == (
        1 + 4 * n + 1 + 1 + 1 + P * (n + 2))


@pytest.mark.toolchain
def test_a_compiled_loop_costs_the_same_cycles_every_pass(elf):
    core, path = elf
    costs = []
    for n in range(2, 7):
        a = np.arange(n, dtype=np.int8)
        call, estimate = call_with_cycles(path, "dot_int8", [a, a, n], core)
        assert call.result == int((a.astype(np.int32) ** 2).sum())
        costs.append(estimate.cycles)
        assert estimate.cycles > call.instructions
        assert estimate.cycles == sum(estimate.by_class.values())
    assert len(set(np.diff(costs))) == 1


@pytest.mark.toolchain
def test_cores_without_a_table_and_missing_profiles_are_refused(elf):
    core, path = elf
    call = call_function(path, "squares", [3], core=core)
    with pytest.raises(QuiltError, match="profile=True"):
        estimate_cycles(path, call.profile, core)
    with pytest.raises(QuiltError, match="no cycle table for core 'm7'"):
        estimate_cycles(path, call_function(path, "squares", [3], core=core,
                                            profile=True).profile, "m7")
    with pytest.raises(QuiltError, match="not both"):
        call_function(path, "squares", [3], core=core, profile=True, per_instruction=True)


OBJDUMP = """
00000000 <f>:
   0:\tb530      \tpush\t{r4, r5, lr}
   2:\tf850 3b04 \tldr.w\tr3, [r0], #4
   6:\tbf08      \tit\teq
   8:\t5853      \tldreq\tr3, [r2, r1]
   a:\tfb82 0103 \tsmull\tr0, r1, r2, r3
   e:\t1c5b      \tadds\tr3, r3, #1
  10:\td1f7      \tbne.n\t2 <f+0x2>
  12:\tf85d fb04 \tldr.w\tpc, [sp], #4\t@ comment
  16:\t4b01      \tldr\tr3, [pc, #4]\t@ (1c <f+0x1c>)
  18:\tbd30      \tpop\t{r4, r5, pc}
  1c:\t00000010 \t.word\t0x00000010
"""


def test_objdump_spellings_classify_as_the_table_means():
    listing = mcu_cycles.parse_disassembly(OBJDUMP)
    assert sorted(listing) == [0x0, 0x2, 0x6, 0x8, 0xA, 0xE, 0x10, 0x12, 0x16, 0x18]
    assert listing[0x0].kind == "multiple" and listing[0x0].cycles["m3"] == 4
    assert listing[0x2].kind == "load" and listing[0x2].writes == ("r3",)
    assert listing[0x2].address_registers == ("r0",)
    assert listing[0x6].kind == "data" and listing[0x6].writes == ()
    assert listing[0x8].kind == "load" and listing[0x8].register_offset
    assert listing[0xA].cycles == {"m3": 4, "m4": 1} and listing[0xA].writes == ("r0", "r1")
    assert listing[0xE].writes == ("r3",)
    assert listing[0x10].kind == "branch"
    assert listing[0x12].kind == "load"
    assert listing[0x18].cycles["m4"] == 4


@pytest.mark.parametrize("mnemonic, kind", [
    ("bls", "branch"), ("blt.n", "branch"), ("bl", "branch"), ("bxeq", "branch"),
    ("cbnz", "branch"), ("tbb", "branch"), ("mlaeq", "multiply"), ("muls", "multiply"),
    ("udiv", "divide"), ("strbne", "store"), ("ldrsh.w", "load"), ("ldrd", "multiple"),
    ("stmia.w", "multiple"), ("smlad", "data"), ("bics", "data"), ("cmp", "data"),
])
def test_conditions_widths_and_flag_suffixes_leave_the_mnemonic(mnemonic, kind):
    assert mcu_cycles.classify(mnemonic, "r0, r1").kind == kind
