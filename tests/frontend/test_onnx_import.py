"""ONNX import: models written by torch's exporter and small hand-built ones, each op
compared with onnx's reference evaluator (and onnxruntime where it is installed); shape
sub-graphs folded away; symbolic dims; what is refused, and how."""

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quiltc as qc
from quiltc.graph import PRIMITIVES, from_onnx

from support.tiers import examples

pytest.importorskip("onnx", reason="install it with: pip install 'onnx>=1.16'")
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

F32 = np.float32
DATA = Path(__file__).parents[1] / "data"
SHARED_MODELS = Path("/work/shared/data/models")
INT64_MAX, INT64_MIN = 2**63 - 1, -(2**63)


def _info(name, dtype, shape):
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)),
                                         shape)


def _model(nodes, inputs, outputs, initializers=None, opset=17):
    """A model of `nodes`; inputs and outputs are (name, dtype, shape) with str dims for
    dim_params (outputs may give None for the shape: quiltc does not read it)."""
    graph = helper.make_graph(
        nodes, "case", [_info(*spec) for spec in inputs], [_info(*spec) for spec in outputs],
        [numpy_helper.from_array(np.asarray(array), name)
         for name, array in (initializers or {}).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _node(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, name=f"/case/{op}", **attrs)


def _check(model, arrays, sizes=None, rtol=1e-5, atol=1e-6):
    """Import `model` and compare each output with the reference evaluator's."""
    graph = from_onnx(model, sizes)
    got = graph.evaluate(**arrays)
    got = got if isinstance(got, tuple) else (got,)
    want = ReferenceEvaluator(model).run(None, arrays)
    assert len(got) == len(want)
    for mine, theirs in zip(got, want):
        assert mine.shape == theirs.shape and mine.dtype == theirs.dtype
        np.testing.assert_allclose(mine, theirs, rtol=rtol, atol=atol)
    return graph


RNG = np.random.default_rng(7)
X = RNG.standard_normal((3, 5)).astype(F32)
POSITIVE = (np.abs(X) + F32(0.5)).astype(F32)
ROW = RNG.standard_normal(5).astype(F32)
X3 = RNG.standard_normal((2, 3, 4)).astype(F32)


@pytest.mark.parametrize("op", ["Sqrt", "Reciprocal", "Exp", "Log", "Erf", "Tanh", "Sigmoid",
                                "Relu", "Neg", "Identity"])
def test_unary_ops_match_the_reference(op):
    model = _model([_node(op, ["x"], ["y"])], [("x", F32, ["T", 5])], [("y", F32, None)])
    graph = _check(model, {"x": POSITIVE if op in ("Sqrt", "Log") else X})
    assert graph.outputs[0].shape == graph.inputs[0].shape


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Pow"])
def test_binary_ops_broadcast_a_weight_and_a_scalar_constant(op):
    nodes = [_node(op, ["x", "w"], ["a"]),
             _node("Constant", [], ["two"], value=numpy_helper.from_array(np.array(2, F32))),
             _node(op, ["a", "two"], ["y"])]
    model = _model(nodes, [("x", F32, ["T", 5])], [("y", F32, None)], {"w": ROW ** 2 + 1})
    graph = _check(model, {"x": POSITIVE}, rtol=1e-4)
    assert {value.shape for value, _ in graph.constants.values()} == {(5,), ()}


def test_where_equal_and_cast_mask_like_attention():
    nodes = [_node("Constant", [], ["zero"], value_int=0),
             _node("Equal", ["mask", "zero"], ["masked"]),
             _node("Constant", [], ["low"], value_float=-1e9),
             _node("Where", ["masked", "low", "x"], ["y"]),
             _node("Cast", ["mask"], ["m32"], to=TensorProto.FLOAT),
             _node("Add", ["y", "m32"], ["z"]),
             _node("Cast", ["z"], ["zi"], to=TensorProto.INT32)]
    model = _model(nodes, [("x", F32, ["T", 5]), ("mask", np.int64, ["T", 5])],
                   [("z", F32, None), ("zi", np.int32, None)])
    mask = (RNG.random((3, 5)) > 0.4).astype(np.int64)
    _check(model, {"x": X * 10, "mask": mask})


@pytest.mark.parametrize("left, right", [((2, 3, 4), (4, 6)), ((4,), (2, 4, 3)),
                                         ((2, 3, 4), (4,)), ((1, 3, 4), (2, 4, 5))])
def test_matmul_follows_numpy_for_batches_and_vectors(left, right):
    model = _model([_node("MatMul", ["a", "b"], ["y"])],
                   [("a", F32, list(left)), ("b", F32, list(right))], [("y", F32, None)])
    _check(model, {"a": RNG.standard_normal(left).astype(F32),
                   "b": RNG.standard_normal(right).astype(F32)}, rtol=1e-5)


@pytest.mark.parametrize("attrs, b_shape, weight", [
    ({"transB": 1}, (6, 5), True),
    ({"transB": 1, "alpha": 0.5, "beta": 2.0}, (6, 5), True),
    ({"transA": 1, "transB": 1}, (6, 5), False),
    ({}, (5, 6), False),
])
def test_gemm_expands_into_transposes_a_matmul_and_a_bias(attrs, b_shape, weight):
    a = X.T.copy() if attrs.get("transA") else X
    b = RNG.standard_normal(b_shape).astype(F32)
    initializers = {"c": RNG.standard_normal(6).astype(F32)}
    inputs = [("a", F32, list(a.shape))]
    if weight:
        initializers["b"] = b
    else:
        inputs.append(("b", F32, list(b_shape)))
    model = _model([_node("Gemm", ["a", "b", "c"], ["y"], **attrs)], inputs,
                   [("y", F32, None)], initializers)
    graph = _check(model, {"a": a} if weight else {"a": a, "b": b})
    transposes = sum(node.op == "transpose" for node in graph.nodes)
    assert transposes == attrs.get("transA", 0) + (attrs.get("transB", 0) and not weight)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_softmax_and_log_softmax_along_one_axis(op, axis):
    model = _model([_node(op, ["x"], ["y"], axis=axis)], [("x", F32, [2, "S", 4])],
                   [("y", F32, None)])
    _check(model, {"x": X3 * 4})


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_softmax_before_opset_13_runs_over_every_axis_from_its_axis_on(op, axis):
    # onnx's reference evaluator reads these with opset 13's meaning (one axis), so the
    # reference here is numpy's, and onnxruntime's where it is installed.
    model = _model([_node(op, ["x"], ["y"], axis=axis)], [("x", F32, [2, "S", 4])],
                   [("y", F32, None)], opset=11)
    x = X3 * 4
    axes = tuple(range(axis, 3))
    shifted = x - x.max(axis=axes, keepdims=True)
    log_total = np.log(np.exp(shifted).sum(axis=axes, keepdims=True))
    want = shifted - log_total if op == "LogSoftmax" else np.exp(shifted - log_total)
    got = from_onnx(model).evaluate(x=x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    runtime = _onnxruntime()
    if runtime is not None:
        model.ir_version = 7  # what onnxruntime reads at opset 11
        session = runtime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(got, session.run(None, {"x": x})[0], rtol=1e-5, atol=1e-6)


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


@pytest.mark.parametrize("axis, bias", [(-1, True), (-2, True), (-1, False), (1, True)])
def test_layer_normalization_over_trailing_axes(axis, bias):
    normalized = X3.shape[axis:]
    initializers = {"gamma": RNG.standard_normal(normalized).astype(F32)}
    if bias:
        initializers["beta"] = RNG.standard_normal(normalized).astype(F32)
    model = _model([_node("LayerNormalization", ["x", "gamma", *(["beta"] if bias else [])],
                          ["y"], axis=axis, epsilon=1e-3)],
                   [("x", F32, ["B", 3, 4])], [("y", F32, None)], initializers)
    _check(model, {"x": X3}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum", "ReduceMax"])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("opset", [11, 13, 18])
def test_reductions_read_axes_as_attribute_or_input_by_opset(op, keepdims, opset):
    as_input = opset >= (13 if op == "ReduceSum" else 18)
    node = (_node(op, ["x", "axes"], ["y"], keepdims=keepdims) if as_input
            else _node(op, ["x"], ["y"], axes=[0, -1], keepdims=keepdims))
    model = _model([node], [("x", F32, ["B", 3, 4])], [("y", F32, None)],
                   {"axes": np.array([0, -1])} if as_input else None, opset=opset)
    graph = _check(model, {"x": X3})
    assert len(graph.outputs[0].shape) == (3 if keepdims else 1)


def test_a_reduction_without_axes_takes_all_of_them_or_none_when_told():
    nodes = [_node("ReduceSum", ["x"], ["all"], keepdims=0),
             _node("ReduceSum", ["x"], ["same"], noop_with_empty_axes=1)]
    model = _model(nodes, [("x", F32, ["B", 3, 4])], [("all", F32, None), ("same", F32, None)])
    graph = _check(model, {"x": X3}, rtol=1e-5, atol=1e-5)
    assert graph.outputs[1] is graph.inputs[0]


@pytest.mark.parametrize("nodes, opset, initializers, shape", [
    ([_node("Transpose", ["x"], ["y"], perm=[2, 0, 1])], 17, None, ["B", 3, 4]),
    ([_node("Transpose", ["x"], ["y"])], 17, None, ["B", 3, 4]),
    ([_node("Flatten", ["x"], ["y"], axis=2)], 17, None, ["B", 3, 4]),
    ([_node("Flatten", ["x"], ["y"], axis=0)], 17, None, ["B", 3, 4]),
    ([_node("Unsqueeze", ["x"], ["u"], axes=[0, -1]),
      _node("Squeeze", ["u"], ["y"], axes=[0])], 11, None, ["B", 3, 4]),
    ([_node("Unsqueeze", ["x", "ax"], ["u"]), _node("Squeeze", ["u", "ax"], ["y"])], 13,
     {"ax": np.array([1, 3])}, ["B", 3, 4]),
    ([_node("Squeeze", ["x"], ["y"])], 13, None, [2, 1, 4, 1]),
    ([_node("Reshape", ["x", "s"], ["y"])], 17, {"s": np.array([0, -1])}, ["B", 3, 4]),
    ([_node("Reshape", ["x", "s"], ["y"], allowzero=1)], 17, {"s": np.array([2, 12])},
     [2, 3, 4]),
])
def test_layout_ops_become_reshapes_and_transposes(nodes, opset, initializers, shape):
    model = _model(nodes, [("x", F32, shape)], [("y", F32, None)], initializers, opset)
    x = RNG.standard_normal([2 if isinstance(d, str) else d for d in shape]).astype(F32)
    graph = _check(model, {"x": x})
    assert {node.op for node in graph.nodes} <= {"reshape", "transpose"}


def test_concat_of_data_and_a_weight_along_symbolic_and_static_axes():
    nodes = [_node("Concat", ["x", "w", "x"], ["rows"], axis=0),
             _node("Concat", ["rows", "rows"], ["y"], axis=-1)]
    model = _model(nodes, [("x", F32, ["T", 5])], [("y", F32, None)],
                   {"w": RNG.standard_normal((2, 5)).astype(F32)})
    graph = _check(model, {"x": X})
    tokens = graph.inputs[0].shape[0]
    assert graph.outputs[0].shape == (2 * tokens + 2, 10)


@pytest.mark.parametrize("node, opset, initializers, width", [
    (_node("Split", ["x", "parts"], ["a", "b", "c"], axis=1), 13,
     {"parts": np.array([1, 3, 1])}, 5),
    (_node("Split", ["x"], ["a", "b", "c"], axis=-1, split=[2, 2, 1]), 11, None, 5),
    (_node("Split", ["x"], ["a", "b", "c"], axis=1, num_outputs=3), 18, None, 5),
    (_node("Split", ["x"], ["a", "b", "c"], axis=1), 11, None, 6),
])
def test_split_becomes_slices(node, opset, initializers, width):
    model = _model([node], [("x", F32, ["T", width])],
                   [(name, F32, None) for name in ("a", "b", "c")], initializers, opset)
    graph = _check(model, {"x": RNG.standard_normal((3, width)).astype(F32)})
    assert [node.op for node in graph.nodes] == ["slice"] * 3


@pytest.mark.parametrize("starts, ends, axes, steps", [
    ([1], [4], [1], [1]),
    ([-1], [INT64_MIN], [1], [-1]),
    ([4, 0], [0, INT64_MAX], [1, 0], [-2, 1]),
    ([-3], [-1], [-1], [1]),
    ([0, 1], [INT64_MAX, -1], [0, 1], [1, 2]),
    ([10], [INT64_MAX], [1], [1]),
    ([1, -2], [INT64_MAX, -5], [0, 1], [1, -1]),
])
def test_slice_with_negative_steps_and_ends_over_a_symbolic_dim(starts, ends, axes, steps):
    initializers = {name: np.array(values) for name, values in
                    (("starts", starts), ("ends", ends), ("axes", axes), ("steps", steps))}
    model = _model([_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])],
                   [("x", F32, ["T", 5])], [("y", F32, None)], initializers)
    graph = from_onnx(model, sizes={"T": (3, 40)})
    for tokens in (3, 4, 11):
        x = RNG.standard_normal((tokens, 5)).astype(F32)
        np.testing.assert_array_equal(graph.evaluate(x=x),
                                      ReferenceEvaluator(model).run(None, {"x": x})[0])


def test_slice_before_opset_10_reads_attributes():
    model = _model([_node("Slice", ["x"], ["y"], starts=[1, -3], ends=[1000, -1], axes=[0, 1])],
                   [("x", F32, [4, 5])], [("y", F32, None)], opset=9)
    _check(model, {"x": RNG.standard_normal((4, 5)).astype(F32)})


@settings(max_examples=examples(40), deadline=None)
@given(lo=st.integers(0, 6), span=st.integers(0, 6), start=st.integers(-9, 9),
       stop=st.one_of(st.integers(-9, 9), st.sampled_from([INT64_MAX, INT64_MIN])),
       step=st.sampled_from([-3, -2, -1, 1, 2, 3]))
def test_a_slice_of_a_symbolic_dim_is_right_for_every_size_or_refused(lo, span, start, stop,
                                                                      step):
    initializers = {"starts": np.array([start]), "ends": np.array([stop]),
                    "axes": np.array([0]), "steps": np.array([step])}
    model = _model([_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])],
                   [("x", F32, ["T"])], [("y", F32, None)], initializers)
    try:
        graph = from_onnx(model, sizes={"T": (lo, lo + span)})
    except qc.ShapeError as error:
        assert "node '/case/Slice' (Slice)" in str(error) and "symbolic dim T" in str(error)
        return
    reference = ReferenceEvaluator(model)
    for tokens in range(lo, lo + span + 1):
        x = np.arange(tokens, dtype=F32)
        np.testing.assert_array_equal(graph.evaluate(x=x), reference.run(None, {"x": x})[0])


