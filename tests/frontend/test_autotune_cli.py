"""`quiltc tune`: tune from the shell, refuse to mix tunings, and resume after a kill -9."""

import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from quiltc.cli import main

PROGRAM = '''
import quiltc as qc
T = qc.var("T", 1, 40)
X = qc.placeholder((3 * T, 32), "float32", "X")
W = qc.placeholder((32, 32), "float32", "W")
k = qc.reduce_axis(32, "k")
Y = qc.compute((3 * T, 32), lambda i, j: qc.sum(X[i, k] * W[k, j], axis=k), "Y")
'''


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "dense.py"
    path.write_text(PROGRAM)
    return path


def _arguments(program, database, trials=6, *extra):
    return ["tune", f"{program}:Y", "--shape", "T=2,17,40", "--db", str(database),
            "--trials", str(trials), "--quiet", *extra]


def _records(database):
    with sqlite3.connect(database) as connection:
        return set(connection.execute("SELECT shape, trace, seconds FROM records"))


def test_tune_writes_the_dispatcher_and_refuses_to_mix_tunings(program, tmp_path, capsys):
    database = tmp_path / "dense.db"
    assert main(_arguments(program, database, 6, "-o", str(tmp_path / "out"))) == 0
    printed = capsys.readouterr().out
    assert "Dispatcher(dense:" in printed and "dense_k0" in printed
    source = (tmp_path / "out" / "dense.c").read_text()
    assert "void dense(float* X, float* W, float* Y, int64_t T)" in source
    measured = _records(database)
    assert main(_arguments(program, database)) == 2
    assert "--resume" in capsys.readouterr().err
    # Resumed with nothing left to do, it measures nothing new.
    assert main(_arguments(program, database, 6, "--resume")) == 0
    assert _records(database) == measured


def test_tune_names_a_missing_output(program, tmp_path, capsys):
    assert main(["tune", f"{program}:Z", "--shape", "T=2", "--db", str(tmp_path / "x.db")]) == 2
    assert "defines no 'Z'" in capsys.readouterr().err


def test_a_killed_tuning_resumes_without_losing_a_measurement(program, tmp_path):
    database = tmp_path / "dense.db"
    # Builds and measurements in one process, so the kill lands while records arrive.
    command = [sys.executable, "-m", "quiltc.cli",
               *_arguments(program, database, 14, "--workers", "0")]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if database.exists() and len(_safe_records(database)) >= 3:
            break
        time.sleep(0.05)
    assert child.poll() is None, "the tuning finished before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait()
    before = _records(database)
    assert len(before) >= 3
    resumed = subprocess.run(command + ["--resume"], capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    after = _records(database)
    assert before <= after
    assert f"({len(before)} recorded before)" in resumed.stdout


def _safe_records(database):
    try:
        return _records(database)
    except sqlite3.OperationalError:
        return set()


def test_two_tuners_on_one_database_lose_nothing(program, tmp_path):
    wider = tmp_path / "wider.py"
    wider.write_text(PROGRAM.replace("(32, 32)", "(32, 64)").replace("(3 * T, 32), lambda",
                                                                     "(3 * T, 64), lambda"))
    database = tmp_path / "shared.db"
    tuners = [subprocess.Popen([sys.executable, "-m", "quiltc.cli",
                                *_arguments(path, database, 6, "--workers", "0")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for path in (program, wider)]
    outputs = [tuner.communicate(timeout=600) for tuner in tuners]
    assert [tuner.returncode for tuner in tuners] == [0, 0], outputs
    measured = [int(out.split(" measurements")[0].split()[-1]) for out, _ in outputs]
    with sqlite3.connect(database) as connection:
        per_workload = dict(connection.execute(
            "SELECT workload, COUNT(*) FROM records GROUP BY workload"))
    assert sorted(per_workload.values()) == sorted(measured)
