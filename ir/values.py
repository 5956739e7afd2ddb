"""IR values: the float and integer expressions a statement computes (constants, loads
with sympy or gathered indices, arithmetic, calls, casts, selects), which sympy never
touches: it would reorder float arithmetic. `binary` builds one with the operand types
checked."""

from dataclasses import dataclass

import numpy as np
import sympy

from . import dtypes
from .base import BITWISE_OPS, COMPARISONS, Buffer, Node
from .errors import LanguageError


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

    def __lshift__(self, other):
        return binary("<<", self, other)

    def __rlshift__(self, other):
        return binary("<<", other, self)

    def __rshift__(self, other):
        return binary(">>", self, other)

    def __rrshift__(self, other):
        return binary(">>", other, self)

    def __and__(self, other):
        return binary("&", self, other)

    def __rand__(self, other):
        return binary("&", other, self)

    def __or__(self, other):
        return binary("|", self, other)

    def __ror__(self, other):
        return binary("|", other, self)


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
    """`buffer[indices]`. A gather reads at data-dependent positions: `gather` then holds,
    per dim, None or an integer Value that replaces that dim's index (whose entry in
    `indices` is 0), as in `lut[p, idx[i]]`."""

    buffer: Buffer
    indices: tuple
    gather: tuple = ()
    child_fields = ("gather",)
    expr_fields = ("indices",)

    def __post_init__(self):
        if self.gather and len(self.gather) != len(self.indices):
            raise ValueError(f"gather of {self.buffer.name} needs one entry per index")

    @property
    def dtype(self):
        return self.buffer.dtype

    def offset_parts(self):
        """(flat offset, {stand-in symbol: (dim, gathered Value)}): the offset with each
        gathered dim's index replaced by a stand-in symbol that printers spell as the value."""
        stand_ins, indices = {}, list(self.indices)
        for dim, value in enumerate(self.gather):
            if value is not None:
                stand_in = sympy.Symbol(f"quiltc_gather_{dim}", integer=True)
                stand_ins[stand_in], indices[dim] = (dim, value), stand_in
        return self.buffer.offset(tuple(indices)), stand_ins


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
    if op in BITWISE_OPS and (a.dtype.is_float or a.dtype == dtypes.boolean):
        raise LanguageError(
            f"{op!r} needs integer operands, got {a.dtype}; cast them with qc.cast(x, 'int32')"
        )
    return Bin(op, a, b)
