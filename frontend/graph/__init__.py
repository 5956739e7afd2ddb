"""quiltc.graph: partition-based operator fusion (Apollo, MLSys 2022), under way. A graph
of primitive ops (graph.py, from a Python builder; ONNX import to come) over tensors with
symbolic dims, each op's kind, shape rule and numpy meaning in one table (primitives.py),
and the op-by-op numpy evaluation every fused module will be checked against. To come: the
partitioner (a rule table), each partition as tensor-language stages fused with the
schedule primitives, and the whole graph as one C unit with a static memory plan. Policy
only: fusion itself is schedule primitives. May import driver and what lies below it, ops
and recipes.
"""

from .graph import Graph, Node, Value
from .primitives import PRIMITIVES

__all__ = ["Graph", "Node", "PRIMITIVES", "Value"]
