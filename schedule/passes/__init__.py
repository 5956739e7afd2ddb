"""Schedule passes: whole-kernel repairs that take no arguments and return no handles,
recorded in the trace like primitives (`sch.insert_barriers()`). Each is a pure function
`kernel -> kernel` in its own module; the registry (schedule/registry.py) lists them.
"""

from .barriers import insert_barriers
