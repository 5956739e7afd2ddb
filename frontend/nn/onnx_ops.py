"""One converter per ONNX op `onnx_cnn` imports, and the table of them: each takes the
import under way (`onnx_cnn._Chain`), the node (`onnx_folds.Node`) and the per-example
NCHW shape of its input, appends the `quiltc.nn` layers the node becomes (or folds it into
the layer before), and returns the shape of its output.
"""

import numpy as np

from ..ir.errors import QuiltError, ShapeError
from .im2col import output_size
from .layers import AvgPool2d, Conv2d, DepthwiseConv2d, MaxPool2d, ReLU
from .onnx_folds import flat_target


def _spatial(shape):
    if len(shape) != 3:
        raise ShapeError(f"reads a flat activation of {shape[0]} features; it needs a "
                         "[batch, C, H, W] map")
    return shape


def _flat(shape):
    if len(shape) != 1:
        raise ShapeError(f"reads a [batch, {', '.join(map(str, shape))}] map; put a Flatten "
                         "(or a Reshape to (batch, -1)) before it")
    return shape[0]


def _padding(node, kernel, stride):
    auto_pad = node.text("auto_pad", "NOTSET")
    if auto_pad == "VALID":
        return 0
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if stride == 1 and kernel % 2:
            return (kernel - 1) // 2
        node.refuse("auto_pad", "SAME pads evenly only at stride 1 with an odd kernel; export "
                                "with explicit pads")
    if auto_pad != "NOTSET":
        node.refuse("auto_pad", "use NOTSET, VALID or SAME_*")
    pads = node.attr("pads", (0, 0, 0, 0))
    if len(set(pads)) != 1:
        node.refuse("pads", "quiltc.nn pads the same number of zeros on every side")
    return pads[0]


def _conv(chain, node, shape):
    c, h, w = _spatial(shape)
    weight = node.constant(1, "weight")
    if weight.ndim != 4:
        raise ShapeError(f"weight has shape {weight.shape}; a 2-D conv's is OIHW")
    cout, group_channels, kh, kw = weight.shape
    bias = node.constant(2, "bias") if node.has(2) else np.zeros(cout, np.float32)
    node.require_ones("dilations")
    if tuple(node.attr("kernel_shape", (kh, kw))) != (kh, kw):
        node.refuse("kernel_shape", f"the weight's kernel is {kh}x{kw}")
    if kh != kw:
        raise ShapeError(f"the kernel is {kh}x{kw}; quiltc.nn convs are square")
    stride = node.same_pair("strides", (1, 1))
    padding = _padding(node, kh, stride)
    group = node.attr("group", 1)
    if group == 1 and group_channels == c:
        layer, hwio = Conv2d(c, cout, kh, stride, padding), weight.transpose(2, 3, 1, 0)
    elif group == c == cout and group_channels == 1:
        layer, hwio = DepthwiseConv2d(c, kh, stride, padding), weight[:, 0].transpose(1, 2, 0)
    elif group not in (1, c) or group == c != cout:
        node.refuse("group", f"quiltc.nn imports group 1 (a Conv2d) and group = channels = "
                             f"output channels (a DepthwiseConv2d); the input has {c} channels "
                             f"and the weight {cout} filters")
    else:
        raise ShapeError(f"weight of shape {weight.shape} with group {group} does not fit an "
                         f"input of {c} channels")
    oh, ow = (output_size(size, kh, stride, padding) for size in (h, w))
    if min(oh, ow) < 1:
        raise ShapeError(f"a {kh}x{kh} kernel with padding {padding} does not fit the {h}x{w} map")
    chain.add(layer, hwio, bias)
    return (cout, oh, ow)


