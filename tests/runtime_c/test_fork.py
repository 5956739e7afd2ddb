"""A process that ran parallel kernels and then forks (multiprocessing's default start on
Linux) must not hang: the child runs its kernels on one thread, right, with one warning
that names the 'spawn' start method."""

import json
import subprocess
import sys
import textwrap

import pytest

from support.helpers import require_cc

SCRIPT = textwrap.dedent("""
    import json, multiprocessing, warnings
    import numpy as np
    import quiltc as qc
    from quiltc.recipes import matmul_program, schedule_matmul

    *_, c = matmul_program(64, 48, 32)
    fn = qc.build(schedule_matmul(c, vector=16))
    a = np.arange(64 * 32, dtype=np.float32).reshape(64, 32) / 1000
    b = np.arange(32 * 48, dtype=np.float32).reshape(32, 48) / 1000
    fn(A=a, B=b)                      # the parent's OpenMP pool now exists

    def child(queue):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first, second = fn(A=a, B=b), fn(A=a, B=b)
        queue.put((float(np.abs(first - a @ b).max()), float(np.abs(second - a @ b).max()),
                   [str(w.message) for w in caught]))

    queue = multiprocessing.get_context("fork").Queue()
    worker = multiprocessing.get_context("fork").Process(target=child, args=(queue,))
    worker.start()
    print(json.dumps(queue.get(timeout=60)))
    worker.join(timeout=60)
    print("exit", worker.exitcode)
    np.testing.assert_allclose(fn(A=a, B=b), a @ b, rtol=1e-5)
    print("parent still runs")
""")


@pytest.mark.slow
def test_a_forked_child_runs_kernels_serially_with_one_warning(tmp_path):
    require_cc()
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            timeout=240, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report, exit_line, parent_line = result.stdout.strip().splitlines()[-3:]
    first_error, second_error, warnings = json.loads(report)
    assert first_error < 1e-3 and second_error < 1e-3
    assert len(warnings) == 1
    assert "forked after it ran parallel kernels" in warnings[0]
    assert "multiprocessing.set_start_method('spawn')" in warnings[0]
    assert exit_line == "exit 0" and parent_line == "parent still runs"
