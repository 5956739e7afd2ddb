"""Bad calls to the public functions of quiltc.ops, attention, encoder, weightpool and mcu:
each row raises a QuiltError subclass at the function's entry, naming the argument, what
was given and what is expected (issue 10: no crash, no silent wrong answer)."""

import numpy as np
import pytest

import quiltc as qc
from quiltc import attention, encoder, nn, ops, weightpool
from quiltc.ir.errors import QuiltError, ShapeError
from quiltc.mcu import emit_project, emulated_run, quantized_inputs
from quiltc.mcu.model import conv_layer_source, model_sources
from quiltc.recipes.mcu import ConvShape

HEADS, HEAD_SIZE, MAX_LENGTH = 2, 4, 7
F32 = np.float32


def _ragged(lengths, width, dtype=F32):
    return qc.RaggedArray.from_list([np.ones((n, width), dtype) for n in lengths],
                                    inner_shape=(width,))


X = _ragged([2, 3], 4)
QKV = _ragged([2, 3], 3 * HEADS * HEAD_SIZE)
BIAS = np.zeros(4, F32)


@pytest.mark.parametrize("call, error, message", [
    (lambda: ops.linear([[1.0] * 4] * 8, np.ones((4, 4), F32)), ShapeError,
     r"argument 'a' is a list; pass a numpy array"),
    (lambda: ops.linear(np.ones(8, F32), np.ones((4, 4), F32)), ShapeError,
     r"argument 'a' has shape \(8,\), expected \(tokens, in_features\)"),
    (lambda: ops.linear(np.ones((8, 4), np.float64), np.ones((4, 4), F32)), ShapeError,
     r"argument 'a' has dtype float64, expected float32; convert it with \.astype"),
    (lambda: ops.linear(np.ones((8, 4), F32), np.ones((5, 4), F32)), ShapeError,
     r"argument 'weight' has shape \(5, 4\), expected \(4, out_features\)"),
    (lambda: ops.linear(X, np.ones((4, 4), F32)), ShapeError,
     r"argument 'a' is a RaggedArray, but it must be a dense array .*; pass its \.values"),
    (lambda: ops.linear(np.ones((8, 4), F32), np.ones((4, 4), F32), out=np.ones((8, 5), F32)),
     ShapeError, r"argument 'out' has shape \(8, 5\), expected \(8, 4\)"),
    (lambda: ops.linear(np.ones((8, 4), F32), np.ones((4, 4), F32), out=[0.0]), ShapeError,
     r"argument 'out' is a list; pass a numpy array"),
    (lambda: ops.add(X.values, X), ShapeError,
     r"argument 'x' is a ndarray, but it must be a RaggedArray of \(total, features\)"),
    (lambda: ops.add(X, _ragged([3, 2], 4)), ShapeError,
     r"row 0 of 'x' has length 2, but row 0 of 'y' has length 3"),
    (lambda: ops.add(X, _ragged([2, 3], 5)), ShapeError,
     r"argument 'y.values' has shape \(5, 5\), expected \(total, 4\)"),
    (lambda: ops.add(_ragged([2, 3], 4, np.float64), X), ShapeError,
     r"argument 'x.values' has dtype float64, expected float32"),
    (lambda: ops.bias_gelu(X, np.zeros(5, F32)), ShapeError,
     r"argument 'bias' has shape \(5,\), expected \(4,\)"),
    (lambda: ops.bias_gelu(X, "zeros"), ShapeError, r"argument 'bias' is a str"),
    (lambda: ops.bias_gelu(X, BIAS, out=np.zeros((5, 4), np.float64)), ShapeError,
     r"argument 'out' has dtype float64, expected float32"),
    (lambda: ops.add_bias(None, BIAS), ShapeError,
     r"argument 'x' is a NoneType, but it must be a RaggedArray"),
    (lambda: ops.add_bias(X, BIAS, out=np.zeros((4, 4), F32)), ShapeError,
     r"argument 'out' has shape \(4, 4\), expected \(5, 4\)"),
    (lambda: ops.add_layer_norm(X, X.values, BIAS, BIAS), ShapeError,
     r"argument 'residual' is a ndarray, but it must be a RaggedArray"),
    (lambda: ops.add_layer_norm(X, _ragged([1, 4], 4), BIAS, BIAS), ShapeError,
     r"row 0 of 'x' has length 2, but row 0 of 'residual' has length 1"),
    (lambda: ops.add_layer_norm(X, X, np.ones((1, 4), F32), BIAS), ShapeError,
     r"argument 'gamma' has shape \(1, 4\), expected \(4,\)"),
    (lambda: ops.add_layer_norm(X, X, BIAS, BIAS, eps="small"), QuiltError,
     r"argument 'eps' is 'small', expected a finite number of 0 or more"),
    (lambda: ops.vgemm(X, np.ones((3, 4, 2), F32), 4), ShapeError,
     r"argument 'weights' has shape \(3, 4, 2\), expected \(2, 4, cols\)"),
    (lambda: ops.vgemm(X, np.ones((2, 4, 2), F32), 2), ShapeError,
     r"argument 'a' has a matrix of 3 rows, over max_rows=2; pass max_rows=3 or more"),
    (lambda: ops.vgemm(X, np.ones((2, 4, 2), F32), 2.5), QuiltError,
     r"argument 'max_rows' is 2\.5, expected an integer of 1 or more"),
    (lambda: ops.trmm(np.ones((3, 4), F32), np.ones((3, 2), F32)), ShapeError,
     r"argument 'a' has shape \(3, 4\), expected \(size, size\)"),
    (lambda: ops.trmm(np.ones((3, 3), F32), np.ones((4, 2), F32)), ShapeError,
     r"argument 'x' has shape \(4, 2\), expected \(3, cols\)"),
])
def test_bad_calls_to_ops_name_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("call, error, message", [
    (lambda: attention.attention(QKV.values, HEADS, HEAD_SIZE, MAX_LENGTH), ShapeError,
     r"argument 'qkv' is a ndarray, but it must be a RaggedArray of \(total, 24\) values"),
    (lambda: attention.attention(X, HEADS, HEAD_SIZE, MAX_LENGTH), ShapeError,
     r"argument 'qkv.values' has shape \(5, 4\), expected \(total, 24\)"),
    (lambda: attention.attention(QKV, 0, HEAD_SIZE, MAX_LENGTH), QuiltError,
     r"argument 'heads' is 0, expected an integer of 1 or more"),
    (lambda: attention.attention(QKV, HEADS, "4", MAX_LENGTH), QuiltError,
     r"argument 'head_size' is '4', expected an integer"),
    (lambda: attention.attention(QKV, HEADS, HEAD_SIZE, None), QuiltError,
     r"argument 'max_length' is None, expected an integer"),
    (lambda: attention.attention(QKV, HEADS, HEAD_SIZE, 2), ShapeError,
     r"row 1 has length 3, over the declared maximum 2 of L \(max_length\)"),
    (lambda: attention.attention(QKV, HEADS, HEAD_SIZE, MAX_LENGTH, out=np.zeros((5, 24), F32)),
     ShapeError, r"argument 'out' has shape \(5, 24\), expected \(5, 8\)"),
    (lambda: attention.attention(_ragged([2], 24, np.float64), HEADS, HEAD_SIZE, MAX_LENGTH),
     ShapeError, r"argument 'qkv.values' has dtype float64, expected float32"),
])
def test_bad_calls_to_attention_name_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def _weights_with(name, value):
    weights = encoder.random_weights(8, 16)
    weights[name] = value
    return weights


