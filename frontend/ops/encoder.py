"""A transformer encoder layer over a ragged batch, composed of `quiltc.ops` kernels.

The layer is PyTorch's `nn.TransformerEncoderLayer` (post-norm, batch_first) with tanh-GELU:

    qkv  = x @ W_in^T + b_in                     one fused projection, (total, 3 * hidden)
    attn = ragged multi-head attention(qkv)       per sequence, no padding
    h    = layer_norm(attn @ W_out^T + b_out + x)
    out  = layer_norm(gelu(h @ W_1^T + b_1) @ W_2^T + b_2 + h)

Every step but attention is token-wise and runs as a dense kernel over all real tokens
of a group of whole sequences at once (GROUP_TOKENS), one group after another. Weights
come as a PyTorch state_dict (tensors or numpy arrays, same names):

    from quiltc.encoder import EncoderLayer
    layer = EncoderLayer(torch_layer.state_dict(), heads=8, max_length=512)
    y = layer(qc.RaggedArray.from_list(sequences))
"""

import threading

import numpy as np

from ..ir.arrays import RaggedArray
from ..ir.errors import QuiltError, ShapeError
from . import arguments, attention, dense
from . import ragged as ops

# Tokens, about, that the layer takes through all its steps before the next sequences:
# whole sequences, one at least. Scratch then grows with the largest group rather than the
# batch (at 128 RACE sequences, 46,635 tokens, the feed-forward's intermediate alone was
# 380 MB, and every step streamed such arrays through DRAM). At 128 sequences, RACE
# 1.05-1.2x and wiki_512 1.10-1.15x the whole batch at once, with groups of 2048 to
# 16384 tokens alike; at 32 sequences groups of 2048 lost 1-3% to the whole batch (more,
# smaller kernel calls) and 8192 lost nothing (alternating A/B, 2-core AVX2 host).
GROUP_TOKENS = 8192

WEIGHT_NAMES = (
    "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
    "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
    "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
)


