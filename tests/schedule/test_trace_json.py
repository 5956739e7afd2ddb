"""The trace as JSON: every primitive's steps round-trip and replay to the same kernel,
decisions are marked and can be changed for a tuner, and malformed traces are refused."""

import dataclasses
import json

import numpy as np
import pytest

import quiltc as qc
from quiltc import recipes, recipes_cuda
from quiltc.ir import interp
from quiltc.ir import nodes as ir
from quiltc.ir.walk import rewrite
from quiltc.schedule.registry import PRIMITIVES
from quiltc.schedule.trace import Trace

from support import cuda_kernels, programs, ragged_programs
from support.helpers import check_schedule


def _register_blocked():
    program = programs.matmul(9, 5, 20)
    sch = qc.Schedule(program)
    i, j, k = sch.loops("C")
    i_outer, i_inner = sch.split(i, 4)
    j_outer, j_inner = sch.split(j, 8)
    sch.reorder(j_outer, i_outer, k, i_inner, j_inner)
    sch.decompose(sch.cache_write("C", "local", at=i_outer), k)
    sch.unroll(i_inner)
    sch.vectorize(j_inner)
    sch.parallel(j_outer)
    return program, sch


def _tiled_and_fused():
    program = programs.matmul(6, 5, 7)
    sch = qc.Schedule(program)
    i_outer, j_outer, i_inner, j_inner = sch.tile("i", "j", 4, 3)
    sch.parallel(sch.fuse(i_outer, j_outer))
    return program, sch


def _softmax_cpu():
    _, (row_max, exps, row_sum), out = recipes.softmax_program(5, 9)
    return out, recipes.schedule_softmax((row_max, exps, row_sum), out)


def _streamed():
    program = programs.scale(4, 40)
    sch = qc.Schedule(program)
    sch.parallel("i")
    sch.vectorize("j")
    sch.stream("j")
    return program, sch


def _inlined():
    program = programs.bias_gelu(3, 4)
    sch = qc.Schedule(program)
    sch.compute_inline("H")
    return program, sch


def _gpu():
    _, _, c = recipes.matmul_program(40, 24, 16)
    sch = recipes_cuda.schedule_matmul_cuda(c)
    sch.insert_barriers()
    return c, sch


def _softmax_gpu():
    _, _, out = recipes.softmax_program(3, 10)
    return out, recipes_cuda.schedule_softmax_cuda(3, 10, threads=4)


def _ragged():
    program = ragged_programs.pipeline()
    sch = qc.Schedule(program)
    sch.pad_storage("T", 1, 4)
    sch.pad_loop(sch.loops("T")[1], 4)
    sch.remap(sch.loops("U")[0])
    sch.split_op(sch.loops("Y")[1], 2)
    return program, sch


def _row_sums_computed_at_their_rows():
    """total[r] = sum of doubled[r, :], with doubled computed inside total's row loop."""
    x = qc.placeholder((3, 4), "int32", "x")
    doubled = qc.compute((3, 4), lambda i, j: x[i, j] * 2, "doubled")
    k = qc.reduce_axis(4, "k")
    total = qc.compute((3,), lambda r: qc.sum(doubled[r, k], axis=k), "total")
    sch = qc.Schedule(total)
    sch.compute_at(doubled, sch.loops(total)[0])
    return total, doubled, sch


def _folded():
    total, doubled, sch = _row_sums_computed_at_their_rows()
    sch.fold_storage(doubled, sch.loops(total)[0])
    return total, sch


def _side_by_side():
    x = qc.placeholder((4, 3), "float32", "X")
    w = qc.placeholder((5, 2), "float32", "W")
    doubled = qc.compute((4, 3), lambda b, h: x[b, h] * np.float32(2.0), "Y")
    shifted = qc.compute((5, 2), lambda i, j: w[i, j] + np.float32(1.0), "Z")
    sch = qc.Schedule([doubled, shifted])
    sch.hfuse(sch.loops(doubled)[0], sch.loops(shifted)[0])
    return [doubled, shifted], sch


