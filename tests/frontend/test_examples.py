"""The examples and the demo run as a user runs them, and say their results match numpy."""

import pathlib
import subprocess
import sys

import pytest

from support.helpers import require_cc

# Each runs in a fresh interpreter that builds its kernels again.
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name)
def test_example_runs(script, tmp_path):
    require_cc()
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_demo_reports_results_matching_numpy(tmp_path, trained_digits_model):
    """The demo loads the digits CNN the session fixture cached (a user's first run trains
    it)."""
    require_cc()
    result = subprocess.run([sys.executable, "-m", "quiltc.demo"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "all results match numpy" in result.stdout
    assert result.stdout.count("(correct)") == 2
