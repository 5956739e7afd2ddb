"""`ValueRenderer`: how a C-like renderer spells values, the half of `CLikeRenderer`
(base.py) that writes expressions: constants, loads, arithmetic that wraps like numpy's,
integer division and shifts defined for every input, math functions and casts, and the
helper functions they call (helpers.py), each emitted once per translation unit.
"""

import numpy as np
import sympy

from ..ir import dtypes
from ..ir import nodes as ir
from ..ir.errors import QuiltError
from ..ir.index import proves
from ..ir.verify import value_range
from . import helpers
from .names import strip_parentheses

# Integer types C promotes to int: compute, then cast back so the result wraps.
_PROMOTED = (dtypes.int8, dtypes.int16, dtypes.uint8, dtypes.boolean)
# Types as wide as int: signed overflow is undefined in C, so they wrap through unsigned.
_UNSIGNED = {dtypes.int32: "uint32_t", dtypes.int64: "uint64_t"}
_COMPARISONS = {"<", "<=", ">", ">=", "==", "!="}
_LOGICAL = {"and": "&&", "or": "||"}


class ValueRenderer:
    """Expressions for a renderer that provides `index`, `render_load`, `target`,
    `helper_prefix`, `MATH_FUNCTIONS`, `loop_ranges` and `helpers_used`."""

    def use_helper(self, name, definition):
        """Record that the kernel calls helper `name` (defined by `definition`); returns it."""
        self.helpers_used[name] = definition
        return name

    def scalar_helper(self, operation, dtype):
        """A helper for max, min, abs, integer division or shifts on `dtype`.

        Float max/min propagate NaN like numpy's maximum/minimum (fmaxf drops NaN, and is
        a library call that keeps gcc from vectorizing); integer abs of the minimum wraps.
        """
        name, c = f"quiltc_{operation}_{dtype.name}", dtype.c
        if operation == "abs":
            definition = helpers.scalar_abs(name, c, _UNSIGNED.get(dtype))
        elif operation == "div":
            definition = helpers.scalar_divide(name, c, dtype.is_signed, _UNSIGNED.get(dtype))
        elif operation in ("shl", "shr"):
            definition = helpers.scalar_shift(name, c, operation, max(dtype.bits, 32),
                                              dtype.is_signed)
        else:
            pick = ">" if operation == "max" else "<"
            definition = helpers.scalar_extremum(name, c, pick, dtype.is_float)
        return self.use_helper(name, self.helper_prefix + definition)

    def integer_helper(self, function):
        """The helper computing integer call `function` (requantize, smlad), defined once."""
        name = f"quiltc_{function}"
        return self.use_helper(name, self.helper_prefix + helpers.INTEGER_CALLS[function])

    def math_function(self, function, dtype):
        """The spelling of math `function` on `dtype`, defining the helper it needs."""
        name = self.MATH_FUNCTIONS[function][dtype == dtypes.float64]
        if name == "quiltc_expf":
            self.use_helper(name, self.helper_prefix + helpers.EXPF)
        elif function == "sigmoid":
            one, exp = self.constant(1.0, dtype), self.math_function("exp", dtype)
            self.use_helper(name, self.helper_prefix + helpers.sigmoid(name, dtype.c, one, exp))
        return name

    def value(self, value):
        """C text of a Value, parenthesised where it is not a single term."""
        handler = _VALUE_HANDLERS.get(type(value))
        if handler is None:
            raise QuiltError(f"the {self.target} renderer cannot print {type(value).__name__}")
        return handler(self, value)

    def constant(self, number, dtype):
        """A literal of `dtype`: exact float spellings, INFINITY/NAN, wide integer macros."""
        if dtype.is_float:
            number = float(number)
            if np.isnan(number):
                return "NAN"
            if np.isinf(number):
                return "INFINITY" if number > 0 else "(-INFINITY)"
            # The shortest text that reads back as the same float32 or float64 value.
            text = str(np.float32(number)) if dtype == dtypes.float32 else repr(number)
            text += "" if any(mark in text for mark in ".e") else ".0"
            text += "f" if dtype == dtypes.float32 else ""
            return f"({text})" if text.startswith("-") else text
        number = int(number)
        if dtype in _UNSIGNED and number == int(np.iinfo(dtype.numpy).min):
            return f"INT{dtype.bits}_MIN"
        text = f"INT64_C({number})" if abs(number) >= 2**31 else str(number)
        return f"({text})" if number < 0 else text

    def arithmetic(self, operator, dtype, a, b):
        """`a operator b` on C texts of `dtype`, with integer results wrapping like numpy."""
        if operator in ("max", "min"):
            function = self.scalar_helper(operator, dtype)
            return f"{function}({strip_parentheses(a)}, {strip_parentheses(b)})"
        if dtype.is_float or operator == "/" and dtype not in _PROMOTED:
            return f"({a} {operator} {b})"
        if operator in (">>", "&", "|"):
            # Exact in every integer type; >> of a negative value is arithmetic on gcc.
            text = f"({a} {operator} {b})"
            return text if dtype not in _PROMOTED else f"(({dtype.c}){text})"
        if operator == "<<" and dtype in _PROMOTED:
            # Shift through unsigned: a left shift of a negative int is undefined in C.
            return f"(({dtype.c})((uint32_t){a} << {b}))"
        if dtype in _UNSIGNED:
            unsigned = _UNSIGNED[dtype]
            return f"(({dtype.c})(({unsigned}){a} {operator} ({unsigned}){b}))"
        return f"(({dtype.c})({a} {operator} {b}))"

    def render_bin(self, value):
        """Comparisons and logic as C operators; arithmetic through `arithmetic`."""
        a, b = self.value(value.a), self.value(value.b)
        if value.op in _COMPARISONS:
            return f"({a} {value.op} {b})"
        if value.op in _LOGICAL:
            return f"({a} {_LOGICAL[value.op]} {b})"
        dtype = value.a.dtype
        if value.op == "/" and not dtype.is_float and not (
                isinstance(value.b, ir.Const) and int(value.b.value) not in (0, -1)):
            # C leaves x / 0 and MIN / -1 undefined (a SIGFPE on x86); a divisor known
            # to be neither keeps the plain operator, which gcc strength-reduces.
            function = self.scalar_helper("div", dtype)
            return f"{function}({strip_parentheses(a)}, {strip_parentheses(b)})"
        if value.op in ("<<", ">>") and not self._count_in_range(value.b, dtype):
            # C leaves a count outside [0, width) undefined; numpy's result is defined.
            function = self.scalar_helper("shl" if value.op == "<<" else "shr", dtype)
            return f"{function}({strip_parentheses(a)}, {strip_parentheses(b)})"
        return self.arithmetic(value.op, value.a.dtype, a, b)

    def _count_in_range(self, count, dtype):
        """Whether shift `count` provably lies in [0, width) of `dtype` promoted to int."""
        lo, hi = value_range(count, self.loop_ranges)
        width = max(dtype.bits, 32)
        return proves(sympy.Ge(lo, 0), self.loop_ranges) and proves(
            sympy.Lt(hi, width), self.loop_ranges)

    def render_un(self, value):
        """Negation (wrapping on integers) and logical not."""
        a, dtype = self.value(value.a), value.dtype
        if value.op == "not":
            return f"(!{a})"
        if dtype.is_float:
            return f"(-{a})"
        if dtype in _UNSIGNED:
            return f"(({dtype.c})(0u - ({_UNSIGNED[dtype]}){a}))"
        return f"(({dtype.c})(-{a}))"

    def render_select(self, value):
        """`cond ? then : otherwise` through a helper whose arguments C evaluates
        unconditionally, which is safe (the verifier proves every load in bounds whatever
        the condition, and integer division is defined everywhere): written as a plain
        `?:`, a load in an arm is conditional, and gcc 12 vectorizes conditional loads
        into masked loads that it miscompiles at -O3 (found by the random-program
        campaign); unconditional loads also vectorize into plain ones."""
        dtype = value.dtype
        name = f"quiltc_select_{dtype.name}"
        self.use_helper(name, self.helper_prefix + helpers.select(name, dtype.c))
        parts = (strip_parentheses(self.value(part))
                 for part in (value.cond, value.then, value.otherwise))
        return f"{name}({', '.join(parts)})"

    def render_call(self, value):
        """A math function on floats; integer abs through a helper."""
        dtype = value.dtype
        arguments = ", ".join(strip_parentheses(self.value(a)) for a in value.args)
        if dtype.is_float:
            return f"{self.math_function(value.fn, dtype)}({arguments})"
        if value.fn in ir.INTEGER_CALLS:
            return f"{self.integer_helper(value.fn)}({arguments})"
        if value.fn != "abs":
            raise QuiltError(f"{value.fn} needs a float argument, got {dtype}; cast it first")
        return f"{self.scalar_helper('abs', dtype)}({arguments})"

    def render_cast(self, value):
        """A conversion with numpy's semantics: nonzero test to bool, truncation to ints."""
        source, target = value.value.dtype, value.dtype
        inner = self.value(value.value)
        if source == target:
            return inner
        if target == dtypes.boolean:
            return f"({inner} != 0)"
        if source.is_float and not target.is_float and target.bits < 64:
            # Truncate toward zero into 64 bits, then wrap into the narrow type as numpy
            # does: converting an out-of-range float straight to it is undefined in C.
            return f"(({target.c})(int64_t){inner})"
        return f"(({target.c}){inner})"


_VALUE_HANDLERS = {
    ir.Const: lambda renderer, v: renderer.constant(v.value, v.dtype),
    ir.Index: lambda renderer, v: renderer.index(v.expr),
    ir.Load: lambda renderer, v: renderer.render_load(v),
    ir.Bin: lambda renderer, v: renderer.render_bin(v),
    ir.Un: lambda renderer, v: renderer.render_un(v),
    ir.Call: lambda renderer, v: renderer.render_call(v),
    ir.Cast: lambda renderer, v: renderer.render_cast(v),
    ir.Select: lambda renderer, v: renderer.render_select(v),
}