def _bulk_padded():
    program = ragged_programs.pipeline()
    sch = qc.Schedule(program)
    fused = sch.fuse(*sch.loops("Y")[:2])
    sch.split(sch.pad_bulk(fused, 4), 4)
    return program, sch


def _distributed():
    total, _, sch = _row_sums_computed_at_their_rows()
    sch.distribute(sch.loops(total)[0])
    return total, sch


def _online_softmax():
    return ragged_programs.softmax_attention(), ragged_programs.online_attention(4)


def _peeled():
    program = ragged_programs.pipeline()
    sch = qc.Schedule(program)
    tile, _ = sch.split(sch.loops("Y")[1], 4)
    sch.peel(tile)
    return program, sch


def _locally_padded():
    _, _, c = recipes.matmul_program(qc.var("M", 1, 64), 32, 16)
    sch = recipes.schedule_matmul(c, rows=4, cols=16, vector=8)
    sch.pad_local("C_local")
    return c, sch


def _row_pointers():
    p = qc.placeholder((3,), "uint8", "p")
    lut = qc.placeholder((256, 4), "int16", "lut")
    picked = qc.compute((3,), lambda i: p[i] | 4, "picked")
    out = qc.compute((3, 4), lambda i, j: qc.cast(lut[picked[i], j], "int32"), "out")
    sch = qc.Schedule(out)
    sch.store_row_pointers(picked, lut)
    return out, sch


SCHEDULES = [_register_blocked, _tiled_and_fused, _softmax_cpu, _inlined, _gpu, _softmax_gpu,
             _ragged, _folded, _side_by_side, _locally_padded, _bulk_padded,
             _distributed, _row_pointers, _online_softmax, _peeled, _streamed]


@pytest.mark.parametrize("scheduled", SCHEDULES, ids=lambda f: f.__name__.strip("_"))
def test_a_trace_round_trips_through_json_and_replays_to_the_same_kernel(scheduled):
    program, sch = scheduled()
    text = sch.trace.as_json()
    trace = Trace.from_json(text)
    assert str(trace) == str(sch.trace) and trace.as_json() == text
    replayed = trace.replay(qc.Schedule(program, name=sch.kernel.name))
    assert replayed.kernel == sch.kernel
    assert replayed.trace.as_json() == text


def test_the_schedules_above_use_every_primitive():
    used = {step.primitive for scheduled in SCHEDULES for step in scheduled()[1].trace.steps}
    assert used == set(PRIMITIVES)


def test_the_json_names_loops_and_tensors_and_marks_decisions():
    _, sch = _register_blocked()
    steps = json.loads(sch.trace.as_json())["steps"]
    assert steps[0] == {"primitive": "split",
                        "arguments": {"loop": "i", "factor": 4, "guard": None},
                        "decisions": ["factor"], "results": ["i_o", "i_i"]}
    assert steps[2] == {"primitive": "reorder",
                        "arguments": {"loops": ["j_o", "i_o", "k", "i_i", "j_i"]},
                        "decisions": [], "results": []}
    assert steps[3] == {"primitive": "cache_write",
                        "arguments": {"tensor": "C", "scope": "local", "at": "i_o"},
                        "decisions": [], "results": ["C_local"]}
    assert sch.trace.decisions() == [(0, "factor", 4), (1, "factor", 8)]


def test_with_decision_changes_a_split_factor_and_the_replayed_kernel_follows():
    program, sch = _register_blocked()
    tuned_trace = Trace.from_json(sch.trace.as_json()).with_decision(1, "factor", 4)
    assert sch.trace.decisions()[1] == (1, "factor", 8)
    assert tuned_trace.decisions()[1] == (1, "factor", 4)
    assert "j_o, j_i = sch.split('j', 4)" in str(tuned_trace)
    tuned = tuned_trace.replay(qc.Schedule(program))
    assert "for j_i in range(4):  # vector" in repr(tuned)
    assert "C_local = alloc[4, 4] float32  # local" in repr(tuned)
    check_schedule(tuned, *programs.matmul_arrays(3, 9, 5, 20))