@pytest.mark.parametrize("indices, axis", [(np.array([[0, 2], [-1, 1]]), 1),
                                           (np.array(1), 0), (np.array([4, 0, 4]), -1)])
def test_gather_on_data_with_constant_indices(indices, axis):
    model = _model([_node("Gather", ["x", "i"], ["y"], axis=axis)],
                   [("x", F32, [3, "S", 5])], [("y", F32, None)], {"i": indices})
    graph = _check(model, {"x": RNG.standard_normal((3, 4, 5)).astype(F32)})
    assert [node.op for node in graph.nodes] == ["gather"]


def test_gather_with_indices_from_an_input_like_an_embedding():
    model = _model([_node("Gather", ["table", "ids"], ["y"])],
                   [("ids", np.int64, ["B", "T"])], [("y", F32, None)],
                   {"table": RNG.standard_normal((10, 4)).astype(F32)})
    graph = _check(model, {"ids": RNG.integers(0, 10, (2, 3))})
    assert graph.outputs[0].shape[2] == 4 and len(graph.outputs[0].shape) == 3


def test_expand_to_a_constant_shape_and_to_a_shape_read_off_an_input():
    nodes = [_node("Expand", ["x", "to"], ["wide"]),
             _node("Shape", ["wide"], ["shape"]),
             _node("Expand", ["w", "shape"], ["y"]),
             _node("Add", ["wide", "y"], ["z"])]
    model = _model(nodes, [("x", F32, ["T", 1])], [("z", F32, None)],
                   {"to": np.array([1, 5]), "w": ROW})
    graph = _check(model, {"x": X[:, :1].copy()})
    assert [node.op for node in graph.nodes] == ["expand", "expand", "add"]
    assert graph.outputs[0].shape == (graph.inputs[0].shape[0], 5)


