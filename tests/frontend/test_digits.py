"""quiltc.digits: the data split, training the reference CNN to >= 97% test accuracy,
and its weight cache (reused, and rebuilt when corrupt)."""

import sys
import time

import numpy as np
import pytest

from quiltc import digits
from quiltc.ir.errors import QuiltError
from quiltc.runtime_c.cache import cache_directory

pytest.importorskip("sklearn", reason="install it with: pip install scikit-learn")


def test_split_is_stratified_nhwc_and_scaled():
    x_train, y_train, x_test, y_test = digits.load_digits()
    assert x_train.shape == (1347, 8, 8, 1) and x_test.shape == (450, 8, 8, 1)
    assert x_train.dtype == np.float32 and x_train.min() == 0 and x_train.max() == 1
    # every class keeps its share in both halves
    train_share = np.bincount(y_train) / len(y_train)
    test_share = np.bincount(y_test) / len(y_test)
    assert np.abs(train_share - test_share).max() < 0.01
    again = digits.load_digits()
    np.testing.assert_array_equal(again[3], y_test)


def test_reference_cnn_trains_to_97_percent_and_is_cached():
    # the session's cache folder: later tests load the model trained here
    cache = cache_directory()
    for stale in cache.glob("digits_cnn_*.npz"):
        stale.unlink()
    started = time.perf_counter()
    model = digits.trained_digits_model()
    training_seconds = time.perf_counter() - started
    _, _, x_test, y_test = digits.load_digits()
    accuracy = model.accuracy(x_test, y_test)
    assert accuracy >= 0.97
    assert training_seconds < 60, f"training took {training_seconds:.1f} s"
    cached = list(cache.glob("digits_cnn_*.npz"))
    assert len(cached) == 1 and not list(cache.glob("*.tmp"))
    started = time.perf_counter()
    reloaded = digits.trained_digits_model()
    assert time.perf_counter() - started < training_seconds / 4
    for mine, theirs in zip(model.get_weights(), reloaded.get_weights()):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("corrupt", [lambda data: b"not an npz archive",
                                     lambda data: data[:len(data) // 2]],
                         ids=["garbage", "truncated"])
def test_a_corrupt_cache_entry_is_retrained(tmp_path, monkeypatch, corrupt):
    monkeypatch.setenv("QUILTC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(digits, "TRAINING", dict(digits.TRAINING, epochs=1))
    model = digits.trained_digits_model()
    [cached] = tmp_path.glob("digits_cnn_*.npz")
    cached.write_bytes(corrupt(cached.read_bytes()))
    rebuilt = digits.trained_digits_model()
    for mine, theirs in zip(model.get_weights(), rebuilt.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    with np.load(cached) as archive:
        assert len(archive.files) == len(model.get_weights())


def test_missing_scikit_learn_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(QuiltError, match="pip install scikit-learn"):
        digits.load_digits()
