"""Builds in the test session write to a fresh cache folder, never to ~/.cache/quiltc."""

import os

# One BLAS thread: numpy references and training stay fast beside the kernels' own OpenMP
# threads on small machines (set before numpy is first imported).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _quiltc_cache_directory(tmp_path_factory):
    if "QUILTC_CACHE_DIR" not in os.environ:
        os.environ["QUILTC_CACHE_DIR"] = str(tmp_path_factory.mktemp("quiltc-cache"))


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/ from the current emitted code")
