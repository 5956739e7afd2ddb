"""The schedule trace prints as Python that replays, and `print(sch)` shows the loops."""

import quiltc as qc

from support import helpers, programs


def scheduled(program):
    sch = qc.Schedule(program)
    i_outer, j_outer, i_inner, j_inner = sch.tile("i", "j", 4, 3)
    sch.decompose("C", i_outer)
    k_outer, k_inner = sch.split("k", 2)
    sch.reorder(i_inner, k_outer, k_inner, j_inner)
    fused = sch.fuse(i_outer, j_outer)
    sch.parallel(fused)
    sch.unroll(k_inner)
    sch.vectorize(j_inner)
    return sch


def test_printed_trace_is_python_that_replays_the_schedule(capsys):
    program = programs.matmul(6, 5, 7)
    sch = scheduled(program)
    print(sch.trace)
    printed = capsys.readouterr().out
    assert printed.splitlines() == [
        "i_o, j_o, i_i, j_i = sch.tile('i', 'j', 4, 3)",
        "sch.decompose('C', 'i_o')",
        "k_o, k_i = sch.split('k', 2)",
        "sch.reorder('i_i', 'k_o', 'k_i', 'j_i')",
        "i_o_j_o = sch.fuse('i_o', 'j_o')",
        "sch.parallel('i_o_j_o')",
        "sch.unroll('k_i')",
        "sch.vectorize('j_i')",
    ]
    replayed = qc.Schedule(program)
    exec(printed, {"sch": replayed})
    assert replayed.kernel == sch.kernel
    assert str(replayed.trace) == str(sch.trace)


def test_trace_replay_on_a_fresh_schedule_gives_an_equal_kernel():
    program = programs.matmul(6, 5, 7)
    sch = scheduled(program)
    replayed = sch.trace.replay(qc.Schedule(program))
    assert replayed.kernel == sch.kernel
    helpers.check_schedule(replayed, *programs.matmul_arrays(4, 6, 5, 7))


def test_printing_a_schedule_shows_its_loops(capsys):
    sch = scheduled(programs.matmul(6, 5, 7))
    print(sch)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "kernel kernel(A: float32[6, 5], B: float32[5, 7], C: float32[6, 7]):  # writes C"
    )
    loops = [line.strip() for line in lines if line.strip().startswith("for ")]
    assert loops == [
        "for i_o_init in range(2):",
        "for j_o_init in range(3):",
        "for i_i_init in range(4):",
        "for j_i_init in range(3):",
        "for i_o_j_o in range(6):  # parallel",
        "for i_i in range(4):",
        "for k_o in range(3):",
        "for k_i in range(2):  # unroll",
        "for j_i in range(3):  # vector",
    ]
