"""quiltc.graph: partition-based operator fusion (Apollo, MLSys 2022), to come. A graph of
primitive ops (from a Python builder or ONNX) is partitioned by a rule table, each
partition becomes tensor-language stages fused with the schedule primitives, and the whole
graph one C unit with a static memory plan. Policy only: fusion itself is schedule
primitives. May import driver and what lies below it, ops and recipes.
"""
