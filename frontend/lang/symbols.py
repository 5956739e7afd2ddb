"""The language's symbols: sizes (`qc.var`) and axes (a compute's indices, `qc.reduce_axis`).

Each carries what it means, so nothing is looked up by name:

    N = qc.var("N", 1, 64)            a Size: name N, range [1, 64]
    k = qc.reduce_axis(4, "k")        a ReduceAxis: name k, extent 4

Two vars with one name and one range are the same size; with different ranges they are
different sizes, and a program using both is refused where they meet (a kernel binds one
size per name). Every axis is a variable of its own, whatever its name: lowering gives
each a loop variable of its own, so `reduce_axis(4, "k")` and `reduce_axis(8, "k")`
never share an extent. Kernels hold plain symbols (`ir.index.symbol`): lowering turns
these into them with `to_kernel`.
"""

import sympy

from ..ir import nodes as ir
from ..ir.errors import LanguageError
from ..ir.index import symbol

_INDEX = {"integer": True, "nonnegative": True}


class Size(sympy.Symbol):
    """A symbolic size with its inclusive range [lo, hi]; equal to another only when
    name and range agree, so sympy's caches never swap one range for another."""

    __slots__ = ("lo", "hi")

    def __new__(cls, name, lo, hi):
        # __xnew__ builds the symbol without sympy's by-name cache, which would hand back
        # a size declared earlier with another range.
        size = sympy.Symbol.__xnew__(cls, name, **_INDEX)
        size.lo, size.hi = lo, hi
        return size

    def __getnewargs_ex__(self):
        return (self.name, self.lo, self.hi), {}

    def _hashable_content(self):
        return super()._hashable_content() + (self.lo, self.hi)

    @property
    def range(self):
        """(lo, hi): the values the size may take at call time."""
        return self.lo, self.hi


class Axis(sympy.Dummy):
    """An index of a compute (named after the lambda's parameter), running over `extent`.
    Unique like every sympy Dummy: two axes called `i` are two variables."""

    __slots__ = ("extent",)

    def __new__(cls, name, extent, dummy_index=None):
        axis = super().__new__(cls, name, dummy_index, **_INDEX)
        axis.extent = extent
        return axis

    def __getnewargs_ex__(self):
        return (self.name, self.extent, self.dummy_index), {}

    def _sympystr(self, printer):
        # sympy prints a Dummy as `_i`; the language's messages name the axis as written.
        return self.name


class ReduceAxis(Axis):
    """An index that a reduction (`qc.sum(..., axis=k)`) runs over: its own extent, an
    int, a size expression or a ragged dim."""


def sizes_of(shape):
    """{name: Size} of the sizes that `shape` mentions (a ragged dim's batch included)."""
    sizes = {}
    for extent in shape:
        if isinstance(extent, (ir.RaggedDim, ir.CausalDim)):
            extent = extent.batch
        for size in sorted(extent.free_symbols, key=lambda s: s.name):
            if not isinstance(size, Size):
                raise LanguageError(
                    f"size {size} has no range; declare it with qc.var({size.name!r}, lo, hi)"
                )
            merge_sizes(sizes, {size.name: size})
    return sizes


def merge_sizes(sizes, more):
    """Add `more` ({name: Size}) to `sizes`; one name with two ranges is refused, since a
    kernel binds one value per size name."""
    for name, size in more.items():
        first = sizes.setdefault(name, size)
        if first != size:
            raise LanguageError(
                f"size {name} is declared with ranges {list(first.range)} and "
                f"{list(size.range)} in one program; declare each size once and reuse it, "
                "or give the second a name of its own"
            )


def to_kernel(expr):
    """`expr` with every Size replaced by the kernel's plain symbol of that name."""
    if not isinstance(expr, sympy.Basic):
        return expr
    sizes = expr.atoms(Size)
    return expr.xreplace({size: symbol(size.name) for size in sizes}) if sizes else expr


def sizes_in(expr):
    """The Size objects `expr` mentions."""
    return expr.atoms(Size) if isinstance(expr, sympy.Basic) else set()
