"""stream: a SIMD loop whose stores go past the caches computes what the plain loop did,
row starts off a line boundary and row lengths off a whole line included, and loops
whose stores cannot be streamed are refused."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc import recipes
from quiltc.codegen import stream as c_stream
from quiltc.codegen.c import render_c
from quiltc.codegen.mcu import render_mcu

from support import helpers
from support.tiers import examples

DTYPES = ("float32", "float64", "int8", "int32")


def _affine(rows, cols, dtype):
    """B = A * 3 + 1 over a (rows, cols) array of `dtype`."""
    A = qc.placeholder((rows, cols), dtype, "A")
    return qc.compute((rows, cols), lambda i, j: A[i, j] * 3 + 1, "B")


def _streamed(rows, cols, dtype="float32"):
    sch = qc.Schedule(_affine(rows, cols, dtype))
    sch.parallel("i")
    sch.vectorize("j")
    sch.stream("j")
    return sch


def _arrays(seed, shape, dtype):
    rng = np.random.default_rng(seed)
    A = rng.integers(-20, 20, shape).astype(dtype)
    return {"A": A}, {"B": (A * np.array(3, dtype) + np.array(1, dtype)).astype(dtype)}


@settings(max_examples=examples(15), deadline=None)
@given(rows=st.integers(1, 9), cols=st.integers(1, 70), symbolic=st.booleans(),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_streamed_rows_match_numpy(rows, cols, symbolic, dtype, seed):
    shape = (qc.var("M", 1, 9), qc.var("N", 1, 70)) if symbolic else (rows, cols)
    sch = _streamed(*shape, dtype)
    inputs, reference = _arrays(seed, (rows, cols), dtype)
    with helpers.stream_every_loop():
        source = render_c(sch.kernel)
        assert "quiltc_stream_line(quiltc_row + quiltc_line_start, quiltc_line);" in source
        assert "#pragma omp for nowait" in source and "quiltc_stream_fence();" in source
        helpers.check_schedule(sch, inputs, reference)


def test_an_output_past_the_threshold_streams_and_a_smaller_one_does_not():
    large, small = _streamed(1024, 1030), _streamed(8, 40)
    assert c_stream.STREAM_MIN_BYTES == 4 << 20  # 1024 x 1030 floats lie past it
    assert "quiltc_stream_line(quiltc_row" in render_c(large.kernel)
    # a smaller output is written as by a plain SIMD loop, with no fences
    assert "quiltc_stream" not in render_c(small.kernel)
    assert "#pragma omp parallel for" in render_c(small.kernel)
    inputs, reference = _arrays(7, (1024, 1030), "float32")
    helpers.check_schedule(large, inputs, reference)


def test_a_symbolic_output_tests_its_size_when_called():
    sch = _streamed(qc.var("M", 1, 4096), qc.var("N", 1, 1030))
    assert "if (4 * M * N >= 4194304) {" in render_c(sch.kernel)
    fn = qc.build(sch)
    for shape in ((3, 17), (1100, 1030)):
        inputs, reference = _arrays(shape[0], shape, "float32")
        np.testing.assert_array_equal(fn(**inputs), reference["B"])


def test_other_targets_store_a_stream_loop_plainly():
    source = render_mcu(_streamed(4, 40).kernel)
    assert "quiltc_stream" not in source and "for (int32_t j = 0; j < 40; ++j)" in source


def test_a_loop_that_is_not_simd_is_refused():
    sch = qc.Schedule(_affine(4, 40, "float32"))
    with pytest.raises(qc.ScheduleError, match="the loop is serial, not a SIMD loop") as caught:
        sch.stream("j")
    assert "Vectorize loop j first" in str(caught.value)


def test_a_reduction_is_refused():
    A = qc.placeholder((4, 40), "float32", "A")
    k = qc.reduce_axis(40, "k")
    total = qc.compute((4,), lambda i: qc.sum(A[i, k], axis=k), "total")
    sch = qc.Schedule(total)
    sch.decompose(total, "k")
    sch.vectorize("k")
    with pytest.raises(qc.ScheduleError, match="its body is a Reduce, not one store"):
        sch.stream("k")


def test_a_local_buffer_is_refused():
    A = qc.placeholder((4, 40), "float32", "A")
    doubled = qc.compute((4, 40), lambda i, j: A[i, j] * 2, "doubled")
    out = qc.compute((4, 40), lambda i, j: doubled[i, j] + 1, "out")
    sch = qc.Schedule(out)
    inner = sch.loops(doubled)[-1]
    sch.vectorize(inner)
    with pytest.raises(qc.ScheduleError,
                       match="it stores doubled, which is not an output of the kernel"):
        sch.stream(inner)


def test_elements_that_are_not_consecutive_are_refused():
    sch = qc.Schedule(_affine(4, 40, "float32"))
    sch.reorder("j", "i")
    sch.vectorize("i")
    with pytest.raises(qc.ScheduleError, match="iteration i stores the element 40[*]i past "
                                               "the first one, not i past it"):
        sch.stream("i")


def test_a_loop_reading_the_output_it_stores_is_refused():
    x, (row_max, exps, row_sum), out = recipes.cpu.softmax_program(8, 40)
    sch = qc.Schedule(out)
    sch.share_storage(exps, out)
    inner = sch.loops(out)[-1]
    sch.vectorize(inner)
    with pytest.raises(qc.ScheduleError, match="it reads softmax, the output it stores, so "
                                               "its lines are in cache already"):
        sch.stream(inner)


@pytest.mark.parametrize("later", ["pad_loop", "reorder"])
def test_a_stream_loop_that_a_later_step_changed_is_written_as_a_plain_simd_loop(later):
    # pad_loop puts a guard around the store, reorder puts the row loop inside: the
    # stream loop's body is no longer one store (fuzz seed 7770001, program 1019)
    sch = qc.Schedule(_affine(6, 37, "float32"))
    sch.vectorize("j")
    sch.stream("j")
    if later == "pad_loop":
        sch.pad_loop("j", 4)
    else:
        sch.reorder("j", "i")
    inputs, reference = _arrays(11, (6, 37), "float32")
    with helpers.stream_every_loop():
        assert "quiltc_stream" not in render_c(sch.kernel)
        helpers.check_schedule(sch, inputs, reference)
