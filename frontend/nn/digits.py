"""The reference data set and network of the weight-pool pillar: scikit-learn's bundled
8x8 handwritten digits (real scans, shipped inside scikit-learn, no download) and a
small CNN for them, trained once and cached.
"""

import hashlib
import os
import tempfile
import zipfile

import numpy as np

from ..ir.errors import QuiltError
from ..runtime_c.cache import cache_directory
from .layers import Conv2d, Dense, Flatten, MaxPool2d, ReLU, Sequential

TEST_FRACTION = 0.25
TRAINING = {"epochs": 8, "lr": 2e-3, "lr_end": 5e-5, "batch_size": 32, "seed": 0}


def load_digits(seed=0, stratify=True):
    """(x_train, y_train, x_test, y_test): images as NHWC float32 (n, 8, 8, 1) scaled to
    [0, 1], labels int64; a 75/25 split fixed by `seed`, stratified by label unless
    `stratify=False`: that is scikit-learn's plain `train_test_split(..., test_size=0.25,
    random_state=seed)`, the split models trained elsewhere often report accuracy on."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise QuiltError("the digits data set ships with scikit-learn, which is not installed; "
                         "install it with: pip install scikit-learn") from None
    data = sklearn_digits()
    images = (data.images / 16.0).astype(np.float32)[..., None]
    labels = data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=TEST_FRACTION, stratify=labels if stratify else None,
        random_state=seed)
    return x_train, y_train, x_test, y_test


def digits_cnn(seed=0):
    """The reference CNN for 8x8 digits. Every conv after the first has a multiple of 8
    input channels, so a weight pool replaces its weights; the first conv and the
    classifier stay int8. The pooled layers hold 96768 weights: large enough that their
    indices plus a 64-entry pool are >= 7.5x smaller than their int8 weights."""
    return Sequential([
        Conv2d(1, 16, 3, padding=1), ReLU(),
        Conv2d(16, 32, 3, padding=1), ReLU(), MaxPool2d(2),
        Conv2d(32, 64, 3, padding=1), ReLU(),
        Conv2d(64, 128, 3, padding=1), ReLU(), MaxPool2d(2),
        Flatten(), Dense(2 * 2 * 128, 10),
    ], seed=seed)


def _cache_path(model):
    recipe = repr(model) + repr(sorted(TRAINING.items()))
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    return cache_directory() / f"digits_cnn_{key}.npz"


def _save_atomically(path, weights):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, *weights)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def trained_digits_model():
    """`digits_cnn()` trained on the `load_digits()` training split with the fixed
    TRAINING settings, loaded from $QUILTC_CACHE_DIR (default ~/.cache/quiltc) when a
    previous run cached it there. An unreadable or mismatched cache entry is retrained
    and rewritten."""
    model = digits_cnn()
    path = _cache_path(model)
    try:
        with np.load(path) as archive:
            model.set_weights([archive[f"arr_{i}"] for i in range(len(archive.files))])
        return model
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, QuiltError):
        model = digits_cnn()
    x_train, y_train, _, _ = load_digits()
    model.fit(x_train, y_train, **TRAINING, description="training the digits CNN (cached)")
    _save_atomically(path, model.get_weights())
    return model
