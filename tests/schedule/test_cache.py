"""cache_read and cache_write: property tests on split and register-blocked matmuls against
the interpreter, compiled C and numpy, where copies and barriers go, and the errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.schedule.nest import resolve_loop

from support import helpers, programs, ragged_programs
from support.tiers import examples

EXTENTS = st.sampled_from([1, 2, 3, 5, 7, 8])
FACTORS = st.sampled_from([1, 2, 3, 4, 5])


def blocked_loops(rows, inner, columns, symbolic=False, row_factor=4, column_factor=4):
    """A matmul with i and j split and reordered to (i_o, j_o, k, i_i, j_i), the loops of
    a register block; returns (schedule, i_o, j_o)."""
    sch = qc.Schedule(programs.matmul(rows, inner, columns, symbolic))
    i, j, k = sch.loops("C")
    i_outer, i_inner = sch.split(i, row_factor)
    j_outer, j_inner = sch.split(j, column_factor)
    sch.reorder(i_outer, j_outer, k, i_inner, j_inner)
    return sch, i_outer, j_outer


def register_blocked(rows, inner, columns, symbolic, row_factor, column_factor):
    """`blocked_loops` accumulating C in a local block at j_o; returns (schedule, cache)."""
    sch, _, j_outer = blocked_loops(rows, inner, columns, symbolic, row_factor, column_factor)
    return sch, sch.cache_write("C", "local", at=j_outer)


def _alloc(kernel, name):
    for stmt in qc.ir.walk.find_all(kernel.body, lambda n: isinstance(n, ir.Alloc)):
        if stmt.buffer.name == name:
            return stmt
    raise AssertionError(f"no allocation of {name}\n{kernel}")


@settings(max_examples=examples(30))
@given(rows=EXTENTS, inner=EXTENTS, columns=EXTENTS, symbolic=st.booleans(),
       row_factor=st.sampled_from([1, 2, 3, 4]), column_factor=st.sampled_from([1, 2, 5, 16]),
       read_caches=st.booleans(), seed=st.integers(0, 2**16))
def test_cache_write_local_accumulates_a_register_block_of_a_matmul(
        rows, inner, columns, symbolic, row_factor, column_factor, read_caches, seed):
    sch, local = register_blocked(rows, inner, columns, symbolic, row_factor, column_factor)
    assert local == "C_local"
    block = _alloc(sch.kernel, "C_local")
    assert block.scope == "local"
    if symbolic:
        assert block.buffer.shape == (row_factor, column_factor)
    else:
        assert block.buffer.shape == (min(row_factor, rows), min(column_factor, columns))
    # The accumulation keeps its initialisation; the copy-out runs after the k loop.
    statements = block.body.stmts
    assert isinstance(statements[0], ir.For) and statements[0].var.name == "k"
    assert "C_local[i_i, j_i] sum= " in repr(sch) and "# init when k == 0" in repr(sch)
    if read_caches:
        assert sch.cache_read("A", "local", at="k") == "A_local"
        assert sch.cache_read("B", "local", at="k") == "B_local"
    helpers.check_schedule(sch, *programs.matmul_arrays(seed, rows, inner, columns))


@settings(max_examples=examples(30))
@given(rows=EXTENTS, inner=EXTENTS, columns=EXTENTS, symbolic=st.booleans(), factor=FACTORS,
       tile=st.none() | st.tuples(FACTORS, FACTORS), seed=st.integers(0, 2**16))
def test_cache_read_local_of_both_operands_of_a_split_matmul(rows, inner, columns, symbolic,
                                                            factor, tile, seed):
    sch = qc.Schedule(programs.matmul(rows, inner, columns, symbolic))
    i, j, k = sch.loops("C")
    if tile is not None:
        i_outer, i_inner = sch.split(i, tile[0])
        j_outer, j_inner = sch.split(j, tile[1])
    k_outer, k_inner = sch.split(k, factor)
    if tile is not None:
        sch.reorder(i_outer, j_outer, k_outer, i_inner, j_inner, k_inner)
    assert sch.cache_read("A", "local", at=k_outer) == "A_local"
    assert sch.cache_read("B", "local", at=k_outer) == "B_local"
    row_block, column_block = tile if tile is not None else (1, 1)
    if not symbolic:
        row_block, column_block = min(row_block, rows), min(column_block, columns)
        factor = min(factor, inner)
    assert _alloc(sch.kernel, "A_local").buffer.shape == (row_block, factor)
    assert _alloc(sch.kernel, "B_local").buffer.shape == (factor, column_block)
    helpers.check_schedule(sch, *programs.matmul_arrays(seed, rows, inner, columns))


@given(rows=EXTENTS, inner=EXTENTS, columns=EXTENTS, symbolic_rows=st.booleans(),
       factor=FACTORS, seed=st.integers(0, 2**16))
def test_cache_read_shared_at_a_block_loop_puts_barriers_around_the_use(
        rows, inner, columns, symbolic_rows, factor, seed):
    sch = qc.Schedule(programs.matmul(programs.size("M", rows, symbolic_rows), inner, columns))
    block, _ = sch.split("i", factor)
    assert sch.cache_read("A", "shared", at=block) == "A_shared"
    _, block_loop = resolve_loop(sch.kernel, block, "test")
    alloc = block_loop.body
    assert isinstance(alloc, ir.Alloc) and alloc.scope == "shared"
    copy, first, use, last = alloc.body.stmts
    assert "A_shared[" in repr(copy) and "A[" in repr(copy)
    assert first == ir.Barrier() and last == ir.Barrier()
    assert "A_shared[" in repr(use) and "A[" not in repr(use)
    # The C target has no shared memory (the CUDA backend will); the interpreter runs it.
    helpers.check_schedule(sch, *programs.matmul_arrays(seed, rows, inner, columns),
                           compile_c=False)


@pytest.mark.parametrize("scope", ["local", "shared"])
def test_cache_write_of_an_elementwise_store_copies_the_tile_out(scope):
    sch = qc.Schedule(programs.scale(7, 5))
    i_outer, i_inner = sch.split("i", 3)
    j_outer, j_inner = sch.split("j", 2)
    sch.reorder(i_outer, j_outer, i_inner, j_inner)
    assert sch.cache_write("B", scope, at=j_outer) == f"B_{scope}"
    assert repr(sch).count("barrier()") == (2 if scope == "shared" else 0)
    helpers.check_schedule(sch, *programs.scale_arrays(4, 7, 5), compile_c=scope == "local")


def test_cache_names_are_made_unique():
    sch, _ = register_blocked(8, 4, 16, False, 4, 4)
    assert sch.cache_read("A", "local", at="k") == "A_local"
    assert sch.cache_read("A_local", "local", at="i_i") == "A_local_local"
    assert sch.cache_read("A", "local", at="j_o") == "A_local_1"
    helpers.check_schedule(sch, *programs.matmul_arrays(5, 8, 4, 16))


def test_cache_replays_from_its_trace():
    sch, _ = register_blocked(5, 3, 7, True, 2, 4)
    sch.cache_read("B", "local", at="k")
    replayed = sch.trace.replay(qc.Schedule(programs.matmul(5, 3, 7, symbolic=True)))
    assert replayed.kernel == sch.kernel


def test_cache_of_an_unknown_buffer_is_refused():
    sch = qc.Schedule(programs.matmul(4, 3, 5))
    with pytest.raises(qc.ScheduleError, match=r"cache_read: asked to use buffer 'Z', but the "
                       r"kernel has no buffer called 'Z'"):
        sch.cache_read("Z", "local", at="k")
    with pytest.raises(qc.ScheduleError, match=r"cache_write: .*no buffer called 'Z'"):
        sch.cache_write("Z", "local", at="k")


def test_cache_read_local_of_a_symbolic_region_asks_for_a_split_first():
    sch = qc.Schedule(programs.matmul(4, 3, 5, symbolic=True))
    with pytest.raises(qc.ScheduleError, match=r"cache_read: .*the region extent K of dimension 1 "
                       r"of A inside loop i is symbolic.*Split the loops inside it"):
        sch.cache_read("A", "local", at="i")


def test_cache_in_global_scope_is_refused():
    sch = qc.Schedule(programs.matmul(4, 3, 5))
    with pytest.raises(qc.ScheduleError, match=r"cache_read: asked to cache A in scope 'global', "
                       r"but a global cache would be another buffer in main memory.*Use one of "
                       r"'local', 'shared'"):
        sch.cache_read("A", "global", at="i")
    with pytest.raises(qc.ScheduleError, match=r"'registers' is not a memory scope"):
        sch.cache_write("C", "registers", at="i")


def test_cache_write_inside_a_reduction_loop_is_refused():
    sch, _, _ = blocked_loops(8, 4, 16)
    with pytest.raises(qc.ScheduleError, match=r"cache_write: .*the reduction into C runs over k "
                       r"outside loop i_i.*partial sums.*Cache at a loop outside the reduction "
                       r"loops, such as i_o, j_o"):
        sch.cache_write("C", "local", at="i_i")


def test_cache_read_at_a_loop_that_does_not_read_is_refused():
    sch = qc.Schedule(programs.matmul(4, 3, 5))
    with pytest.raises(qc.ScheduleError, match=r"nothing inside loop k reads C"):
        sch.cache_read("C", "local", at="k")


def stencil_program(columns):
    A = qc.placeholder((columns,), "float32", "A")
    P = qc.compute((columns,), lambda j: A[j] * 2.0, "P")
    return qc.compute((columns,), lambda j: P[j] + 1.0, "C")


def test_cache_at_a_loop_that_both_reads_and_writes_is_refused():
    sch = qc.Schedule(stencil_program(6))
    sch.compute_at("P", "j_1")
    with pytest.raises(qc.ScheduleError, match=r"loop j_1 also writes P, which the cache would "
                       r"hide"):
        sch.cache_read("P", "local", at="j_1")
    with pytest.raises(qc.ScheduleError, match=r"loop j_1 also reads P, which the cache would "
                       r"hide"):
        sch.cache_write("P", "local", at="j_1")


def test_cache_write_of_fused_writes_is_refused():
    sch, _, j_outer = blocked_loops(8, 4, 8)
    sch.fuse("i_i", "j_i")
    with pytest.raises(qc.ScheduleError, match=r"the writes inside loop j_o may not cover the "
                       r"region C\[4\*i_o:4\*i_o\+4, 4\*j_o:4\*j_o\+4\].*apply cache_write "
                       r"before fusing"):
        sch.cache_write("C", "local", at=j_outer)


def test_cache_write_takes_a_decomposed_initialisation_inside_the_loop_along():
    sch, _, j_outer = blocked_loops(7, 3, 6)
    sch.decompose("C", "k")
    sch.cache_write("C", "local", at=j_outer)
    text = repr(sch)
    assert "C_local[i_i_init, j_i_init] = 0.0" in text and "C_local[i_i, j_i] sum= " in text
    helpers.check_schedule(sch, *programs.matmul_arrays(6, 7, 3, 6))


def _split_sum_cached(rows, inner, columns, inner_factor):
    """The k loop split and its tiles outside the row of C cached at i, the sum
    decomposed before them: each row carries on from the sums of the earlier tiles."""
    sch = qc.Schedule(programs.matmul(rows, inner, columns))
    i, j, k = sch.loops("C")
    k_outer, k_inner = sch.split(k, inner_factor)
    sch.reorder(k_outer, i, j, k_inner)
    sch.decompose("C", k_outer)
    return sch, sch.cache_write("C", "local", at=i)


@settings(max_examples=examples(10), deadline=None)
@given(rows=EXTENTS, inner=EXTENTS, columns=st.sampled_from([2, 3, 5, 8]), inner_factor=FACTORS)
def test_cache_write_of_a_decomposed_sum_carries_on_from_the_partial_sums(
        rows, inner, columns, inner_factor):
    sch, _ = _split_sum_cached(rows, inner, columns, inner_factor)
    helpers.check_schedule(sch, *programs.matmul_arrays(inner_factor, rows, inner, columns))


def test_the_cache_of_a_decomposed_sum_is_loaded_before_it_accumulates():
    sch, cache = _split_sum_cached(8, 6, 5, 2)
    block = _alloc(sch.kernel, cache).body.stmts
    loads = qc.ir.walk.find_all(block[0], lambda n: isinstance(n, ir.Load))
    assert [load.buffer.name for load in loads] == ["C"]
    assert qc.ir.walk.find_all(block[1], lambda n: isinstance(n, ir.Reduce))
    assert qc.ir.walk.find_all(block[-1], lambda n: isinstance(n, ir.Store) and
                               n.buffer.name == "C")


def test_a_block_of_ragged_rows_caches_its_output_rows_in_local_memory():
    """cache_write at a block of 3 rows of a ragged batch: the writes' guard
    (row < L_len(b)) only leaves out elements past the end of a shorter row, so the local
    block copies out under that guard."""
    batch = qc.var("B", 1, 8)
    length = qc.ragged_dim("L", batch, 9)
    x = qc.placeholder((batch, length, 3), "float32", "X")
    doubled = qc.compute((batch, length, 3), lambda b, i, c: x[b, i, c] * np.float32(2), "Y")
    sch = qc.Schedule(doubled)
    block, _ = sch.split(sch.loops(doubled)[1], 3)
    sch.cache_write(doubled, "local", at=block)
    assert "Y_local = alloc[1, 3, 3] float32  # local" in qc.ir.render(sch.kernel)
    rows = [helpers.random_array(np.random.default_rng(n), (n, 3)) for n in (4, 0, 9, 1)]
    ragged_programs.check_ragged(sch, {"X": qc.RaggedArray.from_list(rows)},
                                 {"Y": [r * np.float32(2) for r in rows]})