@pytest.mark.parametrize("call, error, message", [
    (lambda: encoder.EncoderLayer([1, 2], HEADS, MAX_LENGTH), ShapeError,
     r"argument 'weights' is a list; pass the state_dict"),
    (lambda: encoder.EncoderLayer({k: v for k, v in encoder.random_weights(8, 16).items()
                                   if k != "linear1.bias"}, HEADS, MAX_LENGTH), ShapeError,
     r"weights lack linear1.bias; pass the state_dict"),
    (lambda: encoder.EncoderLayer(encoder.random_weights(8, 16), 3, MAX_LENGTH), QuiltError,
     r"hidden size 8 is not a multiple of 3 heads"),
    (lambda: encoder.EncoderLayer(_weights_with("linear2.weight", np.ones((8, 9), F32)),
                                  HEADS, MAX_LENGTH), ShapeError,
     r"weight 'linear2.weight' has shape \(8, 9\), expected \(8, 16\) for hidden size 8 and "
     r"feed-forward size 16"),
    (lambda: encoder.EncoderLayer(_weights_with("norm1.weight", np.ones((2, 4), F32)),
                                  HEADS, MAX_LENGTH), ShapeError,
     r"weight 'norm1.weight' has shape \(2, 4\), expected \(hidden\)"),
    (lambda: encoder.EncoderLayer(_weights_with("norm2.bias", "x"), HEADS, MAX_LENGTH),
     ShapeError, r"weight 'norm2.bias' is a str that is not a numeric array"),
    (lambda: encoder.EncoderLayer(encoder.random_weights(8, 16), HEADS, 0), QuiltError,
     r"argument 'max_length' is 0, expected an integer of 1 or more"),
    (lambda: encoder.EncoderLayer(encoder.random_weights(8, 16), HEADS, MAX_LENGTH)(X),
     ShapeError, r"argument 'x.values' has shape \(5, 4\), expected \(total, 8\)"),
    (lambda: encoder.EncoderLayer(encoder.random_weights(8, 16), HEADS, MAX_LENGTH)(
        np.ones((5, 8), F32)), ShapeError, r"argument 'x' is a ndarray, but it must be a "
                                           r"RaggedArray"),
    (lambda: encoder.EncoderLayer(encoder.random_weights(8, 16), HEADS, 2)(_ragged([3], 8)),
     ShapeError, r"row 0 has length 3, over the declared maximum 2 of L \(max_length\)"),
])
def test_bad_calls_to_the_encoder_name_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def _net():
    return nn.Sequential([nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Dense(8 * 8 * 8, 3)], seed=0)


