"""The IR grammar: statements and kernels as frozen dataclasses, with the vocabulary,
`Node` and `Buffer` (base.py) and the values (values.py) they hold, all importable from
here as `ir.For`, `ir.Load`, `ir.Kernel`...

Index arithmetic (loop extents, buffer indices, guard conditions) is sympy; float and
integer *values* are Value nodes, which sympy never touches. Every node compares
structurally and prints as pseudo-code (see printer.py).
"""

from dataclasses import dataclass

import sympy

from .base import (  # noqa: F401 (re-exported: the grammar reads as one module)
    BINARY_OPS,
    BITWISE_OPS,
    CALLS,
    COMBINERS,
    COMPARISONS,
    GPU_AXES,
    INTEGER_CALLS,
    LOOP_KINDS,
    SCOPES,
    SIMD_KINDS,
    Buffer,
    Node,
)
from .index import TABLE_ARGUMENT, as_expr
from .values import (  # noqa: F401
    Bin,
    Call,
    Cast,
    Const,
    Index,
    Load,
    Select,
    Un,
    Value,
    as_value,
    binary,
    is_condition,
)

# ------------------------------------------------------------------------- statements


class Stmt(Node):
    """A statement of a loop nest."""


@dataclass(frozen=True, repr=False)
class For(Stmt):
    """`for var in [0, extent)`; the extent may depend on outer loop variables."""

    var: sympy.Symbol
    extent: sympy.Expr
    body: Stmt
    kind: str = "serial"
    child_fields = ("body",)
    expr_fields = ("extent",)

    def __post_init__(self):
        if self.kind not in LOOP_KINDS + GPU_AXES:
            raise ValueError(f"unknown loop kind {self.kind!r}")
        object.__setattr__(self, "extent", as_expr(self.extent))

    def is_scalar_reduction(self):
        """Whether the body is one reduction, already initialised, into an element that
        does not move with the loop (`s[i] sum= x[i, k]` in a k loop): lanes of a SIMD
        loop may then each keep a partial result (see schedule/primitives/annotate.py)."""
        body = self.body
        return (isinstance(body, Reduce) and not body.init_when
                and body.combiner in COMBINERS
                and all(self.var not in sympy.sympify(index).free_symbols
                        for index in body.indices))


@dataclass(frozen=True, repr=False)
class Store(Stmt):
    buffer: Buffer
    indices: tuple
    value: Value
    child_fields = ("value",)
    expr_fields = ("indices",)


@dataclass(frozen=True, repr=False)
class Reduce(Stmt):
    """`buffer[indices] = combiner(buffer[indices], value)`.

    When every expression in `init_when` is zero (the first iteration of the reduction
    loops) the element is first set to the combiner's identity. `decompose` moves that
    initialisation into a loop nest of its own and leaves `init_when` empty.
    """

    buffer: Buffer
    indices: tuple
    combiner: str
    value: Value
    init_when: tuple = ()
    child_fields = ("value",)
    expr_fields = ("indices", "init_when")


@dataclass(frozen=True, repr=False)
class If(Stmt):
    cond: sympy.Basic
    then: Stmt
    otherwise: Stmt = None
    child_fields = ("then", "otherwise")
    expr_fields = ("cond",)


@dataclass(frozen=True, repr=False)
class Seq(Stmt):
    stmts: tuple
    child_fields = ("stmts",)


@dataclass(frozen=True, repr=False)
class Alloc(Stmt):
    """`buffer` exists (in `scope`) for the duration of `body`."""

    buffer: Buffer
    scope: str
    body: Stmt
    child_fields = ("body",)


@dataclass(frozen=True, repr=False)
class Barrier(Stmt):
    """All threads of a GPU block wait here (`__syncthreads()`)."""


def seq(*stmts):
    """A statement list, flattening nested Seqs and dropping Nones."""
    flat = []
    for stmt in stmts:
        if isinstance(stmt, Seq):
            flat.extend(stmt.stmts)
        elif stmt is not None:
            flat.append(stmt)
    return flat[0] if len(flat) == 1 else Seq(tuple(flat))


# ---------------------------------------------------------------------------- kernels


@dataclass(frozen=True, repr=False)
class ShapeVar(Node):
    """A symbolic size with its inclusive range, bound from argument shapes at call time."""

    symbol: sympy.Symbol
    lo: int
    hi: int


@dataclass(frozen=True, repr=False)
class RaggedDim(Node):
    """A dim whose extent is `{name}_len[b]` for row b of a batch of `batch` rows, each
    at most `max` long; the caller passes the lengths table."""

    name: str
    batch: sympy.Expr
    max: int

    @property
    def lengths_table(self):
        return f"{self.name}_len"


