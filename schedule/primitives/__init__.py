"""One module per schedule primitive. Each exports a pure function

    primitive(kernel, ...) -> (new_kernel, results)

that checks its preconditions (raising ScheduleError with what was asked, what stood in
the way and what would work), transforms the tree, and returns the new loop handles
(sympy symbols) or buffer names in `results`. The registry (schedule/registry.py) lists
each with its parameters; `Schedule` applies, tidies and records each call.
"""