IMAGES = np.random.default_rng(0).uniform(0, 1, (6, 8, 8, 1)).astype(F32)


@pytest.fixture(scope="module")
def pooled():
    return weightpool.compress(_net(), calib=IMAGES, pool_size=4)


@pytest.mark.parametrize("call, error, message", [
    (lambda pm: weightpool.compress([1], calib=IMAGES), QuiltError,
     r"model is a list; pass a quiltc.nn.Sequential"),
    (lambda pm: weightpool.pooled_positions("net"), QuiltError, r"model is a str"),
    (lambda pm: weightpool.compress(_net(), calib=None), ShapeError,
     r"argument 'calib' is a NoneType"),
    (lambda pm: weightpool.compress(_net(), calib=IMAGES[0]), ShapeError,
     r"calib must be a float array of NHWC images, shape rank 4 with n >= 1; got float32 "
     r"of shape \(8, 8, 1\)"),
    (lambda pm: weightpool.compress(_net(), calib=np.ones((2, 8, 8, 3), F32)), ShapeError,
     r"calib has 3 channels .* but the first conv Conv2d\(1, 8, .* takes 1"),
    (lambda pm: weightpool.compress(_net(), calib=IMAGES, train=IMAGES), QuiltError,
     r"train must be a pair \(x, y\) of images and labels, got a ndarray"),
    (lambda pm: weightpool.compress(_net(), calib=IMAGES, int8_layers=2), QuiltError,
     r"int8_layers=2 is not supported; pass a tuple of layer positions"),
    (lambda pm: weightpool.compress(_net(), calib=IMAGES, distance="l1"), QuiltError,
     r"distance='l1' is not supported; pass one of \('cosine', 'euclidean'\)"),
    (lambda pm: weightpool.kmeans(np.ones(8), 2), ShapeError,
     r"rows must be a float array of vectors, shape rank 2 .* got float64 of shape \(8,\)"),
    (lambda pm: weightpool.kmeans(np.ones((3, 8)), 0), QuiltError,
     r"k=0 is not supported: pass a number of centers of 1 or more"),
    (lambda pm: weightpool.kmeans(np.ones((3, 8)), 2, "manhattan"), QuiltError,
     r"distance='manhattan' is not supported"),
    (lambda pm: weightpool.nearest(np.ones((3, 8)), np.ones((2, 4)), "cosine"), ShapeError,
     r"centers must be a float array of centers, shape \(n, 8\)"),
    (lambda pm: pm.predict(np.ones((2, 5, 5, 1), F32)), ShapeError,
     r"x must be a float array of NHWC images, shape \(n, 8, 8, 1\) with n >= 0; got "
     r"float32 of shape \(2, 5, 5, 1\)"),
    (lambda pm: pm.predict([1.0, 2.0]), ShapeError, r"argument 'x' is a list"),
    (lambda pm: pm.quantize_input("images"), ShapeError, r"argument 'x' is a str"),
    (lambda pm: pm.accuracy(IMAGES, np.zeros(3)), ShapeError,
     r"y must hold one label per image of x \(6\), got shape \(3,\)"),
    (lambda pm: pm.predict(IMAGES, act_bits=9), QuiltError,
     r"act_bits=9 is not supported"),
    (lambda pm: pm.quantized(8).quantize_input(np.ones((1, 1))), ShapeError,
     r"quantize_input takes float NHWC images \(rank 4\), got float64 of shape \(1, 1\)"),
    (lambda pm: pm.quantized(8).accuracy(IMAGES, np.zeros(2)), ShapeError,
     r"y must hold one label per image of x \(6\), got shape \(2,\)"),
    (lambda pm: _net().fit(IMAGES, np.zeros(6, np.int64), epochs="a"), QuiltError,
     r"fit: epochs='a'; pass an integer of 1 or more"),
    (lambda pm: _net().fit(IMAGES, np.zeros(6, np.int64), seed=-1), QuiltError,
     r"fit: seed=-1; pass an integer of 0 or more"),
    (lambda pm: _net().fit(IMAGES, np.zeros(6, np.int64), lr=float("nan")), QuiltError,
     r"fit: lr=nan; pass a positive finite number"),
    (lambda pm: _net().fit(IMAGES, np.zeros(6)), ShapeError,
     r"fit takes integer class labels in y, got dtype float64"),
])
def test_bad_calls_to_weightpool_name_the_argument(pooled, call, error, message):
    with pytest.raises(error, match=message):
        call(pooled)


