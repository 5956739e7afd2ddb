"""Run a fuzz campaign in worker processes and summarise it.

gcc dominates a program's time, so several workers run side by side. Each worker is a
fresh interpreter (started like the `spawn` start method: quiltc warns in a forked
child) that reads program numbers on stdin and writes one JSON record per program on
stdout. A worker that dies (a segfault, a sanitizer report) or hangs costs only its
current program, which is recorded as a crash or a hang with the tail of its stderr; the
slot then starts a new worker. Ragged programs go to workers that preload the
AddressSanitizer runtime, as tests/runtime_c/test_sanitize.py runs its sanitized checks:
a sanitized kernel loads only into such a process, and any report aborts it.
"""

import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from . import fuzz

TESTS_DIRECTORY = str(Path(__file__).resolve().parent.parent)
RESULT_PREFIX = "FUZZ-RESULT "
# A worker is replaced after this many programs: each build loads one more library.
PROGRAMS_PER_WORKER = 150
WORKER_SOURCE = f"""
import json, sys
sys.path.insert(0, {TESTS_DIRECTORY!r})
from support import fuzz
sanitize = sys.argv[1] == "1"
for line in sys.stdin:
    seed, index = map(int, line.split())
    record = fuzz.run_one(seed, index, sanitize)
    print({RESULT_PREFIX!r} + json.dumps(record), flush=True)
"""
_REPORT_LINE = re.compile(r"(ERROR: AddressSanitizer: [\w-]+|runtime error: .*|"
                          r"SUMMARY: .*|Fatal Python error: .*|Segmentation fault)")


