"""Fuzz quiltc: random dense, ragged and int32 programs with random schedules, compiled
to C and compared with the interpreter and numpy (tests/support/fuzz*.py).

    python scripts/fuzz.py --seed 123 --programs 5000     # a campaign (make fuzz)
    python scripts/fuzz.py --seed 123 --replay 417        # program 417 of it, with a script

A campaign prints its seed first, counts per outcome and the time last, and exits with
status 1 when any program ended in a finding (anything but a right answer; steps the
schedule refused are counted, not findings). Program i of seed s is drawn from
numpy.random.default_rng(s + i), so --replay reruns exactly one program.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

# The fuzzer lives with the tests (tests/support), which are not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from quiltc.runtime_c.toolchain import sanitizer_runtime_loaded

from support import fuzz, fuzz_pool


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None,
                        help="campaign seed (default: drawn from the clock, and printed)")
    parser.add_argument("--programs", type=int, default=5000, help="how many programs")
    parser.add_argument("--start", type=int, default=0, help="first program number")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="worker processes (default: one per core)")
    parser.add_argument("--timeout", type=int, default=300,
                        help="seconds one program may take before it counts as a hang")
    parser.add_argument("--replay", type=int, default=None, metavar="INDEX",
                        help="run only program INDEX, here, and print a reproducer script")
    parser.add_argument("--no-sanitize", action="store_true",
                        help="build every program without the sanitizers (where libasan "
                             "is missing)")
    parser.add_argument("--quiet", action="store_true", help="no line per finding")
    return parser.parse_args()


def _replay(options):
    """Run one program in this process (re-executed with libasan preloaded when its
    kind runs sanitized) and print its record and a standalone reproducer."""
    sanitize = (not options.no_sanitize
                and fuzz.kind_of(options.seed, options.replay) in fuzz.SANITIZED_KINDS)
    if sanitize and not sanitizer_runtime_loaded():
        environment = fuzz_pool.sanitizer_environment(os.environ)
        return subprocess.run([sys.executable, *sys.argv], env=environment).returncode
    run = fuzz.Run(options.seed, options.replay, sanitize,
                   announce=lambda text: print(text, flush=True))
    print(f"# program {options.replay} of seed {options.seed} ({run.program.kind}"
          f"{', sanitized' if sanitize else ''})", flush=True)
    record = run.report()
    print(f"# outcome: {record['outcome']} (in {record['stage']})")
    print(f"# schedule steps applied: {record['applied']}; refused: {len(run.refused)}")
    for line in record["detail"].splitlines():
        print(f"# {line}")
    return 0 if record["outcome"] == fuzz.OK else 1


def _campaign(options):
    print(f"fuzz seed {options.seed}: programs {options.start}.."
          f"{options.start + options.programs - 1} on {options.workers} workers "
          f"(replay: make fuzz SEED={options.seed} PROGRAMS={options.programs})", flush=True)
    start = time.monotonic()
    done = []

    def on_record(record):
        done.append(record)
        if record["outcome"] != fuzz.OK and not options.quiet:
            print(f"  program {record['index']} ({record['kind']}): "
                  f"{fuzz_pool.signature(record)}", flush=True)
        if len(done) % 250 == 0:
            print(f"  ... {len(done)} programs, {fuzz_pool.elapsed(start):.0f} s", flush=True)

    indices = range(options.start, options.start + options.programs)
    records = fuzz_pool.campaign(options.seed, indices, options.workers, options.timeout,
                                 on_record, sanitize=not options.no_sanitize)
    print(fuzz_pool.summary(records, options.seed, fuzz_pool.elapsed(start)))
    return 1 if fuzz_pool.findings(records) else 0


def main():
    options = _arguments()
    if options.seed is None:
        options.seed = int(time.time()) % 1_000_000
    return _replay(options) if options.replay is not None else _campaign(options)


if __name__ == "__main__":
    sys.exit(main())
