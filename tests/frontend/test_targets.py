"""The build driver: one target table, several kernels in one library, the Cortex-M
renderer built for the host, and each target's own limits."""

import numpy as np
import pytest

import quiltc as qc
from quiltc.driver.build import build_unit
from quiltc.driver.targets import TARGETS, find_target

from support import programs
from support.helpers import require_cc


def test_the_table_names_every_target_with_its_renderer_and_limits():
    assert set(TARGETS) == {"c", "cuda", "cuda-emu", "mcu"}
    assert TARGETS["cuda"].limits.threads_per_block == 1024
    assert TARGETS["cuda-emu"].limits.shared_memory_bytes == 48 * 1024
    assert TARGETS["c"].limits.shared_memory_bytes is None
    assert TARGETS["mcu"].renderer.target == "mcu"


def test_an_unknown_target_names_the_table():
    with pytest.raises(qc.QuiltError, match=r"target 'opencl' is not supported; the supported "
                       r"targets are 'c', 'cuda', 'cuda-emu', 'mcu'"):
        qc.build(qc.Schedule(programs.scale(4, 4)), target="opencl")


def test_the_shared_memory_limit_comes_from_the_call_then_the_environment(monkeypatch):
    monkeypatch.setenv("QUILTC_SHARED_MEMORY_LIMIT", str(96 * 1024))
    assert find_target("cuda").limits.shared_memory_bytes == 96 * 1024
    assert find_target("cuda", shared_memory_limit=1024).limits.shared_memory_bytes == 1024
    assert find_target("c").limits.shared_memory_bytes is None


def _two_kernels():
    scale = qc.Schedule(programs.scale(5, 7), name="scale")
    _, _, c = qc.recipes.matmul_program(6, 5, 4)
    matmul = qc.Schedule(c, name="matmul")
    return scale, matmul


def test_a_unit_holds_several_kernels_in_one_library():
    require_cc()
    unit = qc.build(list(_two_kernels()))
    assert list(unit) == ["scale", "matmul"]
    assert unit.source.count("#include <math.h>") == 1
    assert "void scale(" in unit.source and "void matmul(" in unit.source
    assert unit.scale.library_path == unit["matmul"].library_path
    arrays, reference = programs.scale_arrays(1, 5, 7)
    np.testing.assert_allclose(unit.scale(**arrays), reference["B"], rtol=1e-6)
    a = np.arange(24, dtype=np.float32).reshape(6, 4)
    b = np.arange(20, dtype=np.float32).reshape(4, 5)
    np.testing.assert_allclose(unit.matmul(A=a, B=b), a @ b, rtol=1e-6)
    with pytest.raises(qc.QuiltError, match=r"the unit has no kernel 'softmax'; its kernels are "
                       r"scale, matmul"):
        unit["softmax"]


def test_kernels_of_one_unit_need_distinct_names():
    scale, matmul = _two_kernels()
    with pytest.raises(qc.QuiltError, match=r"kernels in one unit need distinct names; scale "
                       r"appears more than once"):
        build_unit([scale, scale])
    with pytest.raises(qc.QuiltError, match=r"name= renames one kernel"):
        qc.build([scale, matmul], name="both")


def test_the_mcu_target_builds_its_c_for_the_host():
    require_cc()
    sch = qc.Schedule(programs.scale(5, 7), name="scale_mcu")
    fn = qc.build(sch, target="mcu")
    assert "int32_t" in fn.source and "#pragma omp" not in fn.source
    arrays, reference = programs.scale_arrays(2, 5, 7)
    np.testing.assert_allclose(fn(**arrays), reference["B"], rtol=1e-6)


def test_the_mcu_target_refuses_symbolic_sizes_and_buffers_over_the_boards_ram():
    sch = qc.Schedule(programs.scale(qc.var("M", 1, 64), 7))
    with pytest.raises(qc.QuiltError, match=r"symbolic sizes or ragged dims, which the mcu "
                       r"target does not take"):
        qc.build(sch, target="mcu")
    x = qc.placeholder((2048, 1024), "float32", "X")
    doubled = qc.compute((2048, 1024), lambda i, j: x[i, j] * np.float32(2.0), "doubled")
    y = qc.compute((2048, 1024), lambda i, j: doubled[i, j] + np.float32(1.0), "Y")
    with pytest.raises(qc.ScheduleError, match=r"its static buffers need 8388608 bytes, over the "
                       r"\d+ bytes of RAM of the board"):
        qc.build(qc.Schedule(y), target="mcu")