def test_shape_arithmetic_folds_into_symbolic_reshapes():
    """Shape -> Gather -> Mul -> Unsqueeze -> Concat -> Reshape, and back through Div, Cast
    and Slice: what exporters write for x.view(b * t, -1) and its inverse leaves reshapes
    with symbolic targets and no trace of the arithmetic."""
    ints = {name: np.array(value) for name, value in
            (("zero", 0), ("one", 1), ("axis0", [0]), ("minus1", [-1]), ("two", [2]))}
    nodes = [_node("Shape", ["x"], ["shape"]),
             _node("Gather", ["shape", "zero"], ["b"]), _node("Gather", ["shape", "one"], ["t"]),
             _node("Mul", ["b", "t"], ["bt"]),
             _node("Unsqueeze", ["bt", "axis0"], ["bt1"]),
             _node("Concat", ["bt1", "minus1"], ["flat_shape"], axis=0),
             _node("Reshape", ["x", "flat_shape"], ["flat"]),
             _node("Div", ["bt", "b"], ["t_again"]),
             _node("Cast", ["t_again"], ["t32"], to=TensorProto.INT32),
             _node("Cast", ["t32"], ["t64"], to=TensorProto.INT64),
             _node("Unsqueeze", ["t64", "axis0"], ["t1"]),
             _node("Slice", ["shape", "zero_vector", "one_vector"], ["lead"]),
             _node("Concat", ["lead", "t1", "minus1"], ["back_shape"], axis=0),
             _node("Reshape", ["flat", "back_shape"], ["y"]),
             _node("Concat", ["lead", "t1", "two", "minus1"], ["head_shape"], axis=0),
             _node("Reshape", ["y", "head_shape"], ["heads"])]
    ints.update(zero_vector=np.array([0]), one_vector=np.array([1]))
    model = _model(nodes, [("x", F32, ["B", "T", 6])], [("y", F32, None), ("heads", F32, None)],
                   ints, opset=13)
    graph = _check(model, {"x": RNG.standard_normal((2, 3, 6)).astype(F32)})
    batch, tokens, _ = graph.inputs[0].shape
    assert [node.op for node in graph.nodes] == ["reshape"] * 3
    assert graph.nodes[0].output.shape == (batch * tokens, 6)
    assert [value.shape for value in graph.outputs] == [(batch, tokens, 6),
                                                        (batch, tokens, 2, 3)]
    assert not graph.constants


