"""Random legal sequences of schedule primitives on a matmul, a row softmax and an
elementwise kernel: whatever the primitives accept computes what the program does, in the
interpreter and in compiled C, against numpy.

Each step draws a primitive, then one of its legal uses on the current kernel (found by
looking at the loop nest, independently of the primitive's own checks). vectorize and
parallel are the exception: their dependence test decides, and a refusal for a carried
dependence is a legal outcome.
"""

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import nodes as ir
from quiltc.schedule.nest import get_at, walk_paths

from support import helpers, programs
from support.tiers import examples

PRIMITIVES = ("split", "fuse", "reorder", "tile", "unroll", "vectorize", "parallel", "decompose")
SMALL = st.sampled_from([1, 2, 3, 5, 7])
# Any factor, divisor or not: the verifier sees through the guards of inexact splits.
FACTORS = st.integers(1, 4)


def matmul_case(draw):
    rows, inner, columns = draw(SMALL), draw(SMALL), draw(SMALL)
    output = programs.matmul(rows, inner, columns, draw(st.booleans()))
    return (output, *programs.matmul_arrays(draw(st.integers(0, 2**16)), rows, inner, columns))


def softmax_case(draw):
    rows, columns = draw(SMALL), draw(SMALL)
    output = programs.row_softmax(rows, columns, draw(st.booleans()))
    return (output, *programs.row_softmax_arrays(draw(st.integers(0, 2**16)), rows, columns))


def elementwise_case(draw):
    shape = (draw(SMALL), draw(SMALL), draw(SMALL))
    symbolic = draw(st.booleans())
    sizes = tuple(programs.size(name, n, symbolic) for name, n in zip("PQS", shape))
    A = qc.placeholder(sizes, "float32", "A")
    B = qc.placeholder(sizes, "float32", "B")
    out = qc.compute(sizes, lambda i, j, l: A[i, j, l] * 2.0 + B[i, j, l], "out")
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    a, b = helpers.random_array(rng, shape), helpers.random_array(rng, shape)
    return out, {"A": a, "B": b}, {"out": a * np.float32(2.0) + b}


# ------------------------------------------------------------ legal uses of each primitive


def _loops(kernel):
    return [(path, stmt) for path, stmt in walk_paths(kernel.body) if isinstance(stmt, ir.For)]


def _under_guards(stmt):
    while isinstance(stmt, ir.If) and stmt.otherwise is None:
        stmt = stmt.then
    return stmt


def _chain(loop):
    """`loop` and the loops perfectly nested under it, outermost first."""
    chain = [loop]
    while isinstance(_under_guards(chain[-1].body), ir.For):
        chain.append(_under_guards(chain[-1].body))
    return chain


def use_split(draw, sch):
    _, loop = draw(st.sampled_from(_loops(sch.kernel)))
    sch.split(loop.var, draw(FACTORS))


def _fusable(outer, inner):
    return (
        isinstance(inner, ir.For)
        and outer.kind == inner.kind == "serial"
        and outer.var not in inner.extent.free_symbols
    )


def use_fuse(draw, sch):
    pairs = [
        (loop, _under_guards(loop.body))
        for _, loop in _loops(sch.kernel)
        if _fusable(loop, _under_guards(loop.body))
    ]
    if pairs:
        outer, inner = draw(st.sampled_from(pairs))
        sch.fuse(outer.var, inner.var)


def use_reorder(draw, sch):
    chains = [_chain(loop) for _, loop in _loops(sch.kernel) if len(_chain(loop)) >= 2]
    if chains:
        chain = draw(st.sampled_from(chains))
        named = draw(st.lists(st.sampled_from(chain), min_size=2, unique_by=lambda l: l.var))
        order = draw(st.permutations(named))
        after = list(chain)
        for position, loop in zip(sorted(chain.index(loop) for loop in named), order):
            after[position] = loop
        kinds = [loop.kind for loop in after]
        vector_first = kinds.index("vector") if "vector" in kinds else len(kinds)
        if "parallel" not in kinds[vector_first:]:
            sch.reorder(*(loop.var for loop in order))


def use_tile(draw, sch):
    pairs = [
        (chain[0], inner)
        for chain in (_chain(loop) for _, loop in _loops(sch.kernel))
        for inner in chain[1:]
        if chain[0].var not in inner.extent.free_symbols
    ]
    if pairs:
        x, y = draw(st.sampled_from(pairs))
        sch.tile(x.var, y.var, draw(FACTORS), draw(FACTORS))


