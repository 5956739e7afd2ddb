"""Storage layouts: how a buffer's index tuple maps to a flat offset (a sympy expression)."""

from dataclasses import dataclass

import sympy

from .index import as_expr, floordiv


def round_up(extent, multiple):
    """`extent` rounded up to a multiple of `multiple`, `((extent + m - 1) // m) * m`,
    spelled `extent + ((m - 1) * extent) % m` so that interval bounds see it is at least
    `extent` (the verifier then accepts unpadded loops over padded storage)."""
    extent = as_expr(extent)
    return extent + sympy.Mod((multiple - 1) * extent, multiple)


def as_whole_tiles(expr):
    """`expr` with round_up's spelling `X + ((m - 1) * X) % m` written `m * ((X + m - 1)
    // m)`, the form in which a loop over whole tiles of m (`m*t + i` with t below
    `(X + m - 1) // m`) provably stays below the padded extent."""
    expr = as_expr(expr)
    rounded = {}
    for mod in expr.atoms(sympy.Mod):
        numerator, multiple = mod.args
        if not (multiple.is_Integer and multiple > 1):
            continue
        base = sympy.expand(numerator / (multiple - 1))
        # ((m - 1) * X) % m is m * ceil(X / m) - X for an integer X only.
        if all(term.as_coeff_Mul()[0].is_Integer for term in sympy.Add.make_args(base)):
            rounded[mod] = multiple * sympy.floor((base + multiple - 1) / multiple) - base
    return sympy.expand(expr.xreplace(rounded)) if rounded else expr


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


