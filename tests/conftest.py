"""Builds in the test session write to a fresh cache folder, never to ~/.cache/quiltc."""

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _quiltc_cache_directory(tmp_path_factory):
    if "QUILTC_CACHE_DIR" not in os.environ:
        os.environ["QUILTC_CACHE_DIR"] = str(tmp_path_factory.mktemp("quiltc-cache"))
