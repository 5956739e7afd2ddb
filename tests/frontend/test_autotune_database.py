"""quiltc.autotune.database: tuning records written once, read back whole, and kept whole
through concurrent writers and a writer killed with SIGKILL."""

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from quiltc.autotune.database import Database, host_features
from quiltc.autotune.measure import MeasureResult, shape_key
from quiltc.ir.errors import QuiltError

HOST = {"cpu": "test", "isa": "avx2", "lanes": 8, "cores": 1, "caches": {}}


def test_records_round_trip(tmp_path):
    with Database(tmp_path / "records.sqlite") as db:
        assert db.add("w1", "c", shape_key({"M": 20}), "t-fast", MeasureResult(1e-5, 0.2))
        assert db.add("w1", "c", shape_key({"M": 20}), "t-slow", MeasureResult(3e-5, 0.1))
        assert db.add("w1", "c", {"M": 64}, "t-fast", MeasureResult(4e-5, 0.0), host=HOST)
        assert db.add("w2", "cuda-emu", shape_key({"N": 8}), "t", MeasureResult(1.0, 0.0))

        assert db.lookup("w1", "c", shape_key({"M": 20}), "t-slow") == MeasureResult(3e-5, 0.1)
        assert db.lookup("w1", "c", {"M": 20}, "t-never") is None
        records = db.records("w1")
        assert [(r.shape, r.trace) for r in records] == [
            ({"M": 20}, "t-fast"), ({"M": 20}, "t-slow"), ({"M": 64}, "t-fast")]
        assert records[0].host == host_features() and records[2].host == HOST
        assert records[0].result == MeasureResult(1e-5, 0.2)
        assert records[0].timestamp.endswith("+00:00")
        assert db.best("w1", "c", {"M": 20}).trace == "t-fast"
        assert db.best("w1", "c", {"M": 5}) is None
        assert db.records("w2", target="c") == []
        assert [r.target for r in db.records("w2", target="cuda-emu")] == ["cuda-emu"]
        assert (db.count(), db.count("w1"), db.workloads()) == (4, 3, ["w1", "w2"])
    with Database(tmp_path / "records.sqlite") as reopened:
        assert reopened.count() == 4


def test_adding_a_measured_key_again_writes_nothing(tmp_path):
    with Database(tmp_path / "records.sqlite") as db:
        assert db.add("w", "c", {"M": 1}, "t", MeasureResult(2.0, 0.5), host=HOST)
        assert not db.add("w", "c", {"M": 1}, "t", MeasureResult(1.0, 0.0), host=HOST)
        assert db.count() == 1
        assert db.lookup("w", "c", {"M": 1}, "t") == MeasureResult(2.0, 0.5)


def test_a_failed_candidate_is_stored_but_never_best(tmp_path):
    failed = MeasureResult(None, 0.3, "gcc failed on kernel.c")
    with Database(tmp_path / "records.sqlite") as db:
        assert db.add("w", "c", {"M": 3}, "bad", failed, host=HOST)
        assert db.lookup("w", "c", {"M": 3}, "bad") == failed
        assert db.best("w", "c", {"M": 3}) is None
        db.add("w", "c", {"M": 3}, "good", MeasureResult(5.0, 0.1), host=HOST)
        assert db.best("w", "c", {"M": 3}).trace == "good"
        assert db.records("w")[0].error == "gcc failed on kernel.c"


def test_the_file_is_in_wal_mode(tmp_path):
    Database(tmp_path / "records.sqlite").close()
    connection = sqlite3.connect(tmp_path / "records.sqlite")
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()


def _add_records(path, writer, count, start):
    """One of several processes writing `count` records to `path` once all have started."""
    with Database(path) as db:
        start.wait()
        for n in range(count):
            assert db.add("w", "c", {"M": n}, f"writer{writer}", MeasureResult(n, 0.0),
                          host=HOST)


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "records.sqlite"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    writers = [context.Process(target=_add_records, args=(path, writer, 50, start))
               for writer in range(2)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(120)
    assert [process.exitcode for process in writers] == [0, 0]
    with Database(path) as db:
        assert db.count() == 100
        assert {r.trace for r in db.records("w")} == {"writer0", "writer1"}


_ENDLESS_WRITER = """
import sys
from quiltc.autotune.database import Database
from quiltc.autotune.measure import MeasureResult
db = Database(sys.argv[1])
n = 0
while True:
    db.add("w", "c", {"M": n}, f"t{n}", MeasureResult(n * 1e-6, 0.5), host={"cpu": "test"})
    n += 1
"""


def test_a_writer_killed_with_sigkill_leaves_every_finished_record(tmp_path):
    path = tmp_path / "records.sqlite"
    writer = subprocess.Popen([sys.executable, "-c", _ENDLESS_WRITER, str(path)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and writer.poll() is None:
            if path.exists():
                with Database(path) as db:
                    if db.count() >= 10:
                        break
            time.sleep(0.05)
        assert writer.poll() is None, "the writer stopped before it was killed"
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait()
    with Database(path) as db:
        records = db.records("w")
        assert len(records) >= 10
        assert [r.trace for r in records] == [f"t{n}" for n in range(len(records))]
        assert all(r.result == MeasureResult(n * 1e-6, 0.5) for n, r in enumerate(records))
        assert db.add("w", "c", {"M": -1}, "after", MeasureResult(1.0, 0.0), host=HOST)
        assert db.count() == len(records) + 1
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    connection.close()


def test_a_path_in_a_missing_folder_is_refused_readably(tmp_path):
    with pytest.raises(QuiltError, match="does not exist; create it first") as caught:
        Database(tmp_path / "missing" / "records.sqlite")
    assert "\n" not in str(caught.value)


def test_a_file_that_is_not_a_database_is_refused_readably(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are not tuning records\n" * 40)
    with pytest.raises(QuiltError, match="is not an SQLite database") as caught:
        Database(path)
    assert "\n" not in str(caught.value)
    assert path.read_text().startswith("these are not")


def test_another_programs_database_and_a_newer_schema_are_refused(tmp_path):
    foreign = tmp_path / "app.sqlite"
    connection = sqlite3.connect(foreign)
    connection.execute("CREATE TABLE users (name TEXT)")
    connection.commit()
    connection.close()
    with pytest.raises(QuiltError, match=r"not quiltc's tuning records \(its tables: users\)"):
        Database(foreign)
    newer = tmp_path / "newer.sqlite"
    Database(newer).close()
    connection = sqlite3.connect(newer)
    connection.execute("UPDATE schema_version SET version = 99")
    connection.commit()
    connection.close()
    with pytest.raises(QuiltError, match="schema 99, newer than this quiltc's 1"):
        Database(newer)
