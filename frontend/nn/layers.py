"""Small convolutional networks in numpy: layers, a `Sequential` model, and training.

The float reference that quantization (`quiltc.qmodel`) and weight pools
(`quiltc.weightpool`) start from. Tensors are NHWC float32, batch first:

    model = qc.nn.Sequential([qc.nn.Conv2d(1, 16, 3, padding=1), qc.nn.ReLU(),
                              qc.nn.MaxPool2d(2), qc.nn.Flatten(), qc.nn.Dense(256, 10)])
    model.fit(x_train, y_train, epochs=10, lr=1e-3)
    model.accuracy(x_test, y_test)

Parameter layouts (what `get_weights` returns and `set_weights` takes, in layer order):
Conv2d weight (kh, kw, cin, cout) and bias (cout,); DepthwiseConv2d weight (kh, kw, c)
and bias (c,); Dense weight (cin, cout) and bias (cout,). A PyTorch state_dict maps onto
them by transposing conv weights from OIHW with `w.transpose(2, 3, 1, 0)` (depthwise:
`w[:, 0].transpose(1, 2, 0)`) and linear weights with `w.T`; a Flatten before a Dense
flattens NHWC, so the first Dense after convs expects (h, w, c) order.
"""

import numpy as np

from ..ir.array_checks import is_integer_in
from ..ir.errors import QuiltError, ShapeError
from ..ir.interop import to_numpy
from ..progress import progress_bar
from .im2col import col2im, im2col, output_size, windows


class Layer:
    """A layer: `forward(x)` keeps what `backward(grad)` needs, `backward` returns the
    gradient of the input and leaves the parameter gradients in `self.grads`."""

    param_names = ()

    def initialize(self, rng):
        """Draw fresh parameters (He initialization) from `rng`."""

    def params(self):
        """This layer's parameter arrays, in `param_names` order."""
        return [getattr(self, name) for name in self.param_names]

    def output_shape(self, input_shape):
        """Per-example output shape for a per-example `input_shape` (no batch axis)."""
        return input_shape

    def _check_channels(self, x, channels):
        if x.ndim != 4 or x.shape[3] != channels:
            raise ShapeError(f"{self!r} expects NHWC input with {channels} channels, "
                             f"got shape {x.shape}")


class Conv2d(Layer):
    """2-D convolution over NHWC input, square `kernel`, `padding` zeros on each side."""

    param_names = ("weight", "bias")

    def __init__(self, cin, cout, kernel, stride=1, padding=0):
        self.cin, self.cout, self.kernel = cin, cout, kernel
        self.stride, self.padding = stride, padding
        self.initialize(np.random.default_rng(0))

    def __repr__(self):
        return (f"Conv2d({self.cin}, {self.cout}, {self.kernel}, stride={self.stride}, "
                f"padding={self.padding})")

    def initialize(self, rng):
        fan_in = self.kernel * self.kernel * self.cin
        shape = (self.kernel, self.kernel, self.cin, self.cout)
        self.weight = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        self.bias = np.zeros(self.cout, np.float32)

    def output_shape(self, input_shape):
        h, w, _ = input_shape
        k, s, p = self.kernel, self.stride, self.padding
        return (output_size(h, k, s, p), output_size(w, k, s, p), self.cout)

    def forward(self, x):
        self._check_channels(x, self.cin)
        k = self.kernel
        self.input_shape = x.shape
        self.columns = im2col(x, k, k, self.stride, self.padding)
        # one 2-D product: numpy would run a 4-D one as many small per-row products
        rows = self.columns.reshape(-1, self.columns.shape[-1])
        out = rows @ self.weight.reshape(-1, self.cout) + self.bias
        return out.reshape(self.columns.shape[:3] + (self.cout,))

    def backward(self, grad):
        rows = self.columns.reshape(-1, self.columns.shape[-1])
        flat_grad = grad.reshape(-1, self.cout)
        self.grads = [(rows.T @ flat_grad).reshape(self.weight.shape), flat_grad.sum(axis=0)]
        weight_rows = self.weight.reshape(-1, self.cout)
        columns_grad = (flat_grad @ weight_rows.T).reshape(self.columns.shape)
        k = self.kernel
        return col2im(columns_grad, self.input_shape, k, k, self.stride, self.padding)


