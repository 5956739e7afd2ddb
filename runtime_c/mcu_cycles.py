"""An estimate of the cycles a Cortex-M3 or Cortex-M4 spends on an emulated call.

Neither QEMU nor unicorn models time, and instruction counts flatter load-heavy kernels:
a load costs two cycles where an add costs one. This module prices each instruction of an
ExecutionProfile (unicorn_run.call_function(..., profile=True)) with the timings Arm
publishes for zero-wait-state memory, and sums them. It is an estimate, not a measurement:
wait states, bus contention with instruction fetch, data-dependent multiply and divide
times and branch-target alignment are not modelled.

Sources: Cortex-M3 Technical Reference Manual r2p1 (ARM DDI 0337I), section 3.3.1
"Cortex-M3 instructions", Table 3-1, and section 3.3.2 "Load/store timings"; Cortex-M4
Technical Reference Manual r0p1 (ARM DDI 0439B), the same sections (Table 3-1 lists the
DSP instructions too). Per instruction class:

    class          instructions                          Cortex-M3        Cortex-M4
    data           ALU, moves, shifts, compares, IT,      1                1
                   extends, saturation, and every
                   DSP/SIMD op on the M4 (SMLAD, SMLABB...)
    multiply       MUL                                    1                1
                   MLA, MLS                               2                1
                   SMULL, UMULL (TRM: 3 to 5)             4                1
                   SMLAL, UMLAL (TRM: 4 to 7)             6                1
    divide         SDIV, UDIV (TRM: 2 to 12)              7                7
    load           LDR, LDRB, LDRH, LDRSB, LDRSH          2, 1 pipelined   same
    store          STR, STRB, STRH, immediate offset      1                1
                   register offset                        2, 1 after LDR   same
    load/store     LDRD, STRD: 1 + N, N = 2               3                3
    multiple       LDM, STM, PUSH, POP: 1 + N registers   1 + N            1 + N
    table branch   TBB, TBH                               2 + P            2 + P
    taken          any instruction that leaves for        + P              + P
                   another address (B, BL, BX, CBZ, POP {pc}...)

P is the pipeline refill, 1 to 3 cycles by the TRM (target alignment and width, early
speculation); the estimate charges 2 (LLVM's Cortex-M3 model charges the same). A branch
not taken costs its one cycle. Ranges are priced at their middle, rounded up. Two rules
of section 3.3.2 tie an access to the instruction right before it: a load (or a
register-offset store) that follows a single load whose result it does not use as an
address is pipelined and costs one cycle less, and a load or store whose address
register was written by the data-processing instruction right before it stalls one
cycle ("there is no forwarding path"). Instructions reached by a jump have no
predecessor in the pipeline. FPU instructions are not modelled (the kernels are integer).
"""

import re
import subprocess
from dataclasses import dataclass

from ..ir.errors import QuiltError
from .mcu_toolchain import require
from .unicorn_run import call_function

DISASSEMBLER = "arm-none-eabi-objdump"
PIPELINE_REFILL = 2
CORES = ("m3", "m4")
# Multiplies and divides that take more than one cycle: {mnemonic: {core: cycles}}.
_MULTI_CYCLE = {
    "mla": {"m3": 2, "m4": 1}, "mls": {"m3": 2, "m4": 1},
    "smull": {"m3": 4, "m4": 1}, "umull": {"m3": 4, "m4": 1},
    "smlal": {"m3": 6, "m4": 1}, "umlal": {"m3": 6, "m4": 1},
    "sdiv": {"m3": 7, "m4": 7}, "udiv": {"m3": 7, "m4": 7},
}
_LONG_MULTIPLIES = {"smull", "umull", "smlal", "umlal"}
_BRANCHES = {"b", "bl", "bx", "blx", "cbz", "cbnz"}
_TABLE_BRANCHES = {"tbb", "tbh"}
_NO_DESTINATION = {"cmp", "cmn", "tst", "teq", "it", "nop"}
_CONDITIONS = {"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls",
               "ge", "lt", "gt", "le", "al"}
_KNOWN = _BRANCHES | _TABLE_BRANCHES | _NO_DESTINATION | set(_MULTI_CYCLE) | {"mul"}
_REGISTER = re.compile(r"\b(r1[0-5]|r[0-9]|sl|fp|ip|sp|lr|pc)\b")
# "  2a:\tf850 3b04 \tldr.w\tr3, [r0], #4\t@ comment": address, one or two raw halfwords,
# mnemonic, operands up to a comment or a <symbol>. Data (".word", 8 hex digits) fails it.
_LINE = re.compile(r"^\s*([0-9a-f]+):\s+[0-9a-f]{4}(?: [0-9a-f]{4})?\s+([a-z][\w.]*)\s*"
                   r"([^@<;]*)")


@dataclass(frozen=True)
class Instruction:
    """One disassembled instruction: its class (see the module table), the base cycles it
    costs on each core, the registers it writes (`writes`, for the address-dependency
    stall) and the registers that form its address (`address_registers`, loads/stores)."""

    kind: str
    cycles: dict
    writes: tuple
    address_registers: tuple
    register_offset: bool


@dataclass(frozen=True)
class CycleEstimate:
    """The estimated cycles of one profiled call and their split by instruction class
    ("data", "multiply", "divide", "load", "store", "multiple", "branch"; every pipeline
    refill counts under "branch")."""

    cycles: int
    by_class: dict


