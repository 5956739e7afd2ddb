"""quiltc.schedule: how a kernel is computed, never what. `schedule.py` holds the
`Schedule` base (the current kernel and its trace), `registry.py` the table of
primitives and passes its methods come from, `trace.py` the trace (Python, replay, JSON,
decisions); `primitives/` one pure function per primitive, `passes/` whole-kernel repairs;
`nest.py`, `region.py`, `dependence.py` and `simplify.py` the helpers they share.
Imports only quiltc.ir.
"""