def test_inputs_of_each_dtype_keep_it():
    nodes = [_node("Cast", ["i"], ["wide"], to=TensorProto.DOUBLE),
             _node("Where", ["keep", "x", "wide"], ["y"])]
    model = _model(nodes, [("x", np.float64, ["N"]), ("i", np.int32, ["N"]),
                           ("keep", np.bool_, ["N"])], [("y", np.float64, None)])
    graph = _check(model, {"x": RNG.standard_normal(6), "i": np.arange(6, dtype=np.int32),
                           "keep": np.arange(6) % 2 == 0})
    assert [value.dtype for value in graph.inputs] == [np.float64, np.int32, np.bool_]


# ------------------------------------------------------------------------ symbolic dims


def test_one_dim_param_is_one_size_with_the_range_sizes_gives():
    model = _model([_node("Add", ["a", "b"], ["y"])],
                   [("a", F32, ["batch", "seq", 4]), ("b", F32, ["batch", "seq", 1])],
                   [("y", F32, ["batch", "seq"])])  # a wrong declared shape, not read
    graph = from_onnx(model, sizes={"seq": (2, 9)})
    (batch, seq, _), (batch_b, seq_b, _) = (value.shape for value in graph.inputs)
    assert batch is batch_b and seq is seq_b
    assert (batch.range, seq.range) == ((1, 4096), (2, 9))
    assert graph.outputs[0].shape == (batch, seq, 4)
    with pytest.raises(qc.ShapeError, match=r"size seq = 10 is outside its range \[2, 9\]"):
        graph.evaluate(a=np.ones((1, 10, 4), F32), b=np.ones((1, 10, 1), F32))
    with pytest.raises(qc.ShapeError, match=r"input 'b' has shape \(1, 3, 1\), expected"):
        graph.evaluate(a=np.ones((1, 2, 4), F32), b=np.ones((1, 3, 1), F32))


