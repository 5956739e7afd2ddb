"""Pseudo-code for any IR node: what `repr` shows, so a failing test shows the kernel.

`render(node, mark=culprit)` prefixes the culprit's lines with `>>` to point at it.
"""

import sympy
from sympy.printing.str import StrPrinter

from . import nodes as ir

_INFIX = {"+", "-", "*", "/", "<", "<=", ">", ">=", "==", "!=", "and", "or", "<<", ">>", "&", "|"}


class _IndexPrinter(StrPrinter):
    """sympy's printer, but floor division and modulo read as Python: `(N + 31) // 32`."""

    def parenthesize(self, item, level, strict=False):
        # `//` binds like `*` in Python: a floor division inside a product needs parentheses.
        if isinstance(item, sympy.floor):
            return f"({self._print(item)})"
        return super().parenthesize(item, level, strict)

    def _print_floor(self, expr):
        numerator, denominator = sympy.together(expr.args[0]).as_numer_denom()
        return f"({self._print(sympy.expand(numerator))}) // {self._print(denominator)}"

    def _print_And(self, expr):
        return " and ".join(self.parenthesize(a, 40) for a in expr.args)

    def _print_Or(self, expr):
        return " or ".join(self.parenthesize(a, 30) for a in expr.args)

    def _print_Mod(self, expr):
        value, divisor = (self.parenthesize(a, 50) for a in expr.args)
        return f"{value} % {divisor}"


def show(expr):
    """An index expression or condition as readable text."""
    return _IndexPrinter().doprint(expr)


def render_value(value):
    """One-line pseudo-code of a Value."""
    if isinstance(value, ir.Const):
        return repr(value.value) if value.dtype.is_float else str(value.value)
    if isinstance(value, ir.Index):
        return show(value.expr)
    if isinstance(value, ir.Load):
        indices = [show(i) if g is None else render_value(g)
                   for i, g in zip(value.indices, value.gather or (None,) * len(value.indices))]
        return f"{value.buffer.name}[{', '.join(indices)}]"
    if isinstance(value, ir.Bin):
        a, b = render_value(value.a), render_value(value.b)
        return f"({a} {value.op} {b})" if value.op in _INFIX else f"{value.op}({a}, {b})"
    if isinstance(value, ir.Un):
        return f"{value.op}{render_value(value.a)}"
    if isinstance(value, ir.Call):
        return f"{value.fn}({', '.join(render_value(a) for a in value.args)})"
    if isinstance(value, ir.Cast):
        return f"{value.dtype.name}({render_value(value.value)})"
    if isinstance(value, ir.Select):
        parts = (render_value(v) for v in (value.cond, value.then, value.otherwise))
        return "select({}, {}, {})".format(*parts)
    raise TypeError(f"not a value: {type(value).__name__}")


def _target(buffer, indices):
    return f"{buffer.name}[{', '.join(show(i) for i in indices)}]"


