"""Shared test tools: toolchain gating, the oracle comparison every schedule test uses,
host builds of the Cortex-M C, and numpy references."""

import dataclasses
import os
import shutil
from unittest import mock

import numpy as np
import pytest

import quiltc as qc
from quiltc.codegen import stream as c_stream
from quiltc.codegen.mcu import mcu_signature, render_mcu
from quiltc.ir import interp
from quiltc.ir import nodes as ir
from quiltc.ir.verify import verify
from quiltc.ir.walk import rewrite
from quiltc.runtime_c.cache import DEFAULT_CACHE
from quiltc.runtime_c.call import CompiledKernel
from quiltc.runtime_c.mcu_toolchain import COMPILER, EMULATOR, MCU_INSTALL_HINT, SIZE_TOOL
from quiltc.runtime_c.toolchain import find_toolchain

REQUIRE_TOOLCHAINS = os.environ.get("QUILTC_REQUIRE_TOOLCHAINS") == "1"
# Set by tests/runtime_c/test_sanitize.py when it reruns the ragged property tests with
# every generated kernel built under AddressSanitizer and UndefinedBehaviorSanitizer.
SANITIZE = os.environ.get("QUILTC_TEST_SANITIZE") == "1"


def unavailable(message):
    """Skip the test for a missing tool (`message` says how to install it), or fail it
    under QUILTC_REQUIRE_TOOLCHAINS=1, where CI must have every tool."""
    if REQUIRE_TOOLCHAINS:
        pytest.fail(message)
    pytest.skip(message)


def require_tool(tool, install):
    """Skip (or, under QUILTC_REQUIRE_TOOLCHAINS=1, fail) when `tool` is not on PATH."""
    if shutil.which(tool) is None:
        unavailable(f"{tool} is not installed; install it with: {install}")


def require_sanitizer_environment():
    """This process's environment plus libasan preloaded and reports made fatal, for a
    child process that loads sanitized kernels; skips (or fails) without libasan."""
    from . import fuzz_pool

    require_cc()
    try:
        return fuzz_pool.sanitizer_environment(os.environ)
    except RuntimeError as missing:
        unavailable(str(missing))


def require_cc():
    require_tool(os.environ.get("CC", "gcc"), "apt-get install -y gcc")


def mcu_host_build(sch, constants=None):
    """The Cortex-M C of schedule `sch` (with the tables in `constants` folded in), built
    for the host and callable like qc.build's result (`.source` holds the C)."""
    require_cc()
    kernel = verify(sch.kernel)
    source = render_mcu(kernel, str(sch.trace), constants)
    library = DEFAULT_CACHE.load(source, mcu_signature(kernel), find_toolchain())
    return CompiledKernel(kernel, source, library)


def stream_every_loop():
    """A context in which every stream loop streams, however small its output (the C
    target's threshold is 4 MiB): how tests and the fuzzer reach the streamed code."""
    return mock.patch.object(c_stream, "STREAM_MIN_BYTES", 0)


def require_mcu_toolchain():
    """Skip (or fail) unless arm-none-eabi-gcc, its size tool and qemu-system-arm exist."""
    for tool in (COMPILER, SIZE_TOOL, EMULATOR):
        require_tool(tool, MCU_INSTALL_HINT)


def tolerance(dtype):
    """(rtol, atol) fit for comparing results of `dtype` computed in different orders."""
    if np.dtype(dtype) == np.float32:
        return 1e-4, 1e-4
    if np.dtype(dtype) == np.float64:
        return 1e-10, 1e-10
    return 0, 0


def check_schedule(sch, arrays, reference=None, compile_c=True):
    """Assert the scheduled kernel computes what the unscheduled one does.

    Runs the original kernel and the scheduled one in the interpreter and (with
    compile_c) the scheduled one compiled to C, on `arrays` (name -> numpy array), and
    compares all of them with `reference` (name -> numpy array) when given, else with
    the original kernel's interpreted results. Returns the compiled callable (or None).
    """
    expected = interp.run(sch.original, **arrays)
    if reference is not None:
        for name, ref in reference.items():
            rtol, atol = tolerance(ref.dtype)
            np.testing.assert_allclose(expected[name], ref, rtol=rtol, atol=atol,
                                       err_msg=f"unscheduled {name} differs from numpy")
    scheduled = interp.run(sch.kernel, **arrays)
    for name, want in expected.items():
        rtol, atol = tolerance(want.dtype)
        np.testing.assert_allclose(scheduled[name], want, rtol=rtol, atol=atol,
                                   err_msg=f"scheduled {name} differs in the interpreter\n"
                                           f"{sch.trace}")
    if not compile_c:
        return None
    require_cc()
    fn = qc.build(sch, target="c")
    got = fn(**arrays)
    got = got if isinstance(got, dict) else {sch.kernel.outputs[0]: got}
    for name, want in expected.items():
        rtol, atol = tolerance(want.dtype)
        np.testing.assert_allclose(got[name], want, rtol=rtol, atol=atol,
                                   err_msg=f"compiled {name} differs\n{sch.trace}\n{fn.source}")
    return fn


def random_array(rng, shape, dtype="float32"):
    """Reproducible test data of `dtype`: floats in [-1, 1), small integers otherwise."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(-1, 1, size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -8), min(info.max, 8), size=shape).astype(dtype)


def with_loop_kinds(kernel, kinds):
    """`kernel` with loops re-annotated by hand ({loop name: kind}), as no primitive would:
    for testing what renderers and checks do with annotations the schedule never made."""

    def annotate(node):
        if isinstance(node, ir.For) and node.var.name in kinds:
            return dataclasses.replace(node, kind=kinds[node.var.name])
        return node

    return dataclasses.replace(kernel, body=rewrite(kernel.body, annotate))


class DLPackOnly:
    """Exposes an array through the DLPack protocol alone (numpy's own methods)."""

    def __init__(self, array):
        self.array = array

    def __dlpack__(self, **options):
        return self.array.__dlpack__(**options)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()


class ArrayInterfaceOnly:
    """Exposes an array through __array__ alone."""

    def __init__(self, array):
        self.array = array

    def __array__(self, dtype=None, copy=None):
        return self.array