def test_names_become_identifiers_and_identifier_input_names_stay():
    model = _model([_node("Mul", ["input.1", "mask"], ["/layer/Mul_output_0"]),
                    _node("Add", ["/layer/Mul_output_0", "layer.bias"], ["out:0"])],
                   [("input.1", F32, ["T", 3]), ("mask", F32, ["T", 3])], [("out:0", F32, None)],
                   {"layer.bias": np.ones(3, F32)})
    graph = from_onnx(model)
    assert [value.name for value in graph.inputs] == ["input_1", "mask"]
    assert list(graph.constants) == ["layer_bias"]
    assert all(node.output.name.isidentifier() for node in graph.nodes)
    x = RNG.standard_normal((2, 3)).astype(F32)
    np.testing.assert_allclose(graph.evaluate(input_1=x, mask=x), x * x + 1, rtol=1e-6)


# ------------------------------------------------------------------------------ refusals


def _refusal(nodes, error, *fragments, inputs=(("x", F32, ["T", 4]),), initializers=None,
             sizes=None, opset=17):
    model = _model(nodes, list(inputs), [("y", F32, None)], initializers, opset)
    with pytest.raises(error) as raised:
        from_onnx(model, sizes)
    for fragment in fragments:
        assert fragment in str(raised.value)
    return str(raised.value)


