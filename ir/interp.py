"""The reference interpreter: runs a kernel on numpy arrays, one scalar at a time.

It is slow and simple on purpose, and it is the oracle every test compares against. The
kernel is translated statement by statement into Python source (integer index arithmetic
with `//` and `%`, values as numpy scalars of their dtype so float32 rounds as float32)
and executed. Every load and store checks its offset against the buffer's size, and
scratch buffers start filled with NaN (or a poison integer) so a read of memory that was
never written shows up in the results.
"""

import math

import numpy as np

from . import nodes as ir
from .dtypes import identity
from .errors import ShapeError, VerifyError
from .index import IndexSpelling, print_index
from .shapes import (
    bind_shape_vars,
    gather_ragged,
    prelude_tables,
    ragged_result,
    storage_shape,
)


class _PythonSpelling(IndexSpelling):
    floordiv = "({a} // {b})"
    minimum = "min({args})"
    maximum = "max({args})"
    conjunction = " and "
    disjunction = " or "
    negation = "(not {a})"
    table = "tables['{name}'][{args}]"


_PY = _PythonSpelling()

_CALLS = {
    "exp": "np.exp",
    "exp_nonpositive": "np.exp",
    "log": "np.log",
    "sqrt": "np.sqrt",
    "tanh": "np.tanh",
    "abs": "np.abs",
    "erf": "_erf",
    "sigmoid": "_sigmoid",
    "requantize": "_requantize",
    "smlad": "_smlad",
}
_BINARY = {"+", "-", "*", "<", "<=", ">", ">=", "==", "!=", "&", "|"}


def _erf(x):
    return type(x)(math.erf(x))


def _sigmoid(x):
    return type(x)(1) / (type(x)(1) + np.exp(-x))


def _wrap(number, dtype):
    """`number` (a Python int) wrapped into integer `dtype` as C's conversions do."""
    bits = np.iinfo(dtype).bits
    number &= (1 << bits) - 1
    if np.issubdtype(dtype, np.signedinteger) and number >= 1 << (bits - 1):
        number -= 1 << bits
    return dtype(number)


def _shift(op, a, b):
    """`a << b` or `a >> b` as C computes them for a count in [0, width) of the promoted
    type (right shifts of negative values arithmetic, left shifts wrapping), and as numpy
    defines them outside it, where every target's code computes the same: every bit is
    shifted out, leaving 0, or -1 for a right shift of a negative value."""
    width = max(np.iinfo(type(a)).bits, 32)
    if not 0 <= int(b) < width:
        return type(a)(-1 if op == ">>" and a < 0 else 0)
    shifted = int(a) << int(b) if op == "<<" else int(a) >> int(b)
    return _wrap(shifted, type(a))


def _requantize(value, multiplier, shift):
    """CMSIS-NN arm_nn_requantize on int32: a doubling high multiply by `multiplier`
    (rounding offset 2**30, no nudge), then a division by 2**-shift rounding half away
    from zero; a positive `shift` first scales `value` up, wrapping like int32."""
    left, right = max(int(shift), 0), max(-int(shift), 0)
    scaled = int(_wrap(int(value) << left, np.int32))
    high = int(_wrap((scaled * int(multiplier) + (1 << 30)) >> 31, np.int32))
    mask = (1 << right) - 1
    result = high >> right
    threshold = (mask >> 1) + (result < 0)
    return np.int32(result + ((high & mask) > threshold))


def _smlad(a, b, acc):
    """The Arm SMLAD instruction: acc + lo(a) * lo(b) + hi(a) * hi(b) on the signed
    16-bit halves of the int32 words a and b, wrapping like int32."""
    def halves(word):
        word = int(word) & 0xFFFFFFFF
        return [int(_wrap(word & 0xFFFF, np.int16)), int(_wrap(word >> 16, np.int16))]

    (a_lo, a_hi), (b_lo, b_hi) = halves(a), halves(b)
    return _wrap(int(acc) + a_lo * b_lo + a_hi * b_hi, np.int32)


def _check(buffer_name, offset, size):
    if not 0 <= offset < size:
        raise VerifyError(f"access {buffer_name}[{offset}] is outside its {size} elements")
    return offset


