"""`qc.build`: schedules (or kernels) become Python callables for a target.

    fn = qc.build(sch, target="c")
    C = fn(A=a, B=b)
    unit = qc.build([sch_a, sch_b])          # one library, an entry point per kernel
    unit.matmul(A=a, B=b); unit["softmax"](X=x)

One pipeline for every target of the table in targets.py: verify each kernel, check it
against the target's limits, render one unit (each kernel headed by its schedule trace),
compile it through the cached toolchain driver, and wrap each entry point.
"""

import dataclasses
import re
from dataclasses import dataclass

from ..codegen.base import render_unit
from ..codegen.names import C_KEYWORDS
from ..ir import nodes as ir
from ..ir.errors import QuiltError
from ..ir.verify import verify
from ..runtime_c.cache import DEFAULT_CACHE
from ..runtime_c.call import CompiledKernel
from ..runtime_c.cuda_call import CudaKernel
from ..runtime_c.nvcc import compile_cuda
from .targets import Target, check_limits, find_target

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


def _checked_name(kernel):
    if not _IDENTIFIER.match(kernel.name) or kernel.name in C_KEYWORDS:
        raise QuiltError(f"kernel name {kernel.name!r} is not a usable C function name; pass "
                         "name= with letters, digits and underscores, not starting with a digit")
    return kernel


class Unit:
    """Several kernels compiled into one library: `unit.NAME` or `unit["NAME"]` is the
    callable of kernel NAME; `source` is the whole unit's source."""

    def __init__(self, source, entries):
        self.source = source
        self.entries = dict(entries)

    def __getitem__(self, name):
        if name not in self.entries:
            raise QuiltError(f"the unit has no kernel {name!r}; its kernels are "
                             f"{', '.join(self.entries)}")
        return self.entries[name]

    def __getattr__(self, name):
        if name.startswith("_") or name not in self.__dict__.get("entries", {}):
            raise AttributeError(name)
        return self.entries[name]

    def __iter__(self):
        return iter(self.entries)

    def __repr__(self):
        return f"Unit({', '.join(self.entries)})"


@dataclass(frozen=True)
class RenderedUnit:
    """The source of verified kernels for one target, and the C declarations of their
    entry points."""

    target: Target
    kernels: tuple
    source: str
    declarations: str


def render(schedules, target="c", comment=None, shared_memory_limit=None, **options):
    """Verify every kernel of `schedules` (qc.Schedules, ir.Kernels or (kernel, trace
    text) pairs), check each against `target`'s limits and render them as one unit;
    `options` go to the target's renderer (the mcu renderer's `static=`)."""
    target = find_target(target, shared_memory_limit)
    pairs = [item if isinstance(item, tuple) else _kernel_and_trace(item) for item in schedules]
    if not pairs:
        raise QuiltError("a unit needs at least one schedule")
    kernels = [_checked_name(kernel) for kernel, _ in pairs]
    names = [kernel.name for kernel in kernels]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise QuiltError(f"kernels in one unit need distinct names; {', '.join(repeated)} "
                         "appears more than once (qc.Schedule(output, name=...) names one)")
    for kernel in kernels:
        verify(kernel)
        check_limits(kernel, target)
    renderers = [target.renderer(kernel, trace, **options) for kernel, (_, trace) in
                 zip(kernels, pairs)]
    return RenderedUnit(target, tuple(kernels), render_unit(renderers, comment),
                        "\n".join(renderer.declaration() for renderer in renderers))


def load_library(source, declarations, target="c", sanitize=False):
    """`source` (a unit `render` made, with code of the caller's around it) built by
    `target`'s toolchain through the cache (with the sanitizers when asked); the loaded
    library (`handle`, `ffi`)."""
    return DEFAULT_CACHE.load(source, declarations, find_target(target).toolchain(sanitize))


def _compile(rendered, sanitize):
    """{kernel name: callable} of the rendered unit, built into one library."""
    target, kernels, source = rendered.target, rendered.kernels, rendered.source
    declarations = rendered.declarations
    if target.renderer.target == "cuda":
        if sanitize and target.name == "cuda":
            raise QuiltError("sanitize=True builds for the CPU only; build target 'cuda' "
                             "without it, or the same schedule for target='cuda-emu'")
        binaries = compile_cuda(source) if target.name == "cuda" else None
        toolchain = target.toolchain(sanitize) if sanitize else target.toolchain()
        library = None if toolchain is None else DEFAULT_CACHE.load(source, declarations,
                                                                   toolchain)
        return {kernel.name: CudaKernel(kernel, source, library, binaries, target.name)
                for kernel in kernels}
    library = DEFAULT_CACHE.load(source, declarations, target.toolchain(sanitize))
    return {kernel.name: CompiledKernel(kernel, source, library) for kernel in kernels}


def build(schedule, target="c", name=None, sanitize=False, shared_memory_limit=None):
    """Compile `schedule` (a qc.Schedule or an ir.Kernel, or a list of them) for `target`
    into a callable (a `Unit` of callables for a list).

    `name` renames the kernel function; `sanitize=True` builds with AddressSanitizer and
    UndefinedBehaviorSanitizer (the process must preload libasan to load it). "cuda"
    compiles with nvcc (runs where a GPU is found), "cuda-emu" runs the same CUDA source
    on the CPU, "mcu" builds the Cortex-M C for the host; `shared_memory_limit` (bytes,
    default 48 KiB) bounds each GPU block's. See targets.py for the table.
    """
    if isinstance(schedule, (list, tuple)):
        if name is not None:
            raise QuiltError("name= renames one kernel; name each schedule's kernel instead "
                             "(qc.Schedule(output, name=...)) when building several")
        return build_unit(schedule, target, sanitize, shared_memory_limit)
    kernel, trace = _kernel_and_trace(schedule)
    if name is not None:
        kernel = dataclasses.replace(kernel, name=name)
    unit = build_unit([(kernel, trace)], target, sanitize, shared_memory_limit)
    return unit[kernel.name]


def build_unit(schedules, target="c", sanitize=False, shared_memory_limit=None, comment=None):
    """One library holding every kernel of `schedules` (qc.Schedules, ir.Kernels or
    (kernel, trace text) pairs) for `target`; returns a `Unit`."""
    rendered = render(schedules, target, comment, shared_memory_limit)
    return Unit(rendered.source, _compile(rendered, sanitize))
