"""The vector ISA generated C is compiled for, so schedules can size their vectors and
register blocks to it.

    host_isa()                                 # VectorIsa("avx512", 16 lanes, 32 registers)
    compiler_isa(find_toolchain(march="haswell"))   # VectorIsa("avx2", 8 lanes, 16 ...)
    runs_here(isa)                             # whether this CPU can run such a build

The compiler is the authority on what it emits: its predefined macros for the toolchain's
flags (`cc -march=native -dM -E`) name the ISA, read once per process and toolchain.
/proc/cpuinfo is the cross-check: `host_isa` never claims an ISA the CPU does not list.
"""

import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..ir.errors import BuildError, QuiltError, ToolchainMissing
from .toolchain import INSTALL_HINT, find_toolchain, first_error_lines


@dataclass(frozen=True)
class VectorIsa:
    """A SIMD instruction set as a schedule sees it: float32 lanes per vector, vector
    registers, and the /proc/cpuinfo flags a CPU needs to run code built for it."""

    name: str
    float32_lanes: int
    vector_registers: int
    cpu_flags: frozenset = frozenset()

    @property
    def accumulator_registers(self):
        """Vector registers a register-blocked kernel may fill with accumulators, the
        rest holding its operands: 16 of AVX-512's 32 (quiltc's 8 x 32 float matmul block,
        409 GFLOP/s at 512^3 against OpenBLAS's 399, shared/notes/toolchains.md) and 12 of
        16 elsewhere (BLIS's haswell sgemm micro-kernel, 6 x 16 floats in 12 ymm)."""
        return 16 if self.vector_registers >= 32 else 12

    def matmul_block(self):
        """(rows, cols) of C one thread keeps in registers across the k loop: two vectors
        of B per row, so each broadcast of A feeds two FMAs; 8 x 32 with AVX-512, 6 x 16
        with AVX2."""
        return self.accumulator_registers // 2, 2 * self.float32_lanes


# Widest first; each ISA named by the macro its compilers predefine. A compiler that
# defines none (not x86) gets 128-bit vectors, which every SIMD unit gcc targets has.
_ISAS = (
    ("__AVX512F__", VectorIsa("avx512", 16, 32, frozenset({"avx512f"}))),
    ("__AVX2__", VectorIsa("avx2", 8, 16, frozenset({"avx2"}))),
    ("__AVX__", VectorIsa("avx", 8, 16, frozenset({"avx"}))),
    ("__SSE2__", VectorIsa("sse2", 4, 16, frozenset({"sse2"}))),
)
_GENERIC = VectorIsa("generic", 4, 16)
# The vector extensions a -march= value may switch on beside its widest ISA, by macro,
# with their /proc/cpuinfo names: an object uses any of them, so a CPU must list them all.
_CPU_FLAG_OF_MACRO = {
    "__SSE2__": "sse2", "__SSE3__": "pni", "__SSSE3__": "ssse3", "__SSE4_1__": "sse4_1",
    "__SSE4_2__": "sse4_2", "__AVX__": "avx", "__AVX2__": "avx2", "__FMA__": "fma",
    "__F16C__": "f16c", "__AVX512F__": "avx512f", "__AVX512CD__": "avx512cd",
    "__AVX512BW__": "avx512bw", "__AVX512DQ__": "avx512dq", "__AVX512VL__": "avx512vl",
}


def isa_with_lanes(lanes):
    """The ISA whose float32 vectors have `lanes` lanes (the widest such), for a schedule
    given an explicit vector width: its register block is sized to that ISA's registers."""
    for _, isa in _ISAS:
        if isa.float32_lanes == lanes:
            return isa
    widths = sorted({isa.float32_lanes for _, isa in _ISAS})
    raise QuiltError(f"no known ISA has {lanes}-lane float32 vectors (known: "
                     f"{', '.join(map(str, widths))}); pass the register block explicitly")


@functools.cache
def compiler_isa(toolchain):
    """The widest vector ISA `toolchain` compiles for, with every vector extension its
    flags switch on in `cpu_flags`, from the compiler's predefined macros."""
    arguments = [*toolchain.command, *toolchain.flags, "-dM", "-E", "-x", "c", os.devnull]
    try:
        result = subprocess.run(arguments, capture_output=True, text=True)
    except FileNotFoundError:
        raise ToolchainMissing(toolchain.command[0], INSTALL_HINT) from None
    if result.returncode != 0:
        raise BuildError(toolchain.name, first_error_lines(result.stderr),
                         "(no source: the compiler failed listing its predefined macros)")
    macros = {line.split()[1] for line in result.stdout.splitlines()
              if line.startswith("#define ")}
    widest = next((isa for macro, isa in _ISAS if macro in macros), _GENERIC)
    needed = frozenset(flag for macro, flag in _CPU_FLAG_OF_MACRO.items() if macro in macros)
    return VectorIsa(widest.name, widest.float32_lanes, widest.vector_registers, needed)


@functools.cache
def cpu_flags():
    """The feature flags /proc/cpuinfo lists for this CPU (empty where it is unreadable)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def cpu_isa():
    """The widest vector ISA /proc/cpuinfo lists (None where it lists none of them)."""
    return next((isa for _, isa in _ISAS if runs_here(isa)), None)


def runs_here(isa):
    """Whether this CPU lists every flag code built for `isa` may use."""
    return isa.cpu_flags <= cpu_flags()


@functools.cache
def host_isa():
    """The vector ISA kernels built for this machine (`find_toolchain()`, -march=native)
    use: the compiler's answer, narrowed to what /proc/cpuinfo lists where the two
    disagree, and /proc/cpuinfo's alone where there is no working compiler."""
    listed = cpu_isa()
    try:
        compiled = compiler_isa(find_toolchain())
    except (ToolchainMissing, BuildError):
        return listed or _GENERIC
    if listed is None or compiled.float32_lanes <= listed.float32_lanes:
        return compiled
    return listed


def isa_for(lanes=None):
    """`isa_with_lanes(lanes)`, or the host's ISA when `lanes` is None: what a schedule
    with an optional vector width sizes itself to."""
    return host_isa() if lanes is None else isa_with_lanes(lanes)


@functools.cache
def cache_sizes():
    """{"L1d": bytes, "L1i": ..., "L2": ..., "L3": ...} of cpu0's caches, from sysfs (empty
    where sysfs does not say): what tile sizes are drawn from."""
    sizes = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:], 1)
        name = f"L{level}" + {"Data": "d", "Instruction": "i"}.get(kind, "")
        sizes[name] = int(size.rstrip("KMG") or 0) * scale
    return sizes


def openmp_threads():
    """The threads OpenMP will run parallel regions on: OMP_NUM_THREADS (its first level),
    else the cores this process may run on."""
    configured = os.environ.get("OMP_NUM_THREADS", "").split(",")[0]
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return len(os.sched_getaffinity(0))
