"""`qc.build`: a schedule (or a kernel) becomes a Python callable for a target.

    fn = qc.build(sch, target="c")
    C = fn(A=a, B=b)

The flat pipeline: verify the kernel, render the target's source (headed by the schedule
trace), compile it through the cached toolchain driver, and wrap the loaded library.
"""

import dataclasses
import re

from .codegen.names import C_KEYWORDS
from .codegen.c import c_signature, render_c
from .ir import nodes as ir
from .ir.errors import QuiltError
from .ir.verify import verify
from .runtime_c.cache import DEFAULT_CACHE
from .runtime_c.call import CompiledKernel
from .runtime_c.cuda_call import build_cuda
from .ragged import RaggedArray
from .runtime_c.toolchain import find_toolchain

TARGETS = ("c", "cuda", "cuda-emu")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _kernel_and_trace(schedule):
    if isinstance(schedule, ir.Kernel):
        return schedule, ""
    kernel = getattr(schedule, "kernel", None)
    if not isinstance(kernel, ir.Kernel):
        raise QuiltError(
            f"build() takes a qc.Schedule or an ir.Kernel, not a {type(schedule).__name__}; "
            "wrap a tensor program with qc.Schedule(output) first"
        )
    return kernel, str(getattr(schedule, "trace", ""))


def build(schedule, target="c", name=None, sanitize=False, shared_memory_limit=None):
    """Compile `schedule` (a qc.Schedule or an ir.Kernel) for `target` into a callable.

    `name` renames the kernel function; `sanitize=True` builds with AddressSanitizer and
    UndefinedBehaviorSanitizer (the process must preload libasan to load it). "cuda"
    compiles with nvcc (runs where a GPU is found), "cuda-emu" runs the same CUDA source
    on the CPU; `shared_memory_limit` (bytes, default 48 KiB) bounds each GPU block's.
    """
    kernel, trace = _kernel_and_trace(schedule)
    if target not in TARGETS:
        raise QuiltError(
            f"target {target!r} is not supported; the supported targets are "
            f"{', '.join(repr(t) for t in TARGETS)}"
        )
    if name is not None:
        kernel = dataclasses.replace(kernel, name=name)
    if not _IDENTIFIER.match(kernel.name) or kernel.name in C_KEYWORDS:
        raise QuiltError(f"kernel name {kernel.name!r} is not a usable C function name; pass "
                         "name= with letters, digits and underscores, not starting with a digit")
    verify(kernel, shared_memory_limit)
    if target != "c":
        if sanitize:
            raise QuiltError(f"sanitize=True builds C only; build target {target!r} without it, "
                             "or the same schedule without GPU bindings for target='c'")
        return build_cuda(kernel, trace, target, make_ragged=RaggedArray)
    source = render_c(kernel, trace)
    library = DEFAULT_CACHE.load(source, c_signature(kernel), find_toolchain(sanitize))
    return CompiledKernel(kernel, source, library, make_ragged=RaggedArray)