class DepthwiseConv2d(Layer):
    """Depthwise 2-D convolution (one filter per channel, channel multiplier 1)."""

    param_names = ("weight", "bias")

    def __init__(self, c, kernel, stride=1, padding=0):
        self.c, self.kernel, self.stride, self.padding = c, kernel, stride, padding
        self.initialize(np.random.default_rng(0))

    def __repr__(self):
        return (f"DepthwiseConv2d({self.c}, {self.kernel}, stride={self.stride}, "
                f"padding={self.padding})")

    def initialize(self, rng):
        shape = (self.kernel, self.kernel, self.c)
        scale = np.sqrt(2.0 / (self.kernel * self.kernel))
        self.weight = (rng.standard_normal(shape) * scale).astype(np.float32)
        self.bias = np.zeros(self.c, np.float32)

    def output_shape(self, input_shape):
        h, w, c = input_shape
        k, s, p = self.kernel, self.stride, self.padding
        return (output_size(h, k, s, p), output_size(w, k, s, p), c)

    def forward(self, x):
        self._check_channels(x, self.c)
        self.input_shape = x.shape
        self.patches = windows(x, self.kernel, self.kernel, self.stride, self.padding)
        return np.einsum("nhwijc,ijc->nhwc", self.patches, self.weight) + self.bias

    def backward(self, grad):
        self.grads = [np.einsum("nhwijc,nhwc->ijc", self.patches, grad), grad.sum(axis=(0, 1, 2))]
        patches_grad = grad[:, :, :, None, None, :] * self.weight
        k = self.kernel
        columns = patches_grad.reshape(grad.shape[:3] + (-1,))
        return col2im(columns, self.input_shape, k, k, self.stride, self.padding)


class Dense(Layer):
    """Fully connected layer on (n, cin) input."""

    param_names = ("weight", "bias")

    def __init__(self, cin, cout):
        self.cin, self.cout = cin, cout
        self.initialize(np.random.default_rng(0))

    def __repr__(self):
        return f"Dense({self.cin}, {self.cout})"

    def initialize(self, rng):
        scale = np.sqrt(2.0 / self.cin)
        self.weight = (rng.standard_normal((self.cin, self.cout)) * scale).astype(np.float32)
        self.bias = np.zeros(self.cout, np.float32)

    def output_shape(self, input_shape):
        return (self.cout,)

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.cin:
            raise ShapeError(f"{self!r} expects (n, {self.cin}) input, got shape {x.shape}; "
                             "put a Flatten() before it and match cin to the flattened size")
        self.input = x
        return x @ self.weight + self.bias

    def backward(self, grad):
        self.grads = [self.input.T @ grad, grad.sum(axis=0)]
        return grad @ self.weight.T


class ReLU(Layer):
    """max(x, 0), capped at `ceiling` where one is given (ReLU6 is `ReLU(ceiling=6)`)."""

    def __init__(self, ceiling=None):
        if ceiling is not None and not (isinstance(ceiling, (int, float, np.number))
                                        and 0 < ceiling < np.inf):
            raise QuiltError(f"ReLU(ceiling={ceiling!r}); pass a positive finite number or None")
        self.ceiling = ceiling

    def __repr__(self):
        return "ReLU()" if self.ceiling is None else f"ReLU(ceiling={self.ceiling})"

    def forward(self, x):
        self.passed = x > 0 if self.ceiling is None else (x > 0) & (x < self.ceiling)
        out = np.where(x > 0, x, np.float32(0))
        return out if self.ceiling is None else np.minimum(out, np.float32(self.ceiling))

    def backward(self, grad):
        return np.where(self.passed, grad, np.float32(0))


