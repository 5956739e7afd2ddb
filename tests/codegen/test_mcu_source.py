"""What the microcontroller renderer writes: constant sizes, const inputs, int32_t loop
counters, static scratch instead of the heap, unrolled loops written out, the ACLE header
only for DSP cores, libm's only for float kernels, and one translation unit for several
kernels."""

import re
import subprocess

import numpy as np
import pytest

import quiltc as qc
from quiltc.codegen.mcu import render_mcu, render_mcu_unit
from quiltc.driver.schedule import Schedule
from quiltc.ir import interp
from quiltc.recipes import mcu as kernels
from quiltc.recipes import mcu_bitserial

from support.helpers import mcu_host_build, require_cc


def smlad_conv():
    return kernels.conv_int8(kernels.ConvShape(5, 5, 3, 4, 3, 3, 1, 1), "int8", (-128, 127),
                             "smlad")


def test_sizes_must_be_constants():
    n = qc.var("n", 1, 8)
    x = qc.placeholder((n,), "int32", "x")
    kernel = qc.lower(qc.compute((n,), lambda i: x[i] + 1, "y"))
    with pytest.raises(qc.QuiltError, match="symbolic sizes or ragged dims, which the mcu "
                                            "target does not take"):
        render_mcu(kernel)


def test_inputs_are_const_and_scratch_is_static():
    source = render_mcu(smlad_conv().kernel)
    assert "const int8_t* restrict x," in source
    assert "const int32_t* restrict weight," in source
    assert re.search(r"\n    int8_t\* restrict conv\)", source)
    assert "\nstatic int8_t conv_conv_padded[147];\n" in source
    assert "int32_t conv_columns[14];" in source
    assert "malloc" not in source and "int64_t " not in source.replace("(int64_t)", "")
    assert re.search(r"for \(int32_t oy_\d = 0; oy_\d < 5; \+\+oy_\d\)", source)


def test_the_acle_header_is_included_only_for_dsp_cores():
    source = render_mcu(smlad_conv().kernel)
    assert "#if defined(__ARM_FEATURE_DSP)\n#include <arm_acle.h>\n#endif" in source
    assert "__smlad((uint32_t)a, (uint32_t)b, (uint32_t)acc)" in source
    # The accumulator feeds the instruction instead of a separate add.
    # Two output channels a step (the register block on this 5-pixel row).
    assert re.search(r"conv_acc\[1\] = quiltc_smlad\(conv_columns\[t0\], "
                     r"weight\[14 \+ t0 \+ \(28 \* co_\d_o\)\], conv_acc\[1\]\);", source)


def test_unrolled_loops_are_written_out_with_constant_indices():
    sch = mcu_bitserial.bitserial_conv(kernels.ConvShape(3, 3, 8, 2, 1, 1), 3, 16, (0, 7))
    source = render_mcu(sch.kernel)
    for plane in range(3):
        assert f"/* k = {plane} */" in source
    assert "for (int32_t k =" not in source
    # The planes' entries meet in Horner's form: (row0 << 1) + row1, doubled, + row2.
    assert re.search(r"\(\(int32_t\)quiltc_lut_row0\[[^]]*\]\]\) << \(uint32_t\)1\)\) \+ "
                     r"\(uint32_t\)\(\(int32_t\)quiltc_lut_row1\[", source)


def test_one_unit_holds_several_kernels_and_each_helper_once():
    first, second = smlad_conv(), kernels.dense_int8(10, 3, "int8", (-128, 127), "dense")
    unit = render_mcu_unit([(first.kernel, str(first.trace)), (second.kernel, "")])
    assert unit.count("int32_t quiltc_requantize(") == 1
    assert unit.count("#include <stdint.h>") == 1
    assert "void conv(" in unit and "void dense(" in unit
    require_cc()
    result = subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-c", "-x", "c",
                             "-o", "/dev/null", "-"], input=unit, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_rendered_kernel_computes_what_the_interpreter_does():
    sch = kernels.max_pool(6, 4, 3, 2, "int8")
    fn = mcu_host_build(sch)
    x = np.random.default_rng(5).integers(-128, 128, (6, 4, 3)).astype(np.int8)
    np.testing.assert_array_equal(fn(x=x), interp.run(sch.kernel, x=x)["max_pool"])


def test_a_float_kernel_includes_libm_and_an_integer_kernel_does_not(tmp_path):
    # A min over rows starts at INFINITY and takes fabsf: both from <math.h>, which the
    # preamble had left out (host gcc: INFINITY undeclared, fabsf implicitly declared).
    x = qc.placeholder((5, 7), "float32", "x")
    k = qc.reduce_axis(7, "k")
    smallest = qc.compute((5,), lambda i: qc.min(qc.abs(x[i, k]) * 2.0, axis=k), "smallest")
    fn = mcu_host_build(qc.Schedule(smallest))
    source = fn.source
    assert "#include <math.h>" in source and "INFINITY" in source and "fabsf(" in source
    assert "math.h" not in render_mcu(smlad_conv().kernel)
    path = tmp_path / "kernel.c"
    path.write_text(source)
    subprocess.run(["gcc", "-std=c99", "-c", "-Werror=implicit-function-declaration", str(path),
                    "-o", str(tmp_path / "kernel.o")], check=True)
    values = np.random.default_rng(2).standard_normal((5, 7), dtype=np.float32)
    got = fn(x=values)
    np.testing.assert_array_equal(got, (np.abs(values) * np.float32(2)).min(axis=1))


def test_a_constant_table_read_at_constant_offsets_becomes_immediates():
    sch = mcu_bitserial.bitserial_conv(kernels.ConvShape(3, 3, 8, 2, 1, 1), 2, 16, (0, 3),
                                 window_unrolled=True)
    indices = np.array([[[[5, 11]]]], np.uint8)
    source = render_mcu(sch.kernel, constants={"index": indices})
    assert "(void)index;" in source and "index[" not in source
    assert "quiltc_lut_row0[(int32_t)5]" in source and "quiltc_lut_row0[(int32_t)11]" in source
    # Without the constants the same kernel reads the table.
    assert "index[" in render_mcu(sch.kernel)


def test_constants_must_name_a_parameter():
    sch = mcu_bitserial.bitserial_conv(kernels.ConvShape(3, 3, 8, 2, 1, 1), 2, 16, (0, 3))
    with pytest.raises(qc.QuiltError, match=r"constants \['weights'\] name no parameter of "
                                            r"kernel conv; its parameters are \['x', 'index'"):
        render_mcu(sch.kernel, constants={"weights": np.zeros(2)})


def test_a_written_out_loop_that_declares_storage_gives_each_iteration_a_block():
    # Two written-out iterations each declaring the same local accumulator must not
    # collide in one C scope.
    x = qc.placeholder((2, 4, 3), "int32", "x")
    r = qc.reduce_axis(3, "r")
    out = qc.compute((2, 4), lambda i, j: qc.sum(x[i, j, r], axis=r), "out")
    sch = Schedule(out, "scoped")
    i, j, _ = sch.loops(out)
    sch.cache_write(out, "local", at=i)
    sch.unroll(i)
    fn = mcu_host_build(sch)
    assert "/* i = 0 */ {" in fn.source and "/* i = 1 */ {" in fn.source
    values = np.arange(24, dtype=np.int32).reshape(2, 4, 3)
    got = fn(x=values)
    np.testing.assert_array_equal(got, values.sum(axis=2))