def _base_mnemonic(mnemonic):
    """`mnemonic` without its width qualifier (.n/.w), condition code and flag-setting s,
    whichever of those leaves a name the table knows (else without the qualifier)."""
    name = mnemonic.lower().split(".")[0]
    candidates = [name]
    if name[-2:] in _CONDITIONS:
        candidates.append(name[:-2])
    candidates += [c[:-1] for c in candidates if c.endswith("s")]
    return next((c for c in candidates if c in _KNOWN), name)


def _uniform(cycles):
    return {core: cycles for core in CORES}


def classify(mnemonic, operands):
    """The Instruction that `mnemonic` with `operands` (objdump's spelling) is."""
    name = _base_mnemonic(mnemonic)
    registers = tuple(_REGISTER.findall(operands))
    bracket = re.search(r"\[([^\]]*)\]", operands)
    address = tuple(_REGISTER.findall(bracket.group(1))) if bracket else ()
    register_offset = len(address) > 1
    if name.startswith(("ldm", "stm", "push", "pop")):
        listed = re.search(r"\{([^}]*)\}", operands)
        count = len(_REGISTER.findall(listed.group(1))) if listed else 1
        writes = registers if name.startswith(("ldm", "pop")) else ()
        return Instruction("multiple", _uniform(1 + count), writes, (), False)
    if name.startswith(("ldrd", "strd")):
        writes = registers[:2] if name.startswith("ldrd") else ()
        return Instruction("multiple", _uniform(3), writes, address, register_offset)
    if name.startswith("ldr"):
        return Instruction("load", _uniform(2), registers[:1], address, register_offset)
    if name.startswith("str"):
        return Instruction("store", _uniform(2 if register_offset else 1), (), address,
                           register_offset)
    if name in _BRANCHES:
        return Instruction("branch", _uniform(1), (), (), False)
    if name in _TABLE_BRANCHES:
        return Instruction("branch", _uniform(2), (), address, True)
    if name in _MULTI_CYCLE:
        kind = "divide" if name.endswith("div") else "multiply"
        writes = registers[:2] if name in _LONG_MULTIPLIES else registers[:1]
        return Instruction(kind, _MULTI_CYCLE[name], writes, (), False)
    writes = () if name in _NO_DESTINATION else registers[:1]
    return Instruction("multiply" if name == "mul" else "data", _uniform(1), writes, (), False)


def disassemble(elf_path):
    """{address: Instruction} of every instruction arm-none-eabi-objdump finds in the ELF."""
    tool = require(DISASSEMBLER)
    result = subprocess.run([tool, "-d", str(elf_path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise QuiltError(f"{DISASSEMBLER} could not disassemble {elf_path}: "
                         f"{result.stderr.strip()[:500]}")
    return parse_disassembly(result.stdout)


def parse_disassembly(text):
    """{address: Instruction} from the text `objdump -d` prints."""
    instructions = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            instructions[int(match.group(1), 16)] = classify(match.group(2),
                                                             match.group(3).strip())
    return instructions


def _pipeline_adjustment(instruction, before):
    """Cycles the instruction right `before` (reached without a jump) adds to (+1, the
    address-dependency stall) or saves from (-1, a pipelined access) a load or store."""
    if instruction.kind not in ("load", "store") or before is None:
        return 0
    if before.kind in ("data", "multiply", "divide") and \
            set(before.writes) & set(instruction.address_registers):
        return 1
    pipelined = before.kind == "load" and not set(before.writes) & set(
        instruction.address_registers)
    if pipelined and (instruction.kind == "load" or instruction.register_offset):
        return -1
    return 0


def estimate_cycles(elf_path, profile, core):
    """The CycleEstimate of a call profiled on `core` ("m3" or "m4") running the ELF at
    `elf_path` (an ExecutionProfile from call_function(..., profile=True))."""
    if core not in CORES:
        raise QuiltError(f"no cycle table for core {core!r}: the estimate covers "
                         f"{', '.join(CORES)} (the Cortex-M7 issues two instructions a cycle)")
    if profile is None:
        raise QuiltError("estimate_cycles needs an ExecutionProfile: call call_function "
                         "with profile=True")
    instructions = disassemble(elf_path)
    addresses = sorted(instructions)
    previous = dict(zip(addresses[1:], addresses[:-1]))
    taken, entered = {}, {}
    for (source, target), count in profile.jumps.items():
        taken[source] = taken.get(source, 0) + count
        entered[target] = entered.get(target, 0) + count
    by_class = {}
    for address, runs in profile.runs.items():
        instruction = instructions.get(address)
        if instruction is None:
            raise QuiltError(f"{elf_path} ran an instruction at {address:#x} that "
                             f"{DISASSEMBLER} does not list; rebuild the ELF")
        sequential = runs - entered.get(address, 0)
        before = instructions.get(previous.get(address))
        cycles = (runs * instruction.cycles[core]
                  + sequential * _pipeline_adjustment(instruction, before))
        by_class[instruction.kind] = by_class.get(instruction.kind, 0) + cycles
        # The refill is the price of branching, whichever instruction wrote the PC.
        refill = taken.get(address, 0) * PIPELINE_REFILL
        if refill:
            by_class["branch"] = by_class.get("branch", 0) + refill
    return CycleEstimate(sum(by_class.values()), dict(sorted(by_class.items())))


def call_with_cycles(elf_path, function, arguments, core):
    """Call `function` as unicorn_run.call_function does, profiled: returns the
    EmulatedCall and the CycleEstimate of that one call."""
    call = call_function(elf_path, function, arguments, core=core, profile=True)
    return call, estimate_cycles(elf_path, call.profile, core)
