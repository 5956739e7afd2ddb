"""pad_local: a register-blocked matmul over a symbolic row count computes its edge tile in
full, unguarded inside the k loop, against numpy in the interpreter and compiled C; the
write-back keeps its guard; unsafe tiles are refused."""

import dataclasses

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc import recipes
from quiltc.ir import interp
from quiltc.ir import nodes as ir
from quiltc.ir.walk import rewrite
from quiltc.schedule.trace import Trace

from support import helpers, programs
from support.helpers import random_array, require_cc
from support.tiers import examples

GUARD = "if i_i + 8*i_o < M:"


def _matmul(rows=8, cols=32, vector=16, n=64, k=32, m=None):
    """The recipe's register-blocked matmul over M rows (symbolic unless `m` is given)."""
    rows_var = qc.var("M", 1, 2048) if m is None else m
    _, _, c = recipes.matmul_program(rows_var, n, k)
    return c, recipes.schedule_matmul(c, rows=rows, cols=cols, vector=vector)


def _operands(m, k=32, n=64, seed=0):
    rng = np.random.default_rng(seed)
    return random_array(rng, (m, k)), random_array(rng, (k, n))


def _check_c(fn, m, k=32, n=64, seed=0):
    a, b = _operands(m, k, n, seed)
    np.testing.assert_allclose(fn(A=a, B=b), a @ b, rtol=1e-5, atol=1e-5)


def _inner_statement(text):
    """The line of the printed kernel that accumulates into C_local inside the k loop."""
    return next(line for line in text.splitlines() if "C_local[i_i," in line)


def test_the_edge_tile_runs_unguarded_inside_the_k_loop():
    _, sch = _matmul()
    assert GUARD in repr(sch)
    sch.pad_local("C_local")
    text = repr(sch)
    assert GUARD not in text and "if i_i_init + 8*i_o < M:" not in text
    assert "A[Min(M - 1, i_i + 8*i_o), k]" in _inner_statement(text)
    # B's reads never move with the rows, so they are left alone.
    assert "B[k, j_i_i + 16*j_i_o + 32*j_o]" in _inner_statement(text)
    assert "if C_local_0 + 8*i_o < M:" in text
    assert str(sch.trace).splitlines()[-1] == "sch.pad_local('C_local')"


@pytest.mark.parametrize("m", [1, 7, 8, 9, 63])
def test_padded_matmul_matches_numpy(m):
    _, sch = _matmul()
    sch.pad_local("C_local")
    a, b = _operands(m, seed=m)
    np.testing.assert_allclose(interp.run(sch.kernel, A=a, B=b)["C"], a @ b,
                               rtol=1e-5, atol=1e-5)
    require_cc()
    _check_c(qc.build(sch), m, seed=m)


@settings(max_examples=examples(12), deadline=None)
@given(m=st.integers(1, 70), rows=st.sampled_from([2, 3, 4, 8]),
       cols=st.sampled_from([8, 16, 32]), vector=st.sampled_from([4, 8]),
       seed=st.integers(0, 2**16))
def test_padded_register_blocks_match_numpy_in_c(m, rows, cols, vector, seed):
    require_cc()
    _, sch = _matmul(rows=rows, cols=cols, vector=vector)
    sch.pad_local("C_local")
    assert "C_local[i_i, j_i_i + " in _inner_statement(repr(sch))
    assert f"if i_i + {rows}*i_o < M:" not in repr(sch)
    _check_c(qc.build(sch), m, seed=seed)


def _epilogue():
    """D = max(A @ B + bias, 0), the product computed per register block inside D's row
    block (compute_at + fold_storage, as graph fusion schedules an epilogue)."""
    m = qc.var("M", 1, 2048)
    a = qc.placeholder((m, 32), "float32", "A")
    b = qc.placeholder((32, 64), "float32", "B")
    bias = qc.placeholder((64,), "float32", "bias")
    k = qc.reduce_axis(32, "k")
    product = qc.compute((m, 64), lambda i, j: qc.sum(a[i, k] * b[k, j], axis=k), "P")
    out = qc.compute((m, 64), lambda i, j: qc.maximum(product[i, j] + bias[j],
                                                      np.float32(0.0)), "D")
    sch = qc.Schedule(out)
    i, j = sch.loops(out)
    i_outer, i_inner = sch.split(i, 8)
    j_outer, j_inner = sch.split(j, 32)
    sch.reorder(j_outer, i_outer, i_inner, j_inner)
    sch.compute_at(product, i_outer)
    sch.fold_storage(product, i_outer)
    *_, block_i, block_j, depth = sch.loops(product)
    sch.reorder(depth, block_i, block_j)
    sch.decompose("P", depth)
    vectors, lanes = sch.split(block_j, 8)
    sch.unroll(block_i)
    sch.unroll(vectors)
    sch.vectorize(lanes)
    return out, sch


