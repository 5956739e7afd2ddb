"""The partitioner: groups the graph's ops into partitions, each to become one loop nest
(one C function), by the rules of rules.py, and records why each edge between two
partitions stayed a cut.

    plan = qc.graph.partition(graph, level=2)
    print(plan)          # each partition's ops, inputs and outputs, then every refusal

Passes run in the table's order; within a pass, edges in topological order. Two
partitions merge only when a rule allows the edge at the fusion `level`, the merge keeps
the condensed graph acyclic (no path leaves one partition and re-enters the other), the
result stays under the size cap, holds at most one opaque op, and does not put a matmul
and a reduction in one nest. Multi-output partitions are allowed: a value any other
partition (or the caller) reads is an output.
"""

from dataclasses import dataclass, field

from .rules import MAX_PARTITION_NODES, RULES, matching_rule, op_kind, pattern, read_overrides


@dataclass(frozen=True, eq=False)
class Partition:
    """Ops that become one loop nest: `nodes` in topological order, the `inputs` read
    from outside (graph inputs, constants, other partitions' outputs) and the `outputs`
    read outside."""

    number: int
    nodes: tuple
    inputs: tuple
    outputs: tuple

    @property
    def name(self):
        return f"p{self.number}"

    @property
    def kind(self):
        """opaque when it holds a matmul, reduce when a reduction, else elementwise."""
        kinds = {op_kind(node.op) for node in self.nodes}
        for kind in ("opaque", "reduce", "elementwise"):
            if kind in kinds:
                return kind
        return "injective"

    def __str__(self):
        ops = " ".join(node.op for node in self.nodes)
        inputs = ", ".join(value.name for value in self.inputs)
        outputs = ", ".join(value.name for value in self.outputs)
        return f"{self.name} [{self.kind}] ({inputs}) -> ({outputs}): {ops}"


@dataclass(frozen=True)
class Refusal:
    """An edge left between partitions: its pattern and why."""

    producer: str
    consumer: str
    pattern: str
    reason: str

    def __str__(self):
        return f"{self.producer} -> {self.consumer} ({self.pattern}): {self.reason}"


@dataclass
class Plan:
    """Partitions in an order that runs producers first, the refusals, and the level."""

    graph: object
    partitions: list
    refusals: list = field(default_factory=list)
    level: int = 2

    def __str__(self):
        ops = sum(len(partition.nodes) for partition in self.partitions)
        lines = [f"fusion plan (level {self.level}): {ops} ops in "
                 f"{len(self.partitions)} partitions"]
        lines += [f"  {partition}" for partition in self.partitions]
        if self.refusals:
            lines.append("cuts:")
            lines += [f"  {refusal}" for refusal in self.refusals]
        return "\n".join(lines)

    def draw(self, path):
        """Write a picture of the partitioned graph to `path` (matplotlib)."""
        from .draw import draw_plan

        draw_plan(self, path)


class _Groups:
    """Union-find over node indices, with each group's members."""

    def __init__(self, count):
        self.parent = list(range(count))
        self.members = {index: {index} for index in range(count)}

    def find(self, index):
        while self.parent[index] != index:
            self.parent[index] = self.parent[self.parent[index]]
            index = self.parent[index]
        return index

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        self.parent[b] = a
        self.members[a] |= self.members.pop(b)


def partition(graph, level=2, overrides=None, split_edges=()):
    """The fusion plan of `graph` at `level` (0: every op alone; 1: loop fusion; 2: also
    reductions stitched with their consumers; 3 as 2, with independent partitions side by
    side at build time). `overrides` ({pattern: reason}, default the persistent list) and
    `split_edges` ((producer, consumer) value names) name edges feedback refused."""
    overrides = read_overrides() if overrides is None else overrides
    nodes = _live(graph)
    index_of = {node.output.name: index for index, node in enumerate(nodes)}
    consumers = {index: [] for index in range(len(nodes))}
    for index, node in enumerate(nodes):
        for value in node.inputs:
            if value.name in index_of:
                consumers[index_of[value.name]].append(index)
    groups = _Groups(len(nodes))
    refusals = {}
    if level > 0:
        for rule in RULES:
            for index, node in enumerate(nodes):
                for position, value in enumerate(node.inputs):
                    producer = index_of.get(value.name)
                    if producer is None or groups.find(producer) == groups.find(index):
                        continue
                    key = (nodes[producer].output.name, node.output.name)
                    reason = _refusal(nodes, producer, node, position, rule, level, overrides,
                                      split_edges, key)
                    if reason is None and matching_rule(nodes[producer], node, position,
                                                        level) is rule:
                        reason = _merge_problem(groups, nodes, consumers, producer, index)
                        if reason is None:
                            groups.union(index, producer)
                            refusals.pop(key, None)
                            continue
                    if reason:
                        refusals[key] = Refusal(*key, pattern(nodes[producer], node, position),
                                                reason)
    partitions = _partitions(graph, nodes, groups, index_of)
    kept = [refusal for key, refusal in refusals.items()
            if groups.find(index_of[key[0]]) != groups.find(index_of[key[1]])]
    return Plan(graph, partitions, kept, level)