def test_an_unsupported_op_is_refused_naming_the_node_and_the_supported_ops():
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="/foo/Conv")
    message = _refusal([conv], qc.LanguageError, "node '/foo/Conv' (Conv): quiltc imports no "
                       "Conv; supported ops: ", "LayerNormalization", "MatMul",
                       initializers={"w": np.ones((1, 1, 1), F32)})
    assert "Shape" in message


def test_an_op_of_another_domain_is_refused():
    node = helper.make_node("FusedGemm", ["x", "x"], ["y"], name="fused", domain="com.microsoft")
    _refusal([node], qc.LanguageError, "node 'fused' (FusedGemm)", "com.microsoft.FusedGemm")


@pytest.mark.parametrize("node, fragments", [
    (_node("Softmax", ["x"], ["y"], bar=3),
     ["node '/case/Softmax' (Softmax): attribute 'bar' = 3 is not handled", "axis"]),
    (_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT16),
     ["node '/case/Cast' (Cast): attribute 'to' = 10 is not handled", "float32"]),
    (_node("Gemm", ["x", "x"], ["y"], transB=1, activation=b"relu"),
     ["node '/case/Gemm' (Gemm): attribute 'activation' = b'relu' is not handled"]),
    (_node("LayerNormalization", ["x", "x"], ["y"], stash_type=0),
     ["(LayerNormalization): attribute 'stash_type' = 0 is not handled"]),
])
def test_an_unhandled_attribute_is_refused_naming_node_op_and_attribute(node, fragments):
    _refusal([node], qc.LanguageError, *fragments)


def test_a_used_mean_output_of_layer_normalization_is_refused():
    nodes = [_node("LayerNormalization", ["x", "gamma"], ["normed", "mean"]),
             _node("Add", ["normed", "mean"], ["y"])]
    _refusal(nodes, qc.LanguageError, "(LayerNormalization): output 'mean'",
             initializers={"gamma": np.ones(4, F32)})


