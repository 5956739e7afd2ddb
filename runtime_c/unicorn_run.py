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
reaches the per-instruction hook. `profile=True` keeps the per-block hook and also records
how often each instruction address ran and each jump between blocks (an ExecutionProfile,
what mcu_cycles turns into a cycle estimate).
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
class ExecutionProfile:
    """Where one emulated call spent its instructions: `runs` maps each instruction address
    to how often it ran; `jumps` maps (from, to) to how often control left the instruction
    at `from` for `to` instead of the next instruction (taken branches, calls and returns;
    the call itself enters from None, and its return leaves for the emulator's stop
    address)."""

    runs: dict
    jumps: dict


@dataclass(frozen=True)
class EmulatedCall:
    """What one emulated call gave back: r0, the array arguments after the call (in
    argument order, ints left out), the number of instructions executed, and the
    ExecutionProfile when the call was made with profile=True."""

    result: int
    arrays: tuple
    instructions: int
    profile: ExecutionProfile = None


def thumb_instruction_offsets(code):
    """The byte offsets of the Thumb instructions in `code`: a halfword whose top five bits
    are 0b11101, 0b11110 or 0b11111 starts a 32-bit instruction, any other a 16-bit one."""
    offsets = []
    at = 0
    while at + 1 < len(code):
        offsets.append(at)
        at += 4 if code[at + 1] >> 3 >= 0b11101 else 2
    return offsets


def thumb_instruction_count(code):
    """The number of Thumb instructions in `code`."""
    return len(thumb_instruction_offsets(code))


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


class _BlockProfiler:
    """A per-block hook that counts how often each translated block runs and notes every
    block entered other than from the end of the one before (a jump)."""

    def __init__(self):
        self.block_runs = {}
        self.block_addresses = {}
        self.jumps = {}
        # No block ends where the first one starts: the call's entry counts as a jump.
        self.next_address = None
        self.last_instruction = None

    def on_block(self, uc, address, size, data):
        key = (address, size)
        addresses = self.block_addresses.get(key)
        if addresses is None:
            offsets = thumb_instruction_offsets(uc.mem_read(address, size))
            addresses = self.block_addresses[key] = tuple(address + at for at in offsets)
        self.block_runs[key] = self.block_runs.get(key, 0) + 1
        if address != self.next_address:
            self.jumped(address)
        self.next_address = address + size
        self.last_instruction = addresses[-1]

    def jumped(self, target):
        edge = (self.last_instruction, target)
        self.jumps[edge] = self.jumps.get(edge, 0) + 1

    def profile(self):
        runs = {}
        for key, count in self.block_runs.items():
            for address in self.block_addresses[key]:
                runs[address] = runs.get(address, 0) + count
        return ExecutionProfile(runs, self.jumps)


def call_function(elf_path, function, arguments, core="m4", per_instruction=False,
                  timeout_s=600, profile=False):
    """Call `function` in the ELF at `elf_path` on the core ("m3", "m4", "m7") with
    `arguments` (numpy arrays passed by pointer, or ints) and return an EmulatedCall;
    `profile=True` also records its ExecutionProfile (still one hook per block)."""
    if per_instruction and profile:
        raise QuiltError("call_function profiles per block: pass per_instruction=True or "
                         "profile=True, not both")
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
    profiler = _BlockProfiler() if profile else None
    if per_instruction:
        def on_instruction(uc, address, size, data):
            total[0] += 1
        uc.hook_add(unicorn.UC_HOOK_CODE, on_instruction)
    elif profile:
        uc.hook_add(unicorn.UC_HOOK_BLOCK, profiler.on_block)
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
    result = uc.reg_read(arm_const.UC_ARM_REG_R0)
    if profile:
        profiler.jumped(return_address)
        execution = profiler.profile()
        return EmulatedCall(result, arrays, sum(execution.runs.values()), execution)
    return EmulatedCall(result, arrays, total[0])
