"""The trace of a schedule: every primitive call in order, printable as Python that
replays it on a fresh schedule of the same program."""

from dataclasses import dataclass

import sympy


def _literal(value):
    if isinstance(value, sympy.Symbol):
        return repr(value.name)
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_literal(v) for v in value)
        return f"[{inner}]"
    if hasattr(value, "buffer") and hasattr(value, "name"):  # a tensor: refer to it by name
        return repr(value.name)
    return repr(value)


@dataclass(frozen=True)
class Step:
    """One primitive call: its name, arguments and the loop names it returned."""

    primitive: str
    args: tuple
    kwargs: tuple
    results: tuple

    def as_python(self):
        arguments = [_literal(a) for a in self.args]
        arguments += [f"{key}={_literal(value)}" for key, value in self.kwargs if value is not None]
        call = f"sch.{self.primitive}({', '.join(arguments)})"
        if not self.results:
            return call
        names = ", ".join(r.name if isinstance(r, sympy.Symbol) else str(r) for r in self.results)
        return f"{names} = {call}"


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
        """Apply every step to `schedule` (a fresh schedule of the same program)."""
        for step in self.steps:
            getattr(schedule, step.primitive)(*step.args, **dict(step.kwargs))
        return schedule

    def __str__(self):
        return self.as_python()

    def __repr__(self):
        return f"Trace({len(self.steps)} steps)\n{self.as_python()}"

    def __len__(self):
        return len(self.steps)