def test_with_decision_changes_the_threads_of_a_cross_thread_reduction():
    program, sch = _softmax_gpu()
    step = next(n for n, name, _ in sch.trace.decisions() if name == "threads")
    tuned = sch.trace.with_decision(step, "threads", 2).replay(qc.Schedule(program))
    assert "row_max_partial = alloc[2] float32  # shared" in repr(tuned)
    x = np.random.default_rng(1).uniform(-4, 4, (3, 10)).astype(np.float32)
    np.testing.assert_allclose(interp.run(tuned.kernel, X=x)["softmax"],
                               recipes_cuda.reference_softmax(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("step, parameter, value, message", [
    (0, "loop", "j", r"'loop' is not a decision of split \(its decisions: factor\)"),
    (2, "loops", ["i"], r"'loops' is not a decision of reorder \(its decisions: none\)\. Change "
                        r"one of the trace's decisions: step 0 factor, step 1 factor"),
    (8, "factor", 2, r"change step 8 of a trace of 8 steps, but there is no such step\. Pass a "
                     r"step index from 0 to 7"),
    (0, "factor", "8", r"split's factor takes an integer"),
])
def test_with_decision_refuses_what_is_not_a_decision(step, parameter, value, message):
    _, sch = _register_blocked()
    with pytest.raises(qc.ScheduleError, match=message):
        sch.trace.with_decision(step, parameter, value)


def _step(**changes):
    step = {"primitive": "split", "arguments": {"loop": "i", "factor": 4}, "results": []}
    step.update(changes)
    return json.dumps({"format": "quiltc.trace", "version": 1, "steps": [step]})


@pytest.mark.parametrize("text, message", [
    ('{"steps": []}', r"it is not a quiltc.trace version 1 document"),
    (_step(primitive="spilt"), r"read step 0 of a JSON trace, but it names no known primitive"),
    (_step(arguments={"loop": "i", "factor": 4, "width": 2}), r"split has no parameter 'width'"),
    (_step(arguments={"loop": "i"}), r"argument 'factor' of split is missing"),
    (_step(arguments={"loop": "i", "factor": True}), r"argument factor=True of split is not an "
                                                     r"integer"),
    (_step(results="i_o"), r"its results 'i_o' are not a list of names"),
])
def test_a_malformed_json_trace_is_refused(text, message):
    with pytest.raises(qc.ScheduleError, match=message):
        Trace.from_json(text)


def test_a_missing_default_is_filled_in():
    trace = Trace.from_json(_step())
    assert str(trace) == "sch.split('i', 4)"
    assert trace.steps[0].argument("guard") is None


def _without_barriers(kernel):
    def drop(node):
        if isinstance(node, ir.Seq):
            return ir.seq(*(stmt for stmt in node.stmts if not isinstance(stmt, ir.Barrier)))
        return node

    return dataclasses.replace(kernel, body=rewrite(kernel.body, drop))


@pytest.mark.toolchain
def test_insert_barriers_repairs_a_kernel_and_replays():
    cuda_kernels.require_cuda_tools()
    racy = _without_barriers(cuda_kernels.matmul().kernel)
    with pytest.raises(qc.ScheduleError, match=r"with no barrier between.*sch\.insert_barriers"):
        qc.build(racy, target="cuda-emu")
    repaired = qc.Schedule(racy)
    repaired.insert_barriers()
    assert str(repaired.trace) == "sch.insert_barriers()"
    # One before the tiles are read, one before the next k-tile overwrites them.
    assert repr(repaired).count("barrier()") == 2
    replayed = Trace.from_json(repaired.trace.as_json()).replay(qc.Schedule(racy))
    assert replayed.kernel == repaired.kernel
    arrays, expected = cuda_kernels.matmul_arrays(2, 37, 40, 29)
    np.testing.assert_allclose(qc.build(repaired, target="cuda-emu")(**arrays), expected,
                               rtol=1e-4, atol=1e-4)
