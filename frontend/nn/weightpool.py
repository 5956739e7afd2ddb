"""Network-wide weight pools (after "Bit-serial Weight Pools", Li and Gupta, MLSys 2022).

Every pooled conv's weights are cut into vectors of 8 consecutive input channels (one
per kernel tap and output channel); k-means over the vectors of all pooled layers gives
one pool shared by the whole network, and each vector is stored as the one-byte index of
its pool entry. Output channel c of a pooled layer then has weights
scale[c] * pool[index], the pool is int8, and the per-channel scale folds into the
requantization multiplier, so the layer runs bit-serially (`quiltc.bitserial`).

    pm = qc.weightpool.compress(model, calib=x_train, pool_size=64, train=(x_train, y_train))
    pm.predict(x_test, act_bits=4)     # bit-exact integer reference, class indices
    pm.storage_bytes()["ratio"]

Pooled: every Conv2d but the first (a Sequential has no 1x1 shortcut convs); the first
conv, depthwise convs and dense layers stay int8, as in the paper.
"""

import copy

import numpy as np

from ..ir.array_checks import is_integer_in
from ..ir.errors import QuiltError, ShapeError
from ..ir.interop import to_numpy
from ..progress import progress_bar
from . import layers as nn
from .bitserial import VECTOR_LEN, build_lut, check_act_bits
from .qmodel import quantize

DISTANCES = ("cosine", "euclidean")
KMEANS_ITERATIONS = 60


def _check_model(model):
    if not isinstance(getattr(model, "layers", None), list):
        raise QuiltError(f"model is a {type(model).__name__}; pass a quiltc.nn.Sequential "
                         "network")


def _check_distance(distance):
    if distance not in DISTANCES:
        raise QuiltError(f"distance={distance!r} is not supported; pass one of {DISTANCES}")


def _float_array(name, value, rank, what, inner=None, fewest=1):
    """`value` as a float array of `rank` (and shape (n, *inner) when `inner` is given)
    holding at least `fewest` of `what`; raises ShapeError naming the argument otherwise."""
    array = to_numpy(name, value)
    if array.dtype.kind != "f" or array.ndim != rank or len(array) < fewest \
            or inner is not None and array.shape[1:] != tuple(inner):
        expected = f"(n, {', '.join(map(str, inner))})" if inner is not None else f"rank {rank}"
        raise ShapeError(f"{name} must be a float array of {what}, shape {expected} with "
                         f"n >= {fewest}; got {array.dtype} of shape {array.shape}")
    return array


def pooled_positions(model, vector_len=VECTOR_LEN, int8_layers=()):
    """Positions in `model.layers` of the convs a pool replaces: every Conv2d after the
    first, except those in `int8_layers`. Raises QuiltError for one whose input channels
    are not a multiple of `vector_len`, or whose input is not a ReLU's (possibly pooled)
    output: bit-serial convs read unsigned activations."""
    _check_model(model)
    if isinstance(int8_layers, (str, bytes)) or not hasattr(int8_layers, "__iter__") \
            or not all(isinstance(i, (int, np.integer)) for i in int8_layers):
        raise QuiltError(f"int8_layers={int8_layers!r} is not supported; pass a tuple of layer "
                         "positions, e.g. int8_layers=(2,)")
    convs = [i for i, layer in enumerate(model.layers) if isinstance(layer, nn.Conv2d)]
    positions = [i for i in convs[1:] if i not in set(int8_layers)]
    for position in positions:
        layer = model.layers[position]
        keep = f"keep the layer int8 with int8_layers=({position},)"
        if layer.cin % vector_len:
            raise QuiltError(f"layer {position} {layer!r} has {layer.cin} input channels, not a "
                             f"multiple of the vector length {vector_len}: make cin a multiple "
                             f"of {vector_len} or {keep}")
        before = position - 1
        while isinstance(model.layers[before], (nn.MaxPool2d, nn.AvgPool2d)):
            before -= 1
        if not isinstance(model.layers[before], nn.ReLU):
            raise QuiltError(f"layer {position} {layer!r} reads signed activations (layer "
                             f"{before} is {model.layers[before]!r}), but a bit-serial conv "
                             f"reads unsigned ones: put a ReLU before it or {keep}")
    return positions


