"""ATen FX graphs (what torch.compile hands a backend, after AOT autograd) as quiltc
graphs: each supported ATen op becomes the primitives of graph.py, with the shapes a run of
the FX module on real inputs recorded (so views and expansions take their exact output
shapes). `SUPPORTED` says which ops convert; torch_backend.py compiles the sub-graphs made
of them and leaves the rest to eager PyTorch.

The layer PyTorch's TransformerEncoderLayer runs in inference (its fused
`_transformer_encoder_layer_fwd`) is opened into attention, layer norms and the
feed-forward block, so the whole layer fuses.
"""

import functools
import math
import operator

import numpy as np

from ..ir.errors import QuiltError
from .graph import Graph

_FLOAT = np.dtype(np.float32)


def _scalar_or(g, value, like):
    return value if not isinstance(value, (int, float, bool)) else g.scalar(value, like)


def _binary(op):
    def convert(g, node, x, y, alpha=1):
        x = _scalar_or(g, x, y) if not hasattr(x, "shape") else x
        y = _scalar_or(g, y, x)
        if alpha != 1:
            y = g.mul(y, g.scalar(alpha, y))
        return g.apply(op, x, y)
    return convert


def _unary(op):
    return lambda g, node, x: g.apply(op, x)


def _out_shape(node):
    return tuple(int(extent) for extent in node.meta["tensor_meta"].shape)


def _reshaped(g, node, x, *_, **__):
    shape = _out_shape(node)
    return x if tuple(x.shape) == shape else g.reshape(x, shape=shape)


def _permute(g, node, x, dims):
    return g.transpose(x, perm=tuple(d % len(x.shape) for d in dims))


def _transpose(g, node, x, first, second):
    perm = list(range(len(x.shape)))
    perm[first], perm[second] = perm[second], perm[first]
    return g.transpose(x, perm=tuple(perm))


def _slice(g, node, x, dim=0, start=None, end=None, step=1):
    starts = [0] * len(x.shape)
    stops = [None] * len(x.shape)
    steps = [1] * len(x.shape)
    dim = dim % len(x.shape)
    starts[dim], stops[dim], steps[dim] = start or 0, end, step
    if end is not None and end >= int(x.shape[dim]):
        stops[dim] = None
    return g.slice(x, starts=tuple(starts), stops=tuple(stops), steps=tuple(steps))


def _select(g, node, x, dim, index):
    index = index % int(x.shape[dim % len(x.shape)])
    return _reshaped(g, node, _slice(g, node, x, dim, index, index + 1))


def _layer_norm(g, node, x, normalized_shape, weight, bias, eps):
    axes = tuple(range(len(x.shape) - len(normalized_shape), len(x.shape)))
    mean = g.reduce_mean(x, axes=axes)
    centered = g.sub(x, mean)
    variance = g.reduce_mean(g.mul(centered, centered), axes=axes)
    inverse_deviation = g.reciprocal(g.sqrt(g.add(variance, g.scalar(eps, x))))
    normed = g.mul(centered, inverse_deviation)
    if weight is not None:
        normed = g.mul(normed, weight)
    if bias is not None:
        normed = g.add(normed, bias)
    return normed, mean, inverse_deviation


def _gelu(g, node, x, approximate="none"):
    return g.gelu_tanh(x) if approximate == "tanh" else g.gelu_erf(x)


def _linear(g, x, weight, bias):
    product = g.matmul(x, g.transpose(weight, perm=(1, 0)))
    return g.add(product, bias)


def _attention(g, x, embed_dim, heads, qkv_weight, qkv_bias, proj_weight, proj_bias):
    batch, tokens, _ = (int(extent) for extent in x.shape)
    width = embed_dim // heads
    qkv = g.reshape(_linear(g, x, qkv_weight, qkv_bias), shape=(batch, tokens, 3, heads, width))
    parts = [g.reshape(g.slice(qkv, starts=(0, 0, part, 0, 0), stops=(None, None, part + 1,
                                                                       None, None),
                               steps=(1,) * 5), shape=(batch, tokens, heads, width))
             for part in range(3)]
    query, key, value = (g.transpose(part, perm=(0, 2, 1, 3)) for part in parts)
    scores = g.mul(g.matmul(query, g.transpose(key, perm=(0, 1, 3, 2))),
                   g.scalar(1 / math.sqrt(width), x))
    context = g.matmul(g.softmax(scores, axis=-1), value)
    merged = g.reshape(g.transpose(context, perm=(0, 2, 1, 3)), shape=(batch, tokens, embed_dim))
    return _linear(g, merged, proj_weight, proj_bias)


def _encoder_layer(g, node, src, embed_dim, heads, qkv_weight, qkv_bias, proj_weight,
                   proj_bias, use_gelu, norm_first, eps, norm_weight_1, norm_bias_1,
                   norm_weight_2, norm_bias_2, ffn_weight_1, ffn_bias_1, ffn_weight_2,
                   ffn_bias_2, mask=None, mask_type=None):
    def norm(x, weight, bias):
        return _layer_norm(g, node, x, (embed_dim,), weight, bias, eps)[0]

    def attention(x):
        return _attention(g, x, embed_dim, heads, qkv_weight, qkv_bias, proj_weight, proj_bias)

    def feed_forward(x):
        hidden = _linear(g, x, ffn_weight_1, ffn_bias_1)
        hidden = g.gelu_erf(hidden) if use_gelu else g.relu(hidden)
        return _linear(g, hidden, ffn_weight_2, ffn_bias_2)

    if norm_first:
        x = g.add(src, attention(norm(src, norm_weight_1, norm_bias_1)))
        return g.add(x, feed_forward(norm(x, norm_weight_2, norm_bias_2)))
    x = norm(g.add(src, attention(src)), norm_weight_1, norm_bias_1)
    return norm(g.add(x, feed_forward(x)), norm_weight_2, norm_bias_2)


