"""Calls one function of a Cortex-M ELF under unicorn and counts the instructions it
executes: the repeatable cost measure for microcontroller kernels (neither QEMU nor
unicorn models cycles).

The ELF's segments are loaded into the board's flash and RAM, array arguments are copied
into RAM past the program's data, pointers to them go in r0-r3 (further arguments on the
stack, as the AAPCS says), and the call returns to an unused address where emulation stops.
Counting hooks every translated block and adds the block's instruction count, decoded once
per block; `per_instruction=True` hooks every instruction instead (slower, the cross-check).
The two differ in one place: an instruction inside an IT block whose condition fails is
counted per block (the core still issues it, and ARM counts it as executed) but never
reaches the per-instruction hook.
"""

from dataclasses import dataclass

import numpy as np

from ..ir.errors import QuiltError
from .elf import read_elf
from .mcu_boards import FLASH_ORIGIN, RAM_ORIGIN, board_for_core

PIP_HINT = "pip install unicorn (or pip install -e '.[test]')"
_ALIGNMENT = 8
_STACK_BYTES = 64 * 1024
# Emulated calls stop when they reach this address: flash that no program reaches.
_RETURN_OFFSET_FROM_FLASH_END = 16


@dataclass(frozen=True)
class EmulatedCall:
    """What one emulated call gave back: r0, the array arguments after the call (in
    argument order, ints left out), and the number of instructions executed."""

    result: int
    arrays: tuple
    instructions: int


def thumb_instruction_count(code):
    """The number of Thumb instructions in `code`: a halfword whose top five bits are
    0b11101, 0b11110 or 0b11111 starts a 32-bit instruction, any other a 16-bit one."""
    count = 0
    at = 0
    while at + 1 < len(code):
        top = code[at + 1] >> 3
        at += 4 if top >= 0b11101 else 2
        count += 1
    return count


def _unicorn():
    try:
        import unicorn
        from unicorn import arm_const
    except ImportError:
        raise QuiltError(f"emulated Cortex-M runs need unicorn: {PIP_HINT}") from None
    return unicorn, arm_const


def _place_arguments(uc, arguments, start):
    """Copy arrays into RAM from `start`; returns (argument words, (address, array) slots,
    first free address)."""
    words, slots = [], []
    address = start
    for argument in arguments:
        if isinstance(argument, np.ndarray):
            data = np.ascontiguousarray(argument)
            address = -(-address // _ALIGNMENT) * _ALIGNMENT
            uc.mem_write(address, data.tobytes())
            slots.append((address, data))
            words.append(address)
            address += data.nbytes
        else:
            words.append(int(argument) & 0xFFFFFFFF)
    return words, slots, address


def call_function(elf_path, function, arguments, core="m4", per_instruction=False,
                  timeout_s=600):
    """Call `function` in the ELF at `elf_path` on the core ("m3", "m4", "m7") with
    `arguments` (numpy arrays passed by pointer, or ints) and return an EmulatedCall."""
    unicorn, arm_const = _unicorn()
    board = board_for_core(core)
    image = read_elf(elf_path)
    entry = image.symbol(function)
    uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
    uc.ctl_set_cpu_model(getattr(arm_const, f"UC_CPU_ARM_CORTEX_{core.upper()}"))
    uc.mem_map(FLASH_ORIGIN, board.flash_bytes)
    uc.mem_map(RAM_ORIGIN, board.ram_bytes)
    for segment in image.segments:
        uc.mem_write(segment.address, segment.data)
    words, slots, end = _place_arguments(uc, arguments,
                                         image.end_above(RAM_ORIGIN))
    stack_top = RAM_ORIGIN + board.ram_bytes
    if end > stack_top - _STACK_BYTES:
        raise QuiltError(f"the arguments of {function} ({end - RAM_ORIGIN} bytes with the "
                         f"program's data) do not fit the {core} board's RAM")
    stack_words = words[4:]
    sp = (stack_top - 4 * len(stack_words)) & ~7
    if stack_words:
        uc.mem_write(sp, np.array(stack_words, np.uint32).tobytes())
    for register, word in zip(("R0", "R1", "R2", "R3"), words):
        uc.reg_write(getattr(arm_const, f"UC_ARM_REG_{register}"), word)
    return_address = FLASH_ORIGIN + board.flash_bytes - _RETURN_OFFSET_FROM_FLASH_END
    uc.reg_write(arm_const.UC_ARM_REG_SP, sp)
    uc.reg_write(arm_const.UC_ARM_REG_LR, return_address | 1)

    total = [0]
    if per_instruction:
        def on_instruction(uc, address, size, data):
            total[0] += 1
        uc.hook_add(unicorn.UC_HOOK_CODE, on_instruction)
    else:
        block_lengths = {}

        def on_block(uc, address, size, data):
            key = (address, size)
            count = block_lengths.get(key)
            if count is None:
                count = block_lengths[key] = thumb_instruction_count(uc.mem_read(address, size))
            total[0] += count
        uc.hook_add(unicorn.UC_HOOK_BLOCK, on_block)
    try:
        uc.emu_start(entry | 1, return_address, timeout=int(timeout_s * 1e6))
    except unicorn.UcError as error:
        pc = uc.reg_read(arm_const.UC_ARM_REG_PC)
        raise QuiltError(f"{function} in {elf_path} stopped at pc={pc:#x} on the {core}: "
                         f"{error}") from None
    pc = uc.reg_read(arm_const.UC_ARM_REG_PC)
    if pc != return_address:
        raise QuiltError(f"{function} in {elf_path} did not return within {timeout_s} s on "
                         f"the {core} (stopped at pc={pc:#x})")
    arrays = tuple(
        np.frombuffer(bytes(uc.mem_read(address, data.nbytes)), data.dtype).reshape(data.shape)
        for address, data in slots)
    return EmulatedCall(uc.reg_read(arm_const.UC_ARM_REG_R0), arrays, total[0])