def sanitizer_environment(environment):
    """`environment` plus what a process needs to load sanitized kernels and to fail
    loudly on a report (LD_PRELOAD of gcc's libasan, as test_sanitize.py sets it)."""
    runtime = subprocess.run([os.environ.get("CC", "gcc"), "-print-file-name=libasan.so"],
                             capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(runtime):
        raise RuntimeError("libasan is not installed; install it with: "
                           "apt-get install -y libasan8")
    return dict(environment, LD_PRELOAD=runtime,
                ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=99",
                UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")


class _Worker:
    """One worker process and the reader thread that forwards its stdout lines."""

    def __init__(self, sanitize, environment, directory):
        self.sanitize = sanitize
        self.stderr_path = Path(tempfile.mkstemp(prefix="worker-", suffix=".err",
                                                 dir=directory)[1])
        env = sanitizer_environment(environment) if sanitize else environment
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-c", WORKER_SOURCE, "1" if sanitize else "0"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env,
                text=True, bufsize=1)
        self.lines = queue.Queue()
        self.programs = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            if line.startswith(RESULT_PREFIX):
                self.lines.put(line[len(RESULT_PREFIX):])
        self.lines.put(None)

    def run(self, seed, index, timeout):
        """The record of one program, or None with the reason when the worker died."""
        start = self.stderr_path.stat().st_size
        self.programs += 1
        try:
            self.process.stdin.write(f"{seed} {index}\n")
            self.process.stdin.flush()
            line = self.lines.get(timeout=timeout)
        except (BrokenPipeError, OSError):
            line = None
        except queue.Empty:
            self.stop()
            return None, fuzz.HANG, f"no result after {timeout} s"
        if line is not None:
            return json.loads(line), None, None
        code = self.process.wait()
        with open(self.stderr_path, "rb") as stderr:
            stderr.seek(start)
            text = stderr.read().decode(errors="replace")
        return None, fuzz.CRASH, f"worker exited with {code}\n{text[-6000:]}"

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stdin.close()
        self.stderr_path.unlink(missing_ok=True)


def crash_signature(detail):
    """The line of a crash's stderr that says what happened."""
    found = _REPORT_LINE.findall(detail)
    first = detail.splitlines()[0] if detail else ""
    return found[0] if found else first


def signature(record):
    """A short key that groups findings of one cause."""
    detail = record["detail"]
    if record["outcome"] == fuzz.CRASH:
        line = crash_signature(detail)
    else:
        lines = [x for x in detail.strip().splitlines() if x.strip()]
        if record["outcome"] == fuzz.INTERNAL_ERROR and lines:
            line = f"{lines[0]} ... {lines[-1]}"
        else:
            line = lines[0] if lines else ""
    line = re.sub(r"\d+", "#", line)
    return f"{record['outcome']}: {record['kind']}: {line[:160]}"


def _slot(seed, jobs, options, results, on_record, failures):
    timeout, environment, directory, sanitizers = options
    workers = {}
    try:
        while True:
            try:
                index = jobs.get_nowait()
            except queue.Empty:
                return
            sanitize = sanitizers and fuzz.kind_of(seed, index) in fuzz.SANITIZED_KINDS
            worker = workers.get(sanitize)
            if worker is None or worker.programs >= PROGRAMS_PER_WORKER:
                if worker is not None:
                    worker.stop()
                worker = workers[sanitize] = _Worker(sanitize, environment, directory)
            record, outcome, detail = worker.run(seed, index, timeout)
            if record is None:
                worker.stop()
                del workers[sanitize]
                record = {"index": index, "kind": fuzz.kind_of(seed, index),
                          "outcome": outcome, "stage": "?", "detail": detail,
                          "applied": [], "refused": 0, "sanitize": sanitize}
            results.append(record)
            on_record(record)
    except Exception as failure:
        # A fault of the pool itself: handed to the caller's thread, which raises it.
        failures.append(failure)
    finally:
        for worker in workers.values():
            worker.stop()


def campaign(seed, indices, workers=2, timeout=300, on_record=lambda record: None,
             sanitize=True):
    """Run programs `indices` of campaign `seed` on `workers` worker slots (the kinds in
    fuzz.SANITIZED_KINDS under ASan+UBSan unless `sanitize` is False); returns their
    records in index order."""
    if sanitize:
        sanitizer_environment(os.environ)  # fails here, at once, without libasan
    jobs = queue.Queue()
    for index in indices:
        jobs.put(index)
    results = []
    with tempfile.TemporaryDirectory(prefix="quiltc-fuzz-") as directory:
        environment = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"),
                           OPENBLAS_NUM_THREADS="1")
        environment.setdefault("QUILTC_CACHE_DIR", os.path.join(directory, "cache"))
        options = (timeout, environment, directory, sanitize)
        failures = []
        threads = [threading.Thread(target=_slot, args=(seed, jobs, options, results,
                                                         on_record, failures))
                   for _ in range(max(1, workers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]
    return sorted(results, key=lambda record: record["index"])


def summary(records, seed, seconds):
    """The campaign's counts per class and kind, its findings grouped by cause, and how
    to replay each: text to print."""
    outcomes = Counter(r["outcome"] for r in records)
    kinds = Counter(r["kind"] for r in records)
    sanitized = sum(r["sanitize"] for r in records)
    refused = sum(r["refused"] for r in records)
    lines = [f"seed {seed}: {len(records)} programs in {seconds:.1f} s "
             f"({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}; "
             f"{sanitized} under ASan+UBSan)",
             f"  schedule steps refused at schedule time (fine): {refused}"]
    for outcome in (fuzz.OK, *fuzz.FINDINGS):
        if outcomes[outcome]:
            lines.append(f"  {outcome}: {outcomes[outcome]}")
    groups = {}
    for record in records:
        if record["outcome"] != fuzz.OK:
            groups.setdefault(signature(record), []).append(record["index"])
    if groups:
        lines.append("findings by cause (programs):")
        for key, indices in sorted(groups.items(), key=lambda item: -len(item[1])):
            shown = ", ".join(map(str, indices[:8])) + (" ..." if len(indices) > 8 else "")
            lines.append(f"  {len(indices):5d}  {key}\n         programs {shown}")
        lines.append(f"replay one: .venv/bin/python scripts/fuzz.py --seed {seed} "
                     "--replay INDEX")
    return "\n".join(lines)


def findings(records):
    """The records that are findings (anything but OK)."""
    return [r for r in records if r["outcome"] != fuzz.OK]


def elapsed(start):
    return time.monotonic() - start
