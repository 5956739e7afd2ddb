"""quiltc.digits: the data split, training the reference CNN to >= 97% test accuracy,
and its weight cache (reused, and rebuilt when corrupt)."""

import sys

import numpy as np
import pytest

from quiltc import digits
from quiltc.ir.errors import QuiltError
from quiltc.nn.layers import Sequential
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


@pytest.mark.slow
def test_reference_cnn_trains_to_97_percent_and_is_cached(trained_digits_model, monkeypatch):
    _, _, x_test, y_test = digits.load_digits()
    assert trained_digits_model.accuracy(x_test, y_test) >= 0.97
    assert list(cache_directory().glob("digits_cnn_*.npz"))
    assert not list(cache_directory().glob("*.npz.tmp")), "a temporary file was left behind"
    # a second call loads the cached weights: it never trains
    fits = []
    monkeypatch.setattr(Sequential, "fit", lambda model, *args, **kwargs: fits.append(args))
    reloaded = digits.trained_digits_model()
    assert fits == [], "trained_digits_model() trained again instead of loading the cache"
    for mine, theirs in zip(trained_digits_model.get_weights(), reloaded.get_weights()):
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