class _Pool2d(Layer):
    """k x k pooling with stride k and no padding; rows and columns that do not fill a
    window are dropped."""

    def __init__(self, k):
        self.k = k

    def __repr__(self):
        return f"{type(self).__name__}({self.k})"

    def output_shape(self, input_shape):
        h, w, c = input_shape
        return (h // self.k, w // self.k, c)

    def _blocks(self, x):
        """x cropped to whole windows as (n, oh, ow, c, k * k)."""
        if x.ndim != 4:
            raise ShapeError(f"{self!r} expects NHWC input, got shape {x.shape}")
        n, h, w, c = x.shape
        k = self.k
        oh, ow = h // k, w // k
        self.input_shape = x.shape
        blocks = x[:, :oh * k, :ow * k].reshape(n, oh, k, ow, k, c)
        return blocks.transpose(0, 1, 3, 5, 2, 4).reshape(n, oh, ow, c, k * k)

    def _unblock(self, block_grad):
        n, oh, ow, c, _ = block_grad.shape
        k = self.k
        grad = np.zeros(self.input_shape, block_grad.dtype)
        spread = block_grad.reshape(n, oh, ow, c, k, k).transpose(0, 1, 4, 2, 5, 3)
        grad[:, :oh * k, :ow * k] = spread.reshape(n, oh * k, ow * k, c)
        return grad


class MaxPool2d(_Pool2d):
    """k x k max pooling, stride k."""

    def forward(self, x):
        blocks = self._blocks(x)
        self.winner = blocks.argmax(axis=-1)
        return blocks.max(axis=-1)

    def backward(self, grad):
        one_hot = np.arange(self.k * self.k) == self.winner[..., None]
        return self._unblock(one_hot * grad[..., None])


class AvgPool2d(_Pool2d):
    """k x k average pooling, stride k."""

    def forward(self, x):
        return self._blocks(x).mean(axis=-1)

    def backward(self, grad):
        share = grad[..., None] / np.float32(self.k * self.k)
        return self._unblock(np.broadcast_to(share, grad.shape + (self.k * self.k,)))


class Flatten(Layer):
    """(n, h, w, c) -> (n, h * w * c), in NHWC order."""

    def __repr__(self):
        return "Flatten()"

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x):
        self.input_shape = x.shape
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))

    def backward(self, grad):
        return grad.reshape(self.input_shape)


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) against integer `labels`, and its gradient
    with respect to the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probabilities = exp / exp.sum(axis=1, keepdims=True)
    rows = np.arange(len(labels))
    loss = -np.log(probabilities[rows, labels] + np.float32(1e-12)).mean()
    grad = probabilities
    grad[rows, labels] -= 1
    return float(loss), grad / np.float32(len(labels))


