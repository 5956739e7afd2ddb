"""split_op: ragged and dense loops split into whole tiles and a remainder, against
per-sequence numpy references in the interpreter and compiled C, and its refusals."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.ir.walk import find_all

from support import helpers, ragged_programs
from support.ragged_programs import MAX_LENGTH, lengths_strategy
from support.tiers import examples


def _loop(sch, var):
    [loop] = [n for n in find_all(sch.kernel.body, lambda n: isinstance(n, ir.For)) if n.var == var]
    return loop


@given(lengths=lengths_strategy, factor=st.integers(1, 5),
       tensors=ragged_programs.pipeline_tensors_strategy,
       seed=st.integers(0, 2**16))
def test_split_ragged_loops_match_each_sequence(lengths, factor, tensors, seed):
    sch = qc.Schedule(ragged_programs.pipeline())
    for tensor in sorted(tensors):
        length_loop = ragged_programs.length_loop(sch, tensor)
        tile, element, remainder = sch.split_op(length_loop, factor)
        assert _loop(sch, element).extent == factor
        assert not find_all(_loop(sch, element), lambda n: isinstance(n, ir.If))
        if factor > 1:
            assert not find_all(_loop(sch, remainder), lambda n: isinstance(n, ir.If))
    rows, batch = ragged_programs.ragged_batch(lengths, seed)
    ragged_programs.check_ragged(sch, {"X": batch}, ragged_programs.pipeline_reference(rows))


@settings(max_examples=examples(15))
@given(lengths=lengths_strategy, factor=st.sampled_from([2, 4, 8]), seed=st.integers(0, 2**16))
def test_the_whole_tiles_of_a_ragged_row_vectorize(lengths, factor, seed):
    batch = qc.var("B", 1, 8)
    length = qc.ragged_dim("L", batch, MAX_LENGTH)
    x = qc.placeholder((batch, length), "float32", "X")
    sch = qc.Schedule(qc.compute((batch, length),
                                 lambda b, l: x[b, l] * np.float32(2.0) + np.float32(1.0), "Y"))
    _, element, _ = sch.split_op("l", factor)
    sch.vectorize(element)
    rows, values = ragged_programs.ragged_batch(lengths, seed, ())
    reference = {"Y": [r * np.float32(2.0) + np.float32(1.0) for r in rows]}
    fn = ragged_programs.check_ragged(sch, {"X": values}, reference)
    assert "#pragma omp simd" in fn.source


@given(rows=st.sampled_from([1, 2, 5]), columns=st.sampled_from([1, 2, 3, 7, 8, 11]),
       factor=st.integers(1, 6), symbolic=st.booleans(), seed=st.integers(0, 2**16))
def test_split_dense_loops_match_numpy(rows, columns, factor, symbolic, seed):
    size = qc.var("N", 1, 16) if symbolic else columns
    a = qc.placeholder((rows, size), "float32", "A")
    sch = qc.Schedule(qc.compute((rows, size), lambda i, j: a[i, j] * np.float32(3.0), "C"))
    tile, element, remainder = sch.split_op("j", factor)
    # The tiles are provably whole, for a symbolic extent too: no check remains, and parts
    # that provably run no iteration are left out.
    has_tiles = symbolic or columns >= factor
    has_rest = factor > 1 and (symbolic or columns % factor != 0)
    assert not find_all(sch.kernel.body, lambda n: isinstance(n, ir.If))
    assert [loop.var for loop in find_all(sch.kernel.body, lambda n: isinstance(n, ir.For))] == (
        [qc.ir.symbol("i")] + [tile, element] * has_tiles + [remainder] * has_rest)
    a_values = helpers.random_array(np.random.default_rng(seed), (rows, columns))
    helpers.check_schedule(sch, {"A": a_values}, {"C": a_values * np.float32(3.0)})


def test_split_op_extents_and_trace():
    sch = qc.Schedule(ragged_programs.pipeline())
    tile, element, remainder = sch.split_op("l", 4)
    lengths = qc.ir.index.table("L_len")(qc.ir.symbol("b"))
    assert _loop(sch, tile).extent == qc.ir.index.floordiv(lengths, 4)
    assert _loop(sch, remainder).extent == lengths - 4 * qc.ir.index.floordiv(lengths, 4)
    assert "l_o, l_i, l_r = sch.split_op('l', 4)" in str(sch.trace)


@pytest.mark.parametrize("factor", [0, -2, 2.5, True])
def test_split_op_rejects_a_factor_that_is_not_a_positive_integer(factor):
    sch = qc.Schedule(ragged_programs.pipeline())
    with pytest.raises(qc.ScheduleError, match=r"split_op: .*split factor must be a positive"):
        sch.split_op("l", factor)


def test_split_op_refuses_a_loop_that_allocates_inside():
    a = qc.placeholder((4, 6), "float32", "A")
    doubled = qc.compute((4, 6), lambda i, j: a[i, j] * np.float32(2.0), "T")
    sch = qc.Schedule(qc.compute((4, 6), lambda i, j: doubled[i, j] + np.float32(1.0), "C"))
    sch.compute_at("T", sch.loops("C")[0])
    sch.cache_write("C", "local", sch.loops("C")[0])
    outer = sch.loops("C")[0]
    with pytest.raises(qc.ScheduleError, match=r"split_op: .*allocates .* inside"):
        sch.split_op(outer, 4)


@settings(max_examples=examples(10))
@given(lengths=lengths_strategy, seed=st.integers(0, 2**16))
def test_the_remainder_of_a_split_op_splits_again(lengths, seed):
    sch = qc.Schedule(ragged_programs.pipeline())
    _, _, remainder = sch.split_op(ragged_programs.length_loop(sch, "U"), 4)
    sch.split_op(remainder, 2)
    assert not find_all(sch.kernel.body, lambda n: isinstance(n, ir.If))
    rows, batch = ragged_programs.ragged_batch(lengths, seed)
    ragged_programs.check_ragged(sch, {"X": batch}, ragged_programs.pipeline_reference(rows))
