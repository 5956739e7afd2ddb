"""The IR's vocabulary and its two roots: loop kinds, memory scopes, operators and calls;
`Node`, the base of every node (each prints as pseudo-code, see printer.py); and `Buffer`,
a named array whose layout maps indices to a flat offset."""

from dataclasses import dataclass, field

from . import dtypes
from .index import as_expr
from .layout import Dense

# A "stream" loop is a SIMD loop whose stores go past the caches
# (schedule/primitives/stream.py).
LOOP_KINDS = ("serial", "parallel", "vector", "stream", "unroll")
SIMD_KINDS = ("vector", "stream")
GPU_AXES = tuple(f"{scope}.{axis}" for scope in ("blockIdx", "threadIdx") for axis in "xyz")
SCOPES = ("global", "local", "shared")
# "nanmax" is the largest value that is not NaN (-inf when there is none), as numpy's
# fmax reduces: a softmax's stabilising max, which need not carry a NaN that its exps
# carry anyway, and in SIMD one vmaxps a vector rather than a max and a NaN test.
COMBINERS = ("sum", "max", "min", "nanmax")
BITWISE_OPS = ("<<", ">>", "&", "|")
BINARY_OPS = ("+", "-", "*", "/", "max", "min", "<", "<=", ">", ">=", "==", "!=", "and", "or",
              *BITWISE_OPS)
COMPARISONS = ("<", "<=", ">", ">=", "==", "!=", "and", "or")
# Integer calls: `requantize(acc, multiplier, shift)` rescales an int32 accumulator as
# CMSIS-NN's arm_nn_requantize does; `smlad(a, b, acc)` adds the products of the int16
# halves of a and b to acc (the Arm dual multiply-accumulate), wrapping like int32.
INTEGER_CALLS = ("requantize", "smlad")
# `exp_nonpositive(x)` is exp(x) for x <= 0 (a softmax's x - max(x)), which a target may
# compute without exp's overflow path.
CALLS = ("exp", "exp_nonpositive", "log", "sqrt", "tanh", "abs", "erf", "sigmoid",
         *INTEGER_CALLS)


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
    """A named array: its layout maps an index tuple to a flat offset. `value_range`,
    when set, is an inclusive (lo, hi) that whoever fills the buffer promises every
    element lies in (the verifier trusts it; nothing checks it at run time). `rows_of`,
    when set, names the table whose row each element picks: the mcu target stores the
    row's address instead of the value (see schedule/primitives/row_pointers.py)."""

    name: str
    dtype: dtypes.DType
    shape: tuple
    layout: object = field(default_factory=Dense)
    value_range: tuple = None
    rows_of: str = None

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