@pytest.mark.parametrize("nodes, initializers, fragments", [
    ([_node("Slice", ["x", "s", "e"], ["y"])], {"s": np.array([2]), "e": np.array([5])},
     ["node '/case/Slice' (Slice): axis 0: slice start 2 on the symbolic dim T (from 1 to "
       "4096) lands at different places"]),
    ([_node("Slice", ["x", "s", "e", "a", "st"], ["y"])],
     {"s": np.array([0]), "e": np.array([INT64_MAX]), "a": np.array([0]),
      "st": np.array([2])}, ["slice step 2 on the symbolic dim T", "use step 1"]),
    ([_node("Squeeze", ["x", "a"], ["y"])], {"a": np.array([0])},
     ["(Squeeze): cannot squeeze axis 0 of (T, 4)"]),
    ([_node("Reshape", ["x", "to"], ["y"])], {"to": np.array([-1, 3])},
     ["(Reshape): cannot infer the -1 of target shape (-1, 3)"]),
    ([_node("Shape", ["x"], ["s"]), _node("Cast", ["s"], ["f"], to=TensorProto.FLOAT),
      _node("Mul", ["x", "f"], ["y"])], None,
     ["node '/case/Cast' (Cast): 's' = [T, 4] is computed from sizes"]),
])
def test_shapes_quiltc_cannot_express_are_refused_naming_the_node(nodes, initializers,
                                                                   fragments):
    _refusal(nodes, qc.ShapeError, *fragments, initializers=initializers)


def test_a_reshape_target_computed_from_data_is_refused():
    nodes = [_node("Reshape", ["x", "shape"], ["y"])]
    _refusal(nodes, qc.ShapeError, "(Reshape): the target shape ('shape') is computed from "
             "data at run time", inputs=[("x", F32, ["T", 4]), ("shape", np.int64, [2])])


@pytest.mark.parametrize("inputs, sizes, error, fragment", [
    ([("x", F32, [None, 4])], None, qc.ShapeError,
     "input 'x': dim 0 has neither a value nor a name"),
    ([("x", np.float16, ["T", 4])], None, qc.ShapeError, "input 'x' is float16"),
    ([("x", F32, ["T", 4])], {"S": (1, 5)}, qc.LanguageError,
     "sizes gives ranges for S, which no input dim names; the model's symbolic dims are T"),
    ([("x", F32, ["T", 4])], {"T": 5}, qc.LanguageError, "sizes['T'] = 5: give a (lo, hi)"),
])
def test_inputs_quiltc_cannot_take_are_refused(inputs, sizes, error, fragment):
    _refusal([_node("Identity", ["x"], ["y"])], error, fragment, inputs=inputs, sizes=sizes)


