"""`qc.Schedule(outputs)`: lowers a tensor program and opens it for scheduling."""

from ..lang.lower import lower
from ..schedule.schedule import Schedule as _KernelSchedule


class Schedule(_KernelSchedule):
    """A schedule of the program that computes `outputs` (a tensor or a list of them)."""

    def __init__(self, outputs, name="kernel"):
        super().__init__(lower(outputs, name))
        self.outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