class _Translator:
    def __init__(self):
        self.lines = []

    def index(self, expr):
        return print_index(expr, _PY)

    def offset(self, buffer, indices):
        flat = self.index(buffer.offset(indices))
        return f"_check({buffer.name!r}, {flat}, len(buf_{buffer.name}))"

    def gather_offset(self, load):
        flat, stand_ins = load.offset_parts()
        text = self.index(flat)
        for stand_in, (dim, value) in stand_ins.items():
            extent = self.index(load.buffer.extent(dim, load.indices))
            text = text.replace(stand_in.name, f"_check({load.buffer.name!r}, "
                                               f"int({self.value(value)}), {extent})")
        return f"_check({load.buffer.name!r}, {text}, len(buf_{load.buffer.name}))"

    def value(self, v):
        if isinstance(v, ir.Const):
            return f"dt_{v.dtype.name}({v.value!r})"
        if isinstance(v, ir.Index):
            return f"dt_{v.dtype.name}({self.index(v.expr)})"
        if isinstance(v, ir.Load):
            if v.gather:
                return f"buf_{v.buffer.name}[{self.gather_offset(v)}]"
            return f"buf_{v.buffer.name}[{self.offset(v.buffer, v.indices)}]"
        if isinstance(v, ir.Bin):
            a, b = self.value(v.a), self.value(v.b)
            if v.op in ("<<", ">>"):
                return f"_shift({v.op!r}, {a}, {b})"
            if v.op in _BINARY:
                return f"({a} {v.op} {b})"
            if v.op == "/":
                return f"_div({a}, {b})"
            if v.op in ("max", "min"):
                return f"np.{v.op}imum({a}, {b})"
            return f"({a} {v.op} {b})"
        if isinstance(v, ir.Un):
            return f"(-{self.value(v.a)})" if v.op == "-" else f"(not {self.value(v.a)})"
        if isinstance(v, ir.Call):
            return f"{_CALLS[v.fn]}({', '.join(self.value(a) for a in v.args)})"
        if isinstance(v, ir.Cast):
            return f"_cast(dt_{v.dtype.name}, {self.value(v.value)})"
        if isinstance(v, ir.Select):
            c, t, o = (self.value(x) for x in (v.cond, v.then, v.otherwise))
            return f"({t} if {c} else {o})"
        raise TypeError(f"cannot interpret {type(v).__name__}")

    def emit(self, depth, text):
        self.lines.append("    " * depth + text)

    def stmt(self, s, depth):
        if isinstance(s, ir.For):
            self.emit(depth, f"for {s.var.name} in range({self.index(s.extent)}):")
            self.stmt(s.body, depth + 1)
        elif isinstance(s, ir.Store):
            target = f"buf_{s.buffer.name}[{self.offset(s.buffer, s.indices)}]"
            self.emit(depth, f"{target} = {self.value(s.value)}")
        elif isinstance(s, ir.Reduce):
            target = f"buf_{s.buffer.name}[{self.offset(s.buffer, s.indices)}]"
            if s.init_when:
                test = " and ".join(f"{self.index(e)} == 0" for e in s.init_when)
                start = identity(s.combiner, s.buffer.dtype)
                self.emit(depth, f"if {test}: {target} = dt_{s.buffer.dtype.name}({start!r})")
            combine = {"sum": "({old} + {new})", "max": "np.maximum({old}, {new})",
                       "min": "np.minimum({old}, {new})",
                       "nanmax": "np.fmax({old}, {new})"}[s.combiner]
            self.emit(depth, f"{target} = " + combine.format(old=target, new=self.value(s.value)))
        elif isinstance(s, ir.If):
            self.emit(depth, f"if {self.index(s.cond)}:")
            self.stmt(s.then, depth + 1)
            if s.otherwise is not None:
                self.emit(depth, "else:")
                self.stmt(s.otherwise, depth + 1)
        elif isinstance(s, ir.Seq):
            for child in s.stmts:
                self.stmt(child, depth)
        elif isinstance(s, ir.Alloc):
            size = self.index(s.buffer.size())
            self.emit(depth, f"buf_{s.buffer.name} = _scratch({size}, dt_{s.buffer.dtype.name})")
            self.stmt(s.body, depth)
        elif isinstance(s, ir.Barrier):
            self.emit(depth, "pass")
        else:
            raise TypeError(f"cannot interpret {type(s).__name__}")


