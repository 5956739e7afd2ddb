"""Tuning records in SQLite: one row per measured candidate, written once and kept.

    with Database("matmul.sqlite") as db:
        db.add(task.workload, "c", task.shape, task.trace, result)
        db.lookup(task.workload, "c", task.shape, task.trace)   # a resumed tuning skips it
        db.best(task.workload, "c", shape_key({"M": 20}))       # fastest Record, or None

A record is keyed by (workload, target, shape, trace). Each `add` commits at once in WAL
mode, so a tuner killed with SIGKILL loses only the measurement it was taking, and
several tuners may write one file at once: SQLite serialises their writes, waiting up to
`BUSY_SECONDS` for the lock, and `database is locked` past that is retried a few times.
"""

import functools
import json
import os
import platform
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..ir.errors import QuiltError
from ..runtime_c.host import cache_sizes, host_isa
from .measure import MeasureResult, shape_key

SCHEMA_VERSION = 1
BUSY_SECONDS = 10.0
LOCKED_RETRIES = 5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    workload TEXT NOT NULL,
    target TEXT NOT NULL,
    host TEXT NOT NULL,
    shape TEXT NOT NULL,
    trace TEXT NOT NULL,
    seconds REAL,
    error TEXT,
    build_seconds REAL NOT NULL,
    timestamp TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS records_key ON records (workload, target, shape, trace);