def _vectors(weight):
    """(kh, kw, cin, cout) -> (kh, kw, cin/8, cout, 8): the pool's unit of storage."""
    kh, kw, cin, cout = weight.shape
    return weight.reshape(kh, kw, cin // VECTOR_LEN, VECTOR_LEN, cout).transpose(0, 1, 2, 4, 3)


def _from_vectors(vectors):
    kh, kw, groups, cout, _ = vectors.shape
    return vectors.transpose(0, 1, 2, 4, 3).reshape(kh, kw, groups * VECTOR_LEN, cout)


def _channel_normalized(vectors):
    """Vectors divided by their output channel's largest |weight|, so the vectors of
    every layer share one range before clustering."""
    peak = np.abs(vectors).max(axis=(0, 1, 2, 4), keepdims=True)
    return vectors / np.where(peak > 0, peak, 1.0)


def _unit(rows):
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def nearest(rows, centers, distance):
    """Index of the center nearest each row: largest cosine similarity, or smallest
    Euclidean distance."""
    _check_distance(distance)
    rows = _float_array("rows", rows, 2, "vectors")
    centers = _float_array("centers", centers, 2, "centers", rows.shape[1:])
    if distance == "cosine":
        return (_unit(rows) @ _unit(centers).T).argmax(axis=1)
    squared = (centers * centers).sum(axis=1) - 2 * rows @ centers.T
    return squared.argmin(axis=1)


def kmeans(rows, k, distance="cosine", seed=0):
    """k centers for `rows` (n, d): k-means++ seeding then Lloyd iterations. Cosine
    clusters directions (spherical k-means) and gives each center the mean norm of its
    members; Euclidean is plain k-means. An empty cluster restarts at the row farthest
    from its center. Returns (centers (k, d), assignment (n,))."""
    _check_distance(distance)
    rows = _float_array("rows", rows, 2, "vectors")
    if not is_integer_in(k, 1):
        raise QuiltError(f"k={k!r} is not supported: pass a number of centers of 1 or more")
    rng = np.random.default_rng(seed)
    data = _unit(rows) if distance == "cosine" else rows
    centers = data[[rng.integers(len(data))]]
    gap = ((data - centers[0]) ** 2).sum(axis=1)
    while len(centers) < k:
        total = gap.sum()
        chosen = rng.choice(len(data), p=gap / total) if total > 0 else rng.integers(len(data))
        centers = np.vstack([centers, data[chosen]])
        gap = np.minimum(gap, ((data - data[chosen]) ** 2).sum(axis=1))
    assignment = None
    for _ in progress_bar(range(KMEANS_ITERATIONS), description=f"k-means, {k} centers",
                          unit="iteration"):
        fresh = nearest(data, centers, distance)
        if assignment is not None and np.array_equal(fresh, assignment):
            break
        assignment = fresh
        sums = np.zeros_like(centers)
        np.add.at(sums, assignment, data)
        counts = np.bincount(assignment, minlength=k)
        centers = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centers)
        if distance == "cosine":
            centers = _unit(centers)
        residual = ((data - centers[assignment]) ** 2).sum(axis=1)
        for empty in np.flatnonzero(counts == 0):
            far = residual.argmax()
            centers[empty], residual[far] = data[far], 0.0
    if distance == "cosine":
        norms = np.linalg.norm(rows, axis=1)
        mean_norm = np.bincount(assignment, norms, minlength=k) / np.maximum(
            np.bincount(assignment, minlength=k), 1)
        centers = centers * np.where(mean_norm > 0, mean_norm, norms.mean())[:, None]
    return centers, assignment


class PoolProjection:
    """Snaps pooled layers' weights onto a fixed pool: each vector goes to its nearest
    entry, then each output channel gets the least-squares scale. Called with the
    `get_weights()` list, it returns the projected list and keeps the last indices and
    scales it chose (per layer position) in `assignment`."""

    def __init__(self, model, positions, pool_float, distance):
        self.pool_float = pool_float
        self.distance = distance
        parameterized = [i for i, layer in enumerate(model.layers) if layer.param_names]
        self.slots = {position: 2 * parameterized.index(position) for position in positions}
        self.assignment = {}

    def __call__(self, weights):
        projected = list(weights)
        for position, slot in self.slots.items():
            vectors = _vectors(np.asarray(weights[slot], np.float64))
            normalized = _channel_normalized(vectors)
            indices = nearest(normalized.reshape(-1, VECTOR_LEN), self.pool_float,
                              self.distance).reshape(vectors.shape[:4])
            chosen = self.pool_float[indices]
            fit = (vectors * chosen).sum(axis=(0, 1, 2, 4)) / np.maximum(
                (chosen * chosen).sum(axis=(0, 1, 2, 4)), 1e-30)
            # a channel the pool matches worse than zero keeps a positive scale from its size
            fallback = np.abs(vectors).max(axis=(0, 1, 2, 4)) / np.abs(self.pool_float).max()
            scale = np.where(fit > 0, fit, np.maximum(fallback, 1e-12))
            self.assignment[position] = (indices.astype(np.uint8), scale)
            projected[slot] = _from_vectors(chosen * scale[:, None]).astype(np.float32)
        return projected


