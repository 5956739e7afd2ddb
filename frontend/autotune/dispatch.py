"""The tuned result: a few kernels in one C unit and a dispatcher that picks one per call.

`select` keeps a small set of kernels that covers every tuning shape (greedy set cover:
a kernel covers a shape when it runs within `tolerance` of the fastest measured there).
`fit_tree` fits a decision tree on the dynamic sizes to which kernel each shape should
run (each split chosen to lose the least time, measured, summed over the shapes on
either side), and `render_tree` writes it as nested `if (T <= 33)` in C, so a size never
tuned falls to the kernel of its nearest tuned neighbours.
"""

import dataclasses
import json
import re
from dataclasses import dataclass

from ..driver.build import load_library, render
from ..driver.schedule import Schedule
from ..ir.errors import QuiltError
from ..runtime_c.call import CompiledKernel
from ..schedule.trace import Trace

TOLERANCE = 0.05


@dataclass(frozen=True)
class Leaf:
    """Run kernel number `kernel`."""

    kernel: int


@dataclass(frozen=True)
class Split:
    """`size <= threshold` runs `below`, otherwise `above`."""

    size: str
    threshold: int
    below: object
    above: object


def select(times, tolerance=TOLERANCE):
    """Trace JSONs (a small set) such that every shape of `times` ({shape key: {trace:
    seconds}}) has one within `tolerance` of its fastest."""
    best = {shape: min(s for s in measured.values() if s is not None)
            for shape, measured in times.items()}
    covers = {}
    for shape, measured in times.items():
        for trace, seconds in measured.items():
            if seconds is not None and seconds <= best[shape] * (1 + tolerance):
                covers.setdefault(trace, set()).add(shape)
    chosen, uncovered = [], set(times)
    while uncovered:
        trace = max(sorted(covers), key=lambda t: (len(covers[t] & uncovered),
                                                   -sum(times[s].get(t) or 0 for s in covers[t])))
        chosen.append(trace)
        uncovered -= covers[trace]
    return chosen


def fit_tree(times, traces, weights=None):
    """The decision tree over the sizes of `times`' shapes choosing among `traces`."""
    points = [(json.loads(shape), shape) for shape in sorted(times)]
    weights = weights or {}
    best = {shape: min(s for s in times[shape].values() if s is not None) for _, shape in points}

    def loss(kernel, subset):
        total = 0.0
        for _, shape in subset:
            seconds = times[shape].get(traces[kernel])
            total += weights.get(shape, 1.0) * (float("inf") if seconds is None
                                                else seconds / best[shape])
        return total

    def leaf(subset):
        kernel = min(range(len(traces)), key=lambda k: loss(k, subset))
        return Leaf(kernel), loss(kernel, subset)

    def grow(subset):
        node, cost = leaf(subset)
        ideal = sum(weights.get(shape, 1.0) for _, shape in subset)
        if cost <= ideal * (1 + TOLERANCE) or len(subset) == 1:
            return node, cost
        options = []
        for size in sorted(subset[0][0]):
            values = sorted({point[size] for point, _ in subset})
            for low, high in zip(values, values[1:]):
                threshold = (low + high) // 2
                below = [p for p in subset if p[0][size] <= threshold]
                above = [p for p in subset if p[0][size] > threshold]
                options.append((leaf(below)[1] + leaf(above)[1], size, threshold, below, above))
        if not options:
            return node, cost
        split_cost, size, threshold, below, above = min(options, key=lambda o: o[:3])
        if split_cost >= cost:
            return node, cost
        (low_node, low_cost), (high_node, high_cost) = grow(below), grow(above)
        return Split(size, threshold, low_node, high_node), low_cost + high_cost

    return grow(points)[0]


def _used(tree, traces):
    """The tree with its kernels renumbered in order of use, and the traces it uses (the
    cover may keep a kernel the tree never picks: losing 5% on one shape is cheaper than a
    split)."""
    order = []

    def renumber(node):
        if isinstance(node, Leaf):
            if node.kernel not in order:
                order.append(node.kernel)
            return Leaf(order.index(node.kernel))
        return Split(node.size, node.threshold, renumber(node.below), renumber(node.above))

    tree = renumber(tree)
    return tree, [traces[kernel] for kernel in order]


