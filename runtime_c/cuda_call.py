"""CUDA kernels as Python callables: on a GPU when one is present, else on the CPU through
the emulation header, and the facts a caller may inspect (`source`, `ptx`, `cubin`).
The source comes rendered (`qc.build` renders it); this module builds and calls it.

    f = qc.build(sch, target="cuda")        # nvcc: PTX and cubin for sm_80 and sm_90
    f.ptx["sm_90"]                          # inspect; f(...) runs where a GPU exists
    g = qc.build(sch, target="cuda-emu")    # the same .cu built by g++ with cuda_emu.h
    C = g(A=a, B=b)                         # runs on the CPU, threads as fibers

Both take and return what the C target's callables do: the launcher copies to and from
the device itself.
"""

import ctypes
import ctypes.util
import functools
import hashlib
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..ir.errors import QuiltError, ToolchainMissing
from .call import CompiledKernel
from .toolchain import SANITIZE_FLAGS, Toolchain

EMULATION_HEADER = Path(__file__).with_name("cuda_emu.h")
CXX_INSTALL_HINT = "apt-get install -y g++"
EMULATION_FLAGS = ("-x", "c++", "-std=c++17", "-O2", "-fPIC", "-shared",
                   f"-I{EMULATION_HEADER.parent}")


@dataclass(frozen=True)
class EmulationToolchain(Toolchain):
    """g++ building a .cu for the CPU; the emulation header is part of its identity."""

    def identity(self):
        """As the C toolchain's, plus the header's digest: editing it rebuilds every kernel."""
        header = hashlib.sha256(EMULATION_HEADER.read_bytes()).hexdigest()
        return super().identity() + "\ncuda_emu.h " + header


def emulation_toolchain(sanitize=False):
    """The C++ compiler `CXX` names (default `g++`) with the emulation flags, and the
    sanitizer flags when asked."""
    command = tuple(shlex.split(os.environ.get("CXX") or "g++"))
    if not command or shutil.which(command[0]) is None:
        raise ToolchainMissing(command[0] if command else "g++", CXX_INSTALL_HINT)
    return EmulationToolchain(command, EMULATION_FLAGS + (SANITIZE_FLAGS if sanitize else ()))


@functools.cache
def gpu_unavailable_reason():
    """Why this process cannot run a kernel on a GPU ("" when it can): no CUDA driver
    library, a driver that fails to start, or no device."""
    name = ctypes.util.find_library("cuda") or "libcuda.so.1"
    try:
        driver = ctypes.CDLL(name)
    except OSError:
        return "no CUDA driver (libcuda) is installed"
    if driver.cuInit(0) != 0:
        return "the CUDA driver did not initialise (cuInit failed)"
    count = ctypes.c_int(0)
    if driver.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return "the CUDA driver sees no GPU"
    return ""


class CudaKernel:
    """A CUDA kernel: `source` is its .cu, `ptx`/`cubin` map each architecture to nvcc's
    output (empty for the emulation). Calls run on the GPU (target "cuda") or on the CPU
    (target "cuda-emu") through the launcher's CompiledKernel (None where no GPU can run
    it), checking arguments like the C target, and raise QuiltError on a CUDA error."""

    def __init__(self, kernel, source, library, binaries=None, target="cuda-emu"):
        self.kernel, self.source, self.target = kernel, source, target
        self.outputs = tuple(kernel.outputs)
        self.inputs = tuple(p.name for p in kernel.params if p.name not in self.outputs)
        self.ptx = dict(binaries.ptx) if binaries else {}
        self.cubin = dict(binaries.cubin) if binaries else {}
        self._launcher = None if library is None else CompiledKernel(kernel, source, library)
        self._library = library
        self.library_path = None if library is None else str(library.path)

    def __repr__(self):
        return (f"CudaKernel({self.kernel.name} for {self.target}: inputs "
                f"{', '.join(self.inputs)} -> outputs {', '.join(self.outputs)})")

    def __call__(self, out=None, like=None, **arguments):
        """Run the kernel like a C target callable; see runtime_c/call.py."""
        if self._launcher is None:
            raise QuiltError(
                f"kernel {self.kernel.name} was compiled for the GPU (its PTX and cubin are in "
                f".ptx and .cubin), but it cannot run here: {gpu_unavailable_reason()}; build "
                "with target='cuda-emu' to run the same source on the CPU"
            )
        result = self._launcher(out=out, like=like, **arguments)
        error_text = getattr(self._library.handle, f"{self.kernel.name}_error")()
        error = self._library.ffi.string(error_text).decode()
        if error:
            raise QuiltError(f"kernel {self.kernel.name} failed on the {self.target} target: "
                             f"{error}")
        return result

