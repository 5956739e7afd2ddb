"""`qc.Schedule(program)`: opens a tensor program (lowered here) or a kernel for scheduling.

    sch = qc.Schedule(C)                     # a tensor, or a list of output tensors
    sch = qc.Schedule(kernel, name="tuned")  # an ir.Kernel, built by hand or replayed

The primitive methods, the trace and its replay come from the base class in
schedule/schedule.py (which may not lower tensors: schedule/ sits below the language).
"""

import dataclasses

from ..ir import nodes as ir
from ..lang.lower import lower
from ..schedule import schedule as base


class Schedule(base.Schedule):
    """A schedule of `program`: a tensor, a list of tensors (the outputs, lowered into one
    kernel called `name`, default "kernel"), or an ir.Kernel (renamed when `name` is
    given). `outputs` holds the output tensors, or for a kernel its output names."""

    def __init__(self, program, name=None):
        if isinstance(program, ir.Kernel):
            kernel = program if name is None else dataclasses.replace(program, name=name)
            self.outputs = list(program.outputs)
        else:
            kernel = lower(program, name or "kernel")
            self.outputs = list(program) if isinstance(program, (list, tuple)) else [program]
        super().__init__(kernel)