class PooledModel:
    """A network whose pooled convs store pool indices: the bit-exact integer reference
    of what `quiltc.mcu` emits.

    float_model: the float network with every pooled weight equal to scale * pool[index]
        (after fine-tuning, if any). pool: int8 (pool_size, 8). pool_scale: its real unit.
    pooled: {layer position: (indices uint8 (kh, kw, cin/8, cout), channel scale (cout,))}.
    `quantized(act_bits)` is the QuantModel at that activation width, whose `layers` are
    what a code generator reads (pooled convs have kind "bitserial_conv2d")."""

    def __init__(self, float_model, pool, pool_scale, pooled, calib):
        self.float_model = float_model
        self.pool = pool
        self.pool_scale = pool_scale
        self.pooled = pooled
        self.calib = calib
        self._quantized = {}

    def quantized(self, act_bits=8):
        """The integer model with `act_bits`-bit activations (scales calibrated for it)."""
        act_bits = check_act_bits(act_bits)
        if act_bits not in self._quantized:
            spec = {position: (indices, self.pool, scale * self.pool_scale)
                    for position, (indices, scale) in self.pooled.items()}
            self._quantized[act_bits] = quantize(self.float_model, self.calib, act_bits, spec)
        return self._quantized[act_bits]

    def _images(self, x, fewest=1):
        return _float_array("x", x, 4, "NHWC images", self.calib.shape[1:], fewest)

    def quantize_input(self, x):
        """Float NHWC images as the int8 model input (the same at every act_bits); an
        empty batch gives no rows (a project emitted without test inputs)."""
        return self.quantized(8).quantize_input(self._images(x, fewest=0))

    def predict(self, x, act_bits=8):
        """Class indices for float NHWC images, computed bit-serially in integers."""
        return self.quantized(act_bits).predict(self._images(x, fewest=0))

    def accuracy(self, x, y, act_bits=8):
        """Fraction of `x` whose predicted class at `act_bits` equals `y`."""
        x, y = self._images(x), to_numpy("y", y)
        if y.shape != (len(x),):
            raise ShapeError(f"y must hold one label per image of x ({len(x)}), got shape "
                             f"{y.shape}")
        return float(np.mean(self.predict(x, act_bits) == y))

    def storage_bytes(self):
        """Parameter bytes against the int8 model of the same network (int8 weights and
        int32 biases in both; requantization parameters alike in both, not counted).

        int8_bytes, pooled_bytes, ratio: whole model, pooled = indices + pool + the int8
            layers. pooled_layers_int8_bytes, pooled_layers_bytes, pooled_layers_ratio:
            the pooled convs' weights alone (indices + pool against int8 weights).
        index_bytes, pool_bytes: the parts. lut_bytes: the bit-serial table the C also
            keeps in flash (256 x pool_size), reported apart, not in the ratios."""
        layers = self.float_model.layers
        int8_bytes = sum(layer.weight.size + 4 * layer.bias.size
                         for layer in layers if layer.param_names)
        pooled_weights = sum(layers[p].weight.size for p in self.pooled)
        index_bytes = sum(indices.size for indices, _ in self.pooled.values())
        pooled_layers_bytes = index_bytes + self.pool.size
        pooled_bytes = int8_bytes - pooled_weights + pooled_layers_bytes
        return {"int8_bytes": int8_bytes, "pooled_bytes": pooled_bytes,
                "ratio": int8_bytes / pooled_bytes, "pooled_layers_int8_bytes": pooled_weights,
                "pooled_layers_bytes": pooled_layers_bytes,
                "pooled_layers_ratio": pooled_weights / pooled_layers_bytes,
                "index_bytes": index_bytes, "pool_bytes": self.pool.size,
                "lut_bytes": build_lut(self.pool).nbytes}


