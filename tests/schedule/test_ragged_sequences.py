"""Random sequences of the ragged transforms (loop and storage padding, ragged fusion,
remap, split_op, parallel) on the ragged pipeline and on masked multi-head attention:
whatever the primitives accept computes the per-sequence numpy reference, in the
interpreter and in compiled C, on batches with empty, single and full-length rows.

Each step draws a primitive and one of its targets on the current kernel. A primitive may
refuse a target (padding twice, fusing a padded pair, a carried dependence); a refusal is
a ScheduleError and leaves the schedule as it was.
"""

import pytest
import sympy
from hypothesis import event, given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc import attention
from quiltc.ir import nodes as ir
from quiltc.schedule.nest import walk_paths

from support import ragged_programs
from support.ragged_programs import lengths_strategy
from support.tiers import examples

HEADS, HEAD_SIZE, MAX_LENGTH = 2, 3, ragged_programs.MAX_LENGTH
MULTIPLES = st.sampled_from([2, 3, 4])


def _loops(kernel):
    return [stmt for _, stmt in walk_paths(kernel.body) if isinstance(stmt, ir.For)]


def _is_row_length(loop, kernel):
    """Whether `loop` runs over (a padded) row length of a ragged dim."""
    tables = {dim.lengths_table for dim in kernel.ragged_dims}
    return any(getattr(node.func, "__name__", "") in tables
               for node in sympy.preorder_traversal(loop.extent)
               if isinstance(node, sympy.core.function.AppliedUndef))


def _ragged_pairs(kernel):
    """(outer, inner) loop pairs where inner is the only statement of outer's body and
    runs over the length of outer's row."""
    return [(loop.var, loop.body.var) for loop in _loops(kernel)
            if isinstance(loop.body, ir.For) and loop.var in loop.body.extent.free_symbols]


def _intermediates(kernel):
    return sorted({stmt.buffer.name for _, stmt in walk_paths(kernel.body)
                   if isinstance(stmt, ir.Alloc) and stmt.buffer.is_ragged})


def use_fuse(draw, sch):
    pairs = _ragged_pairs(sch.kernel)
    if pairs:
        sch.fuse(*draw(st.sampled_from(pairs)))


def use_pad_loop(draw, sch):
    rows = [loop.var for loop in _loops(sch.kernel) if _is_row_length(loop, sch.kernel)]
    if rows:
        sch.pad_loop(draw(st.sampled_from(rows)), draw(MULTIPLES))


def use_pad_storage(draw, sch):
    names = _intermediates(sch.kernel)
    if names:
        name = draw(st.sampled_from(names))
        layout = next(stmt.buffer.layout for _, stmt in walk_paths(sch.kernel.body)
                      if isinstance(stmt, ir.Alloc) and stmt.buffer.name == name)
        sch.pad_storage(name, draw(st.sampled_from(layout.ragged)), draw(MULTIPLES))


def use_pad_bulk(draw, sch):
    """Pad a fused ragged loop (its extent a prefix sum's total), then split it into the
    whole tiles the padding makes."""
    totals = {sympy.Function(f"{dim.name}_off1", integer=True, nonnegative=True)(dim.batch)
              for dim in sch.kernel.ragged_dims}
    fused = [loop.var for loop in _loops(sch.kernel) if loop.extent in totals]
    if fused:
        multiple = draw(MULTIPLES)
        padded = sch.pad_bulk(draw(st.sampled_from(fused)), multiple)
        if draw(st.booleans()):
            sch.split(padded, multiple)


def use_split_op(draw, sch):
    rows = [loop.var for loop in _loops(sch.kernel) if _is_row_length(loop, sch.kernel)]
    if rows:
        sch.split_op(draw(st.sampled_from(rows)), draw(MULTIPLES))


def use_remap(draw, sch):
    batches = {dim.batch for dim in sch.kernel.ragged_dims}
    loops = [loop.var for loop in _loops(sch.kernel) if loop.extent in batches]
    if loops:
        sch.remap(draw(st.sampled_from(loops)))


def use_parallel(draw, sch):
    outermost = [stmt.var for path, stmt in walk_paths(sch.kernel.body)
                 if isinstance(stmt, ir.For) and stmt.kind == "serial"
                 and not any(name == "body" and position is None for name, position in path[-1:])]
    if outermost:
        sch.parallel(draw(st.sampled_from(outermost)))


USES = {"fuse": use_fuse, "pad_loop": use_pad_loop, "pad_storage": use_pad_storage,
        "pad_bulk": use_pad_bulk,
        "split_op": use_split_op, "remap": use_remap, "parallel": use_parallel}


def pipeline_case(lengths, seed):
    rows, values = ragged_programs.ragged_batch(lengths, seed)
    return (qc.Schedule(ragged_programs.pipeline()), {"X": values},
            ragged_programs.pipeline_reference(rows))


def attention_case(lengths, seed, causal):
    _, out = attention.attention_program(HEADS, HEAD_SIZE, MAX_LENGTH, causal)
    rows, values = ragged_programs.ragged_batch(lengths, seed, (3 * HEADS * HEAD_SIZE,))
    reference = [r.reshape(-1, HEADS, HEAD_SIZE)
                 for r in attention.reference_attention(rows, HEADS, HEAD_SIZE, causal)]
    return qc.Schedule(out), {"QKV": values}, {"attention": reference}


CASES = {
    "pipeline": pipeline_case,
    "attention": lambda lengths, seed: attention_case(lengths, seed, False),
    "causal-attention": lambda lengths, seed: attention_case(lengths, seed, True),
}


@pytest.mark.parametrize("case", sorted(CASES))
@settings(max_examples=examples(12))
@given(data=st.data(), lengths=lengths_strategy, seed=st.integers(0, 2**16))
def test_random_ragged_schedules_match_each_sequence(case, data, lengths, seed):
    sch, arguments, reference = CASES[case](lengths, seed)
    steps = data.draw(st.lists(st.sampled_from(sorted(USES)), min_size=1, max_size=6),
                      label="steps")
    for primitive in steps:
        before = sch.kernel
        try:
            USES[primitive](data.draw, sch)
        except qc.ScheduleError:
            assert sch.kernel == before
            event(f"{primitive} refused")
        else:
            event(f"{primitive} {'applied' if sch.kernel != before else 'had no target'}")
    ragged_programs.check_ragged(sch, arguments, reference)
