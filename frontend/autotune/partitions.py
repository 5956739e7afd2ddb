"""Tuning the matmul partitions of a fused graph (quiltc.graph) over the range of its
symbolic dims: the register block and column panels of each partition whose right
operand is a constant weight (a dense layer and its epilogue), searched jointly over the
graph's tuning shapes with the same space, cost model and records as a lone contraction.

    shapes = {"batch": [1, 8, 8], "seq": [16, 64, 128]}          # taken point by point
    choices = qc.autotune.tune_graph("bert.onnx", "bert.db", shapes, trials=24)
    module = qc.graph.compile("bert.onnx", matmul_choices=choices)
    choices = qc.autotune.load_graph("bert.db", "bert.onnx")     # again, without measuring

Each partition is measured as the kernel the module will run, epilogue and batch dims
included (graph.schedules.schedule_partition with the candidate's block and panels).
The arrangement is the graph's own: column panel groups outermost, parallel over panel
groups and row blocks, weights packed once when the module is made, the product padded
to whole blocks. A module runs one kernel per partition, so a partition takes the
candidate that is within 5% of the fastest at the most tuning shapes (dispatch.select's
first pick), not a dispatcher.
"""

import json

import sympy

from ..graph.graph import Graph
from ..graph.lower import PartitionProgram, constant_arrays
from ..graph.partition import partition
from ..graph.schedules import default_matmul, matmul_key, schedule_partition, unblocked_kernel
from ..ir.errors import QuiltError
from .dispatch import select
from .space import space
from .tune import opened, recorded_times, search
from .workload import Workload

# (order, parallel, pack, tail) as graph.schedules lays a matmul partition out (see above).
GRAPH_ARRANGEMENT = ("panels-outer", "panels", False, "local")


class PartitionWorkload(Workload):
    """A matmul partition of a graph (`part`, with the graph's `constants`) and its tuning
    shapes ({graph dim: values}, the dims its kernel uses). QuiltError when its matmul is
    not a contraction with a constant 2-D weight."""

    arrangements = (GRAPH_ARRANGEMENT,)

    def __init__(self, part, constants, shapes, weights=None):
        self.part, self.constants = part, constants
        self.kernel = unblocked_kernel(part, constants)
        self.name = f"graph_{part.name}"
        used = {str(var.symbol) for var in self.kernel.shape_vars}
        self._take_shapes({name: values for name, values in shapes.items() if name in used},
                          weights)
        self.row_extent, self.column_extent, self.reduction_extent = _extents(part, constants)
        self.hash = matmul_key(part, constants)

    def sketch(self, decisions):
        """The partition scheduled with the candidate's block and panels."""
        program = PartitionProgram(self.part, self.constants,
                                   (decisions["rows"], decisions["cols"]))
        return schedule_partition(program, self.part, 2, "kernel", decisions["panel"])

    def seeds(self):
        """The schedule the partition gets untuned, where the space holds it (the panels
        _panel_blocks picks may not be one of the space's): tuning then never picks a
        slower one than the default at the tuning shapes."""
        rows, cols, panel = default_matmul(self.part, self.constants)
        return [candidate for candidate in space(self)
                if (candidate["rows"], candidate["cols"], candidate["panel"]) == (rows, cols,
                                                                                  panel)]

    def candidate(self, decisions, sch):
        """The decisions beside the trace: replaying the trace needs the program that the
        block lays out, so the records keep what rebuilds it."""
        return json.dumps({"decisions": decisions, "trace": json.loads(sch.trace.as_json())},
                          sort_keys=True)


def _extents(part, constants):
    """(rows, columns, depth) of the partition's matmul: rows with its batch dims, the
    others ints; QuiltError unless its right operand is a constant 2-D weight."""
    matmul = next(node for node in part.nodes if node.op == "matmul")
    left, right = matmul.inputs
    *batch, rows, columns = matmul.output.shape
    if right.name not in constants or len(right.shape) != 2:
        raise QuiltError(f"partition {part.name}'s matmul multiplies by {right.name}, which is "
                         "not a constant 2-D weight: only dense layers are tuned")
    return sympy.Mul(*(sympy.sympify(dim) for dim in (*batch, rows))), columns, left.shape[-1]


def _matmul_partitions(graph):
    """(constants, [partition]) of `graph`'s plan whose matmuls are tunable dense layers,
    one per distinct program."""
    graph = _as_graph(graph)
    constants = constant_arrays(graph)
    found = {}
    for part in partition(graph, 2).partitions:
        if part.kind != "opaque":
            continue
        try:
            _extents(part, constants)
        except QuiltError:
            continue
        found.setdefault(matmul_key(part, constants), part)
    return constants, list(found.values())


def _as_graph(graph):
    if isinstance(graph, Graph):
        return graph
    from ..graph.onnx_import import from_onnx

    return from_onnx(graph)


def tune_graph(graph, database, shapes, weights=None, trials=24, verify=2, executor=None,
               seed=0, progress=None):
    """Tune the dense matmul partitions of `graph` (a Graph, an ONNX path or model)
    jointly over `shapes` ({dim: values}, point by point; `weights` as Workload takes
    them), each with `trials` measurements recorded in `database`; returns the choices
    qc.graph.compile takes ({matmul key: {"rows", "cols", "panel"}})."""
    constants, parts = _matmul_partitions(graph)
    choices = {}
    with opened(database, executor) as (database, executor):
        for part in parts:
            workload = PartitionWorkload(part, constants, shapes, weights)
            tuning = search(workload, database, executor, trials, verify, seed,
                            progress=progress)
            choices[workload.hash] = _chosen(tuning.times, workload.name)
    return choices


def load_graph(database, graph):
    """The choices that `database`'s records of `graph`'s dense matmul partitions make,
    found without measuring; a partition never tuned is left to the defaults."""
    constants, parts = _matmul_partitions(graph)
    choices = {}
    for part in parts:
        key = matmul_key(part, constants)
        times = recorded_times(database, key)
        if times:
            choices[key] = _chosen(times, f"graph_{part.name}")
    return choices


def _chosen(times, name):
    """The decisions of the candidate within 5% of the fastest at the most shapes of
    `times` ({shape: {candidate text: seconds}})."""
    measured = {shape: found for shape, found in times.items()
                if any(seconds is not None for seconds in found.values())}
    if not measured:
        raise QuiltError(f"no candidate of {name} was measured successfully; the records' "
                         "errors say why (Database.records)")
    return json.loads(select(measured)[0])["decisions"]
