"""`Workload`: a tensor program over `qc.var` sizes, the shapes to tune it for, and the
range its dispatcher must serve.

    T = qc.var("T", 1, 128)
    X = qc.placeholder((16 * T, 768), "float32", "X")
    W = qc.placeholder((768, 2304), "float32", "W")
    k = qc.reduce_axis(768, "k")
    Y = qc.compute((16 * T, 2304), lambda i, j: qc.sum(X[i, k] * W[k, j], axis=k), "Y")
    workload = qc.autotune.Workload(Y, shapes={"T": [5, 24, 43, 62, 81, 100, 119, 128]})

The program's output is a contraction over one reduction axis with two spatial axes (a
dense layer: rows x columns); elementwise stages feeding it are inlined. Its hash names
it in the records database: the printed kernel, so the same program written twice is the
same workload and a changed one is not.
"""

import hashlib
import math

import sympy

from ..ir import nodes as ir
from ..ir.errors import QuiltError
from ..ir.printer import render
from ..ir.walk import find_all
from ..lang.lower import lower
from ..schedule.nest import get_at, loops_on_path, writer_paths
from .measure import shape_key
from .space import EVERY_ARRANGEMENT, sketch


class Workload:
    """A program and its tuning shapes. `shapes` maps each size name to the values to tune
    for (equal-length lists, taken together point by point); `weights` (one per point,
    default equal) says how much each shape counts in the joint objective."""

    # The (order, parallel, pack, tail) arrangements `sketch` can make.
    arrangements = EVERY_ARRANGEMENT

    def __init__(self, program, shapes, weights=None, name="dense"):
        self.program = program
        self.kernel = lower(program, name)
        self.name = name
        self._take_shapes(shapes, weights)
        self.output, self.inlined, self.right, extents = _contraction(self.kernel)
        self.row_extent, self.column_extent, self.reduction_extent = extents
        self.hash = hashlib.sha256(render(self.kernel).encode()).hexdigest()[:16]

    def _take_shapes(self, shapes, weights):
        """Set the sizes of `kernel`, the tuning points and their weights."""
        self.sizes = {str(var.symbol): var for var in self.kernel.shape_vars}
        self.points = _points(shapes, self.sizes)
        weights = [1.0] * len(self.points) if weights is None else list(weights)
        if len(weights) != len(self.points) or min(weights) <= 0:
            raise QuiltError(f"weights= takes one positive weight per tuning shape "
                             f"({len(self.points)}), got {weights!r}")
        self.weights = [float(weight) for weight in weights]
        # The cost model asks for row counts thousands of times per search round.
        self._rows = {}

    def sketch(self, decisions):
        """The Schedule `decisions` make of the program (space.sketch); ScheduleError when
        the program refuses them."""
        return sketch(self, decisions)

    def seeds(self):
        """Candidates measured at every tuning shape before the search starts (a schedule
        known to be good, which the tuned one must then beat); none for a contraction."""
        return []

    def candidate(self, decisions, sch):
        """The text that names a candidate in the records: its trace's JSON, which
        replays on the program."""
        return sch.trace.as_json()

    @property
    def ranges(self):
        """{size name: (lo, hi)}: every value the dispatcher must serve."""
        return {name: (var.lo, var.hi) for name, var in self.sizes.items()}

    def shape_keys(self):
        """The tuning shapes as the records store them."""
        return [shape_key(point) for point in self.points]

    def rows_at(self, point):
        """The output's row count at `point` (size name -> value)."""
        key = tuple(sorted(point.items()))
        if key not in self._rows:
            # By name: a graph's dims and the kernel's size symbols may differ in assumptions.
            extent = sympy.sympify(self.row_extent)
            self._rows[key] = int(extent.subs({symbol: point[symbol.name]
                                               for symbol in extent.free_symbols}))
        return self._rows[key]

    def flops(self, point):
        """Multiply-adds times two at `point`."""
        return 2 * self.rows_at(point) * self.column_extent * self.reduction_extent

    def every_point(self):
        """Every shape in the declared ranges (one size: lo..hi), for checks and benchmarks."""
        names = list(self.sizes)
        if len(names) != 1:
            raise QuiltError("every_point enumerates one dynamic size; this workload has "
                             f"{len(names)} ({', '.join(names)})")
        lo, hi = self.ranges[names[0]]
        return [{names[0]: value} for value in range(lo, hi + 1)]

    def __repr__(self):
        shapes = ", ".join(shape_key(point) for point in self.points)
        return f"Workload({self.name} {self.hash}: shapes {shapes})"


def _points(shapes, sizes):
    """The tuning shapes as a list of {size name: value}, checked against the ranges."""
    if not isinstance(shapes, dict) or not shapes:
        raise QuiltError("shapes= takes {size name: [values]}, e.g. shapes={'T': [5, 24, 128]}")
    unknown = sorted(set(shapes) - set(sizes))
    missing = sorted(set(sizes) - set(shapes))
    if unknown or missing:
        raise QuiltError(f"shapes= names {', '.join(sorted(shapes))}; the program's sizes are "
                         f"{', '.join(sorted(sizes)) or 'none'}: give values for each of them")
    lengths = {len(values) for values in shapes.values()}
    if len(lengths) != 1:
        raise QuiltError("shapes= lists are taken point by point and need one length; got "
                         + ", ".join(f"{name}: {len(values)}" for name, values in shapes.items()))
    points = [dict(zip(shapes, values)) for values in zip(*shapes.values())]
    for point in points:
        for name, value in point.items():
            var = sizes[name]
            if not (isinstance(value, int) and var.lo <= value <= var.hi):
                raise QuiltError(f"tuning shape {name} = {value!r} is outside {name}'s range "
                                 f"[{var.lo}, {var.hi}]")
    return points


def _contraction(kernel):
    """(output name, stages to inline, right operand's name, (rows, columns, depth)) of a
    dense contraction, or a QuiltError saying what the space schedules."""
    shape_text = "a dense contraction C[i, j] = sum over k (rows, columns, one reduction)"
    output = kernel.outputs[-1] if len(kernel.outputs) == 1 else None
    paths = writer_paths(kernel, output) if output else []
    loops = loops_on_path(kernel.body, paths[-1]) if paths else []
    if len(loops) != 3:
        raise QuiltError(f"the tuning space schedules {shape_text}; this program writes "
                         f"{', '.join(kernel.outputs)} over {len(loops)} loops")
    rows, columns, depth = (loop.extent for loop in loops)
    column, reduction = loops[1].var, loops[2].var
    writer = get_at(kernel.body, paths[-1])
    right = [load.buffer.name for load in find_all(writer, lambda n: isinstance(n, ir.Load))
             if {column, reduction} <= set().union(*(sympy.sympify(i).free_symbols
                                                     for i in load.indices))]
    if not (sympy.sympify(columns).is_Integer and sympy.sympify(depth).is_Integer):
        raise QuiltError(f"the tuning space schedules {shape_text} whose columns and depth "
                         f"are fixed; this one has {columns} columns and depth {depth}")
    inlined = [alloc.buffer.name for alloc in find_all(kernel.body,
                                                         lambda n: isinstance(n, ir.Alloc))]
    if not right:
        raise QuiltError(f"the tuning space schedules {shape_text}; no input of this one is "
                         "read along both the columns and the reduction")
    return output, inlined, right[0], (rows, int(columns), int(depth))


def geometric_mean(values):
    """The geometric mean of positive `values`."""
    return math.exp(sum(math.log(value) for value in values) / len(values))
