"""The trace of a schedule: every primitive call in order, as data. It prints as Python
that replays it on a fresh schedule of the same program, and round-trips through JSON,
so a tuned schedule can be stored and a tuner can vary its sampled decisions:

    text = sch.trace.as_json()
    trace = Trace.from_json(text).with_decision(0, "factor", 16)
    tuned = trace.replay(qc.Schedule(program))

    {"format": "quiltc.trace", "version": 1, "steps": [
      {"primitive": "split", "arguments": {"loop": "i", "factor": 8, "guard": null},
       "decisions": ["factor"], "results": ["i_o", "i_i"]}, ...]}

Arguments are stored by parameter name, loops and tensors by name; `decisions` lists the
arguments a tuner may vary; `results` names the loops (or tensor) the step returned.
How each primitive's arguments print, replay and read back comes from its registry entry.
"""

import json
from dataclasses import dataclass, replace

from ..ir.errors import ScheduleError
from .registry import PRIMITIVES

FORMAT, VERSION = "quiltc.trace", 1


@dataclass(frozen=True)
class Step:
    """One primitive call: its name, its arguments ((parameter name, value) pairs in the
    registry's order, loops and tensors by name) and the names of what it returned."""

    primitive: str
    arguments: tuple
    results: tuple

    @property
    def entry(self):
        return PRIMITIVES[self.primitive]

    def argument(self, name):
        return dict(self.arguments)[name]

    def as_python(self):
        """The call as a Python statement on a schedule called `sch`."""
        parts = []
        for param in self.entry.params:
            value = self.argument(param.name)
            if param.kind == "loops":
                parts += [repr(v) for v in value]
            elif not param.keyword:
                parts.append(repr(value))
            elif value is not None:
                parts.append(f"{param.name}={value!r}")
        call = f"sch.{self.primitive}({', '.join(parts)})"
        return f"{', '.join(self.results)} = {call}" if self.results else call

    def as_dict(self):
        """The step as JSON data."""
        arguments = {name: list(value) if isinstance(value, tuple) else value
                     for name, value in self.arguments}
        return {"primitive": self.primitive, "arguments": arguments,
                "decisions": list(self.entry.decisions), "results": list(self.results)}

    @classmethod
    def from_dict(cls, data, number):
        """The step that `as_dict` wrote; ScheduleError when it is not one."""
        def refuse(obstacle, hint):
            raise ScheduleError("Trace.from_json", f"read step {number} of a JSON trace",
                                obstacle, hint)

        if not isinstance(data, dict) or data.get("primitive") not in PRIMITIVES:
            refuse(f"it names no known primitive ({data!r})",
                   f"Use one of {', '.join(PRIMITIVES)}.")
        entry = PRIMITIVES[data["primitive"]]
        given = data.get("arguments", {})
        if not isinstance(given, dict):
            refuse(f"its arguments {given!r} are not an object of values by parameter name",
                   "Write them as as_json does.")
        expected = [p.name for p in entry.params]
        unknown = sorted(set(given) - set(expected))
        if unknown:
            refuse(f"{entry.name} has no parameter {unknown[0]!r}",
                   f"Its parameters are: {', '.join(expected) or 'none'}.")
        arguments = []
        for param in entry.params:
            if param.name not in given and param.required:
                required = [p.name for p in entry.params if p.required]
                refuse(f"argument {param.name!r} of {entry.name} is missing",
                       f"Give every parameter without a default: {', '.join(required)}.")
            value = given.get(param.name, param.default)
            if not param.accepts(value):
                refuse(f"argument {param.name}={value!r} of {entry.name} is not "
                       f"{param.kind_text()}", "Write it as as_json does.")
            arguments.append((param.name, tuple(value) if param.kind == "loops" else value))
        results = data.get("results", [])
        if not (isinstance(results, list) and all(isinstance(r, str) for r in results)):
            refuse(f"its results {results!r} are not a list of names",
                   "Write them as as_json does.")
        return cls(entry.name, tuple(arguments), tuple(results))


class Trace:
    """The list of steps; `str(trace)` is Python that replays them."""

    def __init__(self, steps=()):
        self.steps = list(steps)

    def append(self, step):
        self.steps.append(step)

    def as_python(self):
        """The steps as Python statements on a schedule called `sch`."""
        return "\n".join(step.as_python() for step in self.steps)

    def replay(self, schedule):
        """Apply every step to `schedule` (a fresh schedule of the same program) and
        return it."""
        for step in self.steps:
            schedule.apply(step.primitive, dict(step.arguments))
        return schedule

    def as_json(self, indent=None):
        """The trace as a JSON string (see the module docstring for the format)."""
        return json.dumps({"format": FORMAT, "version": VERSION,
                           "steps": [step.as_dict() for step in self.steps]}, indent=indent)

    @classmethod
    def from_json(cls, text):
        """The trace that `as_json` wrote."""
        data = json.loads(text)
        if not (isinstance(data, dict) and data.get("format") == FORMAT
                and data.get("version") == VERSION and isinstance(data.get("steps"), list)):
            raise ScheduleError(
                "Trace.from_json", "read a JSON trace",
                f"it is not a {FORMAT} version {VERSION} document with a list of steps",
                "Pass the text that trace.as_json() wrote.")
        return cls(Step.from_dict(step, number) for number, step in enumerate(data["steps"]))

    def decisions(self):
        """[(step index, parameter, value)] of every sampled decision, in order."""
        return [(number, name, step.argument(name))
                for number, step in enumerate(self.steps) for name in step.entry.decisions]

    def with_decision(self, step_index, parameter, value):
        """A new trace with decision `parameter` of step `step_index` set to `value`."""
        if not 0 <= step_index < len(self.steps):
            raise ScheduleError(
                "with_decision", f"change step {step_index} of a trace of {len(self.steps)} steps",
                "there is no such step", f"Pass a step index from 0 to {len(self.steps) - 1}.")
        step = self.steps[step_index]
        entry = step.entry
        if parameter not in entry.decisions:
            where = ", ".join(f"step {n} {name}" for n, name, _ in self.decisions()) or "none"
            raise ScheduleError(
                "with_decision", f"change {parameter} of step {step_index} ({entry.name})",
                f"{parameter!r} is not a decision of {entry.name} (its decisions: "
                f"{', '.join(entry.decisions) or 'none'})",
                f"Change one of the trace's decisions: {where}.")
        if not entry.param(parameter).accepts(value):
            raise ScheduleError(
                "with_decision", f"set {parameter} of step {step_index} to {value!r}",
                f"{entry.name}'s {parameter} takes {entry.param(parameter).kind_text()}",
                "Pass a value of that kind.")
        arguments = tuple((name, value if name == parameter else old)
                          for name, old in step.arguments)
        steps = list(self.steps)
        steps[step_index] = replace(step, arguments=arguments)
        return Trace(steps)

    def __str__(self):
        return self.as_python()

    def __repr__(self):
        return f"Trace({len(self.steps)} steps)\n{self.as_python()}"

    def __len__(self):
        return len(self.steps)