def _as_float32(name, value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        return np.ascontiguousarray(value, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ShapeError(f"weight {name!r} is a {type(value).__name__} that is not a numeric "
                         f"array ({error}); pass a tensor or numpy array") from None


def _check_weight_shapes(w):
    """Each weight's shape against the hidden size (norm1.weight's length) and the
    feed-forward size (linear1.weight's rows); returns the hidden size."""
    norm, linear1 = w["norm1.weight"], w["linear1.weight"]
    hidden = norm.shape[0] if norm.ndim == 1 else "hidden"
    ffn = linear1.shape[0] if linear1.ndim == 2 else "ffn"
    expected = {"norm1.weight": (hidden,), "linear1.weight": (ffn, hidden)}
    if hidden != "hidden":
        expected.update({"self_attn.in_proj_weight": (3 * hidden, hidden),
                         "self_attn.in_proj_bias": (3 * hidden,), "linear1.bias": (ffn,),
                         "self_attn.out_proj.weight": (hidden, hidden),
                         "linear2.weight": (hidden, ffn)})
    for name in (*expected, *WEIGHT_NAMES):
        shape = expected.get(name, (hidden,))
        if w[name].shape != shape:
            raise ShapeError(f"weight {name!r} has shape {w[name].shape}, expected "
                             f"({', '.join(map(str, shape))}) for hidden size {hidden} and "
                             f"feed-forward size {ffn}; pass one layer's state_dict")
    return hidden


def random_weights(hidden, ffn, seed=0):
    """A state_dict of the layer's weights with PyTorch's names and shapes, drawn at the
    scale of a trained layer (so softmax and GELU see realistic ranges)."""
    rng = np.random.default_rng(seed)

    def uniform(*shape):
        bound = np.float32(1.0 / np.sqrt(shape[-1]))
        return rng.uniform(-bound, bound, size=shape).astype(np.float32)

    return {
        "self_attn.in_proj_weight": uniform(3 * hidden, hidden),
        "self_attn.in_proj_bias": uniform(3 * hidden) * np.float32(0.1),
        "self_attn.out_proj.weight": uniform(hidden, hidden),
        "self_attn.out_proj.bias": uniform(hidden) * np.float32(0.1),
        "linear1.weight": uniform(ffn, hidden),
        "linear1.bias": uniform(ffn) * np.float32(0.1),
        "linear2.weight": uniform(hidden, ffn),
        "linear2.bias": uniform(hidden) * np.float32(0.1),
        "norm1.weight": np.ones(hidden, np.float32) + uniform(hidden) * np.float32(0.1),
        "norm1.bias": uniform(hidden) * np.float32(0.1),
        "norm2.weight": np.ones(hidden, np.float32) + uniform(hidden) * np.float32(0.1),
        "norm2.bias": uniform(hidden) * np.float32(0.1),
    }


class EncoderLayer:
    """A post-norm transformer encoder layer on RaggedArrays of (total, hidden) float32."""

    def __init__(self, weights, heads, max_length, eps=1e-5, causal=False):
        if not hasattr(weights, "keys"):
            raise ShapeError(f"argument 'weights' is a {type(weights).__name__}; pass the "
                             "state_dict of an nn.TransformerEncoderLayer (a dict of tensors)")
        missing = [name for name in WEIGHT_NAMES if name not in weights]
        if missing:
            raise ShapeError(f"weights lack {', '.join(missing)}; pass the state_dict of an "
                             "nn.TransformerEncoderLayer")
        w = {name: _as_float32(name, weights[name]) for name in WEIGHT_NAMES}
        self.heads = arguments.positive_int("heads", heads)
        self.max_length = arguments.positive_int("max_length", max_length)
        self.eps = arguments.non_negative_real("eps", eps)
        self.hidden = _check_weight_shapes(w)
        if self.hidden % heads:
            raise QuiltError(f"hidden size {self.hidden} is not a multiple of {heads} heads; "
                             "pass a number of heads that divides it")
        self.head_size, self.causal = self.hidden // heads, causal
        # The linear kernels multiply by (in, out) matrices: transpose PyTorch's once,
        # and pack each once into the column panels its kernel streams.
        self.in_projection, self.out_projection, self.feed_forward_in, self.feed_forward_out = (
            dense.pack_weight(np.ascontiguousarray(w[name].T)) for name in (
                "self_attn.in_proj_weight", "self_attn.out_proj.weight", "linear1.weight",
                "linear2.weight"))
        self.weights = w
        self.tuned = {}
        self._scratch = threading.local()

    def dense_shapes(self):
        """(in_features, out_features) of each of the layer's four linear layers."""
        return [projection.shape for projection in (self.in_projection, self.out_projection,
                                                    self.feed_forward_in, self.feed_forward_out)]

    def use_tuned(self, kernels):
        """Run the linear layers of shape (in, out) with `kernels[(in, out)]`, a kernel that
        takes X (rows, in) and W and writes out={"Y": (rows, out)} for any row count (a
        qc.autotune Dispatcher: qc.autotune.tune_encoder makes them)."""
        unknown = sorted(set(kernels) - set(self.dense_shapes()))
        if unknown:
            raise QuiltError(f"the layer has no linear layer of shape {unknown[0]}; its "
                             f"shapes are {', '.join(map(str, self.dense_shapes()))}")
        self.tuned = dict(kernels)

    def _linear(self, a, weight, out):
        """a @ weight written into `out`, by the tuned kernel of its shape if there is one."""
        kernel = self.tuned.get(weight.shape)
        if kernel is None:
            return dense.linear(a, weight, out=out)
        kernel(X=a, W=getattr(weight, "matrix", weight), out={"Y": out})
        return out

    def _scratch_arrays(self, rows):
        """Flat float32 arrays a group of `rows` padded rows works in, kept between groups
        and calls (one set per thread): fresh memory costs a page fault and a cleared page
        for every page a kernel first writes (at 128 RACE sequences in one group, 1.5 s of
        the layer's 4.4). Four of hidden-wide rows and two of the widest rows (QKV's or the
        feed-forward's), grown when a group has more rows than any before it;
        `release_scratch` frees them."""
        widths = (self.hidden,) * 4 + (max(3 * self.hidden, self.feed_forward_in.shape[1]),) * 2
        arrays = getattr(self._scratch, "arrays", ())
        if not arrays or arrays[0].size < rows * self.hidden:
            arrays = tuple(np.zeros(rows * width, np.float32) for width in widths)
            self._scratch.arrays = arrays
        return arrays

    def release_scratch(self):
        """Free the arrays this thread's calls have been reusing (the next call makes new)."""
        self._scratch.arrays = ()

    def __call__(self, x):
        """The layer applied to each sequence of the RaggedArray `x`; returns a RaggedArray."""
        x = arguments.ragged("x", x, (self.hidden,))
        x.check_max(self.max_length, "L (max_length)")
        result = np.empty((x.total, self.hidden), np.float32)
        offsets, lengths = x.offsets, x.lengths
        for first, last in ops.sequence_runs(lengths, GROUP_TOKENS):
            rows = slice(int(offsets[first]), int(offsets[last]))
            self._group(RaggedArray(x.values[rows], lengths[first:last]), result[rows])
        return RaggedArray(result, lengths)

    def _group(self, x, out):
        """Every step of the layer over the sequences of `x`, the result written to `out`."""
        w, total, lengths = self.weights, x.total, x.lengths
        rows = dense.padded_rows(total)

        def rows_of(flat, width):
            # Every linear layer sees whole blocks of rows: a few spare rows past the real
            # tokens, whose values no real row reads.
            return flat[:rows * width].reshape(rows, width)

        tokens, attended, projected, normed, first_wide, second_wide = self._scratch_arrays(rows)
        hidden, ffn = self.hidden, self.feed_forward_in.shape[1]
        tokens = rows_of(tokens, hidden)
        tokens[:total] = x.values
        tokens[total:] = 0
        qkv = self._linear(tokens, self.in_projection, rows_of(first_wide, 3 * hidden))
        qkv_biased = ops.add_bias(RaggedArray(qkv[:total], lengths), w["self_attn.in_proj_bias"],
                                  out=rows_of(second_wide, 3 * hidden)[:total])
        attended = rows_of(attended, hidden)
        attention.attention(qkv_biased, self.heads, self.head_size, self.max_length,
                            self.causal, out=attended[:total])
        projected = self._linear(attended, self.out_projection, rows_of(projected, hidden))
        normed = rows_of(normed, hidden)
        first = ops.add_layer_norm(RaggedArray(projected[:total], lengths),
                                   RaggedArray(tokens[:total], lengths), w["norm1.weight"],
                                   w["norm1.bias"], w["self_attn.out_proj.bias"], self.eps,
                                   out=normed[:total])
        expanded = self._linear(normed, self.feed_forward_in, rows_of(first_wide, ffn))
        activated = rows_of(second_wide, ffn)
        ops.bias_gelu(RaggedArray(expanded[:total], lengths), w["linear1.bias"],
                      out=activated[:total])
        contracted = self._linear(activated, self.feed_forward_out, attended)
        ops.add_layer_norm(RaggedArray(contracted[:total], lengths), first, w["norm2.weight"],
                           w["norm2.bias"], w["linear2.bias"], self.eps, out=out)


def reference_encoder_layer(rows, weights, heads, eps=1e-5, causal=False):
    """Per-sequence numpy encoder layer (the same math as EncoderLayer) for the tests."""
    w = {name: _as_float32(name, weights[name]) for name in WEIGHT_NAMES}
    hidden = w["norm1.weight"].shape[0]
    results = []
    for row in rows:
        qkv = row @ w["self_attn.in_proj_weight"].T + w["self_attn.in_proj_bias"]
        attended = attention.reference_attention([qkv], heads, hidden // heads, causal)[0]
        projected = attended @ w["self_attn.out_proj.weight"].T + w["self_attn.out_proj.bias"]
        first = ops.reference_layer_norm(projected + row, w["norm1.weight"], w["norm1.bias"], eps)
        expanded = ops.reference_gelu(first @ w["linear1.weight"].T + w["linear1.bias"])
        contracted = expanded @ w["linear2.weight"].T + w["linear2.bias"]
        results.append(ops.reference_layer_norm(contracted + first, w["norm2.weight"],
                                                w["norm2.bias"], eps))
    return results
