"""quiltc.graph: partition-based operator fusion (Apollo, MLSys 2022).

    g = qc.graph.from_onnx("bert_layer.onnx")     # or build one: qc.graph.Graph()
    plan = qc.graph.partition(g)                  # print(plan): partitions and cuts
    module = qc.graph.compile(g)                  # one C module; module(hidden=h, mask=m)

A graph of primitive ops (graph.py, from a Python builder, or from an ONNX model by
onnx_import.py with its shape sub-graphs folded by onnx_shapes.py) over tensors with
symbolic dims, each op's kind, shape rule and numpy meaning in one table (primitives.py).
The partitioner (partition.py) groups ops by the rule table of rules.py; each partition
becomes tensor-language stages (lower.py) fused by schedule primitives (schedules.py); the
whole graph becomes one C unit with a static memory plan (memory.py) and one entry point
(entry.py), built and called by module.py; draw.py pictures a plan. PyTorch models come
in through torch.compile(model, backend="quiltc") (torch_backend.py), their ATen graphs
converted by torch_fx.py. Policy only: fusion itself is schedule primitives. May import
driver and what lies below it.
"""

from .graph import Graph, Node, Value
from .module import FusedModule, compile
from .onnx_import import from_onnx
from .partition import Partition, Plan, partition
from .primitives import PRIMITIVES
from .rules import RULES

__all__ = ["FusedModule", "Graph", "Node", "PRIMITIVES", "Partition", "Plan", "RULES", "Value",
           "compile", "from_onnx", "partition"]
