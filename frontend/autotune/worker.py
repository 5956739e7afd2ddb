"""The measuring process of a LocalExecutor: `main` (run as `python -c`) reads
pickled (MeasureTask, build seconds) pairs from stdin and writes a pickled MeasureResult
for each to stdout, until stdin closes.

A plain subprocess rather than a multiprocessing pool: a pool's spawned children import
the parent's main script, so a tuning script without an `if __name__ == "__main__"` guard
would tune again in every child. A kernel that crashes takes only this process down.
"""

import pickle
import subprocess
import sys

from .measure import MeasureResult


class MeasuringProcess:
    """One worker subprocess, started on first use and again after a crash."""

    def __init__(self):
        self._process = None

    def measure(self, task, build_seconds):
        """The MeasureResult of `task`, an error result when the process died under it."""
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-c", "from quiltc.autotune.worker import main; main()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            pickle.dump((task, build_seconds), self._process.stdin)
            self._process.stdin.flush()
            return pickle.load(self._process.stdout)
        except (EOFError, BrokenPipeError, pickle.UnpicklingError):
            status = self._process.wait()
            self._process = None
            return MeasureResult(None, build_seconds,
                                 f"the measuring process died (exit status {status})")

    def close(self):
        """Stop the subprocess."""
        if self._process is not None:
            self._process.stdin.close()
            self._process.wait()
            self._process = None


def main():
    """Serve measurements until stdin closes."""
    from .executor import measure_task

    source, sink = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            task, build_seconds = pickle.load(source)
        except EOFError:
            return
        pickle.dump(measure_task(task, build_seconds), sink)
        sink.flush()

