"""What the loop fuser can do, as data: the partitioner's aggregation rules, the kind of
each edge, and the override list that feedback from the loop level writes.

An edge is classified from the consumer's index map of that input:

    elementwise   out[i, j] reads in[i, j]              (same shape)
    broadcast     out[i, j] reads in[0, j] or in[i, 0]  (a dim of 1 stretched)
    injective     out[i, j] reads in[f(i, j)]           (transpose, reshape, slice...)
    reduce        out[i, 0] reads in[i, k] for all k
    opaque        a matmul reads whole rows and columns of its operands

Each rule says which (producer kind, edge kind, consumer kind) may share a loop nest, in
the order production partitioners apply them (TVM Relay's FuseOps, XLA's fusion passes,
Apollo's aggregation rules): elementwise chains in depth and width, broadcasts, reshapes,
a reduction's input chain, then reductions stitched with their broadcast consumers (layer
II), then a matmul with its elementwise epilogue.
"""

import json
import os
from dataclasses import dataclass

from ..runtime_c.cache import cache_directory
from .primitives import PRIMITIVES

# A partition larger than this is left to grow no further: its one kernel would hold
# more live rows than L1 keeps.
MAX_PARTITION_NODES = 24


@dataclass(frozen=True)
class Rule:
    """Producer and consumer op kinds joined by an edge of `edge` kind may share a loop
    nest from fusion level `level` on; `why` is the reason, printed with the plan."""

    name: str
    producer: tuple
    edge: tuple
    consumer: tuple
    level: int
    why: str


RULES = (
    Rule("elementwise", ("elementwise",), ("elementwise",), ("elementwise",), 1,
         "one element at a time: the intermediate lives in a register"),
    Rule("broadcast", ("elementwise", "injective"), ("broadcast",), ("elementwise",), 1,
         "the smaller operand is re-read by index, never copied"),
    Rule("reshape", ("elementwise", "injective"), ("elementwise", "injective"),
         ("injective", "elementwise"), 1, "an index map composes with the consumer's"),
    Rule("reduce input", ("elementwise", "injective"), ("reduce",), ("reduce",), 1,
         "the reduction computes its operand as it reads it"),
    Rule("stitch", ("reduce",), ("broadcast", "elementwise"), ("elementwise",), 2,
         "the row's reduction and its consumers run in one pass over a row in L1"),
    Rule("epilogue", ("opaque",), ("elementwise",), ("elementwise",), 1,
         "applied in the matmul's store, on the block held in registers"),
)


def op_kind(op):
    """The kind of primitive `op` (elementwise, reduce, injective, opaque)."""
    return PRIMITIVES[op].kind


def edge_kind(node, position):
    """The kind of the edge from input `position` of `node` to the node (see above)."""
    kind = op_kind(node.op)
    if kind != "elementwise":
        return kind
    value = node.inputs[position]
    same = len(value.shape) == len(node.output.shape) and all(
        str(a) == str(b) for a, b in zip(value.shape, node.output.shape))
    return "elementwise" if same else "broadcast"


def pattern(producer, node, position):
    """The override key of an edge: 'producer_op -[edge]-> consumer_op'."""
    return f"{producer.op} -[{edge_kind(node, position)}]-> {node.op}"


def matching_rule(producer, node, position, level):
    """The first rule that lets `producer` and `node` (reading it as input `position`)
    share a loop nest at `level`, or None."""
    producer_kind, consumer_kind = op_kind(producer.op), op_kind(node.op)
    edge = edge_kind(node, position)
    for rule in RULES:
        if (rule.level <= level and producer_kind in rule.producer and edge in rule.edge
                and consumer_kind in rule.consumer):
            return rule
    return None


def overrides_path():
    """Where the override list lives: QUILTC_FUSION_OVERRIDES, else beside the build cache."""
    explicit = os.environ.get("QUILTC_FUSION_OVERRIDES")
    if explicit:
        return explicit
    return os.path.join(str(cache_directory()), "fusion_overrides.json")


def read_overrides(path=None):
    """{pattern: reason} of edges feedback has refused; empty when the file is missing or
    unreadable (a damaged list only costs fusion, never correctness)."""
    try:
        with open(path or overrides_path()) as handle:
            entries = json.load(handle)
        return {entry["pattern"]: entry["reason"] for entry in entries}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def record_override(pattern_key, reason, path=None):
    """Add (pattern, reason) to the override list, written atomically."""
    path = path or overrides_path()
    entries = read_overrides(path)
    entries[pattern_key] = reason
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as handle:
        json.dump([{"pattern": key, "reason": value} for key, value in sorted(entries.items())],
                  handle, indent=1)
    os.replace(temporary, path)
