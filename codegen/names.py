"""Names and small texts every C-like renderer shares: C's reserved words, IR names made
legal and unique as C identifiers, element storage types, and index arithmetic in C."""

import re

from ..ir import nodes as ir
from ..ir.index import IndexSpelling
from ..ir.walk import find_all

C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto "
    "if inline int long register restrict return short signed sizeof static struct switch "
    "typedef union unsigned void volatile while main".split()
)
# Keywords and the C library names generated code uses: IR names never shadow them.
_RESERVED = C_KEYWORDS | frozenset(
    "expf exp logf log sqrtf sqrt tanhf tanh fabsf fabs erff erf free abort fprintf stderr "
    "posix_memalign size_t int8_t int16_t int32_t int64_t uint8_t uint32_t uint64_t INFINITY "
    "NAN INT32_MIN INT64_MIN INT64_C".split()
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def strip_parentheses(text):
    """`text` without one pair of parentheses that encloses all of it."""
    if not (text.startswith("(") and text.endswith(")")):
        return text
    depth = 0
    for _position, character in enumerate(text[:-1]):
        depth += {"(": 1, ")": -1}.get(character, 0)
        if depth == 0:
            return text
    return text[1:-1]


def as_operand(text):
    """`text` safe as the right operand of `*`: as it is when its only operators outside
    parentheses are `*` (`4 * L_off2[B]`), else parenthesized: `sizeof(float) * M + 2`
    and `sizeof(float) * M / 3` would group differently."""
    depth = 0
    for character in text:
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(character, 0)
        if depth == 0 and character in "+-/%<>=?:&|^!~":
            return f"({text})"
    return text


def c_identifiers(kernel):
    """({symbol name: C identifier}, {buffer name: C identifier}) for `kernel`.

    IR names are kept where C allows them; a name that is reserved (a keyword, a library
    name, the helpers' `quiltc_` prefix) or taken by a symbol (symbols keep their names,
    buffers yield) is changed as little as possible.
    """
    nodes = find_all(kernel.body, lambda node: isinstance(node, (ir.For, ir.Alloc)))
    symbols = {v.symbol.name for v in kernel.shape_vars}
    symbols |= {node.var.name for node in nodes if isinstance(node, ir.For)}
    buffers = {p.name for p in kernel.params}
    buffers |= {node.buffer.name for node in nodes if isinstance(node, ir.Alloc)}
    taken = set()

    def identifier(name, suffix):
        candidate = re.sub(r"\W", "_", name)
        if not _IDENTIFIER.match(candidate) or candidate.startswith("quiltc_"):
            candidate = "_" + candidate
        while candidate in taken or candidate in _RESERVED:
            candidate += suffix
        taken.add(candidate)
        return candidate

    symbol_names = {name: identifier(name, "_") for name in sorted(symbols)}
    return symbol_names, {name: identifier(name, "_buffer") for name in sorted(buffers)}


class CIndexSpelling(IndexSpelling):
    """Index arithmetic in C: `/` and `%` where the dividend is nonnegative, helpers that
    floor where it may not be (C truncates toward zero), helper min/max."""

    signed_floordiv = "quiltc_floordiv_index({a}, {b})"
    signed_mod = "quiltc_mod_index({a}, {b})"
    minimum = "quiltc_min_index({args})"
    maximum = "quiltc_max_index({args})"
    table = "{name}[{args}]"

    def __init__(self, names):
        self.names = names

    def symbol(self, sym):
        return self.names.get(sym.name, sym.name)
