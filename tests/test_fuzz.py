"""The fuzzer at a small budget: a few dozen random programs (dense, int32 and ragged,
with random schedules; the ragged ones under ASan+UBSan) compiled and compared with the
interpreter and numpy. `make fuzz` runs the same campaign at thousands of programs.

The campaign's seed is fixed, so a failure here replays with
`.venv/bin/python scripts/fuzz.py --seed SEED --replay INDEX` (the message says which).
"""

import os

import numpy as np
import pytest

from quiltc.schedule.registry import PRIMITIVES

from support import fuzz, fuzz_pool, fuzz_programs, fuzz_reference, fuzz_schedules, fuzz_source
from support.helpers import require_sanitizer_environment
from support.tiers import profile_name

SEED = 20_240_610
PROGRAMS = {"ci": 36, "dev": 12}


def test_a_seed_names_one_program():
    first, second = fuzz_programs.generate(SEED)[0], fuzz_programs.generate(SEED)[0]
    assert fuzz_source.tensors(first) == fuzz_source.tensors(second)
    assert fuzz_source.tensors(first) != fuzz_source.tensors(fuzz_programs.generate(SEED + 1)[0])


def test_the_kind_is_known_before_the_program_is_drawn():
    for index in range(20):
        assert fuzz.kind_of(SEED, index) == fuzz.Run(SEED, index).program.kind


def test_the_generator_covers_every_kind_and_integer_operation():
    programs = [fuzz_programs.generate(seed)[0] for seed in range(300)]
    assert {p.kind for p in programs} == set(fuzz_programs.KINDS)
    text = "\n".join(fuzz_source.tensors(p) for p in programs)
    for spelling in ("qc.sum(", "qc.max(", "qc.min(", "qc.var(", "qc.ragged_dim(",
                     "qc.where(", "qc.exp(", "(B, L, L)", ">>", "<<", " | "):
        assert spelling in text, spelling
    assert any(p.lengths and 0 in p.lengths for p in programs)


def test_every_primitive_for_the_cpu_is_drawn():
    drawn, left_out = set(fuzz_schedules.WEIGHTS), fuzz_schedules.NOT_DRAWN
    assert drawn | left_out == set(PRIMITIVES) and not drawn & left_out


def test_integer_references_wrap_and_truncate_like_c():
    a = np.array([7, -7, fuzz_programs.INT32_MIN, fuzz_programs.INT32_MAX], np.int64)
    assert list(fuzz_reference._truncating_divide(a, np.int64(2))) == [3, -3, -(2**30),
                                                                       2**30 - 1]
    assert fuzz_reference._wrap(np.int64(fuzz_programs.INT32_MAX) + 1) == fuzz_programs.INT32_MIN


def test_a_crash_is_told_apart_from_a_wrong_answer():
    crash = {"outcome": fuzz.CRASH, "kind": "ragged",
             "detail": "worker exited with 99\n==1==ERROR: AddressSanitizer: "
                       "heap-buffer-overflow on address 0x1"}
    assert "heap-buffer-overflow" in fuzz_pool.signature(crash)
    wrong = {"outcome": fuzz.WRONG_ANSWER, "kind": "dense-int", "detail": "compiled T1 vs x"}
    assert fuzz_pool.signature(wrong).startswith(fuzz.WRONG_ANSWER)


def test_a_worker_that_dies_costs_one_program_recorded_as_a_crash(monkeypatch, tmp_path):
    monkeypatch.setattr(fuzz_pool, "WORKER_SOURCE",
                        "import sys; sys.stdin.readline(); print('==1==ERROR: "
                        "AddressSanitizer: SEGV', file=sys.stderr, flush=True); "
                        "import os; os.abort()")
    worker = fuzz_pool._Worker(False, dict(os.environ), tmp_path)
    record, outcome, detail = worker.run(SEED, 0, timeout=60)
    worker.stop()
    assert record is None and outcome == fuzz.CRASH
    assert "AddressSanitizer: SEGV" in fuzz_pool.crash_signature(detail)


@pytest.mark.sanitize
def test_random_programs_compute_what_the_interpreter_and_numpy_do():
    require_sanitizer_environment()
    records = fuzz_pool.campaign(SEED, range(PROGRAMS[profile_name()]), workers=2)
    assert {r["kind"] for r in records} == set(fuzz_programs.KINDS)
    found = fuzz_pool.findings(records)
    assert not found, fuzz_pool.summary(records, SEED, 0) + "\n" + "\n".join(
        f"program {r['index']}: {r['detail'][:1500]}" for r in found)


def test_a_kernel_of_constant_sizes_is_also_checked_as_cortex_m_c(monkeypatch):
    runs = (fuzz.Run(SEED, index) for index in range(40))
    run = next(run for run in runs if run.execute() is None and run.stage == "mcu")

    build = fuzz.helpers.mcu_host_build

    def off_by_one(sch):
        fn = build(sch)

        def call(**arguments):
            result = fn(**arguments)
            if isinstance(result, dict):
                return {name: value + 1 for name, value in result.items()}
            return result + 1
        return call

    monkeypatch.setattr(fuzz.helpers, "mcu_host_build", off_by_one)
    with pytest.raises(fuzz.Finding, match="mcu target's") as caught:
        fuzz.Run(run.seed, run.index).execute()
    assert caught.value.outcome == fuzz.WRONG_ANSWER