def _pool(layer_class):
    def convert(chain, node, shape):
        c, h, w = _spatial(shape)
        kernel = node.same_pair("kernel_shape", None)
        if node.same_pair("strides", (1, 1)) != kernel:
            node.refuse("strides", f"quiltc.nn pools step by their window ({kernel}); export "
                                   "a pool whose stride equals its kernel")
        if any(node.attr("pads", ())):
            node.refuse("pads", "quiltc.nn pools do not pad")
        if node.text("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            node.refuse("auto_pad", "quiltc.nn pools do not pad")
        node.require_ones("dilations")
        if node.attr("storage_order", 0):
            node.refuse("storage_order", "the indices output is not computed")
        if node.attr("ceil_mode", 0) and (h % kernel or w % kernel):
            node.refuse("ceil_mode", f"quiltc.nn pools round down, the same only where the "
                                     f"window divides the {h}x{w} map")
        if min(h, w) < kernel:
            raise ShapeError(f"the {kernel}x{kernel} window does not fit the {h}x{w} map")
        chain.add(layer_class(kernel))
        return (c, h // kernel, w // kernel)

    return convert


def _global_average_pool(chain, node, shape):
    c, h, w = _spatial(shape)
    if h != w:
        raise ShapeError(f"the map is {h}x{w}; quiltc.nn average pools have square windows, "
                         "so it averages square maps only")
    chain.add(AvgPool2d(h))
    return (c, 1, 1)


def _relu(chain, node, shape):
    chain.add_relu(ReLU())
    return shape


def _clip(chain, node, shape):
    if node.opset >= 11:
        low, high = (node.constant(index, name).item() if node.has(index) else None
                     for index, name in ((1, "min"), (2, "max")))
    else:
        low, high = node.attr("min"), node.attr("max")
    if low != 0:
        raise QuiltError(f"min is {low}; quiltc.nn imports Clip from 0 (a ReLU, capped at max), "
                         "the only range that quantizes to unsigned activations")
    unbounded = high is None or high >= np.finfo(np.float32).max
    if not unbounded and not high > 0:
        raise QuiltError(f"max is {high}; a Clip from 0 needs a positive max")
    chain.add_relu(ReLU() if unbounded else ReLU(ceiling=float(high)))
    return shape


def _reshape(chain, node, shape):
    target = node.constant(1, "the target shape")
    flat_target(target, int(np.prod(shape)), chain.batch, node.attr("allowzero", 0))
    return chain.flatten(shape)


def _flatten(chain, node, shape):
    if node.attr("axis", 1) != 1:
        node.refuse("axis", "quiltc.nn flattens everything but the batch (axis 1)")
    return chain.flatten(shape)


def _gemm(chain, node, shape):
    features = _flat(shape)
    if node.attr("transA", 0):
        node.refuse("transA", "the activation must be Gemm's untransposed left operand")
    weight = node.constant(1, "B")
    weight = weight.T if node.attr("transB", 0) else weight
    if weight.ndim != 2 or weight.shape[0] != features:
        raise ShapeError(f"B{'^T' if node.attr('transB', 0) else ''} has shape {weight.shape}, "
                         f"and the input has {features} features")
    bias = node.constant(2, "C") if node.has(2) else np.float32(0)
    try:
        bias = np.broadcast_to(bias, (1, weight.shape[1])).reshape(-1)
    except ValueError:
        raise ShapeError(f"C has shape {bias.shape}; quiltc.nn takes one bias per output "
                         f"({weight.shape[1]})") from None
    return chain.dense(weight * node.attr("alpha", 1.0), bias * node.attr("beta", 1.0))


def _matmul(chain, node, shape):
    features = _flat(shape)
    weight = node.constant(1, "the right operand")
    if weight.ndim != 2 or weight.shape[0] != features:
        raise ShapeError(f"the right operand has shape {weight.shape}, and the input has "
                         f"{features} features")
    return chain.dense(weight, np.zeros(weight.shape[1], np.float32))


def _add(chain, node, shape):
    value = next(node.constant(index, "the addend") for index in (0, 1)
                 if node.inputs[index] in node.known)
    per_channel = (1, shape[0], *(1,) * (len(shape) - 1))
    try:
        fits = np.broadcast_shapes(value.shape, per_channel) == per_channel
    except ValueError:
        fits = False
    if not fits:
        raise ShapeError(f"adds a constant of shape {value.shape}; quiltc.nn folds only one "
                         f"value per channel ({shape[0]}) into a bias")
    chain.fold(node, np.float32(1), np.broadcast_to(value, per_channel).reshape(-1))
    return shape


def _batch_norm(chain, node, shape):
    if node.attr("training_mode", 0):
        node.refuse("training_mode", "export the model in eval mode")
    if node.attr("spatial", 1) != 1:
        node.refuse("spatial", "quiltc.nn folds per-channel statistics only")
    gamma, beta, mean, variance = (node.constant(index, name).astype(np.float64) for index, name
                                   in enumerate(("scale", "B", "mean", "var"), 1))
    if any(array.shape != (shape[0],) for array in (gamma, beta, mean, variance)):
        raise ShapeError(f"scale, B, mean and var must each hold {shape[0]} values (one per "
                         f"channel), got shape {gamma.shape}")
    scale = gamma / np.sqrt(variance + node.attr("epsilon", 1e-5))
    chain.fold(node, scale, beta - mean * scale)
    return shape


def _pad(chain, node, shape):
    pads = node.constant(1, "pads") if node.opset >= 11 else np.asarray(node.attr("pads", ()))
    if np.any(pads):
        raise ShapeError(f"pads {pads.tolist()}: quiltc.nn passes a Pad through only where it "
                         "adds nothing (older exporters put one before a pool); a conv pads "
                         "with its own pads attribute")
    return shape


def _dropout(chain, node, shape):
    if node.has(2) and node.constant(2, "training_mode").item():
        raise QuiltError("training_mode is true; export the model in eval mode")
    return shape


CONVERTERS = {
    "Conv": (_conv, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"}),
    "Relu": (_relu, set()),
    "Clip": (_clip, {"min", "max"}),
    "MaxPool": (_pool(MaxPool2d), {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads",
                                   "storage_order", "strides"}),
    "AveragePool": (_pool(AvgPool2d), {"auto_pad", "ceil_mode", "count_include_pad",
                                       "dilations", "kernel_shape", "pads", "strides"}),
    "GlobalAveragePool": (_global_average_pool, set()),
    "Flatten": (_flatten, {"axis"}),
    "Reshape": (_reshape, {"allowzero"}),
    "Gemm": (_gemm, {"alpha", "beta", "transA", "transB"}),
    "MatMul": (_matmul, set()),
    "Add": (_add, set()),
    "BatchNormalization": (_batch_norm, {"epsilon", "momentum", "spatial", "training_mode"}),
    "Identity": (lambda chain, node, shape: shape, set()),
    "Dropout": (_dropout, {"ratio", "seed"}),
    "Pad": (_pad, {"mode", "pads", "value"}),
}