class Adam:
    """The Adam optimizer (Kingma and Ba) over a list of arrays, updated in place."""

    def __init__(self, params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.first = [np.zeros_like(p) for p in params]
        self.second = [np.zeros_like(p) for p in params]
        self.steps = 0

    def step(self, params, grads):
        """One update of `params` (in place) along `grads`."""
        self.steps += 1
        correction1 = 1 - self.beta1 ** self.steps
        correction2 = 1 - self.beta2 ** self.steps
        for param, grad, first, second in zip(params, grads, self.first, self.second):
            first *= self.beta1
            first += (1 - self.beta1) * grad
            second *= self.beta2
            second += (1 - self.beta2) * grad * grad
            update = self.lr * (first / correction1) / (np.sqrt(second / correction2) + self.eps)
            param -= update.astype(param.dtype)


class Sequential:
    """Layers applied in order. `seed` draws every layer's initial parameters."""

    def __init__(self, layers, seed=0):
        self.layers = list(layers)
        rng = np.random.default_rng(seed)
        for layer in self.layers:
            layer.initialize(rng)

    def __repr__(self):
        return "Sequential([" + ", ".join(repr(layer) for layer in self.layers) + "])"

    def forward(self, x):
        """The float32 output (logits) for NHWC input `x`."""
        out = np.asarray(x, np.float32)
        for layer in self.layers:
            out = layer.forward(out)
        return out

    def backward(self, grad):
        """Backpropagate the gradient of the output; parameter gradients land in each
        layer's `grads`."""
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def _parameterized(self):
        return [layer for layer in self.layers if layer.param_names]

    def get_weights(self):
        """[weight0, bias0, weight1, bias1, ...] of the layers with parameters, in order
        (copies)."""
        return [p.copy() for layer in self._parameterized() for p in layer.params()]

    def set_weights(self, weights):
        """Load arrays in `get_weights` order and layout; checks the count and every shape."""
        weights = list(weights)
        slots = [(layer, name) for layer in self._parameterized() for name in layer.param_names]
        if len(weights) != len(slots):
            raise ShapeError(f"set_weights got {len(weights)} arrays but the model has "
                             f"{len(slots)} (weight and bias of each of "
                             f"{len(self._parameterized())} layers with parameters)")
        for index, ((layer, name), value) in enumerate(zip(slots, weights)):
            expected = getattr(layer, name).shape
            value = np.asarray(value, np.float32)
            if value.shape != expected:
                position = self.layers.index(layer)
                raise ShapeError(f"set_weights: array {index} is the {name} of layer {position} "
                                 f"{layer!r}, which has shape {expected}, got {value.shape}")
        for (layer, name), value in zip(slots, weights):
            setattr(layer, name, np.array(value, np.float32))

    def fit(self, x, y, epochs=10, lr=1e-3, batch_size=32, seed=0, lr_end=None, project=None,
            description="training"):
        """Train with Adam on softmax cross-entropy over shuffled mini-batches.

        The learning rate is `lr` throughout, or, with `lr_end`, anneals from `lr` to
        `lr_end` along a half cosine over the epochs (steadier final accuracy).

        `project`, if given, maps the `get_weights()` list to the weights the forward
        pass uses (a constraint such as snapping to a weight pool): gradients computed
        through the projected weights update the unconstrained ones (straight-through),
        and the model ends with the projected weights. A progress bar named `description`
        counts the epochs (quiltc.progress). Returns the mean loss per epoch."""
        for name, value, least in (("epochs", epochs, 1), ("batch_size", batch_size, 1),
                                   ("seed", seed, 0)):
            if not is_integer_in(value, least):
                raise QuiltError(f"fit: {name}={value!r}; pass an integer of {least} or more")
        for name, value in (("lr", lr), ("lr_end", lr_end)):
            if value is not None and not (isinstance(value, (int, float, np.floating))
                                          and 0 < value < np.inf):
                raise QuiltError(f"fit: {name}={value!r}; pass a positive finite number")
        x = to_numpy("x", x).astype(np.float32)
        y = to_numpy("y", y)
        if y.dtype.kind not in "iu":
            raise ShapeError(f"fit takes integer class labels in y, got dtype {y.dtype}")
        if y.shape != (len(x),):
            raise ShapeError(f"fit takes one integer label per input: x has {len(x)} inputs, "
                             f"y has shape {y.shape}")
        rng = np.random.default_rng(seed)
        params = [p for layer in self._parameterized() for p in layer.params()]
        optimizer = Adam(params, lr)
        history = []
        bar = progress_bar(range(epochs), description=description, unit="epoch")
        for epoch in bar:
            if lr_end is not None and epochs > 1:
                progress = epoch / (epochs - 1)
                optimizer.lr = lr_end + (lr - lr_end) * 0.5 * (1 + np.cos(np.pi * progress))
            order = rng.permutation(len(x))
            losses = []
            for start in range(0, len(x), batch_size):
                batch = order[start:start + batch_size]
                if project is not None:
                    self.set_weights(project(params))
                loss, grad = softmax_cross_entropy(self.forward(x[batch]), y[batch])
                self.backward(grad)
                grads = [g for layer in self._parameterized() for g in layer.grads]
                optimizer.step(params, grads)
                losses.append(loss)
            history.append(float(np.mean(losses)))
            bar.set_postfix(loss=f"{history[-1]:.4f}", refresh=False)
        if project is not None:
            self.set_weights(project(params))
        return history

    def predict(self, x, batch_size=512):
        """Class indices (argmax of the logits) for NHWC input `x`."""
        x = np.asarray(x, np.float32)
        chunks = [self.forward(x[i:i + batch_size]).argmax(axis=1)
                  for i in range(0, len(x), batch_size)]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int64)

    def accuracy(self, x, y):
        """Fraction of `x` whose predicted class equals `y`."""
        return float(np.mean(self.predict(x) == np.asarray(y)))