def tree_text(node, names, indent=""):
    """The tree as readable text: `if T <= 33:` lines and kernel names."""
    if isinstance(node, Leaf):
        return f"{indent}{names[node.kernel]}\n"
    return (f"{indent}if {node.size} <= {node.threshold}:\n"
            + tree_text(node.below, names, indent + "    ")
            + f"{indent}else:\n" + tree_text(node.above, names, indent + "    "))


def render_tree(node, names, arguments, indent="    "):
    """The tree as C statements calling kernel `names[k]` with `arguments`."""
    if isinstance(node, Leaf):
        return f"{indent}{names[node.kernel]}({arguments});\n"
    return (f"{indent}if ({node.size} <= {node.threshold}) {{\n"
            + render_tree(node.below, names, arguments, indent + "    ")
            + f"{indent}}} else {{\n"
            + render_tree(node.above, names, arguments, indent + "    ") + f"{indent}}}\n")


class Dispatcher:
    """The tuned kernels of `workload` in one library behind a dispatcher: call it like a
    built kernel (`dispatcher(X=x, W=w)`); `print(dispatcher)` shows the tree. `times`
    are the measurements it is fitted to ({shape key: {trace JSON: seconds}}); `tuning`,
    the search that made them when there was one (qc.autotune.tune attaches it)."""

    def __init__(self, workload, times, tolerance=TOLERANCE, tuning=None):
        self.workload, self.tuning = workload, tuning
        failed = [shape for shape, measured in times.items()
                  if all(seconds is None for seconds in measured.values())]
        if failed:
            raise QuiltError(f"no candidate ran at {failed[0]}: every one failed to build or "
                             "run; the records' errors say why (Database.records)")
        weights = dict(zip(workload.shape_keys(), workload.weights))
        chosen = select(times, tolerance)
        self.tree, self.traces = _used(fit_tree(times, chosen, weights), chosen)
        self.names = [f"{workload.name}_k{number}" for number in range(len(self.traces))]
        schedules = [Trace.from_json(trace).replay(Schedule(workload.kernel, name=name))
                     for trace, name in zip(self.traces, self.names)]
        rendered = render(schedules, comment=f"quiltc tuned dispatcher {workload.name}")
        declaration = rendered.declarations.splitlines()[0]
        match = re.match(rf"void {self.names[0]}\((.*)\);", declaration)
        if match is None:
            raise QuiltError(f"cannot read the kernel signature from {declaration!r}")
        parameters = match.group(1)
        arguments = ", ".join(part.split()[-1].lstrip("*") for part in parameters.split(","))
        self.source = (rendered.source + f"\n\nvoid {workload.name}({parameters})\n{{\n"
                       + render_tree(self.tree, self.names, arguments) + "}\n")
        self.declarations = (rendered.declarations
                             + f"\nvoid {workload.name}({parameters});")
        self._library = load_library(self.source, self.declarations)
        self._kernels = rendered.kernels
        kernel = dataclasses.replace(rendered.kernels[0], name=workload.name)
        self._kernel = CompiledKernel(kernel, self.source, self._library)

    def kernel_for(self, point):
        """The name of the kernel the tree runs at `point` (size name -> value)."""
        node = self.tree
        while isinstance(node, Split):
            node = node.below if point[node.size] <= node.threshold else node.above
        return self.names[node.kernel]

    def kernel(self, name):
        """One of the dispatcher's kernels (a name from `names`), callable on its own; it
        lives in the same library, so timing it beside the dispatcher isolates the tree."""
        return CompiledKernel(self._kernels[self.names.index(name)], self.source,
                              self._library)

    def __call__(self, **arrays):
        """Run the kernel the tree picks for these arrays' sizes."""
        return self._kernel(**arrays)

    def __repr__(self):
        return (f"Dispatcher({self.workload.name}: {len(self.traces)} kernels)\n"
                + tree_text(self.tree, self.names))
