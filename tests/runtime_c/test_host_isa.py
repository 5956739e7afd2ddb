"""The host's vector ISA (quiltc.runtime_c.host) and kernels built for named architectures:
the matmul recipe and an elementwise kernel compile for -march=haswell (8-lane ymm code)
and -march=skylake-avx512 (16-lane zmm code), and each build runs against numpy wherever
this CPU can run it."""

import re
import subprocess
import warnings
from typing import NamedTuple

import numpy as np
import pytest

import quiltc as qc
from quiltc import recipes
from quiltc.driver.build import render
from quiltc.ir.errors import QuiltError
from quiltc.ops.ragged import gelu_value, reference_gelu
from quiltc.runtime_c import host
from quiltc.runtime_c.cache import LibraryCache, cache_key
from quiltc.runtime_c.call import CompiledKernel
from quiltc.runtime_c.toolchain import find_toolchain

from support.helpers import require_cc


class Architecture(NamedTuple):
    """A -march= value and what code built for it must look like."""

    march: str
    isa: str
    lanes: int
    vector_registers: int
    register: str  # the name of its vector registers in assembly
    cpu_flags: frozenset  # /proc/cpuinfo flags a CPU needs to run it (some of them)


ARCHITECTURES = [
    Architecture("haswell", "avx2", 8, 16, "ymm", frozenset({"avx2", "fma"})),
    Architecture("skylake-avx512", "avx512", 16, 32, "zmm",
                 frozenset({"avx512f", "avx512bw", "avx512dq", "avx512vl", "fma"})),
]
MATMUL_SIZES = (48, 64, 40)  # (M, N, K): whole 6 x 16 and 8 x 32 blocks, no guards
FEATURES = 64


def _expected_lanes(flags):
    """float32 lanes of the widest vectors /proc/cpuinfo's flags list."""
    if "avx512f" in flags:
        return 16
    return 8 if {"avx2", "avx"} & flags else 4


def _trace(schedule):
    return str(schedule.trace)


def _matmul_schedule(**block):
    *_, c = recipes.matmul_program(*MATMUL_SIZES)
    return recipes.schedule_matmul(c, **block)


def _gelu_schedule(lanes):
    """tanh-GELU of X + bias over FEATURES features, the feature loop split into SIMD
    vectors of `lanes` lanes."""
    rows = qc.var("R", 1, 1 << 16)
    x = qc.placeholder((rows, FEATURES), "float32", "X")
    bias = qc.placeholder((FEATURES,), "float32", "bias")
    out = qc.compute((rows, FEATURES), lambda t, f: gelu_value(x[t, f] + bias[f]), "out")
    sch = qc.Schedule(out, name="bias_gelu")
    _, feature = sch.loops(out)
    _, lane = sch.split(feature, lanes)
    sch.vectorize(lane)
    return sch


def _assembly(toolchain, source, tmp_path):
    """The assembly `toolchain` emits for C `source`, with every flag of a real build."""
    path = tmp_path / "unit.c"
    path.write_text(source)
    arguments = [*toolchain.command, *toolchain.flags, "-S", "-o", "-", str(path)]
    return subprocess.run(arguments, capture_output=True, text=True, check=True).stdout


def _fma_registers(assembly):
    """The register kinds (xmm, ymm, zmm) of the packed float FMAs in `assembly`."""
    return set(re.findall(r"vfmadd\w*ps\s+[^\n]*%([xyz]mm)\d+", assembly))


def test_host_lanes_agree_with_proc_cpuinfo():
    require_cc()
    flags = host.cpu_flags()
    assert "sse2" in flags, f"/proc/cpuinfo lists no x86 vector flags: {sorted(flags)}"
    isa = host.host_isa()
    assert isa.float32_lanes == _expected_lanes(flags)
    assert isa.vector_registers == (32 if "avx512f" in flags else 16)
    assert host.runs_here(isa), f"{isa.name} needs {sorted(isa.cpu_flags - flags)}"
    assert host.compiler_isa(find_toolchain()).float32_lanes == isa.float32_lanes


