"""Tensors with several ragged dims: attention maps (B, L, L) and per-head maps (B, H, L, L)
as arguments in and out, a ragged x ragged product (B, M, N), and causal triangles
(B, L, causal(L)) stored without their upper half. Each program runs in the interpreter,
compiled to C and to cuda-emu (block per row, thread per query), against per-row numpy;
tests/runtime_c/test_sanitize.py reruns this module with every kernel sanitized."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.ir import interp

from support import helpers
from support.tiers import examples

MAX_LENGTH = 7
HEADS = 2
HIDDEN = 3
TARGETS = ("c", "cuda-emu")

lengths_strategy = st.lists(st.one_of(st.sampled_from([0, 1, MAX_LENGTH]),
                                      st.integers(0, MAX_LENGTH)), min_size=1, max_size=4)


def _on_every_target_and_batch(test):
    """`test(target, lengths, seed)` on each target, for drawn batches of lengths."""
    drawn = given(lengths=lengths_strategy, seed=st.integers(0, 2**16))(test)
    return pytest.mark.parametrize("target", TARGETS)(
        settings(max_examples=examples(6), deadline=None)(drawn))


def _declare():
    batch = qc.var("B", 1, 8)
    return batch, qc.ragged_dim("L", batch, MAX_LENGTH)


def _rows(rng, shapes):
    return [rng.uniform(-1, 1, size=shape).astype(np.float32) for shape in shapes]


def _bound(sch, output, target):
    """The schedule for `target`: on cuda-emu a block per row and a thread per query."""
    if target == "cuda-emu":
        row, query = sch.loops(output)[:2]
        sch.bind(row, "blockIdx.x")
        sch.bind(query, "threadIdx.x")
    return sch


def _results(program, target, arguments):
    """{output: result} of `program()` (a fresh list of outputs each call) run by the
    interpreter and compiled for `target`."""
    outputs = program()
    sch = _bound(qc.Schedule(outputs), outputs[0], target)
    interpreted = interp.run(sch.kernel, **arguments)
    helpers.require_cc()
    compiled = qc.build(sch, target=target, sanitize=helpers.SANITIZE)(**arguments)
    compiled = compiled if isinstance(compiled, dict) else {sch.kernel.outputs[0]: compiled}
    return interpreted, compiled


def _assert_rows(result, expected, message):
    assert isinstance(result, qc.RaggedArray), message
    assert len(result) == len(expected), message
    for got, want in zip(result, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=message)


def _check(program, target, arguments, reference):
    for where, results in zip(("interpreted", target), _results(program, target, arguments)):
        for name, expected in reference.items():
            _assert_rows(results[name], expected, f"{where} {name}")


def _scores_program():
    """S = Q K^T + bias, with bias (B, L, L) an argument; and R[b, i] = sum_j bias[b, i, j]."""
    batch, length = _declare()
    q = qc.placeholder((batch, length, HIDDEN), "float32", "Q")
    bias = qc.placeholder((batch, length, length), "float32", "bias")
    h = qc.reduce_axis(HIDDEN, "h")
    products = qc.compute((batch, length, length),
                          lambda b, i, j: qc.sum(q[b, i, h] * q[b, j, h], axis=h), "P")
    scores = qc.compute((batch, length, length),
                        lambda b, i, j: products[b, i, j] + bias[b, i, j], "S")
    j = qc.reduce_axis(length, "j")
    totals = qc.compute((batch, length, 1), lambda b, i, o: qc.sum(bias[b, i, j], axis=j), "R")
    return [scores, totals]


@_on_every_target_and_batch
def test_attention_maps_in_and_out(target, lengths, seed):
    rng = np.random.default_rng(seed)
    qs = _rows(rng, [(n, HIDDEN) for n in lengths])
    biases = _rows(rng, [(n, n) for n in lengths])
    arguments = {"Q": qc.RaggedArray.from_list(qs, inner_shape=(HIDDEN,)),
                 "bias": qc.RaggedArray.from_list(biases)}
    reference = {"S": [q @ q.T + bias for q, bias in zip(qs, biases)],
                 "R": [bias.sum(axis=1, keepdims=True) for bias in biases]}
    _check(_scores_program, target, arguments, reference)


def _heads_program():
    """O[b, h, i, :] = sum_j P[b, h, i, j] V[b, j, :] and twice P, P of (B, H, L, L)."""
    batch, length = _declare()
    probabilities = qc.placeholder((batch, HEADS, length, length), "float32", "P")
    values = qc.placeholder((batch, length, HIDDEN), "float32", "V")
    j = qc.reduce_axis(length, "j")
    context = qc.compute((batch, HEADS, length, HIDDEN), lambda b, h, i, d: qc.sum(
        probabilities[b, h, i, j] * values[b, j, d], axis=j), "O")
    doubled = qc.compute((batch, HEADS, length, length),
                         lambda b, h, i, k: probabilities[b, h, i, k] * np.float32(2), "D")
    return [context, doubled]


@_on_every_target_and_batch
def test_per_head_maps_in_and_out(target, lengths, seed):
    rng = np.random.default_rng(seed)
    maps = _rows(rng, [(HEADS, n, n) for n in lengths])
    values = _rows(rng, [(n, HIDDEN) for n in lengths])
    arguments = {"P": qc.RaggedArray(np.concatenate([m.reshape(-1) for m in maps]),
                                     shapes=[m.shape for m in maps]),
                 "V": qc.RaggedArray.from_list(values, inner_shape=(HIDDEN,))}
    reference = {"O": [m @ v for m, v in zip(maps, values)],
                 "D": [m * np.float32(2) for m in maps]}
    _check(_heads_program, target, arguments, reference)


def _causal_program():
    """Y = X V over each row's causal triangle X, and exp(X) as a triangle out."""
    batch, length = _declare()
    keys = qc.causal_dim(length)
    triangle = qc.placeholder((batch, length, keys), "float32", "X")
    values = qc.placeholder((batch, length, HIDDEN), "float32", "V")
    j = qc.reduce_axis(keys, "j")
    mixed = qc.compute((batch, length, HIDDEN),
                       lambda b, i, d: qc.sum(triangle[b, i, j] * values[b, j, d], axis=j), "Y")
    exponent = qc.compute((batch, length, keys), lambda b, i, k: qc.exp(triangle[b, i, k]), "E")
    return [mixed, exponent]