@dataclass(frozen=True, repr=False)
class CausalDim(Node):
    """A dim that follows ragged dim `of` in a shape and, at index i of that dim, runs over
    [0, i]: a causal triangle (keys up to the query), stored without its upper half."""

    of: RaggedDim

    @property
    def name(self):
        return f"{self.of.name}_causal"

    @property
    def batch(self):
        return self.of.batch

    @property
    def max(self):
        return self.of.max


@dataclass(frozen=True, repr=False)
class PrefixSum(Node):
    """A prelude table: `table[b]` = sum over rows r < b of the row's size, for b in
    [0, count]; ragged layouts find their rows' starts in it. The size is the product of
    `factors`, each `(lengths table, triangular)`: `lengths[r]`, or for a causal triangle
    `lengths[r] * (lengths[r] + 1) / 2`. With `pad` > 1 each length first rounds up to a
    multiple of `pad` (rows of storage-padded buffers)."""

    table: str
    factors: tuple
    count: sympy.Expr
    pad: int = 1

    @property
    def lengths(self):
        """The lengths table of the first factor (the one a lone factor sums)."""
        return self.factors[0][0]

    def row_sizes(self, lengths):
        """The size of each row given `lengths` ({lengths table: ints or int arrays})."""
        size = 1
        for name, triangular in self.factors:
            length = -(-lengths[name] // self.pad) * self.pad
            size = size * (length * (length + 1) // 2 if triangular else length)
        return size


@dataclass(frozen=True, repr=False)
class RowOrder(Node):
    """A prelude table: `table[k]` for k < count is the row with the k-th longest length
    (ties in row order), so a loop over `table[k]` meets the longest rows first."""

    table: str
    lengths: str
    count: sympy.Expr
    max: int


@dataclass(frozen=True, repr=False)
class FlatRows(Node):
    """Prelude tables for a fused ragged loop: for each flat position f < sum of the
    lengths, `rows[f]` is the row f falls in and `positions[f]` its place in that row,
    rows back to back in row order (so row b's first f is the prefix sum of the lengths
    before b). With `pad` > 1 the tables run on to a multiple of `pad` entries (bulk
    padding): each extra position continues the last row past its end, so the row start
    plus the position is still f, and lands in the storage padded after the last row."""

    rows: str
    positions: str
    lengths: str
    count: sympy.Expr
    pad: int = 1

    @property
    def table(self):
        return self.rows


@dataclass(frozen=True, repr=False)
class Kernel(Node):
    """A compiled unit: `params` are the caller's buffers, `outputs` names those it writes.

    `prelude` lists the auxiliary tables the host computes before the body runs.
    """

    name: str
    params: tuple
    body: Stmt
    outputs: tuple
    shape_vars: tuple = ()
    prelude: tuple = ()
    ragged_dims: tuple = ()
    child_fields = ("body",)

    def param(self, name):
        """The parameter buffer called `name`."""
        for buffer in self.params:
            if buffer.name == name:
                return buffer
        raise KeyError(name)

    def ranges(self):
        """{symbol or table: (lo, hi)}: the shape variables' ranges and, for each ragged
        dim, the range of its lengths table (and of its row-order tables: row numbers)."""
        ranges = {v.symbol: (sympy.Integer(v.lo), sympy.Integer(v.hi)) for v in self.shape_vars}
        for dim in self.ragged_dims:
            lengths = sympy.Function(dim.lengths_table, integer=True, nonnegative=True)
            ranges[lengths] = (sympy.Integer(0), sympy.Integer(dim.max))
        for entry in self.prelude:
            if isinstance(entry, RowOrder):
                order = sympy.Function(entry.table, integer=True, nonnegative=True)
                ranges[order] = (sympy.Integer(0), entry.count - 1)
            if isinstance(entry, FlatRows):
                rows = sympy.Function(entry.rows, integer=True, nonnegative=True)
                lengths = sympy.Function(entry.lengths, integer=True, nonnegative=True)
                ranges[rows] = (sympy.Integer(0), entry.count - 1)
                # Bounded by its own row's length, which is what proves a fused loop's
                # accesses stay inside their rows; `bounds` eliminates it before `rows`.
                ranges[sympy.Function(entry.positions, integer=True, nonnegative=True)] = (
                    sympy.Integer(0), lengths(rows(TABLE_ARGUMENT)) + entry.pad - 2)
        return ranges