SHAPE = ConvShape(8, 8, 8, 8, 3, 3, 1, 1)


@pytest.mark.parametrize("call, error, message", [
    (lambda pm, tmp: model_sources("net", 8), QuiltError,
     r"model_sources takes a QuantModel or a pooled model .*, got str"),
    (lambda pm, tmp: model_sources(pm, "8"), QuiltError, r"act_bits='8' is not supported"),
    (lambda pm, tmp: conv_layer_source("bitserial", (8, 8, 8, 8)), QuiltError,
     r"shape is a tuple; pass a quiltc.recipes.mcu.ConvShape"),
    (lambda pm, tmp: conv_layer_source("bitserial", SHAPE, act_bits=0), QuiltError,
     r"act_bits=0 is not supported"),
    (lambda pm, tmp: conv_layer_source("bitserial", SHAPE, pool_size=0), QuiltError,
     r"pool_size=0 is not supported: indices are one byte, so pass a pool_size in 1..256"),
    (lambda pm, tmp: conv_layer_source("int4", SHAPE), QuiltError, r"conv kind 'int4' is unknown"),
    (lambda pm, tmp: emit_project(pm, None), QuiltError,
     r"path is a NoneType; pass the folder to write as a str or pathlib.Path"),
    (lambda pm, tmp: emit_project(pm, tmp / "a", board=None), QuiltError,
     r"board must be a board name such as 'mps2-an386'"),
    (lambda pm, tmp: emit_project(pm, tmp / "b", test_inputs=[1.0, 2.0]), ShapeError,
     r"argument 'test_inputs' is a list; pass a numpy array"),
    (lambda pm, tmp: emit_project(pm, tmp / "c", test_inputs=np.ones((2, 5, 5, 1), F32)),
     ShapeError, r"test inputs hold 25 values each but the model takes 64"),
    (lambda pm, tmp: emit_project(pm, tmp / "d", test_inputs=np.ones((2, 64), np.int32)),
     ShapeError, r"inputs have dtype int32; pass float NHWC images or the int8 rows"),
    (lambda pm, tmp: emit_project(pm, tmp / "e", act_bits=0), QuiltError,
     r"act_bits=0 is not supported"),
    (lambda pm, tmp: emulated_run(pm, np.ones((1, 5, 5, 1), F32)), ShapeError,
     r"inputs hold 25 values each but the model takes 64"),
    (lambda pm, tmp: emulated_run(pm, "images"), ShapeError, r"argument 'inputs' is a str"),
    (lambda pm, tmp: emulated_run(pm, IMAGES[:1], board="lm3s"), QuiltError,
     r"unknown board 'lm3s'"),
    (lambda pm, tmp: quantized_inputs("net", IMAGES), QuiltError,
     r"model is a str; pass a QuantModel or a pooled model"),
])
def test_bad_calls_to_mcu_name_the_argument(pooled, tmp_path, call, error, message):
    with pytest.raises(error, match=message):
        call(pooled, tmp_path)