def _aten():
    import torch

    aten = torch.ops.aten
    views = {aten.view.default, aten._unsafe_view.default, aten.reshape.default,
             aten.unsqueeze.default, aten.squeeze.dim, aten.squeeze.dims, aten.squeeze.default,
             aten.flatten.using_ints}
    table = {op: _reshaped for op in views}
    table.update({op: (lambda g, node, x, *_, **__: x)
                  for op in (aten.clone.default, aten.alias.default, aten.contiguous.default,
                             aten.detach.default, aten.lift_fresh_copy.default)})
    table.update({
        aten.mm.default: lambda g, node, a, b: g.matmul(a, b),
        aten.bmm.default: lambda g, node, a, b: g.matmul(a, b),
        aten.matmul.default: lambda g, node, a, b: g.matmul(a, b),
        aten.addmm.default: lambda g, node, bias, a, b: g.add(g.matmul(a, b), bias),
        aten.t.default: lambda g, node, x: g.transpose(x, perm=(1, 0)),
        aten.permute.default: _permute,
        aten.transpose.int: _transpose,
        aten.expand.default: lambda g, node, x, *_: g.expand(x, shape=_out_shape(node)),
        aten.slice.Tensor: _slice,
        aten.select.int: _select,
        aten.add.Tensor: _binary("add"), aten.add.Scalar: _binary("add"),
        aten.sub.Tensor: _binary("sub"), aten.sub.Scalar: _binary("sub"),
        aten.mul.Tensor: _binary("mul"), aten.mul.Scalar: _binary("mul"),
        aten.div.Tensor: _binary("div"), aten.div.Scalar: _binary("div"),
        aten.maximum.default: _binary("maximum"), aten.minimum.default: _binary("minimum"),
        aten.relu.default: _unary("relu"), aten.exp.default: _unary("exp"),
        aten.log.default: _unary("log"), aten.sqrt.default: _unary("sqrt"),
        aten.tanh.default: _unary("tanh"), aten.sigmoid.default: _unary("sigmoid"),
        aten.erf.default: _unary("erf"), aten.neg.default: _unary("neg"),
        aten.reciprocal.default: _unary("reciprocal"),
        aten.rsqrt.default: lambda g, node, x: g.reciprocal(g.sqrt(x)),
        aten.gelu.default: _gelu,
        aten._softmax.default: lambda g, node, x, dim, half_to_float: g.softmax(x, axis=dim),
        aten.native_layer_norm.default: _layer_norm,
        aten._transformer_encoder_layer_fwd.default: _encoder_layer,
        operator.getitem: lambda g, node, values, index: values[index],
    })
    return table


@functools.cache
def converters():
    """{ATen op: function(graph, fx node, *arguments) -> Value or tuple of Values}, built
    on first use so that importing quiltc does not import torch."""
    return _aten()


def _float32_tensors(node):
    value = node.meta.get("val")
    values = value if isinstance(value, (tuple, list)) else [value]
    return all(getattr(item, "dtype", None) is not None and str(item.dtype) == "torch.float32"
               and item.device.type == "cpu" for item in values if item is not None)


def supported(node):
    """Whether `node` (of an ATen FX graph carrying fake tensors in meta["val"]) converts."""
    if node.op != "call_function" or node.target not in converters():
        return False
    if node.target is operator.getitem:
        return True
    import torch

    encoder = torch.ops.aten._transformer_encoder_layer_fwd.default
    mask = node.args[18] if len(node.args) > 18 else node.kwargs.get("mask")
    if node.target is encoder and mask is not None:
        return False
    arguments = [arg for arg in node.args if isinstance(arg, type(node))]
    if any(not _float32_tensors(arg) for arg in arguments):
        return False
    return _float32_tensors(node)


def graph_from_fx(module, inputs):
    """The quiltc Graph computing FX module `module` on `inputs` (CPU torch tensors: one run
    of the module records every node's shape); inputs are named input0, input1, ...."""
    import torch
    from torch.fx.passes.shape_prop import ShapeProp

    with torch.no_grad():
        ShapeProp(module).propagate(*inputs)
    g, values = Graph(), {}
    table = converters()
    placeholders = iter(enumerate(inputs))
    for node in module.graph.nodes:
        if node.op == "placeholder":
            position, tensor = next(placeholders)
            values[node] = g.input(f"input{position}", tuple(tensor.shape),
                                   str(tensor.dtype).removeprefix("torch."))
        elif node.op == "call_function":
            if node.target not in table:
                raise QuiltError(f"no quiltc graph op for {node.target} (node {node.name})")
            arguments = torch.fx.node.map_arg(node.args, values.__getitem__)
            keywords = torch.fx.node.map_arg(node.kwargs, values.__getitem__)
            values[node] = table[node.target](g, node, *arguments, **keywords)
        elif node.op == "output":
            results = node.args[0]
            results = results if isinstance(results, (tuple, list)) else (results,)
            g.output(*(values[result] for result in results))
        else:
            raise QuiltError(f"FX node {node.name} ({node.op}) has no quiltc graph form")
    return g
