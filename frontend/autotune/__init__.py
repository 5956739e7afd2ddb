"""quiltc.autotune: auto-scheduling for dynamic shapes (DietCode, MLSys 2022).

    workload = qc.autotune.Workload(Y, shapes={"T": [5, 24, 43, 62, 81, 100, 119, 128]})
    dispatcher = qc.autotune.tune(workload, "dense.db", trials=40)
    print(dispatcher)                    # the decision tree over T
    Y = dispatcher(X=x, W=w)             # any T in the range

A shape-generic space of register-blocked micro-kernels as schedule traces with sampled
decisions (space.py), one cost model for every shape (cost.py), a joint search over all
tuning shapes beside a per-shape baseline (search.py), records in SQLite (database.py),
builds and measurements through local processes or Dask (executor.py), and a generated
dispatcher over the dynamic sizes (dispatch.py); the dense layers of the ragged encoder
(layers.py) and a fused graph's matmul partitions (partitions.py) tuned with them.
Search is policy: `schedule/` stays mechanism. May import driver and what lies below
it, ops, recipes and graph.
"""

from .database import Database
from .dispatch import Dispatcher
from .executor import DaskExecutor, LocalExecutor
from .layers import dense_workload, tune_encoder
from .partitions import load_graph, tune_graph
from .tune import load, tune
from .workload import Workload

__all__ = ["DaskExecutor", "Database", "Dispatcher", "LocalExecutor", "Workload",
           "dense_workload", "load", "load_graph", "tune", "tune_encoder", "tune_graph"]