@pytest.mark.parametrize("architecture", ARCHITECTURES, ids=lambda a: a.march)
def test_the_compiler_names_each_architectures_isa(architecture):
    require_cc()
    toolchain = find_toolchain(march=architecture.march)
    isa = host.compiler_isa(toolchain)
    assert (isa.name, isa.float32_lanes, isa.vector_registers) == (
        architecture.isa, architecture.lanes, architecture.vector_registers)
    assert architecture.cpu_flags <= isa.cpu_flags
    assert host.compiler_isa(toolchain) is isa, "the compiler was asked twice"


def test_register_blocks_fit_each_register_file():
    avx512, avx2 = host.isa_with_lanes(16), host.isa_with_lanes(8)
    assert avx512.matmul_block() == (8, 32) and avx2.matmul_block() == (6, 16)
    for isa in (avx512, avx2):
        rows, cols = isa.matmul_block()
        assert rows * cols // isa.float32_lanes <= isa.accumulator_registers < isa.vector_registers
    with pytest.raises(QuiltError, match="no known ISA has 32-lane float32 vectors"):
        host.isa_with_lanes(32)


def test_each_march_has_its_flag_and_its_own_cache_key():
    require_cc()
    toolchains = {march: find_toolchain(march=march) for march in ("native", "haswell",
                                                                   "skylake-avx512")}
    for march, toolchain in toolchains.items():
        assert f"-march={march}" in toolchain.flags
    source = render([_matmul_schedule(vector=8)]).source
    assert len({cache_key(source, toolchain) for toolchain in toolchains.values()}) == 3


def test_matmul_defaults_come_from_the_vector_width():
    lanes = host.host_isa().float32_lanes
    assert _trace(_matmul_schedule()) == _trace(_matmul_schedule(vector=lanes))
    assert _trace(_matmul_schedule(vector=16)) == _trace(
        _matmul_schedule(rows=8, cols=32, vector=16))
    assert _trace(_matmul_schedule(vector=8)) == _trace(
        _matmul_schedule(rows=6, cols=16, vector=8))
    assert _trace(_matmul_schedule(rows=4, vector=8)) == _trace(
        _matmul_schedule(rows=4, cols=16, vector=8))


@pytest.mark.parametrize("architecture", ARCHITECTURES, ids=lambda a: a.march)
def test_kernels_build_for_each_architecture_and_run_where_this_cpu_can(architecture, tmp_path):
    require_cc()
    march, register = architecture.march, architecture.register
    toolchain = find_toolchain(march=march)
    isa = host.compiler_isa(toolchain)
    schedules = {"matmul": _matmul_schedule(vector=isa.float32_lanes),
                 "bias_gelu": _gelu_schedule(isa.float32_lanes)}
    for kernel, schedule in schedules.items():
        assembly = _assembly(toolchain, render([schedule]).source, tmp_path)
        assert f"%{register}" in assembly, f"{kernel} for -march={march} uses no {register}"
        if register == "ymm":
            assert "%zmm" not in assembly, f"{kernel} for -march={march} uses zmm registers"
        if kernel == "matmul":
            assert _fma_registers(assembly) == {register}

    if not host.runs_here(isa):
        missing = ", ".join(sorted(isa.cpu_flags - host.cpu_flags()))
        warnings.warn(f"-march={march} kernels compiled but not run: this CPU lacks {missing}",
                      stacklevel=2)
        assert isa.name == "avx512", (f"-march={march} kernels not run: this CPU lacks "
                                      f"{missing}; every supported machine runs AVX2 code")
        return
    unit = render(schedules.values())
    library = LibraryCache(tmp_path / "cache").load(unit.source, unit.declarations, toolchain)
    kernels = {kernel.name: CompiledKernel(kernel, unit.source, library)
               for kernel in unit.kernels}
    rng = np.random.default_rng(isa.float32_lanes)
    m, n, k = MATMUL_SIZES
    a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
    np.testing.assert_allclose(kernels["matmul"](A=a, B=b), a @ b, rtol=1e-5, atol=1e-5)
    x = rng.uniform(-3, 3, (37, FEATURES)).astype(np.float32)
    bias = rng.uniform(-1, 1, FEATURES).astype(np.float32)
    np.testing.assert_allclose(kernels["bias_gelu"](X=x, bias=bias), reference_gelu(x + bias),
                               rtol=1e-5, atol=1e-6)
