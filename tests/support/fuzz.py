"""The fuzzer: run one random program (generated, scheduled, built, called) and classify
what happened. fuzz_programs.py draws the programs, fuzz_schedules.py their schedules,
fuzz_reference.py their numpy references, fuzz_source.py their Python text, and
fuzz_pool.py runs many of them in worker processes.

Program `index` of a campaign with seed `seed` is drawn from default_rng(seed + index),
so one number replays it. The interpreter (quiltc.ir.interp) is the oracle: the
unscheduled kernel must match numpy, the scheduled kernel must match the unscheduled one
in the interpreter, and the compiled C must match both; a kernel of constant sizes is also
rendered as Cortex-M C, built for the host, and must match too.
"""

import traceback

import numpy as np

import quiltc as qc
from quiltc.codegen import mcu
from quiltc.ir import interp
from quiltc.ir.errors import BuildError, QuiltError

from . import fuzz_programs, fuzz_reference, fuzz_schedules, fuzz_source, helpers

# Outcome classes. Only OK and the schedule refusals counted inside it are fine.
OK = "ok"
BUILD_REFUSED = "schedule accepted, build refused"
GCC_REJECTED = "gcc rejected the generated C"
WRONG_ANSWER = "wrong answer"
ORACLE_FAILED = "interpreter failed"
CRASH = "crash or sanitizer report"
INTERNAL_ERROR = "internal error"
HANG = "hang"
FINDINGS = (BUILD_REFUSED, GCC_REJECTED, WRONG_ANSWER, ORACLE_FAILED, CRASH, INTERNAL_ERROR,
            HANG)
# The kinds of program a campaign builds under ASan+UBSan (in workers that preload libasan).
SANITIZED_KINDS = ("ragged",)


class Finding(Exception):
    """What went wrong with one program, and in which class."""

    def __init__(self, outcome, detail):
        super().__init__(detail)
        self.outcome, self.detail = outcome, detail


def program_seed(seed, index):
    return seed + index


def kind_of(seed, index):
    """The kind of program `index` (drawn first, so the pool can route it cheaply)."""
    rng = np.random.default_rng(program_seed(seed, index))
    return str(rng.choice(fuzz_programs.KINDS, p=[0.35, 0.3, 0.35]))


def _rows(value):
    return value.to_list() if isinstance(value, qc.RaggedArray) else value


def _compare(got, want, program, where):
    """Raise a WRONG_ANSWER Finding unless `got` matches `want` (lists: per row)."""
    got, want = _rows(got), _rows(want)
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            raise Finding(WRONG_ANSWER, f"{where}: {len(want)} rows expected")
        for row, (g, w) in enumerate(zip(got, want)):
            _compare(g, w, program, f"{where}, row {row}")
        return
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise Finding(WRONG_ANSWER, f"{where}: shape {got.shape}, expected {want.shape}")
    if program.dtype == "int32":
        bad = got != want
    else:
        finite = want[np.isfinite(want)]
        scale = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
        with np.errstate(invalid="ignore"):
            close = np.isclose(got, want, rtol=1e-3, atol=1e-3 * scale, equal_nan=True)
        bad = ~close
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise Finding(WRONG_ANSWER, f"{where}: {int(bad.sum())} of {bad.size} differ, first "
                                    f"at {first}: {got[first]!r} instead of {want[first]!r}")


def _call_arguments(program, arrays, kernel):
    """Keyword arguments for the kernel's parameters (ragged lists as RaggedArrays)."""
    params = {p.name for p in kernel.params}
    arguments = {}
    for name, value in arrays.items():
        if name in params:
            if isinstance(value, list):
                inner = (program.dims["H"].size,)
                value = qc.RaggedArray.from_list(value, inner_shape=inner)
            arguments[name] = value
    return arguments


def _outputs(result, sch):
    return result if isinstance(result, dict) else {sch.kernel.outputs[0]: result}


