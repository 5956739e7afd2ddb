"""quiltc.driver: from a program to something that runs. `schedule.py` holds the one
`Schedule` (of tensors or of a kernel), `build.py` the build with its target table,
`export.py` the source, header and binary written to a folder for another build,
`timing.py` the timing helper the demo and benchmarks share. Sits above ir, schedule,
codegen, runtime_c and lang; everything user-facing sits above it.
"""

from .build import build
from .export import export
from .schedule import Schedule
