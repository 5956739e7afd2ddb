"""Ragged tensor programs that the ragged loop transforms schedule, their per-sequence
numpy references, and the oracle comparison for ragged results.

`helpers.check_schedule` compares dense outputs; `check_ragged` does the same for kernels
with ragged parameters: the original kernel and the scheduled one in the interpreter and
the scheduled one compiled to C, each against per-sequence numpy references.
"""

import numpy as np
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import interp

from . import helpers

MAX_LENGTH = 9
HIDDEN = 3

# Batches of 1 to 5 rows whose lengths cover empty rows, single elements and the maximum.
lengths_strategy = st.lists(st.one_of(st.sampled_from([0, 1, MAX_LENGTH]),
                                      st.integers(0, MAX_LENGTH)), min_size=1, max_size=5)


def ragged_batch(lengths, seed, inner=(HIDDEN,)):
    """(rows, RaggedArray): random float32 rows of the given lengths."""
    rng = np.random.default_rng(seed)
    rows = [rng.uniform(-1, 1, size=(n, *inner)).astype(np.float32) for n in lengths]
    return rows, qc.RaggedArray.from_list(rows, inner_shape=inner)


def pipeline():
    """T = 2*X, U = T + 1, Y = 3*U and total[b, h] = sum over l of U[b, l, h], over a
    ragged batch X of (B, L, 3): T and U are ragged intermediates, Y and total outputs."""
    batch = qc.var("B", 1, 8)
    length = qc.ragged_dim("L", batch, MAX_LENGTH)
    x = qc.placeholder((batch, length, HIDDEN), "float32", "X")
    doubled = qc.compute((batch, length, HIDDEN),
                         lambda b, l, h: x[b, l, h] * np.float32(2.0), "T")
    shifted = qc.compute((batch, length, HIDDEN),
                         lambda b, l, h: doubled[b, l, h] + np.float32(1.0), "U")
    scaled = qc.compute((batch, length, HIDDEN),
                        lambda b, l, h: shifted[b, l, h] * np.float32(3.0), "Y")
    k = qc.reduce_axis(length, "k")
    total = qc.compute((batch, HIDDEN), lambda b, h: qc.sum(shifted[b, k, h], axis=k), "total")
    return [scaled, total]


# Sets of the pipeline's tensors whose row loops a test transforms.
pipeline_tensors_strategy = st.sets(st.sampled_from(["T", "U", "Y", "total"]), min_size=1)


ATTENTION_DEPTH, ATTENTION_MAX_LENGTH = 8, 24


def softmax_attention(causal=False):
    """Stages S (scores), M (row max), Z (row sum), C (context) and the output O of
    softmax(Q K^T / sqrt(depth)) V per sequence, the exponentials inlined into Z and C."""
    batch = qc.var("B", 1, 8)
    length = qc.ragged_dim("L", batch, ATTENTION_MAX_LENGTH)
    keys = qc.causal_dim(length) if causal else length
    q, k, v = (qc.placeholder((batch, length, ATTENTION_DEPTH), "float32", name)
               for name in "QKV")
    d = qc.reduce_axis(ATTENTION_DEPTH, "d")
    scale = np.float32(1 / np.sqrt(ATTENTION_DEPTH))
    scores = qc.compute((batch, length, keys),
                        lambda b, i, j: qc.sum(q[b, i, d] * k[b, j, d], axis=d), "S")
    j_max, j_sum, j_context = (qc.reduce_axis(keys, name) for name in ("j", "j2", "j3"))
    top = qc.compute((batch, length), lambda b, i: qc.max(scores[b, i, j_max], axis=j_max), "M")

    def exp(b, i, j):
        return qc.exp((scores[b, i, j] - top[b, i]) * scale)

    total = qc.compute((batch, length), lambda b, i: qc.sum(exp(b, i, j_sum), axis=j_sum), "Z")
    context = qc.compute((batch, length, ATTENTION_DEPTH), lambda b, i, e: qc.sum(
        exp(b, i, j_context) * v[b, j_context, e], axis=j_context), "C")
    return qc.compute((batch, length, ATTENTION_DEPTH),
                      lambda b, i, e: context[b, i, e] / total[b, i], "O")


def online_attention(tile, causal=False):
    """Each query row runs over its keys a tile at a time: scores of the tile, its max,
    the rescaled sum and context."""
    out = softmax_attention(causal)
    sch = qc.Schedule(out)
    _, row, _ = sch.loops(out)
    for stage in ("C", "Z", "M"):
        sch.compute_at(stage, row)
    *_, value, key = sch.loops("C")
    sch.reorder(key, value)
    tiles = []
    for stage in ("M", "Z", "C"):
        key = sch.loops(stage)[2]
        key_tile, _ = sch.split(key, tile)
        if not causal:  # reductions over a causal dim come decomposed from lowering
            sch.decompose(stage, key_tile)
        tiles.append(key_tile)
    sch.online_softmax("M", tiles[0])
    sch.compute_at("S", tiles[0])
    return sch


def length_loop(sch, tensor):
    """The loop over a row's length of pipeline tensor `tensor` (the reduction's for total)."""
    return sch.loops(tensor)[-1 if tensor == "total" else 1]


def pipeline_reference(rows):
    """Per-sequence numpy results of `pipeline`: {output: list of rows or array}."""
    shifted = [r * np.float32(2.0) + np.float32(1.0) for r in rows]
    return {
        "Y": [s * np.float32(3.0) for s in shifted],
        "total": np.stack([s.sum(axis=0) for s in shifted]),
    }


def _assert_matches(result, expected, where):
    if isinstance(expected, list):
        assert isinstance(result, qc.RaggedArray), where
        assert [len(r) for r in result] == [len(r) for r in expected], where
        for got, want in zip(result, expected):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=where)
    else:
        np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5, err_msg=where)


def check_ragged(sch, arguments, reference, compile_c=True):
    """Assert the original and the scheduled kernel (interpreted, and compiled to C with
    `compile_c`) compute `reference` ({output: per-row list or array}) on `arguments`."""
    kernels = {"unscheduled": sch.original, "scheduled": sch.kernel}
    for where, kernel in kernels.items():
        results = interp.run(kernel, **arguments)
        for name, expected in reference.items():
            _assert_matches(results[name], expected, f"{where} {name}\n{sch.trace}")
    if not compile_c:
        return None
    helpers.require_cc()
    fn = qc.build(sch, target="c", sanitize=helpers.SANITIZE)
    results = fn(**arguments)
    results = results if isinstance(results, dict) else {sch.kernel.outputs[0]: results}
    for name, expected in reference.items():
        _assert_matches(results[name], expected, f"compiled {name}\n{sch.trace}\n{fn.source}")
    return fn