class Run:
    """Program `index` of campaign `seed`, carried through every stage; `stage` names the
    last one started and `report()` is the record the pool collects. `announce`, when
    given, receives the reproducer before the build: a crash in the build or the call
    then still leaves it printed."""

    def __init__(self, seed, index, sanitize=False, announce=None):
        self.seed, self.index, self.sanitize = seed, index, sanitize
        self.announce = announce
        self.program, self.rng = fuzz_programs.generate(program_seed(seed, index))
        self.stage = "generate"
        self.applied, self.refused = [], []
        self.sch = None
        self.arrays = None

    def execute(self):
        """Run every stage; raises Finding for a finding (other exceptions: internal)."""
        program = self.program
        self.stage = "tensors"
        outputs = fuzz_source.build(fuzz_source.tensors(program))
        self.sch = qc.Schedule(outputs, name=f"fuzz_{self.index}")
        self.stage = "schedule"
        stages = [t.name for t in program.tensors if t.body is not None]
        self.applied, self.refused = fuzz_schedules.random_schedule(self.rng, self.sch, stages)
        self.arrays = fuzz_reference.inputs(self.rng, program)
        reference = fuzz_reference.reference(program, self.arrays)
        arguments = _call_arguments(program, self.arrays, self.sch.original)
        self.stage = "interpret"
        try:
            original = interp.run(self.sch.original, **arguments)
            scheduled = interp.run(self.sch.kernel, **arguments)
        except QuiltError as error:
            raise Finding(ORACLE_FAILED, f"{type(error).__name__}: {error}") from error
        for name, want in reference.items():
            _compare(original[name], want, program, f"unscheduled {name} (interpreter) vs numpy")
            _compare(scheduled[name], original[name], program,
                     f"scheduled {name} vs unscheduled (interpreter)")
        if self.announce is not None:
            self.announce(self.reproducer())
        self.stage = "build"
        try:
            # fuzzed outputs are small: stream loops stream them anyway, so that the
            # streamed path is what the campaign checks
            with helpers.stream_every_loop():
                fn = qc.build(self.sch, sanitize=self.sanitize)
        except BuildError as error:
            raise Finding(GCC_REJECTED, str(error)) from error
        except QuiltError as error:
            raise Finding(BUILD_REFUSED, f"{type(error).__name__}: {error}") from error
        self.stage = "call"
        try:
            got = _outputs(fn(**arguments), self.sch)
        except QuiltError as error:
            raise Finding(BUILD_REFUSED, f"call refused: {type(error).__name__}: {error}") \
                from error
        for name, want in original.items():
            _compare(got[name], want, program, f"compiled {name} vs interpreter")
        if mcu.takes(self.sch.kernel):
            self._check_mcu(arguments, original)

    def _check_mcu(self, arguments, original):
        """The Cortex-M C of a kernel of constant sizes, built for the host, against the
        interpreter: the same IR through the microcontroller renderer."""
        self.stage = "mcu"
        try:
            fn = helpers.mcu_host_build(self.sch)
        except BuildError as error:
            raise Finding(GCC_REJECTED, f"mcu target: {error}") from error
        except QuiltError as error:
            raise Finding(BUILD_REFUSED, f"mcu target: {type(error).__name__}: {error}") \
                from error
        got = _outputs(fn(**arguments), self.sch)
        for name, want in original.items():
            _compare(got[name], want, self.program, f"mcu target's {name} vs interpreter")

    def report(self):
        """Run, catching everything; returns a JSON-ready record."""
        outcome, detail = OK, ""
        try:
            self.execute()
        except Finding as finding:
            outcome, detail = finding.outcome, finding.detail
        except Exception:
            # Any other exception, from any layer, is what the fuzzer hunts for.
            outcome, detail = INTERNAL_ERROR, f"in {self.stage}: {traceback.format_exc()}"
        return self.record(outcome, detail)

    def record(self, outcome, detail):
        return {"index": self.index, "kind": self.program.kind, "outcome": outcome,
                "stage": self.stage, "detail": detail[-3000:], "applied": self.applied,
                "refused": len(self.refused), "sanitize": self.sanitize}

    def reproducer(self):
        """A standalone script for this program (after `execute` got past scheduling)."""
        trace = self.sch.trace if self.sch is not None else ""
        arrays = self.arrays
        if arrays is not None and self.sch is not None:
            params = {p.name for p in self.sch.original.params}
            arrays = {n: a for n, a in arrays.items() if n in params}
        return fuzz_source.reproducer(self.program, trace, arrays or {}, self.sanitize,
                                      f"fuzz_{self.index}")


def run_one(seed, index, sanitize=None):
    """The record of program `index` of campaign `seed`, run in this process."""
    if sanitize is None:
        sanitize = kind_of(seed, index) in SANITIZED_KINDS
    return Run(seed, index, sanitize).report()
