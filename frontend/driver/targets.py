"""The target table: what `build` needs to know of each target, in one place.

    target    renderer        limits checked before rendering          toolchain
    c         CRenderer       none                                     gcc (or $CC), cffi
    cuda      CUDARenderer    1024 threads a block, 48 KiB shared      nvcc (PTX, cubin)
    cuda-emu  CUDARenderer    the same as cuda                         g++ + cuda_emu.h
    mcu       MCURenderer     constant sizes; static buffers in RAM    gcc on the host (the
                                                                       same C arm-none-eabi-gcc
                                                                       builds in a project)

A target's limits are its own: the verifier (`ir/verify.py`) checks what holds on every
target, and `check_limits` what holds on this one.
"""

import os
from dataclasses import dataclass

import sympy

from ..codegen.c import CRenderer
from ..codegen.cuda import CUDARenderer
from ..codegen.mcu import MCURenderer
from ..ir import nodes as ir
from ..ir.errors import QuiltError, ScheduleError
from ..ir.printer import render
from ..ir.verify_gpu import block_threads, element_bytes, shared_allocations
from ..ir.walk import find_all
from ..runtime_c.cuda_call import emulation_toolchain, gpu_unavailable_reason
from ..runtime_c.mcu_boards import find_board
from ..runtime_c.nvcc import shared_toolchain
from ..runtime_c.toolchain import find_toolchain

SHARED_MEMORY_ENV = "QUILTC_SHARED_MEMORY_LIMIT"


@dataclass(frozen=True)
class Limits:
    """What one target can run: threads in a GPU block, bytes of shared memory a block may
    use, bytes of RAM for static buffers (None: no limit)."""

    threads_per_block: int | None = None
    shared_memory_bytes: int | None = None
    ram_bytes: int | None = None


@dataclass(frozen=True)
class Target:
    """One entry of the table: its name, renderer class, limits and the toolchain that
    builds its source into a library the host can load (`toolchain()`, or None where the
    host cannot run it)."""

    name: str
    renderer: type
    limits: Limits
    toolchain: object
    summary: str

    def with_limits(self, **changes):
        """This target with some limits replaced (None values are ignored)."""
        known = {key: value for key, value in changes.items() if value is not None}
        return Target(self.name, self.renderer, Limits(**{**self.limits.__dict__, **known}),
                      self.toolchain, self.summary)


def _gpu_toolchain():
    return None if gpu_unavailable_reason() else shared_toolchain()


_GPU_LIMITS = Limits(threads_per_block=1024, shared_memory_bytes=48 * 1024)
TARGETS = {target.name: target for target in (
    Target("c", CRenderer, Limits(), find_toolchain, "C99 + OpenMP for the host CPU"),
    Target("cuda", CUDARenderer, _GPU_LIMITS, _gpu_toolchain,
           "CUDA C for NVIDIA GPUs, compiled by nvcc to PTX and cubin"),
    Target("cuda-emu", CUDARenderer, _GPU_LIMITS, emulation_toolchain,
           "the CUDA source run on the CPU, each block's threads as fibers"),
    Target("mcu", MCURenderer, Limits(ram_bytes=find_board("mps2-an386").ram_bytes),
           find_toolchain, "Cortex-M C (fixed-width types, static buffers), built for the host"),
)}


def find_target(name, shared_memory_limit=None):
    """The table's entry for `name`, with `shared_memory_limit` (bytes) or
    $QUILTC_SHARED_MEMORY_LIMIT replacing a GPU target's default."""
    if name not in TARGETS:
        raise QuiltError(
            f"target {name!r} is not supported; the supported targets are "
            f"{', '.join(repr(t) for t in TARGETS)}"
        )
    target = TARGETS[name]
    if target.limits.shared_memory_bytes is None:
        return target
    configured = os.environ.get(SHARED_MEMORY_ENV, "").strip()
    if shared_memory_limit is None and configured:
        shared_memory_limit = int(configured)
    return target.with_limits(shared_memory_bytes=shared_memory_limit)


def _refuse(kernel, target, node, obstacle, hint):
    raise ScheduleError("build", f"build kernel {kernel.name} for target {target.name!r}",
                        obstacle, hint, render(kernel, mark=node))


def check_limits(kernel, target):
    """Raise ScheduleError where `kernel` needs more than `target`'s limits allow."""
    limits = target.limits
    if limits.threads_per_block is not None:
        for loop, threads in block_threads(kernel):
            if threads is not None and threads > limits.threads_per_block:
                _refuse(kernel, target, loop,
                        f"the block of loop {loop.var} would hold up to {threads} threads, "
                        f"over CUDA's limit of {limits.threads_per_block} threads per block",
                        f"Split {loop.var} so the threadIdx extents multiply to at most "
                        f"{limits.threads_per_block}, and bind the outer part to blockIdx.")
    if limits.shared_memory_bytes is not None:
        for nest, sizes in shared_allocations(kernel):
            total = sum(size for _, size in sizes)
            if total > limits.shared_memory_bytes:
                named = ", ".join(f"{alloc.buffer.name} ({size} bytes)" for alloc, size in sizes)
                loop = getattr(nest, "var", "(top level)")
                _refuse(kernel, target, sizes[0][0],
                        f"the block of loop {loop} needs {total} bytes of shared memory for "
                        f"{named}, over the limit of {limits.shared_memory_bytes} bytes",
                        "Cache smaller tiles (split by smaller factors), or raise the limit with "
                        f"build(..., shared_memory_limit=) or {SHARED_MEMORY_ENV} where the "
                        "GPU has more.")
    if limits.ram_bytes is not None:
        _check_static_buffers(kernel, target)


def _check_static_buffers(kernel, target):
    """A microcontroller keeps every scratch buffer in static RAM: their constant sizes
    must add up to less than the board's RAM."""
    allocations = find_all(kernel.body, lambda n: isinstance(n, ir.Alloc) and n.scope == "global")
    total = 0
    for alloc in allocations:
        size = sympy.sympify(alloc.buffer.size())
        if not size.is_Integer:
            _refuse(kernel, target, alloc,
                    f"buffer {alloc.buffer.name} has the symbolic size {size}",
                    "Fix every size to a constant (qc.placeholder with int shapes) for the mcu "
                    "target, whose buffers are static arrays.")
        total += int(size) * element_bytes(alloc.buffer.dtype)
    if total > target.limits.ram_bytes:
        _refuse(kernel, target, allocations[0],
                f"its static buffers need {total} bytes, over the {target.limits.ram_bytes} "
                "bytes of RAM of the board",
                "Compute intermediates inside their consumers' loops (compute_at, then "
                "fold_storage) so that only a slice of each is stored.")