@pytest.mark.parametrize("m", [1, 9, 17])
def test_a_padded_block_feeds_its_epilogue(m):
    _, sch = _epilogue()
    sch.pad_local("P")
    assert "A[Min(M - 1, P_i + 8*i_1_o), k]" in repr(sch)
    assert "if i_1_i + 8*i_1_o < M:" in repr(sch)
    a, b = _operands(m, seed=m)
    bias = random_array(np.random.default_rng(m + 1), (64,))
    expected = np.maximum(a @ b + bias, np.float32(0.0))
    np.testing.assert_allclose(interp.run(sch.kernel, A=a, B=b, bias=bias)["D"], expected,
                               rtol=1e-5, atol=1e-5)
    require_cc()
    np.testing.assert_allclose(qc.build(sch)(A=a, B=b, bias=bias), expected,
                               rtol=1e-5, atol=1e-5)


def _cached_rows():
    """A matmul with A's rows and C's block both in local tiles at the row-block loop."""
    _, _, c = recipes.matmul_program(qc.var("M", 1, 2048), 64, 32)
    sch = qc.Schedule(c)
    i, j, k = sch.loops(c)
    i_outer, i_inner = sch.split(i, 8)
    j_outer, j_inner = sch.split(j, 32)
    sch.reorder(j_outer, i_outer, k, i_inner, j_inner)
    sch.cache_write(c, "local", at=i_outer)
    sch.cache_read("A", "local", at=i_outer)
    return sch


@pytest.mark.parametrize("m", [3, 8, 21])
def test_a_tile_read_from_a_padded_tile(m):
    sch = _cached_rows()
    with pytest.raises(qc.ScheduleError, match=r"the store reads A_local, a tile written "
                                               r"under a guard.*pad_local A_local first"):
        sch.pad_local("C_local")
    sch.pad_local("A_local")
    sch.pad_local("C_local")
    assert "A[Min(A_local_0 + 8*i_o, M - 1), A_local_1]" in repr(sch)
    assert "if i_i + 8*i_o < M" not in repr(sch)
    a, b = _operands(m, seed=m)
    np.testing.assert_allclose(interp.run(sch.kernel, A=a, B=b)["C"], a @ b, rtol=1e-5,
                               atol=1e-5)
    require_cc()
    _check_c(qc.build(sch), m, seed=m)


def _row_blocks_over_split_k(c):
    """8-row blocks of `c` cached locally, with k split by 4 (so a k guard as well when K
    is symbolic)."""
    sch = qc.Schedule(c)
    i, j, k = sch.loops(c)
    i_outer, i_inner = sch.split(i, 8)
    sch.reorder(i_outer, k, i_inner, j)
    sch.decompose(sch.cache_write(c, "local", at=i_outer), k)
    sch.split(k, 4)
    return sch


def test_a_reduction_guard_stays():
    _, _, c = recipes.matmul_program(qc.var("M", 1, 2048), 64, qc.var("K", 1, 64))
    sch = _row_blocks_over_split_k(c)
    assert "if (i_i + 8*i_o < M) and (k_i + 4*k_o < K):" in repr(sch)
    sch.pad_local("C_local")
    # Running a k past K would add to real elements: only the row bound goes.
    assert "if k_i + 4*k_o < K:" in repr(sch) and "i_i + 8*i_o < M" not in repr(sch)
    a, b = _operands(13, k=7, seed=3)
    np.testing.assert_allclose(interp.run(sch.kernel, A=a, B=b)["C"], a @ b, rtol=1e-5,
                               atol=1e-5)
    require_cc()
    _check_c(qc.build(sch), 13, k=7, seed=3)


def test_the_trace_replays_from_json():
    program, sch = _matmul()
    sch.pad_local("C_local")
    text = sch.trace.as_json()
    step = Trace.from_json(text).steps[-1]
    assert (step.primitive, step.argument("tensor")) == ("pad_local", "C_local")
    replayed = Trace.from_json(text).replay(qc.Schedule(program, name=sch.kernel.name))
    assert replayed.kernel == sch.kernel
    assert replayed.trace.as_json() == text


# --------------------------------------------------------------------------- refusals


def _edited(kernel, change):
    """`kernel` with `change` applied to each guard around a store into C_local's init."""
    def visit(node):
        if (isinstance(node, ir.If) and isinstance(node.then, ir.Store)
                and node.then.buffer.name == "C_local"):
            return change(node)
        return node
    return dataclasses.replace(kernel, body=rewrite(kernel.body, visit))


def _refused(sch, tensor, message):
    """pad_local(tensor) on Schedule or kernel `sch` is refused with `message`, leaving
    the schedule as it was."""
    sch = sch if isinstance(sch, qc.Schedule) else qc.Schedule(sch)
    before, steps = sch.kernel, len(sch.trace.steps)
    with pytest.raises(qc.ScheduleError, match=message):
        sch.pad_local(tensor)
    assert sch.kernel == before and len(sch.trace.steps) == steps