@dataclass(frozen=True)
class Ragged:
    """Rows of a batch stored back to back.

    Dim 0 is the batch. Each dim listed in `ragged` has extent `{name}_len[b]` in row b,
    where `name` is `dim` or, when the tensor mixes ragged dims, `names[k]` for the k-th
    entry of `ragged` (each a table the caller passes). Each dim listed in `causal`
    follows a ragged dim and, at index i of that dim, has extent i + 1: the pair is a
    triangle, stored without its upper half. The other dims are dense. Row b starts at
    `{offsets}[b] * dense`, where dense is the product of the dense dims after dim 0 and
    `{offsets}` is the exclusive prefix sum of each row's size (the product of its
    ragged lengths, a triangle counting n (n + 1) / 2), computed by the kernel's
    prelude. Offsets within a row are row-major, a triangle's (i, j) at i (i + 1) / 2 + j.

    With `pad` > 1 each row's storage along its ragged dims rounds up to a multiple of
    `pad` (`pad_storage`), so a loop padded to that multiple stays inside the row; its
    row starts come from the prefix sums of the padded lengths. With `bulk` > 1 the
    whole batch's storage rounds up to a multiple of `bulk` positions after the last
    row (`pad_bulk`), where a fused loop's padded positions land.
    """

    dim: str
    ragged: tuple
    pad: int = 1
    names: tuple = ()
    causal: tuple = ()
    bulk: int = 1

    @property
    def lengths_table(self):
        """The table of row lengths of the first ragged dim, `{dim}_len`."""
        return f"{self.dim}_len"

    def name_of(self, dim):
        """The name of the ragged dim at position `dim` of the shape."""
        return self.names[self.ragged.index(dim)] if self.names else self.dim

    @property
    def dim_names(self):
        """The distinct ragged dims the layout reads the lengths of, first seen first."""
        return tuple(dict.fromkeys(self.names or (self.dim,)))

    @property
    def offsets_table(self):
        """The prelude table of row starts: `{dim}_off{k}` for k copies of one ragged dim
        (`_pad{pad}` when padded), else the factors' names joined, `M_N_off`."""
        parts = [self.name_of(d) + ("_causal" if d + 1 in self.causal else "")
                 for d in self.ragged]
        if len(set(parts)) == 1 and not self.causal:
            base = f"{self.dim}_off{len(self.ragged)}"
        else:
            base = "_".join(parts) + "_off"
        return base if self.pad == 1 else f"{base}_pad{self.pad}"

    def prefix_sum(self, count):
        """The prelude entry that computes `offsets_table` over `count` rows."""
        from .nodes import PrefixSum  # nodes imports base, which imports this module

        factors = tuple((f"{self.name_of(d)}_len", d + 1 in self.causal) for d in self.ragged)
        return PrefixSum(self.offsets_table, factors, count, self.pad)

    def _length(self, dim, row):
        return round_up(sympy.Function(f"{self.name_of(dim)}_len", integer=True,
                                       nonnegative=True)(as_expr(row)), self.pad)

    def extent(self, shape, dim, indices):
        """The extent of `dim` in the row that `indices` falls in (padded storage's).

        Indexed through a fused loop's tables at flat position f, the position's extent
        is what keeps the flat index inside the storage: `pos(f) - f + positions`, so that
        pos(f) < extent exactly when f is below the positions stored (the rows' total, or
        that rounded up to `bulk`), which is what a bulk-padded position needs to be safe.
        """
        flat = self.flat_index(indices)
        if dim == 1 and flat is not None:
            stored = round_up(self._total(shape), self.bulk)
            return as_expr(indices[1]) - flat + stored
        if dim in self.ragged:
            return self._length(dim, indices[0])
        if dim in self.causal:
            return as_expr(indices[dim - 1]) + 1
        return as_expr(shape[dim])

    def _dense(self, shape):
        return sympy.Mul(*(as_expr(e) for d, e in enumerate(shape)
                           if d and d not in self.ragged and d not in self.causal))

    def offset(self, shape, indices):
        """Flat offset of `indices`: the row's start plus the row-major offset inside it.

        Indexed through a fused ragged loop's tables, (`{dim}_row(f)`, `{dim}_pos(f)`),
        the row's start plus the position is the flat index f itself.
        """
        row_start = sympy.Function(self.offsets_table, integer=True, nonnegative=True)(
            as_expr(indices[0]))
        inside = sympy.Integer(0)
        for dim in range(1, len(shape)):
            index = as_expr(indices[dim])
            if dim + 1 in self.causal:
                length = self._length(dim, indices[0])
                inside = inside * floordiv(length * (length + 1), 2)
            elif dim in self.causal:
                previous = as_expr(indices[dim - 1])
                inside = inside + floordiv(previous * (previous + 1), 2) + index
            else:
                inside = inside * self.extent(shape, dim, indices) + index
        offset = sympy.expand(row_start * self._dense(shape) + inside)
        flat = self.flat_index(indices)
        if flat is not None:
            offset = sympy.expand(offset.xreplace({row_start: flat - as_expr(indices[1])}))
        return offset

    def flat_index(self, indices):
        """f when `indices` start (`{dim}_row(f)`, `{dim}_pos(f)`) and rows are stored
        unpadded along one ragged dim, so that the row start plus the position is f."""
        if self.pad != 1 or self.ragged != (1,) or self.causal or len(indices) < 2:
            return None
        row, position = as_expr(indices[0]), as_expr(indices[1])
        for expr, kind in zip((row, position), ("row", "pos")):
            if not (isinstance(expr, sympy.core.function.AppliedUndef)
                    and _is_flat_table(expr.func.__name__, f"{self.dim}_{kind}")):
                return None
        suffixes = {expr.func.__name__.removeprefix(f"{self.dim}_{kind}")
                    for expr, kind in zip((row, position), ("row", "pos"))}
        return row.args[0] if row.args == position.args and len(suffixes) == 1 else None

    def _total(self, shape):
        return sympy.Function(self.offsets_table, integer=True, nonnegative=True)(
            as_expr(shape[0]))

    def size(self, shape):
        """Elements of the whole batch: the prefix sum over all rows (rounded up to `bulk`)
        times the dense dims."""
        return round_up(self._total(shape), self.bulk) * self._dense(shape)


def _is_flat_table(name, base):
    """Whether `name` is a fused loop's table `base` (`L_row`) or its bulk-padded version
    (`L_row_bulk8`)."""
    return name == base or (name.startswith(f"{base}_bulk")
                            and name.removeprefix(f"{base}_bulk").isdigit())