def _lines(stmt, depth, mark):
    pad = "    " * depth
    out = []
    if isinstance(stmt, ir.For):
        kind = "" if stmt.kind == "serial" else f"  # {stmt.kind}"
        out.append(f"{pad}for {stmt.var} in range({show(stmt.extent)}):{kind}")
        out.extend(_lines(stmt.body, depth + 1, mark))
    elif isinstance(stmt, ir.Store):
        out.append(f"{pad}{_target(stmt.buffer, stmt.indices)} = {render_value(stmt.value)}")
    elif isinstance(stmt, ir.Reduce):
        init = ""
        if stmt.init_when:
            init = f"  # init when {', '.join(show(e) for e in stmt.init_when)} == 0"
        out.append(
            f"{pad}{_target(stmt.buffer, stmt.indices)} {stmt.combiner}= "
            f"{render_value(stmt.value)}{init}"
        )
    elif isinstance(stmt, ir.If):
        out.append(f"{pad}if {show(stmt.cond)}:")
        out.extend(_lines(stmt.then, depth + 1, mark))
        if stmt.otherwise is not None:
            out.append(f"{pad}else:")
            out.extend(_lines(stmt.otherwise, depth + 1, mark))
    elif isinstance(stmt, ir.Seq):
        for child in stmt.stmts:
            out.extend(_lines(child, depth, mark))
    elif isinstance(stmt, ir.Alloc):
        shape = _shape_text(stmt.buffer)
        padding = getattr(stmt.buffer.layout, "pad", 1)
        bulk = getattr(stmt.buffer.layout, "bulk", 1)
        note = stmt.scope if padding == 1 else f"{stmt.scope}, rows padded to {padding}"
        note += "" if bulk == 1 else f", storage after the last row to a multiple of {bulk}"
        note += "" if stmt.buffer.rows_of is None else f", rows of {stmt.buffer.rows_of}"
        out.append(f"{pad}{stmt.buffer.name} = alloc[{shape}] {stmt.buffer.dtype}  # {note}")
        out.extend(_lines(stmt.body, depth, mark))
    elif isinstance(stmt, ir.Barrier):
        out.append(f"{pad}barrier()")
    else:
        raise TypeError(f"not a statement: {type(stmt).__name__}")
    if mark is not None and stmt is mark and out:
        first = out[0]
        out[0] = ">>" + first[2:] if first.startswith("  ") else ">> " + first
    return out


def _shape_text(buffer):
    """A buffer's dims, a ragged dim by its name (`B, L, 64`)."""
    layout = buffer.layout
    ragged, causal = getattr(layout, "ragged", ()), getattr(layout, "causal", ())
    return ", ".join(layout.name_of(d) if d in ragged
                     else f"{layout.name_of(d - 1)}_causal" if d in causal else show(s)
                     for d, s in enumerate(buffer.shape))


def render(node, mark=None):
    """Pseudo-code of any node; lines of `mark` (a node inside) start with `>>`."""
    if isinstance(node, ir.Value):
        return render_value(node)
    if isinstance(node, ir.Buffer):
        shape = _shape_text(node)
        return f"{node.name}: {node.dtype}[{shape}]"
    if isinstance(node, ir.ShapeVar):
        return f"{node.symbol} in [{node.lo}, {node.hi}]"
    if isinstance(node, ir.RaggedDim):
        return (f"{node.name}: ragged, {node.lengths_table}[b] in [0, {node.max}] "
                f"for b < {show(node.batch)}")
    if isinstance(node, ir.PrefixSum):
        factors = []
        for lengths, triangular in node.factors:
            length = (f"{lengths}[r]" if node.pad == 1
                      else f"round_up({lengths}[r], {node.pad})")
            factors.append(f"tri({length})" if triangular else length)
        counts = {factor: factors.count(factor) for factor in factors}
        size = " * ".join(factor if n == 1 else f"{factor} ** {n}" for factor, n in counts.items())
        return f"{node.table}[b] = sum({size} for r < b), b <= {show(node.count)}"
    if isinstance(node, ir.RowOrder):
        return (f"{node.table}[k] = the row with the k-th longest {node.lengths}, "
                f"k < {show(node.count)}")
    if isinstance(node, ir.FlatRows):
        padding = "" if node.pad == 1 else f", run on past the last row to a multiple of {node.pad}"
        return (f"{node.rows}[f], {node.positions}[f] = the row and place of flat position f, "
                f"rows r < {show(node.count)} of {node.lengths}[r] back to back{padding}")
    if isinstance(node, ir.Kernel):
        params = ", ".join(render(p) for p in node.params)
        head = [f"kernel {node.name}({params}):  # writes {', '.join(node.outputs)}"]
        head += [f"    # {render(v)}" for v in node.shape_vars + node.ragged_dims]
        head += [f"    # prelude: {entry}" for entry in node.prelude]
        return "\n".join(head + _lines(node.body, 1, mark))
    return "\n".join(_lines(node, 0, mark))