def _live(graph):
    """The nodes some output depends on, in graph order (the others need no kernel)."""
    producer = {node.output.name: node for node in graph.nodes}
    live, pending = set(), [value.name for value in graph.outputs]
    while pending:
        name = pending.pop()
        if name in producer and name not in live:
            live.add(name)
            pending.extend(value.name for value in producer[name].inputs)
    return [node for node in graph.nodes if node.output.name in live]


def _refusal(nodes, producer, node, position, rule, level, overrides, split_edges, key):
    """Why the edge may not fuse whatever the groups are (None when it may)."""
    if key in split_edges:
        return "split by feedback: the fused nest failed to schedule"
    if node.op == "gather" and position == 0:
        return "a gather reads its table from memory, at indices known only at run time"
    found = overrides.get(pattern(nodes[producer], node, position))
    if found:
        return f"override: {found}"
    if matching_rule(nodes[producer], node, position, level) is None:
        kind = op_kind(node.op)
        if kind == "opaque":
            return "a matmul reads its operands whole from memory"
        if op_kind(nodes[producer].op) == "reduce" and level < 2:
            return f"reduction stitching is fusion level 2 (this plan is level {level})"
        return "no rule fuses this pair"
    return None


def _merge_problem(groups, nodes, consumers, producer, consumer):
    """Why the groups of `producer` and `consumer` may not merge (None when they may)."""
    first, second = groups.find(producer), groups.find(consumer)
    members = groups.members[first] | groups.members[second]
    if len(members) > MAX_PARTITION_NODES:
        return f"the partition would hold {len(members)} ops (cap {MAX_PARTITION_NODES})"
    kinds = [op_kind(nodes[index].op) for index in members]
    if kinds.count("opaque") > 1:
        return "a partition holds one matmul"
    if "opaque" in kinds and "reduce" in kinds:
        return "a matmul's epilogue stops at a reduction (the row spans several blocks)"
    if "opaque" in kinds and any(nodes[index].op == "transpose"
                                 and nodes[index].attrs["perm"][-1] != len(
                                     nodes[index].attrs["perm"]) - 1 for index in members):
        return ("a matmul's epilogue keeps its columns last: this transpose would tile the "
                "register block across them")
    if _leaves_and_returns(groups, consumers, members):
        return "fusing would make a cycle: a path leaves the pair and comes back"
    return None


def _leaves_and_returns(groups, consumers, members):
    """Whether some path starts in `members`, passes through a node outside and comes back."""
    outside = [index for member in members for index in consumers[member] if index not in members]
    seen = set()
    while outside:
        index = outside.pop()
        if index in seen:
            continue
        seen.add(index)
        for successor in consumers[index]:
            if successor in members:
                return True
            outside.append(successor)
    return False


def _partitions(graph, nodes, groups, index_of):
    """Partitions of the groups of `nodes`, each after the partitions it reads."""
    graph_outputs = {value.name for value in graph.outputs}
    roots = sorted({groups.find(index) for index in range(len(nodes))},
                   key=lambda root: min(groups.members[root]))
    owner = {index: groups.find(index) for index in range(len(nodes))}
    read_by = {}
    for index, node in enumerate(nodes):
        for value in node.inputs:
            read_by.setdefault(value.name, set()).add(owner[index])
    partitions = []
    for number, root in enumerate(_topological_roots(roots, groups, nodes, index_of, owner)):
        members = sorted(groups.members[root])
        own = {nodes[index].output.name for index in members}
        inputs = []
        for index in members:
            for value in nodes[index].inputs:
                if value.name not in own and value not in inputs:
                    inputs.append(value)
        outputs = tuple(nodes[index].output for index in members
                        if nodes[index].output.name in graph_outputs
                        or read_by.get(nodes[index].output.name, set()) - {root})
        partitions.append(Partition(number, tuple(nodes[index] for index in members),
                                    tuple(inputs), outputs))
    return partitions


def _topological_roots(roots, groups, nodes, index_of, owner):
    """The group roots ordered so that every group comes after the groups it reads."""
    order, done = [], set()

    def visit(root):
        if root in done:
            return
        done.add(root)
        for index in groups.members[root]:
            for value in nodes[index].inputs:
                producer = index_of.get(value.name)
                if producer is not None and owner[producer] != root:
                    visit(owner[producer])
        order.append(root)

    for root in roots:
        visit(root)
    return order