def save_pooled(pooled, path):
    """Write a PooledModel to `path` (an .npz): the float weights, the pool and its scale,
    each pooled layer's indices and channel scales, and the calibration images."""
    arrays = {"pool": pooled.pool, "pool_scale": np.float64(pooled.pool_scale),
              "calib": pooled.calib}
    arrays.update({f"weight_{i}": weight
                   for i, weight in enumerate(pooled.float_model.get_weights())})
    for position, (indices, scale) in pooled.pooled.items():
        arrays[f"indices_{position}"], arrays[f"scale_{position}"] = indices, scale
    np.savez(path, **arrays)


def load_pooled(path, model):
    """The PooledModel `save_pooled` wrote to `path`, over `model`, a network of the
    architecture it was compressed from (its weights are replaced, in a copy)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError) as error:
        raise QuiltError(f"cannot read a pooled model from {path}: {error}") from None
    if not {"pool", "pool_scale", "calib"} <= arrays.keys():
        raise QuiltError(f"{path} is not a pooled model (no pool in it); write one with "
                         "quiltc compress or qc.weightpool.save_pooled")
    model = copy.deepcopy(model)
    count = sum(name.startswith("weight_") for name in arrays)
    model.set_weights([arrays[f"weight_{i}"] for i in range(count)])
    pooled = {int(name.removeprefix("indices_")): (indices,
                                                   arrays[f"scale_{name.removeprefix('indices_')}"])
              for name, indices in arrays.items() if name.startswith("indices_")}
    return PooledModel(model, arrays["pool"], float(arrays["pool_scale"]), pooled,
                       arrays["calib"])


def compress(model, calib, pool_size=64, vector_len=VECTOR_LEN, distance="cosine", train=None,
             epochs=8, lr=1e-3, seed=0, int8_layers=()):
    """Replace the weights of `model`'s pooled convs (see `pooled_positions`) by indices
    into one k-means pool of `pool_size` int8 vectors of length `vector_len` (8, the
    bits of one LUT row), clustered by `distance` ("cosine" or "euclidean").

    With `train=(x, y)`, fine-tunes for `epochs` with the pool fixed: the forward pass
    uses the weights snapped to the pool, gradients update the unsnapped weights
    (straight-through), so vectors move to other entries as training goes. `model` is
    not changed. `calib` (float NHWC images) calibrates the activation scales. Returns a
    PooledModel."""
    if not is_integer_in(pool_size, 2, 256):
        raise QuiltError(f"pool_size={pool_size!r} is not supported: indices are one byte, "
                         "so pass a pool_size in 2..256 (default 64)")
    if vector_len != VECTOR_LEN:
        raise QuiltError(f"vector_len={vector_len!r} is not supported: a bit-serial LUT row "
                         f"covers {VECTOR_LEN} input channels; pass vector_len={VECTOR_LEN}")
    _check_distance(distance)
    positions = pooled_positions(model, vector_len, int8_layers)
    first_conv = next((layer for layer in model.layers if isinstance(layer, nn.Conv2d)), None)
    calib = _float_array("calib", calib, 4, "NHWC images")
    if first_conv is not None and calib.shape[-1] != first_conv.cin:
        raise ShapeError(f"calib has {calib.shape[-1]} channels (shape {calib.shape}), but the "
                         f"first conv {first_conv!r} takes {first_conv.cin}; pass images of "
                         "the model's input")
    if train is not None and (not isinstance(train, (tuple, list)) or len(train) != 2):
        raise QuiltError(f"train must be a pair (x, y) of images and labels, got a "
                         f"{type(train).__name__}")
    if not positions:
        raise QuiltError(f"{model!r} has no conv to pool: every Conv2d after the first is "
                         "pooled, so add one (cin a multiple of 8) or quantize it with "
                         "quiltc.qmodel.quantize instead")
    model = copy.deepcopy(model)
    rows = np.concatenate([_channel_normalized(_vectors(model.layers[p].weight.astype(np.float64)))
                           .reshape(-1, VECTOR_LEN) for p in positions])
    centers, _ = kmeans(rows, pool_size, distance, seed)
    # an all-zero pool (all-zero pooled weights) keeps a finite scale
    pool_scale = (np.abs(centers).max() or 1.0) / 127
    pool = np.clip(np.rint(centers / pool_scale), -127, 127).astype(np.int8)
    projection = PoolProjection(model, positions, pool.astype(np.float64) * pool_scale, distance)
    if train is not None:
        x, y = train
        model.fit(x, y, epochs=epochs, lr=lr, lr_end=lr / 10, seed=seed, project=projection,
                  description="fine-tuning on the pool")
    else:
        model.set_weights(projection(model.get_weights()))
    return PooledModel(model, pool, pool_scale, dict(projection.assignment), calib)
