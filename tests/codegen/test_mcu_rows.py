"""Row pointers in microcontroller C: a table read at a data-dependent row goes through a
pointer declared where the row is fixed, never above a guard or a write of what the row
index reads, and the result is what the interpreter computes."""

import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.codegen.mcu import TABLE_KERNEL_ATTRIBUTE, render_mcu
from quiltc.driver.schedule import Schedule
from quiltc.ir import interp
from quiltc.ir.verify import verify
from quiltc.recipes import mcu as kernels
from quiltc.recipes import mcu_bitserial

from support.helpers import mcu_host_build
from support.tiers import examples


def _tables(rows, columns):
    p = qc.placeholder((rows,), "uint8", "p")
    idx = qc.placeholder((columns,), "uint8", "idx", value_range=(0, columns - 1))
    lut = qc.placeholder((256, columns), "int16", "lut")
    return p, idx, lut


def _host_run(sch, **arrays):
    """The kernel rendered as microcontroller C, built on the host and run, checked equal
    to the interpreter; returns (source, result)."""
    want = interp.run(sch.kernel, **arrays)[sch.kernel.outputs[0]]
    fn = mcu_host_build(sch)
    got = fn(**arrays)
    np.testing.assert_array_equal(got, want)
    return fn.source, got


def _arrays(rng, rows, columns):
    return {"p": rng.integers(0, 256, rows).astype(np.uint8),
            "idx": rng.permutation(columns).astype(np.uint8),
            "lut": rng.integers(-30000, 30000, (256, columns)).astype(np.int16)}


@settings(max_examples=examples(6))
@given(rows=st.integers(1, 6), columns=st.integers(2, 40), seed=st.integers(0, 2**32 - 1))
def test_a_row_fixed_by_the_outer_loop_is_read_through_a_pointer(rows, columns, seed):
    p, idx, lut = _tables(rows, columns)
    out = qc.compute((rows, columns), lambda i, j: qc.cast(lut[p[i], idx[j]], "int32"), "out")
    sch = Schedule(out, "rows")
    arrays = _arrays(np.random.default_rng(seed), rows, columns)
    source, got = _host_run(sch, **arrays)
    np.testing.assert_array_equal(got, arrays["lut"][arrays["p"][:, None], arrays["idx"]])
    declaration = f"const int16_t *quiltc_lut_row0 = &lut[{columns} * (int32_t)p[i]];"
    loop_head = "for (int32_t j = 0;"
    assert declaration in source and source.index(declaration) < source.index(loop_head)
    assert "quiltc_lut_row0[(int32_t)idx[j]]" in source


def test_a_guarded_read_keeps_its_full_index():
    p, idx, lut = _tables(4, 8)
    out = qc.compute((4, 8), lambda i, j: qc.where(
        j < 5, qc.cast(lut[p[i], idx[j]], "int32"), qc.cast(0, "int32")), "out")
    sch = Schedule(out, "guarded")
    arrays = _arrays(np.random.default_rng(3), 4, 8)
    source, got = _host_run(sch, **arrays)
    assert "quiltc_lut_row" not in source
    assert "lut[(int32_t)idx[j] + (8 * (int32_t)p[i])]" in source
    want = np.where(np.arange(8) < 5, arrays["lut"][arrays["p"][:, None], arrays["idx"]], 0)
    np.testing.assert_array_equal(got, want)


def test_a_row_index_written_in_the_loop_body_is_read_after_the_write():
    p, idx, lut = _tables(4, 8)
    flipped = qc.compute((4,), lambda i: p[i] | 1, "flipped")
    out = qc.compute((4, 8), lambda i, j: qc.cast(lut[flipped[i], idx[j]], "int32"), "out")
    sch = Schedule(out, "written")
    sch.compute_at(flipped, sch.loops(out)[0])
    arrays = _arrays(np.random.default_rng(4), 4, 8)
    source, got = _host_run(sch, **arrays)
    declaration = source.index("const int16_t *quiltc_lut_row0")
    assert source.index("flipped[") < declaration
    assert source.index("for (int32_t j = 0;") < declaration
    np.testing.assert_array_equal(got, arrays["lut"][arrays["p"][:, None] | 1, arrays["idx"]])


def test_the_bitserial_conv_reads_plane_rows_through_pointers_without_a_mask():
    sch = mcu_bitserial.bitserial_conv(kernels.ConvShape(4, 4, 16, 8, 3, 3, 1, 1), 3, 48, (0, 7))
    source = render_mcu(verify(sch.kernel), str(sch.trace))
    for plane in range(3):
        assert f"const int16_t *quiltc_lut_row{plane} = &lut[48 * (int32_t)" in source
        # The index byte is the column itself: no mask or clamp between them.
        assert re.search(rf"quiltc_lut_row{plane}\[\(int32_t\)index\[[^\]]*\]\]", source)


def test_a_row_read_within_one_written_out_iteration_is_declared_there():
    # Row p[b, i] of the table for every b, the i loop written out: each row pointer
    # belongs to one iteration of i and is declared at its head, not at the head of the b
    # loop's body, where all of them would be live at once.
    p = qc.placeholder((4, 3), "uint8", "p")
    _, idx, lut = _tables(1, 6)
    out = qc.compute((4, 3, 6), lambda b, i, j: qc.cast(lut[p[b, i], idx[j]], "int32"), "out")
    sch = Schedule(out, "written_rows")
    _, i, j = sch.loops(out)
    sch.unroll(i)
    sch.unroll(j)
    rng = np.random.default_rng(5)
    arrays = {**_arrays(rng, 1, 6), "p": rng.integers(0, 256, (4, 3)).astype(np.uint8)}
    source, got = _host_run(sch, **arrays)
    np.testing.assert_array_equal(got, arrays["lut"][arrays["p"][:, :, None], arrays["idx"]])
    for row in range(3):
        declaration = source.index(f"const int16_t *quiltc_lut_row{row} = &lut[6 * (int32_t)p[")
        assert source.index(f"/* i = {row} */") < declaration
        assert row == 0 or source.index(f"quiltc_lut_row{row - 1}[") < declaration


def test_a_row_shared_by_written_out_iterations_is_declared_once_above_them():
    p, idx, lut = _tables(3, 6)
    out = qc.compute((3, 6), lambda i, j: qc.cast(lut[p[i], idx[j]], "int32"), "out")
    sch = Schedule(out, "shared_rows")
    sch.unroll(sch.loops(out)[1])
    arrays = _arrays(np.random.default_rng(6), 3, 6)
    source, _ = _host_run(sch, **arrays)
    assert source.count("const int16_t *quiltc_lut_row") == 1
    assert source.index("const int16_t *quiltc_lut_row0") < source.index("/* j = 0 */")


def test_only_a_kernel_that_reads_table_rows_turns_gccs_reassociation_off():
    shape = kernels.ConvShape(4, 4, 16, 8, 3, 3, 1, 1)
    bitserial = mcu_bitserial.bitserial_conv(shape, 2, 48, (0, 3))
    int8 = kernels.conv_int8(shape, "uint8", (0, 255), "smlad")
    assert TABLE_KERNEL_ATTRIBUTE + "void" in render_mcu(verify(bitserial.kernel))
    assert "optimize(" not in render_mcu(verify(int8.kernel))