"""
_COLUMNS = "id, workload, target, host, shape, trace, seconds, error, build_seconds, timestamp"


@dataclass(frozen=True)
class Record:
    """One stored measurement; `shape` and `host` decoded from their JSON, `trace` kept as
    the JSON text the candidate replays from; `seconds` is None for a failed candidate."""

    id: int
    workload: str
    target: str
    host: dict
    shape: dict
    trace: str
    seconds: float | None
    error: str | None
    build_seconds: float
    timestamp: str

    @property
    def result(self):
        """The record as the MeasureResult it was written from."""
        return MeasureResult(self.seconds, self.build_seconds, self.error)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_features():
    """What a measurement depends on beside the kernel: CPU model, the vector ISA kernels
    are built for (name and float32 lanes), core count and cache sizes in bytes. Read once
    per process; each call returns a fresh dict."""
    return json.loads(_host_json())


@functools.cache
def _host_json():
    isa = host_isa()
    return json.dumps({"cpu": _cpu_model(), "isa": isa.name, "lanes": isa.float32_lanes,
                       "cores": os.cpu_count(), "caches": cache_sizes()}, sort_keys=True)


def _shape_text(shape):
    return shape_key(shape) if isinstance(shape, Mapping) else shape


def _locked(error):
    return isinstance(error, sqlite3.OperationalError) and (
        "locked" in str(error) or "busy" in str(error))


class Database:
    """Tuning records in the SQLite file at `path`, created when missing (in a folder that
    exists); usable as a context manager that closes it."""

    def __init__(self, path):
        """Open or create the records file at `path` in WAL mode; a missing folder, a
        file that is not SQLite or a newer schema raises QuiltError."""
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise QuiltError(f"cannot create tuning records at {self.path}: the folder "
                             f"{self.path.parent} does not exist; create it first or pass a "
                             "path in an existing folder")
        try:
            # Autocommit: every statement is its own transaction, so `add` is durable
            # the moment it returns and no reader waits on a transaction left open.
            self._connection = sqlite3.connect(self.path, timeout=BUSY_SECONDS,
                                               isolation_level=None)
        except sqlite3.Error as failure:
            raise QuiltError(f"cannot open tuning records at {self.path} ({failure}); pass "
                             "the path of a writable file") from None
        try:
            self._retrying(self._set_up)
        except (sqlite3.Error, QuiltError) as failure:
            self._connection.close()
            if isinstance(failure, QuiltError):
                raise
            if "not a database" in str(failure):
                raise QuiltError(f"{self.path} is not an SQLite database ({failure}); pass "
                                 "the path of a tuning records file, or a new one") from None
            raise QuiltError(f"cannot open tuning records at {self.path} ({failure}); pass "
                             "the path of a file this process may write") from None

    def _set_up(self):
        connection = self._connection
        connection.execute(f"PRAGMA busy_timeout = {int(BUSY_SECONDS * 1000)}")
        connection.execute("PRAGMA journal_mode = WAL")
        # NORMAL with WAL: a commit survives a killed process; only a power cut may lose
        # the last few, which a re-run measures again.
        connection.execute("PRAGMA synchronous = NORMAL")
        # IMMEDIATE: two processes creating the same new file do not both insert a version.
        connection.execute("BEGIN IMMEDIATE")
        try:
            self._check_and_create_schema()
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _check_and_create_schema(self):
        connection = self._connection
        tables = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "schema_version" not in tables:
            raise QuiltError(f"{self.path} is an SQLite database but not quiltc's tuning "
                             f"records (its tables: {', '.join(sorted(tables))}); pass "
                             "another path")
        # One statement at a time: executescript would commit the open transaction.
        for statement in filter(str.strip, _SCHEMA.split(";")):
            connection.execute(statement)
        versions = [row[0] for row in connection.execute("SELECT version FROM schema_version")]
        if not versions:
            connection.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        elif max(versions) > SCHEMA_VERSION:
            raise QuiltError(f"{self.path} holds tuning records of schema {max(versions)}, "
                             f"newer than this quiltc's {SCHEMA_VERSION}; upgrade quiltc "
                             "or pass another path")

    def _retrying(self, action, *arguments):
        # busy_timeout covers most waits; SQLite still answers SQLITE_BUSY at once where
        # waiting could deadlock (and around WAL recovery), so retry those briefly.
        for attempt in range(LOCKED_RETRIES):
            try:
                return action(*arguments)
            except sqlite3.OperationalError as failure:
                if not _locked(failure) or attempt == LOCKED_RETRIES - 1:
                    raise
                if self._connection.in_transaction:
                    self._connection.execute("ROLLBACK")
                time.sleep(0.05 * 2 ** attempt)

    def _query(self, sql, parameters=()):
        return self._retrying(lambda: self._connection.execute(sql, parameters).fetchall())

    def add(self, workload, target, shape, trace, result, host=None):
        """Store `result` (a MeasureResult) for candidate `trace` of `workload` at `shape`
        (shape_key's JSON, or a dict) on `target`, measured on `host` (default: this
        host's features); committed before it returns. Returns False, writing nothing,
        when that key already has a record."""
        host_text = _host_json() if host is None else json.dumps(host, sort_keys=True)
        row = (workload, target, host_text, _shape_text(shape), trace, result.seconds,
               result.error, result.build_seconds, datetime.now(timezone.utc).isoformat())
        cursor = self._retrying(self._connection.execute,
                                "INSERT OR IGNORE INTO records (workload, target, host, shape, "
                                "trace, seconds, error, build_seconds, timestamp) VALUES "
                                "(?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        return cursor.rowcount == 1

    def lookup(self, workload, target, shape, trace):
        """The MeasureResult stored for that key, or None when it was never measured."""
        rows = self._query("SELECT seconds, build_seconds, error FROM records WHERE "
                           "workload = ? AND target = ? AND shape = ? AND trace = ?",
                           (workload, target, _shape_text(shape), trace))
        return MeasureResult(*rows[0]) if rows else None

    def records(self, workload, target=None):
        """Every Record of `workload` (on `target` only, when given), oldest first."""
        rows = self._query(f"SELECT {_COLUMNS} FROM records WHERE workload = ? AND "
                           "(? IS NULL OR target = ?) ORDER BY id", (workload, target, target))
        return [_record(row) for row in rows]

    def best(self, workload, target, shape):
        """The fastest successful Record of `workload` on `target` at `shape`, or None."""
        rows = self._query(f"SELECT {_COLUMNS} FROM records WHERE workload = ? AND target = ? "
                           "AND shape = ? AND seconds IS NOT NULL ORDER BY seconds, id LIMIT 1",
                           (workload, target, _shape_text(shape)))
        return _record(rows[0]) if rows else None

    def count(self, workload=None):
        """How many records the file holds (of `workload` only, when given)."""
        return self._query("SELECT COUNT(*) FROM records WHERE ? IS NULL OR workload = ?",
                           (workload, workload))[0][0]

    def workloads(self):
        """The workload hashes that have records, sorted."""
        return [row[0] for row in self._query("SELECT DISTINCT workload FROM records "
                                              "ORDER BY workload")]

    def close(self):
        """Close the file; every added record is already committed."""
        self._connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.close()

    def __repr__(self):
        return f"Database({str(self.path)!r})"


def _record(row):
    return Record(*row[:3], json.loads(row[3]), json.loads(row[4]), *row[5:])
