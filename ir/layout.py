"""Storage layouts: how a buffer's index tuple maps to a flat offset (a sympy expression)."""

from dataclasses import dataclass

import sympy

from .index import as_expr


@dataclass(frozen=True)
class Dense:
    """Row-major storage: the last index varies fastest."""

    def offset(self, shape, indices):
        """Flat offset of `indices` in a buffer of `shape`."""
        offset = sympy.Integer(0)
        for extent, index in zip(shape, indices):
            offset = offset * as_expr(extent) + as_expr(index)
        return sympy.expand(offset)

    def size(self, shape):
        """Number of elements the storage holds."""
        return sympy.Mul(*(as_expr(extent) for extent in shape))