@_on_every_target_and_batch
def test_causal_triangles_in_and_out(target, lengths, seed):
    rng = np.random.default_rng(seed)
    triangles = [np.tril(x) for x in _rows(rng, [(n, n) for n in lengths])]
    values = _rows(rng, [(n, HIDDEN) for n in lengths])
    arguments = {"X": qc.RaggedArray.from_list(triangles, causal=1),
                 "V": qc.RaggedArray.from_list(values, inner_shape=(HIDDEN,))}
    assert arguments["X"].values.size == sum(n * (n + 1) // 2 for n in lengths)
    reference = {"Y": [x @ v for x, v in zip(triangles, values)],
                 "E": [np.tril(np.exp(x)) for x in triangles]}
    _check(_causal_program, target, arguments, reference)


def _product_program():
    """C[b] = A[b] Bm[b]^T for rows of A and Bm with lengths of their own, C of (B, M, N)."""
    batch = qc.var("B", 1, 8)
    rows, columns = qc.ragged_dim("M", batch, MAX_LENGTH), qc.ragged_dim("N", batch, MAX_LENGTH)
    left = qc.placeholder((batch, rows, HIDDEN), "float32", "A")
    right = qc.placeholder((batch, columns, HIDDEN), "float32", "Bm")
    h = qc.reduce_axis(HIDDEN, "h")
    return [qc.compute((batch, rows, columns),
                       lambda b, m, n: qc.sum(left[b, m, h] * right[b, n, h], axis=h), "C")]


@pytest.mark.parametrize("target", TARGETS)
@settings(max_examples=examples(6), deadline=None)
@given(shapes=st.lists(st.tuples(st.integers(0, MAX_LENGTH), st.integers(0, MAX_LENGTH)),
                       min_size=1, max_size=4), seed=st.integers(0, 2**16))
def test_ragged_by_ragged_products(target, shapes, seed):
    rng = np.random.default_rng(seed)
    lefts = _rows(rng, [(m, HIDDEN) for m, _ in shapes])
    rights = _rows(rng, [(n, HIDDEN) for _, n in shapes])
    arguments = {"A": qc.RaggedArray.from_list(lefts, inner_shape=(HIDDEN,)),
                 "Bm": qc.RaggedArray.from_list(rights, inner_shape=(HIDDEN,))}
    _check(_product_program, target, arguments,
           {"C": [a @ b.T for a, b in zip(lefts, rights)]})


def test_two_ragged_dims_of_one_batch_must_hold_the_same_rows():
    kernel = qc.Schedule(_product_program()).kernel
    left = qc.RaggedArray.from_list([np.zeros((2, HIDDEN), np.float32)] * 3)
    right = qc.RaggedArray.from_list([np.zeros((1, HIDDEN), np.float32)] * 2)
    with pytest.raises(qc.ShapeError, match=r"ragged dims M and N both vary over the rows of "
                                            r"batch B, but their arguments hold 3 and 2 rows"):
        interp.run(kernel, A=left, Bm=right)


def test_storage_holds_each_row_once_and_the_prelude_names_its_row_sizes():
    outputs = _heads_program()
    kernel = qc.Schedule(outputs).kernel
    text = qc.ir.render(kernel)
    assert "P: float32[B, 2, L, L]" in text
    assert "L_off2[b] = sum(L_len[r] ** 2 for r < b)" in text
    causal = qc.Schedule(_causal_program()).kernel
    assert "L_causal_off[b] = sum(tri(L_len[r]) for r < b)" in qc.ir.render(causal)


def test_a_causal_dim_must_follow_its_ragged_dim():
    batch, length = _declare()
    with pytest.raises(qc.LanguageError, match=r"X: L_causal runs up to the index of L, so it "
                                               r"must come right after L in the shape"):
        qc.placeholder((batch, qc.causal_dim(length), length), "float32", "X")
    with pytest.raises(qc.LanguageError, match=r"causal_dim follows a ragged dim"):
        qc.causal_dim(batch)


def test_arguments_of_the_wrong_row_form_are_refused():
    maps = [np.zeros((2, 2), np.float32), np.zeros((3, 3), np.float32)]
    values = qc.RaggedArray.from_list([np.zeros((2, HIDDEN), np.float32),
                                       np.zeros((3, HIDDEN), np.float32)])
    fn = interp.run
    kernel = qc.Schedule(_causal_program()).kernel
    with pytest.raises(qc.ShapeError, match=r"argument 'X' has causal=None, but the kernel "
                                            r"expects causal=1"):
        fn(kernel, X=qc.RaggedArray.from_list(maps), V=values)
    heads = qc.Schedule(_heads_program()).kernel
    with pytest.raises(qc.ShapeError, match=r"argument 'P' has rows of rank 2, but the kernel "
                                            r"expects rows of rank 3"):
        fn(heads, P=qc.RaggedArray.from_list(maps), V=values)
    uneven = qc.RaggedArray.from_list([np.zeros((1, 2, 2), np.float32),
                                       np.zeros((2, 3, 3), np.float32)])
    with pytest.raises(qc.ShapeError, match=r"argument 'P' has rows of extents 1 and 2 \(row 1\) "
                                            r"along dim 1, which the kernel declares dense"):
        fn(heads, P=uneven, V=values)
    short = qc.RaggedArray.from_list([np.zeros((2, 2, 2), np.float32),
                                      np.zeros((2, 2, 2), np.float32)])
    with pytest.raises(qc.ShapeError, match=r"row 1 of 'P' has length 2 along dim 2, but row 1 "
                                            r"of 'V' has 3 along dim 1; both are ragged dim L"):
        fn(heads, P=short, V=values)


def test_ragged_arrays_of_maps_round_trip_and_pad_with_a_mask():
    rng = np.random.default_rng(0)
    maps = _rows(rng, [(HEADS, 3, 3), (HEADS, 0, 0), (HEADS, 1, 1)])
    array = qc.RaggedArray.from_list(maps)
    assert repr(array) == ("RaggedArray(float32, batch=3, row_shapes=[(2, 3, 3), (2, 0, 0), "
                           "(2, 1, 1)])")
    assert array.values.shape == (20,) and list(array.offsets) == [0, 18, 18, 20]
    for got, want in zip(array.to_list(), maps):
        np.testing.assert_array_equal(got, want)
    padded, mask = array.to_padded(fill=-1, mask=True)
    assert padded.shape == mask.shape == (3, HEADS, 3, 3)
    np.testing.assert_array_equal(padded[0], maps[0])
    assert mask.sum() == 20 and (padded[~mask] == -1).all()
    assert array.equal(qc.RaggedArray(array.values.copy(), shapes=array.row_shapes))


def test_causal_arrays_store_the_lower_triangle_and_pad_above_it():
    square = np.arange(9, dtype=np.float32).reshape(3, 3)
    array = qc.RaggedArray.from_list([square, np.ones((1, 1), np.float32)], causal=1)
    np.testing.assert_array_equal(array.values, [0, 3, 4, 6, 7, 8, 1])
    np.testing.assert_array_equal(array[0], np.tril(square))
    padded, mask = array.to_padded(fill=np.nan, mask=True)
    assert np.isnan(padded[0][~np.tri(3, dtype=bool)]).all()
    np.testing.assert_array_equal(mask[1], [[True, False, False], [False] * 3, [False] * 3])
    with pytest.raises(qc.ShapeError, match=r"row 0 has shape \(2, 3\), not square along axes 0 "
                                            r"and 1"):
        qc.RaggedArray.from_list([np.zeros((2, 3), np.float32)], causal=1)


def test_torch_nested_tensors_refuse_rows_that_vary_beyond_their_first_axis():
    array = qc.RaggedArray.from_list([np.zeros((2, 2), np.float32),
                                      np.zeros((3, 3), np.float32)])
    with pytest.raises(qc.ShapeError, match=r"torch.nested jagged tensors hold rows that vary "
                                            r"along their first axis only, but these rows vary "
                                            r"along axes \[0, 1\]; use to_padded\(mask=True\)"):
        array.to_torch_nested()


def test_general_ragged_arrays_refuse_inconsistent_values():
    with pytest.raises(qc.ShapeError, match=r"takes lengths .* or shapes .* exactly one of them"):
        qc.RaggedArray(np.zeros(4, np.float32))
    with pytest.raises(qc.ShapeError, match=r"values has 5 entries along its first dimension"):
        qc.RaggedArray(np.zeros(5, np.float32), shapes=[(2, 2)])
    with pytest.raises(qc.ShapeError, match=r"whose axes after the first must be the last axes "
                                            r"of every row, after any that varies"):
        qc.RaggedArray(np.zeros((13, 1), np.float32), shapes=[(2, 2), (3, 3)])