def test_refuses_a_buffer_that_is_not_local():
    _, sch = _matmul()
    _refused(sch, "C", r"pad_local: .*C is not a local buffer\. pad_local pads a local tile; "
                       r"cache_write\(\.\.\., 'local', at=\.\.\.\) makes one")
    _, _, c = recipes.matmul_program(qc.var("M", 1, 64), 64, 32)
    shared = qc.Schedule(c)
    i_outer, _ = shared.split(shared.loops(c)[0], 8)
    shared.cache_write(c, "shared", at=i_outer)
    _refused(shared, "C_shared", r"C_shared is not a local buffer")


def test_refuses_a_tile_with_nothing_to_pad():
    _, sch = _matmul(m=64)
    _refused(sch, "C_local", r"nothing to pad: no store into C_local is guarded")


def test_refuses_a_guard_that_is_not_a_bound():
    _, sch = _matmul()

    def parity(guard):
        return ir.If(sympy.And(guard.cond, sympy.Eq(sympy.Mod(guard.then.indices[1], 2), 0)),
                     guard.then)
    _refused(_edited(sch.kernel, parity), "C_local", r"the guard .*Eq\(Mod\(j_i_init, 2\), 0\)"
                                                     r".* is not a bound `index < limit`")
    _refused(_edited(sch.kernel, lambda guard: ir.If(guard.cond, guard.then, guard.then)),
             "C_local", r"has an else branch")


def test_refuses_a_guard_over_another_store():
    _, sch = _matmul()
    output = sch.kernel.param("C")
    i_o, j_o = (sympy.Symbol(name, integer=True, nonnegative=True) for name in ("i_o", "j_o"))

    def also_output(guard):
        store = guard.then
        other = ir.Store(output, (store.indices[0] + 8 * i_o, store.indices[1] + 32 * j_o),
                         store.value)
        return ir.If(guard.cond, ir.seq(store, other))
    _refused(_edited(sch.kernel, also_output), "C_local",
             r"the guard i_i_init \+ 8\*i_o < M also keeps stores into C in bounds")


def test_refuses_a_tile_smaller_than_its_loops():
    _, sch = _matmul(m=5)
    assert "C_local = alloc[5, 32]" in repr(sch)
    _refused(sch, "C_local", r"index i_i_init of C_local \(dim 0, extent 5\) may leave the tile")


def test_refuses_a_tile_read_without_its_guard():
    # C with whole tiles of rows lets the copy-out run unguarded: it would copy padding.
    _, sch = _matmul(m=13)
    output = sch.kernel.param("C")
    padded = dataclasses.replace(output, shape=(16, 64))

    def unguarded(node):
        if isinstance(node, ir.If) and getattr(node.then, "buffer", None) == output:
            return dataclasses.replace(node.then, buffer=padded)
        return node
    kernel = dataclasses.replace(sch.kernel, body=rewrite(sch.kernel.body, unguarded),
                                 params=tuple(padded if p == output else p
                                              for p in sch.kernel.params))
    _refused(kernel, "C_local", r"reads C_local outside the guard C_local_0 \+ 8\*i_o < 13, "
                                r"so it would see the padded elements")


def test_refuses_guards_that_bound_no_index_of_the_tile():
    _, _, c = recipes.matmul_program(16, 64, qc.var("K", 1, 64))
    sch = _row_blocks_over_split_k(c)
    _refused(sch, "C_local", r"the guards on the stores into C_local bound no index of the tile")


@pytest.mark.parametrize("rows, columns", [(5, 13), (8, 16), (1, 3)])
def test_padding_one_dim_keeps_the_other_dims_guards(rows, columns):
    """C's 4 x 8 block at symbolic M and N, padded only along its columns: the row guard
    stays on the stores, the column guard goes and B's reads are clamped instead."""
    sch = qc.Schedule(programs.matmul(rows, 6, columns, symbolic=True))
    i, j, k = sch.loops("C")
    i_outer, i_inner = sch.split(i, 4)
    j_outer, j_inner = sch.split(j, 8)
    sch.reorder(i_outer, j_outer, k, i_inner, j_inner)
    sch.cache_write("C", "local", at=j_outer)
    sch.pad_local("C_local", dim=1)
    text = repr(sch)
    accumulate = next(line for line in text.splitlines() if "C_local[i_i, j_i] sum=" in line)
    assert "B[k, Min(N - 1, j_i + 8*j_o)]" in accumulate
    assert "if i_i + 4*i_o < M:" in text and "if j_i + 8*j_o < N:" not in text
    assert str(sch.trace).splitlines()[-1] == "sch.pad_local('C_local', dim=1)"
    helpers.check_schedule(sch, *programs.matmul_arrays(rows, rows, 6, columns))
