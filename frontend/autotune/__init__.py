"""quiltc.autotune: auto-scheduling for dynamic shapes (DietCode, MLSys 2022), to come. A
shape-generic space of micro-kernels as schedule traces with sampled decisions, one cost
model for every shape, joint search, records in SQLite, and a generated dispatcher over
the dynamic sizes. Search is policy: `schedule/` stays mechanism. May import driver and
what lies below it, ops and recipes.
"""
