"""store_row_pointers: a buffer read only as rows of a table holds the rows' addresses in
microcontroller C, computes what the interpreter computes, and is refused, with what
would work, for a buffer read any other way."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.codegen.c import render_c
from quiltc.driver.schedule import Schedule
from quiltc.ir import interp

from support.helpers import mcu_host_build
from support.tiers import examples


def _row_lookup(rows, columns, looped_rows=True):
    """out[i, j] = lut[picked[i], idx[j]] with picked[i] = p[i] | 4 an intermediate."""
    p = qc.placeholder((rows,), "uint8", "p")
    idx = qc.placeholder((columns,), "uint8", "idx", value_range=(0, columns - 1))
    lut = qc.placeholder((256, columns), "int16", "lut")
    picked = qc.compute((rows,), lambda i: p[i] | 4, "picked")
    out = qc.compute((rows, columns),
                     lambda i, j: qc.cast(lut[picked[i], idx[j]], "int32"), "out")
    sch = Schedule(out, "rows")
    if not looped_rows:
        sch.unroll(sch.loops(out)[0])
    return sch, picked, lut


def _arrays(rng, rows, columns):
    return {"p": rng.integers(0, 256, rows).astype(np.uint8),
            "idx": rng.permutation(columns).astype(np.uint8),
            "lut": rng.integers(-30000, 30000, (256, columns)).astype(np.int16)}


@settings(max_examples=examples(6))
@given(rows=st.integers(1, 6), columns=st.integers(2, 24), looped=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_stored_row_pointers_compute_what_the_interpreter_does(rows, columns, looped, seed):
    sch, picked, lut = _row_lookup(rows, columns, looped)
    sch.store_row_pointers(picked, lut)
    arrays = _arrays(np.random.default_rng(seed), rows, columns)
    want = interp.run(sch.kernel, **arrays)["out"]
    np.testing.assert_array_equal(
        want, arrays["lut"][(arrays["p"] | 4)[:, None], arrays["idx"]])
    fn = mcu_host_build(sch)
    source = fn.source
    np.testing.assert_array_equal(fn(**arrays), want)
    assert re.search(r"static const int16_t \*\w*picked\[" + str(rows) + r"\];", source)
    assert re.search(rf"picked\[i?\w*\] = &lut\[{columns} \* \(int32_t\)", source)
    # Each row pointer is the stored address itself: no multiply-add to find the row.
    assert re.search(r"const int16_t \*quiltc_lut_row0 = \w*picked\[", source)
    assert f"{columns} * (int32_t)" not in source.split("= &lut[", 1)[1].split("\n", 1)[1]


def test_a_folded_buffer_of_row_pointers_is_a_local_array():
    sch, picked, lut = _row_lookup(4, 6)
    row = sch.loops("out")[0]
    sch.compute_at(picked, row)
    sch.fold_storage(picked, row)
    sch.store_row_pointers(picked, lut)
    arrays = _arrays(np.random.default_rng(7), 4, 6)
    fn = mcu_host_build(sch)
    source = fn.source
    got = fn(**arrays)
    np.testing.assert_array_equal(got, arrays["lut"][(arrays["p"] | 4)[:, None], arrays["idx"]])
    assert "    const int16_t *picked[1];" in source


def test_the_mark_shows_in_the_ir_and_host_targets_store_the_values():
    sch, picked, lut = _row_lookup(3, 4)
    sch.store_row_pointers(picked, lut)
    assert "picked = alloc[3] uint8  # global, rows of lut" in str(sch.kernel)
    assert "sch.store_row_pointers('picked', 'lut')" in str(sch.trace)
    assert "uint8_t* restrict picked" in render_c(sch.kernel)


def test_a_buffer_read_other_than_as_a_row_is_refused():
    p = qc.placeholder((3,), "uint8", "p")
    lut = qc.placeholder((256, 4), "int16", "lut")
    picked = qc.compute((3,), lambda i: p[i] | 4, "picked")
    out = qc.compute((3, 4), lambda i, j: qc.cast(lut[picked[i], j], "int32")
                     + qc.cast(picked[i], "int32"), "out")
    sch = Schedule(out, "mixed")
    with pytest.raises(qc.ScheduleError, match=r"picked\[i_1\] reads picked other than as the "
                       r"row of a read of lut\. .*compute the other uses in a buffer"):
        sch.store_row_pointers(picked, lut)


@pytest.mark.parametrize("tensor, table, message", [
    ("p", "lut", "p is not an intermediate buffer of the kernel"),
    ("picked", "out", "out is not a table the kernel reads from its caller"),
    ("picked", "idx", r"idx is not a dense two-dim table \(shape \(4,\)\)"),
])
def test_only_an_intermediate_and_a_read_only_table_qualify(tensor, table, message):
    sch, _, _ = _row_lookup(3, 4)
    with pytest.raises(qc.ScheduleError, match=message):
        sch.store_row_pointers(tensor, table)


def test_a_buffer_is_marked_once():
    sch, picked, lut = _row_lookup(3, 4)
    sch.store_row_pointers(picked, lut)
    with pytest.raises(qc.ScheduleError, match="picked already holds rows of lut"):
        sch.store_row_pointers(picked, lut)


def test_a_buffer_accumulated_into_is_refused():
    p = qc.placeholder((3, 2), "uint8", "p")
    lut = qc.placeholder((256, 4), "int16", "lut")
    k = qc.reduce_axis(2, "k")
    summed = qc.compute((3,), lambda i: qc.sum(p[i, k], axis=k), "summed")
    out = qc.compute((3, 4), lambda i, j: qc.cast(lut[summed[i], j], "int32"), "out")
    sch = Schedule(out, "summed")
    with pytest.raises(qc.ScheduleError, match="summed is accumulated into, and a row's "
                       "address cannot be. Accumulate in another buffer"):
        sch.store_row_pointers(summed, lut)