def test_what_is_not_a_model_is_refused(tmp_path):
    with pytest.raises(qc.LanguageError, match="cannot read an ONNX model from .*missing"):
        from_onnx(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\xff not a protobuf")
    with pytest.raises(qc.LanguageError, match="cannot read an ONNX model"):
        from_onnx(tmp_path / "junk.onnx")
    with pytest.raises(qc.LanguageError, match="takes a path or an onnx.ModelProto, not int"):
        from_onnx(3)


# ---------------------------------------------------------------------- exported BERT


def _bert_inputs(batch, seq, hidden, seed=0):
    """Random hidden states and a 0/1 mask padding each sequence after its own length."""
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, seq), np.int64)
    for row, length in enumerate(rng.integers(1, seq + 1, batch)):
        mask[row, length:] = 0
    mask[0, seq // 2:] = 0 if seq > 1 else 1
    return {"hidden": rng.standard_normal((batch, seq, hidden)).astype(F32), "mask": mask}


def _matches_the_references(path, graph, arrays):
    got = graph.evaluate(**arrays)
    want = ReferenceEvaluator(str(path)).run(None, arrays)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    runtime = _onnxruntime()
    if runtime is not None:
        session = runtime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(got, session.run(None, arrays)[0], rtol=1e-4, atol=1e-5)
    return got


@pytest.fixture(scope="module")
def bert_small():
    return from_onnx(DATA / "bert_layer_small.onnx", sizes={"batch": (1, 8), "seq": (1, 128)})


@pytest.mark.parametrize("batch, seq", [(1, 7), (2, 16), (3, 33), (1, 1)])
def test_an_exported_bert_layer_matches_the_references(bert_small, batch, seq):
    arrays = _bert_inputs(batch, seq, 256, seed=batch * seq)
    assert 0 in arrays["mask"] or seq == 1
    got = _matches_the_references(DATA / "bert_layer_small.onnx", bert_small, arrays)
    assert got.shape == (seq, 256)


def test_an_exported_bert_layer_holds_only_data_primitives_over_symbolic_dims(bert_small):
    graph = bert_small
    batch, seq, hidden = graph.inputs[0].shape
    assert (str(batch), str(seq), hidden) == ("batch", "seq", 256)
    assert graph.inputs[1].shape == (batch, seq) and graph.inputs[1].dtype == np.int64
    assert (batch.range, seq.range) == ((1, 8), (1, 128))
    # The shape sub-graphs (Shape, Gather, Unsqueeze, Concat of sizes) are folded into
    # the reshapes' targets; what remains is the layer's arithmetic.
    assert {node.op for node in graph.nodes} == {
        "reshape", "cast", "sub", "mul", "matmul", "add", "transpose", "reduce_nanmax",
        "exp_nonpositive", "reduce_sum", "div", "reduce_mean", "sqrt", "erf", "gather"}
    assert any(node.op == "reshape" and node.attrs["shape"] == (batch, seq, 4, 64)
               for node in graph.nodes)
    # The one gather is the export's output[0] along the batch, on data: its output is
    # (seq, 256) where the model declares [batch, seq].
    (gather,) = [node for node in graph.nodes if node.op == "gather"]
    assert gather.inputs[0].dtype == np.float32 and gather.output is graph.outputs[0]
    assert graph.outputs[0].shape == (seq, 256)
    text = str(graph)
    ops = re.findall(r"^    \w+ = (\w+)\(", text, re.MULTILINE)
    assert len(ops) == len(graph.nodes) and set(ops) <= set(PRIMITIVES)
    assert not re.search("Shape|Concat|Unsqueeze|Gather", text)


def test_bert_base_layer_matches_the_references():
    path = SHARED_MODELS / "bert_base_layer.onnx"
    if not path.exists():
        pytest.skip(f"{path} is not on this machine (the shared data folder holds it)")
    graph = from_onnx(path)
    assert graph.outputs[0].shape == (graph.inputs[0].shape[1], 768)
    _matches_the_references(path, graph, _bert_inputs(2, 9, 768))


@pytest.mark.parametrize("build, error, message", [
    (lambda g, x: g.concat(), qc.LanguageError, r"concat takes one or more inputs, got 0"),
    (lambda g, x: g.concat(x, g.input("y", (3, 5)), axis=1), qc.ShapeError,
     r"concat t\d+: concat along axis 1 of shapes \(T, 4\), \(3, 5\): dims 0 differ"),
    (lambda g, x: g.gather(x, g.input("i", (2,), "float32"), axis=0), qc.ShapeError,
     r"the indices i are float32; they must be integers"),
    (lambda g, x: g.gather(x, g.input("i", (2,), "int64"), axis=-1), qc.ShapeError,
     r"gather axis -1 is not an axis of \(T, 4\); give one from 0 to 1"),
    (lambda g, x: g.slice(x, starts=(0,), stops=(None,), steps=(1,)), qc.ShapeError,
     r"need one entry for each of the 2 axes"),
    (lambda g, x: g.slice(x, starts=(0, 0), stops=(None, None), steps=(0, 1)), qc.ShapeError,
     r"a slice step of 0 takes nothing"),
    (lambda g, x: g.expand(x, shape=(3, 4)), qc.ShapeError, r"dims T and 3 do not broadcast"),
])
def test_the_primitives_import_adds_refuse_bad_nodes_as_they_are_added(build, error, message):
    g = qc.graph.Graph()
    x = g.input("x", (qc.var("T", 1, 64), 4))
    with pytest.raises(error, match=message):
        build(g, x)
