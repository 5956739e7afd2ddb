"""The test session's setup: builds write to a fresh cache folder, never to ~/.cache/quiltc;
hypothesis runs at the budgets of the tier QUILTC_TEST_PROFILE names (support.tiers);
the trained digits models are made once per session, for whichever test asks first."""

import os
from pathlib import Path

# One BLAS thread: numpy references and training stay fast beside the kernels' own OpenMP
# threads on small machines (set before numpy is first imported).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest
from hypothesis import settings

from support.tiers import DEFAULT_EXAMPLES, dev_examples, profile_name

# No deadline in either tier: an example's first call compiles its kernel, and how long an
# example takes is never what a test checks.
settings.register_profile("ci", max_examples=DEFAULT_EXAMPLES, deadline=None)
settings.register_profile("dev", max_examples=dev_examples(DEFAULT_EXAMPLES), deadline=None)
settings.load_profile(profile_name())


@pytest.fixture(autouse=True, scope="session")
def _quiltc_cache_directory(tmp_path_factory):
    if "QUILTC_CACHE_DIR" not in os.environ:
        os.environ["QUILTC_CACHE_DIR"] = str(tmp_path_factory.mktemp("quiltc-cache"))


@pytest.fixture(scope="session")
def trained_digits_model(_quiltc_cache_directory):
    """quiltc.digits.trained_digits_model(): trained into the session's cache folder on
    first use (or loaded from $QUILTC_CACHE_DIR where a previous run left it), so later
    calls and subprocesses of the session load it instead of training."""
    pytest.importorskip("sklearn", reason="install it with: pip install scikit-learn")
    from quiltc import digits

    return digits.trained_digits_model()


@pytest.fixture(scope="session")
def pooled_digits(trained_digits_model):
    """quiltc.demo.mcu.pooled_digits(): (float model, int8 QuantModel, weight-pooled model,
    load_digits() split), the models `make demo` runs, over the session's trained model."""
    from quiltc.demo import mcu

    return mcu.pooled_digits()


@pytest.fixture
def c_compiles(monkeypatch):
    """The C sources the C toolchain compiles during the test, in order (each the `.c`
    beside its cached object): a build served from the cache, in memory or on disk,
    adds none."""
    from quiltc.runtime_c.toolchain import Toolchain

    compiled = []
    compile_source = Toolchain.compile

    def compile_and_record(toolchain, source_path, output_path):
        compiled.append(Path(source_path))
        return compile_source(toolchain, source_path, output_path)

    monkeypatch.setattr(Toolchain, "compile", compile_and_record)
    return compiled


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/ from the current emitted code")


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory):
    """An .npz of an untrained digits CNN's weights (np.savez of get_weights()): what the
    command-line tests pass as a user's model, made in a moment."""
    import numpy as np

    from quiltc.digits import digits_cnn

    path = tmp_path_factory.mktemp("weights") / "digits.npz"
    np.savez(path, *digits_cnn(seed=5).get_weights())
    return path