def _div(a, b):
    """Integer division truncates toward zero as in C, and is defined for every input as
    numpy defines it: a zero divisor gives 0 and the minimum over -1 wraps to itself.
    Every target's generated code computes the same (see codegen.helpers.scalar_divide)."""
    if isinstance(a, np.floating):
        return a / b
    if b == 0:
        return type(a)(0)
    quotient = abs(int(a)) // abs(int(b))
    quotient = quotient if (a < 0) == (b < 0) else -quotient
    info = np.iinfo(type(a))
    return type(a)((quotient - int(info.min)) % (int(info.max) - int(info.min) + 1) + int(info.min))


def _cast(dtype, value):
    if np.issubdtype(dtype, np.integer) and isinstance(value, np.floating):
        value = np.trunc(value)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.array(value).astype(dtype)[()]


def _scratch(size, dtype):
    if np.issubdtype(dtype, np.floating):
        return np.full(size, np.nan, dtype=dtype)
    return np.full(size, np.iinfo(dtype).max if dtype != np.bool_ else 0, dtype=dtype)


def python_source(kernel):
    """The Python function the interpreter runs for `kernel` (for reading and debugging)."""
    translator = _Translator()
    names = [f"buf_{p.name}" for p in kernel.params]
    sizes = [v.symbol.name for v in kernel.shape_vars]
    translator.emit(0, f"def {kernel.name}({', '.join(names + sizes + ['tables'])}):")
    translator.stmt(kernel.body, 1)
    translator.emit(1, "return None")
    return "\n".join(translator.lines)


def run(kernel, **arguments):
    """Run `kernel` on arrays named like its parameters; returns {output: array}.

    Dense arguments are numpy arrays (or __dlpack__/__array__ objects); ragged ones are
    ragged arrays (flat `values` plus `lengths`), and ragged outputs come back as
    RaggedArrays. The
    prelude's tables are computed here in numpy, independently of any generated code.
    Outputs not passed in are allocated filled with NaN, so an element the kernel never
    writes shows. Symbolic sizes are bound from the arguments and range-checked.
    """
    arrays, lengths, row_shapes = gather_ragged(kernel, arguments)
    binding = bind_shape_vars(kernel, arrays, lengths, row_shapes)
    for buffer in kernel.params:
        if buffer.name not in arrays:
            shape = storage_shape(buffer, binding, lengths)
            if None in shape:
                raise ShapeError(f"the rows of output {buffer.name!r} are not fixed by any input")
            arrays[buffer.name] = _scratch(int(np.prod(shape)), buffer.dtype.numpy).reshape(shape)
    tables = {f"{dim}_len": rows for dim, rows in lengths.items()}
    tables.update(prelude_tables(kernel, lengths, binding))
    namespace = {"np": np, "_check": _check, "_div": _div, "_cast": _cast, "_scratch": _scratch,
                 "_erf": _erf, "_sigmoid": _sigmoid, "_shift": _shift,
                 "_requantize": _requantize, "_smlad": _smlad, "min": min, "max": max,
                 "inf": float("inf"), "nan": float("nan")}
    namespace.update({f"dt_{name}": dt for name, dt in _DTYPES.items()})
    exec(compile(python_source(kernel), f"<interp {kernel.name}>", "exec"), namespace)
    flat = {p.name: np.array(arrays[p.name], copy=True).reshape(-1) for p in kernel.params}
    sizes = [binding[v.symbol] for v in kernel.shape_vars]
    with np.errstate(all="ignore"):
        namespace[kernel.name](*(flat[p.name] for p in kernel.params), *sizes, tables)
    results = {}
    for name in kernel.outputs:
        values = flat[name].reshape(arrays[name].shape)
        buffer = kernel.param(name)
        results[name] = (ragged_result(buffer, values, binding, lengths) if buffer.is_ragged
                         else values)
    return results


_DTYPES = {
    "float32": np.float32,
    "float64": np.float64,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "bool": np.bool_,
}