def use_unroll(draw, sch):
    loops = [
        loop for _, loop in _loops(sch.kernel) if loop.kind == "serial" and loop.extent.is_Integer
    ]
    if loops:
        sch.unroll(draw(st.sampled_from(loops)).var)


def _nesting_allows(kernel, path, loop, kind):
    around = [stmt for _, stmt in walk_paths(loop.body) if isinstance(stmt, ir.For)]
    enclosing = [stmt for p, stmt in _loops(kernel) if path[: len(p)] == p and p != path]
    if kind == "vector":
        return all(other.kind != "parallel" for other in around)
    return all(other.kind != "parallel" for other in around + enclosing) and all(
        other.kind != "vector" for other in enclosing
    )


def _use_annotation(draw, sch, kind, method):
    loops = [
        loop for path, loop in _loops(sch.kernel)
        if loop.kind == "serial" and _nesting_allows(sch.kernel, path, loop, kind)
    ]
    if loops:
        loop = draw(st.sampled_from(loops))
        try:
            method(loop.var)
        except qc.ScheduleError as refusal:
            assert "carries a" in str(refusal), str(refusal)


def use_vectorize(draw, sch):
    _use_annotation(draw, sch, "vector", sch.vectorize)


def use_parallel(draw, sch):
    _use_annotation(draw, sch, "parallel", sch.parallel)


def _decompose_points(kernel):
    """(buffer name, loop var) pairs where decompose is legal."""
    points = []
    shape_vars = {v.symbol for v in kernel.shape_vars}
    for reduce_path, reduce in walk_paths(kernel.body):
        if not isinstance(reduce, ir.Reduce) or not reduce.init_when:
            continue
        init = set().union(*(sympy.sympify(e).free_symbols for e in reduce.init_when))
        index = set().union(*(sympy.sympify(e).free_symbols for e in reduce.indices))
        below = []
        for depth in range(len(reduce_path) - 1, -1, -1):
            stmt = get_at(kernel.body, reduce_path[:depth])
            if (isinstance(stmt, ir.Alloc) and stmt.buffer.name == reduce.buffer.name) or (
                isinstance(stmt, ir.If) and reduce_path[depth][0] != "then"
            ):
                break
            if not isinstance(stmt, ir.For):
                continue
            if (stmt.var in init) == (stmt.var in index):
                break
            below.append(stmt.var)
            if init - shape_vars <= set(below):
                points.append((reduce.buffer.name, stmt.var))
    return points


def use_decompose(draw, sch):
    points = _decompose_points(sch.kernel)
    if points:
        sch.decompose(*draw(st.sampled_from(points)))


USES = {
    "split": use_split, "fuse": use_fuse, "reorder": use_reorder, "tile": use_tile,
    "unroll": use_unroll, "vectorize": use_vectorize, "parallel": use_parallel,
    "decompose": use_decompose,
}
CASES = {"matmul": matmul_case, "softmax": softmax_case, "elementwise": elementwise_case}


@pytest.mark.parametrize("case", sorted(CASES))
@settings(max_examples=examples(30))
@given(data=st.data())
def test_random_legal_sequences_compute_what_the_program_does(case, data):
    output, arrays, reference = CASES[case](data.draw)
    sch = qc.Schedule(output)
    steps = data.draw(st.lists(st.sampled_from(PRIMITIVES), min_size=1, max_size=6), label="steps")
    for primitive in steps:
        try:
            USES[primitive](data.draw, sch)
        except qc.ScheduleError as refusal:
            # The one refusal a drawn step may meet: loops fused from an output and a
            # reduction keep the reduction's start first (reorder, and tile, which reorders).
            assert "starts from its identity" in str(refusal), str(refusal)
    helpers.check_schedule(sch, arrays, reference)


def test_a_guard_over_a_floor_of_a_sum_still_bounds_the_rows_it_picks():
    # The second split turns the guard's floor(f / K) into floor((f_i + f_o) / K), which
    # the verifier expanded in the index but not in the guard, and so could not match
    # (a drawn sequence at 20 times this file's budget).
    sch = qc.Schedule(programs.matmul(3, 4, 5, True))
    rows_and_columns = sch.fuse("i", "j")
    _, inner = sch.split(rows_and_columns, 2)
    sch.split(sch.fuse(inner, "k"), 1)
    helpers.check_schedule(sch, *programs.matmul_arrays(3, 3, 4, 5))
