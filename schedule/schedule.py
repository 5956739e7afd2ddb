"""`Schedule`: the current kernel plus the trace of primitives that produced it.

This is the kernel-level base of `quiltc.Schedule` (quiltc.driver.schedule), which adds
the front door for tensor programs; users meet that one. Its primitive methods
(`split`, `cache_read`, `insert_barriers`, ...) are generated from the registry
(schedule/registry.py): each applies one pure primitive (`kernel -> kernel`, in
`primitives/`), tidies the indices, records the call in the trace, and returns the new
loop handles. Loops are named by sympy symbols and may be passed by name:
`sch.split("i", 8)`; tensors may be passed by name too.
"""

from ..ir.errors import ScheduleError, VerifyError
from ..ir.printer import render
from .nest import loops_on_path, writer_paths
from .registry import PRIMITIVES, tensor_name
from .simplify import tidy
from .trace import Step, Trace


class Schedule:
    """A kernel being scheduled. `print(sch)` shows the current IR; `sch.trace` the steps."""

    def __init__(self, kernel):
        self.kernel = tidy(kernel)
        self.original = self.kernel
        self.trace = Trace()

    def __repr__(self):
        return render(self.kernel)

    def _apply(self, primitive, fn, args, kwargs):
        """The results of `fn(kernel, *args, **kwargs)`, whose kernel becomes the current
        one once tidied; a ScheduleError leaves the schedule as it was."""
        kernel, results = fn(self.kernel, *args, **kwargs)
        try:
            self.kernel = tidy(kernel)
        except VerifyError as failure:
            # A primitive checks its own preconditions, but the verifier may still fail to
            # follow the bounds it produced (a remainder of a remainder): refuse the step.
            reason = str(failure).splitlines()[0]
            raise ScheduleError(
                primitive, f"apply {primitive}{args!r}",
                f"the verifier cannot prove the result stays in bounds ({reason})",
                "The schedule is left as it was; transform another loop or use another factor.",
            ) from failure
        return results

    def apply(self, primitive, arguments):
        """Apply the registry's `primitive` (its name) with `arguments` (values by parameter
        name, every parameter given), record the step, and return the results as a list."""
        entry = PRIMITIVES[primitive]
        recorded = {p.name: p.recorded(arguments[p.name]) for p in entry.params}
        args, kwargs = entry.call_arguments(recorded)
        results = self._apply(entry.name, entry.run, args, kwargs)
        self.trace.append(Step(entry.name, tuple(recorded.items()),
                               tuple(str(r) for r in results)))
        return results

    def loops(self, tensor):
        """The loops around the (last) statement that writes `tensor`, outermost first."""
        name = tensor_name(tensor)
        paths = writer_paths(self.kernel, name)
        if not paths:
            raise ScheduleError(
                "loops", f"list the loops of {name!r}",
                "no statement in the kernel writes it",
                "Pass a compute tensor of this schedule (placeholders have no loops).",
            )
        return [loop.var for loop in loops_on_path(self.kernel.body, paths[-1])]

    def copy(self):
        """An independent copy (same kernel, same trace so far)."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.trace = Trace(self.trace.steps)
        return clone


def _method(entry):
    """The Schedule method of registry entry `entry`."""
    signature = entry.signature()

    def method(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = {p.name: bound.arguments[p.name] for p in entry.params}
        return entry.returned(self.apply(entry.name, arguments))

    method.__name__ = entry.name
    method.__qualname__ = f"Schedule.{entry.name}"
    method.__module__ = __name__
    method.__signature__ = signature
    method.__doc__ = entry.doc()
    return method


def _add_methods():
    for entry in PRIMITIVES.values():
        setattr(Schedule, entry.name, _method(entry))


_add_methods()
