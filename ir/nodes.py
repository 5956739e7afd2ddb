"""The IR grammar: values, statements, buffers and kernels, as frozen dataclasses.

Index arithmetic (loop extents, buffer indices, guard conditions) is sympy; float and
integer *values* are the Value nodes below, which sympy never touches. Every node compares
structurally and prints as pseudo-code (see printer.py).
"""

from dataclasses import dataclass, field

import numpy as np
import sympy

from . import dtypes
from .errors import LanguageError
from .index import TABLE_ARGUMENT, as_expr
from .layout import Dense

LOOP_KINDS = ("serial", "parallel", "vector", "unroll")
GPU_AXES = tuple(f"{scope}.{axis}" for scope in ("blockIdx", "threadIdx") for axis in "xyz")
SCOPES = ("global", "local", "shared")
COMBINERS = ("sum", "max", "min")
BINARY_OPS = ("+", "-", "*", "/", "max", "min", "<", "<=", ">", ">=", "==", "!=", "and", "or")
COMPARISONS = ("<", "<=", ">", ">=", "==", "!=", "and", "or")
CALLS = ("exp", "log", "sqrt", "tanh", "abs", "erf", "sigmoid")


class Node:
    """Base of every IR node: prints as pseudo-code."""

    # Fields holding child nodes (or tuples of them) and sympy expressions, for walk.py.
    child_fields = ()
    expr_fields = ()

    def __repr__(self):
        from .printer import render

        return render(self)


@dataclass(frozen=True, repr=False)
class Buffer(Node):
    """A named array: its layout maps an index tuple to a flat offset."""

    name: str
    dtype: dtypes.DType
    shape: tuple
    layout: object = field(default_factory=Dense)

    def offset(self, indices):
        """The flat offset of `indices` as a sympy expression."""
        return self.layout.offset(self.shape, indices)

    def size(self):
        """How many elements the storage holds (a sympy expression)."""
        return self.layout.size(self.shape)

    def extent(self, dim, indices):
        """The extent of `dim` where `indices` point: a ragged dim's depends on the row."""
        if hasattr(self.layout, "extent"):
            return self.layout.extent(self.shape, dim, indices)
        return as_expr(self.shape[dim])

    @property
    def is_ragged(self):
        return hasattr(self.layout, "extent")


# ----------------------------------------------------------------------------- values


class Value(Node):
    """A scalar computed per element. Arithmetic operators build Bin nodes."""

    # Makes numpy scalars defer to Value's reflected operators: np.float32(2) * x works.
    __array_ufunc__ = None

    def __add__(self, other):
        return binary("+", self, other)

    def __radd__(self, other):
        return binary("+", other, self)

    def __sub__(self, other):
        return binary("-", self, other)

    def __rsub__(self, other):
        return binary("-", other, self)

    def __mul__(self, other):
        return binary("*", self, other)

    def __rmul__(self, other):
        return binary("*", other, self)

    def __truediv__(self, other):
        return binary("/", self, other)

    def __rtruediv__(self, other):
        return binary("/", other, self)

    def __neg__(self):
        return Un("-", self)

    def __lt__(self, other):
        return binary("<", self, other)

    def __le__(self, other):
        return binary("<=", self, other)

    def __gt__(self, other):
        return binary(">", self, other)

    def __ge__(self, other):
        return binary(">=", self, other)


@dataclass(frozen=True, repr=False)
class Const(Value):
    value: object
    dtype: dtypes.DType


def is_condition(expr):
    """True for a sympy comparison or logical formula (a Symbol is not one, though sympy
    files symbols under Boolean too)."""
    logic = sympy.logic.boolalg
    return isinstance(expr, (sympy.core.relational.Relational, logic.BooleanFunction,
                             logic.BooleanAtom))


@dataclass(frozen=True, repr=False)
class Index(Value):
    """An index expression used as a value (a loop variable in arithmetic, a mask test)."""

    expr: sympy.Basic
    expr_fields = ("expr",)

    @property
    def dtype(self):
        return dtypes.boolean if is_condition(self.expr) else dtypes.int64


@dataclass(frozen=True, repr=False)
class Load(Value):
    buffer: Buffer
    indices: tuple
    expr_fields = ("indices",)

    @property
    def dtype(self):
        return self.buffer.dtype


@dataclass(frozen=True, repr=False)
class Bin(Value):
    op: str
    a: Value
    b: Value
    child_fields = ("a", "b")

    @property
    def dtype(self):
        return dtypes.boolean if self.op in COMPARISONS else self.a.dtype


@dataclass(frozen=True, repr=False)
class Un(Value):
    op: str
    a: Value
    child_fields = ("a",)

    @property
    def dtype(self):
        return self.a.dtype


@dataclass(frozen=True, repr=False)
class Call(Value):
    fn: str
    args: tuple
    child_fields = ("args",)

    @property
    def dtype(self):
        return self.args[0].dtype


@dataclass(frozen=True, repr=False)
class Cast(Value):
    dtype: dtypes.DType
    value: Value
    child_fields = ("value",)


@dataclass(frozen=True, repr=False)
class Select(Value):
    cond: Value
    then: Value
    otherwise: Value
    child_fields = ("cond", "then", "otherwise")

    @property
    def dtype(self):
        return self.then.dtype


def as_value(x, like=None):
    """Turn a Python number or a sympy index into a Value of `like`'s dtype."""
    if isinstance(x, Value):
        return x
    if isinstance(x, sympy.Basic):
        index = Index(x)
        if like is not None and like != index.dtype and index.dtype != dtypes.boolean:
            return Cast(like, index)
        return index
    if isinstance(x, np.generic):
        return Const(x.item(), like or dtypes.as_dtype(x.dtype))
    if isinstance(x, bool):
        return Const(int(x), dtypes.boolean)
    if isinstance(x, (int, float)):
        dtype = like or (dtypes.int32 if isinstance(x, int) else dtypes.float32)
        return Const(float(x) if dtype.is_float else int(x), dtype)
    raise LanguageError(f"cannot use {x!r} of type {type(x).__name__} as a tensor value")


def binary(op, a, b):
    """Build `a op b`, turning numbers and indices into values of the other side's dtype."""
    like = a.dtype if isinstance(a, Value) else b.dtype if isinstance(b, Value) else None
    a, b = as_value(a, like), as_value(b, like)
    if isinstance(a, Index) and a.dtype != b.dtype and b.dtype != dtypes.boolean:
        a = Cast(b.dtype, a)
    if isinstance(b, Index) and a.dtype != b.dtype and a.dtype != dtypes.boolean:
        b = Cast(a.dtype, b)
    if a.dtype != b.dtype:
        raise LanguageError(
            f"operands of {op!r} have dtypes {a.dtype} and {b.dtype}; "
            f"cast one with qc.cast(x, {a.dtype.name!r})"
        )
    return Bin(op, a, b)


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
class PrefixSum(Node):
    """A prelude table: `table[b]` = sum of `lengths[r] ** power` over rows r < b, for b
    in [0, count]; ragged layouts find their rows' starts in it. With `pad` > 1 each
    length first rounds up to a multiple of `pad` (rows of storage-padded buffers)."""

    table: str
    lengths: str
    power: int
    count: sympy.Expr
    pad: int = 1


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
    before b)."""

    rows: str
    positions: str
    lengths: str
    count: sympy.Expr

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
                    sympy.Integer(0), lengths(rows(TABLE_ARGUMENT)) - 1)
        return ranges
