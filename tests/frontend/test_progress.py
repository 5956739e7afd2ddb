"""Long jobs report as they go: progress bars only on a terminal and not when quiet, and
QUILTC_LOG=info shows each compiler command line and each build-cache hit."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from quiltc import progress

from support.helpers import require_cc


class Terminal:
    def __init__(self, stream):
        self.stream = stream

    def isatty(self):
        return True

    def write(self, text):
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()


def test_bars_are_drawn_on_a_terminal_unless_quiet(monkeypatch, capsys):
    monkeypatch.delenv(progress.QUIET_VARIABLE, raising=False)
    assert not progress.bars_shown()  # pytest's captured stderr is no terminal
    monkeypatch.setattr(sys, "stderr", Terminal(sys.stderr))
    assert progress.bars_shown()
    bar = progress.progress_bar(range(3), description="counting")
    assert not bar.disable
    assert sum(bar) == 3
    assert "counting" in capsys.readouterr().err
    progress.quiet()
    try:
        assert not progress.bars_shown()
        assert progress.progress_bar(range(3)).disable
    finally:
        progress.quiet(False)


def test_an_unknown_log_level_is_named(capsys):
    progress.configure_logging("verbose")
    assert "QUILTC_LOG='verbose' is not a level; use info or debug" in capsys.readouterr().err


def test_quiltc_log_shows_compiler_commands_then_cache_hits(tmp_path):
    require_cc()
    (tmp_path / "program.py").write_text(
        "import quiltc as qc\n"
        "X = qc.placeholder((4,), 'float32', 'X')\n"
        "Y = qc.compute((4,), lambda i: X[i] + 1, 'Y')\n")
    np.save(tmp_path / "x.npy", np.zeros(4, np.float32))
    quiltc = str(pathlib.Path(sys.executable).with_name("quiltc"))
    environment = {**os.environ, "QUILTC_LOG": "info", "QUILTC_CACHE_DIR": str(tmp_path / "c")}

    def run():
        result = subprocess.run([quiltc, "run", "program.py:Y", "--input", "X=x.npy"],
                                cwd=tmp_path, env=environment, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stderr

    first, second = run(), run()
    assert "quiltc INFO quiltc.runtime_c.toolchain:" in first and " -shared " in first
    assert "cache hit" not in first
    assert "quiltc INFO quiltc.runtime_c.cache: cache hit:" in second
    assert "-shared" not in second


@pytest.mark.parametrize("value", ["", "0"])
def test_quiet_variable_off_values_leave_bars_on(monkeypatch, value):
    monkeypatch.setenv(progress.QUIET_VARIABLE, value)
    monkeypatch.setattr(sys, "stderr", Terminal(sys.stderr))
    assert progress.bars_shown()
