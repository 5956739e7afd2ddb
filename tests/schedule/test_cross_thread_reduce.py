"""cross_thread_reduce: a reduction shared out among a block's threads and combined by a
tree in shared memory computes what the unscheduled kernel does, in the interpreter and
under the CUDA emulation (and nvcc compiles it); its refusals say what would work."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import interp

from support import cuda_kernels
from support.helpers import random_array, require_tool
from support.tiers import examples

REDUCERS = {"sum": qc.sum, "max": qc.max, "min": qc.min}


def centred(combiner):
    """total[i] = combiner over j of X[i, j], and Y = X - total: a reduction whose result
    the whole block reads afterwards; sizes R in [1, 8], C in [1, 80]."""
    rows, columns = qc.var("R", 1, 8), qc.var("C", 1, 80)
    x = qc.placeholder((rows, columns), "float32", "X")
    j = qc.reduce_axis(columns, "j")
    total = qc.compute((rows,), lambda i: REDUCERS[combiner](x[i, j], axis=j), "total")
    return total, qc.compute((rows, columns), lambda i, c: x[i, c] - total[i], "Y")


def schedule_centred(combiner, threads):
    """A block per row: the reduction across `threads` threads, then Y strided over them."""
    total, out = centred(combiner)
    sch = qc.Schedule(out, name=f"centred_{combiner}_{threads}")
    row = sch.loops(out)[0]
    sch.compute_at(total, row)
    sch.bind(row, "blockIdx.x")
    sch.cross_thread_reduce(total, sch.loops(total)[-1], threads)
    _, lanes = sch.split(sch.loops(out)[-1], threads)
    sch.bind(lanes, "threadIdx.x")
    return sch


def _matches(got, want, combiner):
    # Partial sums add in another order; maxima and minima are exact.
    rtol = 1e-5 if combiner == "sum" else 0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


# Shapes, thread counts and combiners of the property tests; sizes are symbolic in the
# kernel, so each (threads, combiner) compiles once.
CASES = dict(rows=st.integers(1, 8), columns=st.integers(1, 80),
             threads=st.sampled_from([1, 2, 8, 32]), combiner=st.sampled_from(sorted(REDUCERS)),
             seed=st.integers(0, 2**16))


def _case(rows, columns, threads, combiner, seed):
    """(schedule, X, the unscheduled kernel's results)."""
    sch = schedule_centred(combiner, threads)
    x = random_array(np.random.default_rng(seed), (rows, columns)) * np.float32(4.0)
    return sch, x, interp.run(sch.original, X=x)


@settings(max_examples=examples(20))
@given(**CASES)
def test_the_shared_reduction_matches_the_unscheduled_kernel(rows, columns, threads, combiner,
                                                             seed):
    sch, x, expected = _case(rows, columns, threads, combiner, seed)
    for name, got in interp.run(sch.kernel, X=x).items():
        _matches(got, expected[name], combiner)


@pytest.mark.toolchain
@settings(max_examples=examples(12))
@given(**CASES)
def test_the_shared_reduction_matches_under_the_cuda_emulation(rows, columns, threads,
                                                               combiner, seed):
    require_tool("g++", "apt-get install -y g++")
    sch, x, expected = _case(rows, columns, threads, combiner, seed)
    _matches(qc.build(sch, target="cuda-emu")(X=x), expected["Y"], combiner)


@pytest.mark.toolchain
def test_nvcc_compiles_it_and_the_emulation_agrees():
    fn = cuda_kernels.build_both(schedule_centred("sum", 64))
    assert "__shared__ float total_partial[64];" in fn.source
    # After the partials, after each of the six levels (the last before Y reads total).
    assert fn.source.count("__syncthreads();") == 7
    x = random_array(np.random.default_rng(3), (5, 77))
    np.testing.assert_allclose(fn(X=x), x - x.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-5)


def test_the_loop_nest_is_partials_then_a_tree():
    total, _ = centred("max")
    sch = qc.Schedule(total)
    sch.bind("i", "blockIdx.x")
    thread, stride = sch.cross_thread_reduce(total, "j", 4)
    assert (thread.name, stride.name) == ("j_t", "j_o")
    assert str(sch.trace).splitlines()[-1] == "j_t, j_o = sch.cross_thread_reduce('total', 'j', 4)"
    lines = [line.strip() for line in repr(sch).splitlines()]
    assert lines[lines.index("for i in range(R):  # blockIdx.x"):] == [
        "for i in range(R):  # blockIdx.x",
        "total_partial = alloc[4] float32  # shared",
        "for j_t in range(4):  # threadIdx.x",
        "total_partial[j_t] = -inf",
        "for j_o in range((C + 3) // 4):",
        "if 4*j_o + j_t < C:",
        "total_partial[j_t] max= X[i, 4*j_o + j_t]",
        "barrier()",
        "for j_c in range(2):  # threadIdx.x",
        "total_partial[j_c] = max(total_partial[j_c], total_partial[j_c + 2])",
        "barrier()",
        "for j_c_1 in range(1):  # threadIdx.x",
        "total[i] = max(total_partial[j_c_1], total_partial[j_c_1 + 1])",
        "barrier()",
    ]


def _two_axes():
    """total[i] = sum over j, k of X[i, j, k], k inside j; sizes 3 x 9 x 2."""
    x = qc.placeholder((3, 9, 2), "float32", "X")
    j, k = qc.reduce_axis(9, "j"), qc.reduce_axis(2, "k")
    return qc.compute((3,), lambda i: qc.sum(x[i, j, k], axis=(j, k)), "total")


def test_the_loops_inside_the_reduction_loop_run_in_each_thread():
    sch = qc.Schedule(_two_axes())
    sch.cross_thread_reduce("total", "j", 4)
    x = random_array(np.random.default_rng(5), (3, 9, 2))
    np.testing.assert_allclose(interp.run(sch.kernel, X=x)["total"], x.sum(axis=(1, 2)),
                               rtol=1e-5)


def _refused(sch, message, *arguments):
    before = sch.kernel
    with pytest.raises(qc.ScheduleError, match=message):
        sch.cross_thread_reduce(*arguments)
    assert sch.kernel == before and "cross_thread_reduce" not in str(sch.trace)


@pytest.mark.parametrize("threads", [48, 0, 2048, 2.5, True])
def test_threads_must_be_a_power_of_two_that_fits_a_block(threads):
    total, _ = centred("sum")
    _refused(qc.Schedule(total),
             rf"cross_thread_reduce: asked to reduce total over loop j across {threads!r} "
             r"threads, but .* is not a power of two from 1 to 1024.*Pass a power of two up to "
             r"1024", "total", "j", threads)


def test_the_loop_must_step_the_reduction():
    total, out = centred("sum")
    sch = qc.Schedule(out)
    _refused(sch, r"loop i picks the element of total written \(a spatial loop\), so there is "
                  r"nothing to combine across it\. Pass a reduction loop of total: j\.",
             total, "i", 4)
    _refused(sch, r"no reduction into total stands inside loop c\. Pass a loop that steps the "
                  r"reduction into total; its reduction loops: j\.", total, "c", 4)
    sch.decompose(total, "j")
    _refused(sch, r"the reduction into total has no initialisation left.*Apply "
                  r"cross_thread_reduce before decompose", total, "j", 4)


def test_the_reduction_must_end_inside_the_loop():
    sch = qc.Schedule(_two_axes())
    _refused(sch, r"the reduction into total also runs over loop j, outside loop k.*Pass the "
                  r"outermost reduction loop, j", "total", "k", 4)


def test_the_element_must_be_fixed_outside_the_loop():
    x = qc.placeholder((3, 5, 2), "float32", "X")
    j = qc.reduce_axis(5, "j")
    sums = qc.compute((3, 2), lambda i, k: qc.sum(x[i, j, k], axis=j), "sums")
    sch = qc.Schedule(sums)
    sch.reorder("i", "j", "k")
    _refused(sch, r"loop k inside loop j picks the element of sums written.*Reorder so that "
                  r"loop k runs outside loop j", sums, "j", 4)


def test_the_loop_must_hold_only_the_reduction():
    x = qc.placeholder((3, 5), "float32", "X")
    doubled = qc.compute((3, 5), lambda i, c: x[i, c] * 2.0, "doubled")
    j = qc.reduce_axis(5, "j")
    total = qc.compute((3,), lambda i: qc.sum(doubled[i, j], axis=j), "total")
    sch = qc.Schedule(total)
    sch.compute_at(doubled, "j")
    _refused(sch, r"loop j also writes doubled, and the threads would share out that "
                  r"statement's iterations too", total, "j", 4)


@pytest.mark.parametrize("mark, message", [
    (lambda sch: sch.bind("i", "threadIdx.x"),
     r"it sits inside loop i, marked threadIdx\.x, and a block's threads"),
    (lambda sch: sch.parallel("i"), r"it sits inside loop i, marked parallel"),
    (lambda sch: sch.unroll("k"), r"loop k inside it is marked unroll, and each thread must "
                                  r"accumulate its partial alone"),
    (lambda sch: sch.unroll(sch.split("j", 3)[1]), r"loop j_i is already marked unroll"),
])
def test_the_threads_need_serial_loops_around_and_inside(mark, message):
    sch = qc.Schedule(_two_axes())
    mark(sch)
    loop = "j_i" if "j_i" in repr(sch) else "j"
    _refused(sch, message, "total", loop, 4)
