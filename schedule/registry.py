"""The table of schedule primitives and passes. Each entry names the pure function, its
parameters (what each one is, which ones a tuner may vary) and what it returns; the
`Schedule` methods, the trace's printing, replay and JSON form all come from it.

    Primitive("split", split.split, "Split `loop` into an outer and an inner loop ...",
              (loop("loop"), integer("factor", decision=True), flag("guard", keyword=True)),
              returns=("outer", "inner"))

    sch.split("i", 8)           # the method made from it: (i_o, i_i)
    sch.trace.as_python()       # i_o, i_i = sch.split('i', 8)

A parameter's kind says how the schedule takes it and the trace stores it: a loop (a
handle from `sch.loops` or an earlier step, or its name; stored by name), several loops,
a tensor (a tensor or its name; stored by name), an integer, one of a few strings, or a
flag (True, False or None). A *decision* is a parameter a tuner may sample (split factors,
tile sizes, thread counts, row orders): `trace.with_decision` changes one. A keyword
parameter prints as `name=value` in the trace, and not at all while it is None. A pass
(`insert_barriers`) is a function `kernel -> kernel` with no parameters and no results.
"""

import inspect
from dataclasses import dataclass

import sympy

from ..ir import nodes as ir
from .passes import barriers
from .primitives import (
    annotate,
    bind,
    cache,
    compute_at,
    compute_inline,
    cross_thread_reduce,
    decompose,
    distribute,
    fold_storage,
    fuse,
    hfuse,
    online_softmax,
    pad_bulk,
    pad_local,
    pad_loop,
    pad_storage,
    peel,
    remap,
    reorder,
    row_pointers,
    share_storage,
    split,
    split_op,
    stream,
    tile,
)

KINDS = {
    "loop": "a loop (a handle from sch.loops or an earlier step, or its name)",
    "loops": "loops (handles or names), outermost first",
    "tensor": "a tensor (or its name)",
    "int": "an integer",
    "choice": "one of",
    "flag": "True, False or None",
}
_REQUIRED = inspect.Parameter.empty


@dataclass(frozen=True)
class Param:
    """One parameter of a primitive: its name, kind (a key of KINDS) and default, whether
    it is a decision a tuner may vary, whether the trace prints it as a keyword, and for
    a choice the strings it may take."""

    name: str
    kind: str
    default: object = _REQUIRED
    decision: bool = False
    keyword: bool = False
    choices: tuple = ()

    def recorded(self, value):
        """`value` as the trace stores it (and the primitive receives it): loops and
        tensors by name, sympy integers as ints, anything else as given."""
        if self.kind == "loops":
            return tuple(_loop_name(v) for v in value)
        if self.kind == "loop":
            return _loop_name(value)
        if self.kind == "tensor":
            return tensor_name(value)
        if isinstance(value, sympy.Integer):
            return int(value)
        return value

    def accepts(self, value):
        """Whether `value` (read back from JSON) has this parameter's kind."""
        if value is None and self.default is None:
            return True
        if self.kind == "loops":
            return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        if self.kind == "int":
            return isinstance(value, int) and not isinstance(value, bool)
        if self.kind == "flag":
            return value is None or isinstance(value, bool)
        if self.kind == "choice":
            return value in self.choices
        return isinstance(value, str)

    @property
    def required(self):
        return self.default is _REQUIRED

    def kind_text(self):
        """What the parameter takes, in words."""
        if self.choices:
            return f"{KINDS[self.kind]} {', '.join(map(repr, self.choices))}"
        return KINDS[self.kind]

    def describe(self):
        """One line for the method's docstring."""
        default = "" if self.required else f" (default {self.default!r})"
        decision = "; a decision a tuner may vary" if self.decision else ""
        return f"{self.name}: {self.kind_text()}{default}{decision}"


def _loop_name(value):
    return value.name if isinstance(value, sympy.Symbol) else value


def tensor_name(value):
    """The name of a tensor (or buffer) given as itself or by name."""
    return value if isinstance(value, str) else getattr(value, "name", value)


# One constructor per kind, so that the table below reads as data.
def loop(name, **options):
    return Param(name, "loop", **options)


def loops(name):
    return Param(name, "loops")


def tensor(name):
    return Param(name, "tensor")


def integer(name, **options):
    return Param(name, "int", **options)


def choice(name, choices, **options):
    return Param(name, "choice", choices=tuple(choices), **options)


def flag(name, **options):
    return Param(name, "flag", default=None, **options)


@dataclass(frozen=True)
class Primitive:
    """One entry of the table: `function(kernel, *arguments) -> (kernel, results)` (a
    pass: `function(kernel) -> kernel`), its one-line summary, its parameters in call
    order, and the names of what it returns (loops, or for a cache the new tensor's
    name): the method returns nothing, the one result, or a tuple of them; with
    `returns_each`, a tuple of however many loops the step made."""

    name: str
    function: object
    summary: str
    params: tuple = ()
    returns: tuple = ()
    is_pass: bool = False
    returns_each: bool = False

    @property
    def decisions(self):
        """Names of the parameters a tuner may vary."""
        return tuple(p.name for p in self.params if p.decision)

    def param(self, name):
        return next(p for p in self.params if p.name == name)

    def call_arguments(self, arguments):
        """(positional, keyword) arguments of the function for `arguments` (recorded values
        by parameter name): loops spread out, keyword parameters passed as keywords."""
        positional, keywords = [], {}
        for p in self.params:
            value = arguments[p.name]
            if p.kind == "loops":
                positional.extend(value)
            elif p.keyword:
                keywords[p.name] = value
            else:
                positional.append(value)
        return tuple(positional), keywords

    def run(self, kernel, *args, **kwargs):
        """(new kernel, results) of the function on `kernel`; a pass returns no results."""
        if self.is_pass:
            return self.function(kernel, *args, **kwargs), []
        return self.function(kernel, *args, **kwargs)

    def returned(self, results):
        """What the Schedule method returns: nothing, the one result, or a tuple."""
        if self.returns_each:
            return tuple(results)
        if not self.returns:
            return None
        return results[0] if len(self.returns) == 1 else tuple(results)

    def signature(self):
        """The Schedule method's signature: self, then the parameters."""
        def as_parameter(p):
            if p.kind == "loops":
                return inspect.Parameter(p.name, inspect.Parameter.VAR_POSITIONAL)
            return inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                     default=p.default)
        self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return inspect.Signature([self_parameter] + [as_parameter(p) for p in self.params])

    def doc(self):
        """The Schedule method's docstring: summary, parameters, returns, and the
        function's own docstring."""
        lines = [self.summary, ""]
        lines += [f"    {p.describe()}" for p in self.params] or ["    (no arguments)"]
        if self.returns:
            shape = self.returns[0] if len(self.returns) == 1 else f"({', '.join(self.returns)})"
            lines += ["", f"Returns {shape}."]
        where = f"{self.function.__module__}.{self.function.__name__}"
        lines += ["", f"Recorded in the trace; the {'pass' if self.is_pass else 'primitive'} "
                  f"is {where}:", "", inspect.getdoc(self.function)]
        return "\n".join(lines)


def _entries(*entries):
    return {entry.name: entry for entry in entries}


PRIMITIVES = _entries(
    Primitive("split", split.split,
              "Split `loop` into an outer and an inner loop of `factor` iterations (guarded "
              "where `factor` may not divide the extent).",
              (loop("loop"), integer("factor", decision=True), flag("guard", keyword=True)),
              returns=("outer", "inner")),
    Primitive("fuse", fuse.fuse, "Fuse two directly nested loops into one loop.",
              (loop("outer"), loop("inner")), returns=("fused",)),
    Primitive("reorder", reorder.reorder,
              "Reorder perfectly nested loops into the given order (outermost first).",
              (loops("loops"),)),
    Primitive("tile", tile.tile,
              "Split x and y and reorder to (x_outer, y_outer, x_inner, y_inner).",
              (loop("x"), loop("y"), integer("x_factor", decision=True),
               integer("y_factor", decision=True)),
              returns=("x_outer", "y_outer", "x_inner", "y_inner")),
    Primitive("unroll", annotate.unroll, "Mark `loop` for full unrolling.", (loop("loop"),)),
    Primitive("vectorize", annotate.vectorize,
              "Mark `loop` as a SIMD loop (no carried dependence allowed).", (loop("loop"),)),
    Primitive("parallel", annotate.parallel, "Run the iterations of `loop` on parallel threads.",
              (loop("loop"),)),
    Primitive("stream", stream.stream,
              "Write the consecutive output elements the SIMD loop `loop` stores with "
              "streaming stores, past the caches.", (loop("loop"),)),
    Primitive("bind", bind.bind, "Bind `loop` to a GPU axis such as \"blockIdx.x\".",
              (loop("loop"), choice("axis", ir.GPU_AXES))),
    Primitive("compute_at", compute_at.compute_at,
              "Compute `tensor` inside `loop`, only the region that iteration reads.",
              (tensor("tensor"), loop("loop"))),
    Primitive("compute_inline", compute_inline.compute_inline,
              "Substitute the elementwise `tensor` into its readers and drop its buffer.",
              (tensor("tensor"),)),
    Primitive("cache_read", cache.cache_read,
              "Copy the region of `tensor` read inside loop `at` into a `scope` buffer first.",
              (tensor("tensor"), choice("scope", cache.CACHE_SCOPES), loop("at", keyword=True)),
              returns=("cache",)),
    Primitive("cache_write", cache.cache_write,
              "Accumulate `tensor`'s region written inside `at` in a `scope` buffer, then copy "
              "it out.",
              (tensor("tensor"), choice("scope", cache.CACHE_SCOPES), loop("at", keyword=True)),
              returns=("cache",)),
    Primitive("decompose", decompose.decompose,
              "Move the initialisation of reduction `tensor` into its own nest before `loop`.",
              (tensor("tensor"), loop("loop"))),
    Primitive("distribute", distribute.distribute,
              "Split `loop` into one loop per statement of its body (fission), when no two "
              "statements meet across iterations.",
              (loop("loop"),), returns=("loops",), returns_each=True),
    Primitive("online_softmax", online_softmax.online_softmax,
              "Merge the sums over exp(c * (x - max)) that follow max reduction `tensor` into "
              "its `loop`, rescaling them as the running max grows.",
              (tensor("tensor"), loop("loop"))),
    Primitive("peel", peel.peel,
              "Run the last iteration of `loop` apart (fresh names), so the others run "
              "whole tiles without the guards a ragged tail needs.",
              (loop("loop"),), returns=("loop",)),
    Primitive("pad_loop", pad_loop.pad_loop,
              "Round `loop`'s extent up to a multiple, guarding what would run past it.",
              (loop("loop"), integer("multiple", decision=True)), returns=("loop",)),
    Primitive("pad_bulk", pad_bulk.pad_bulk,
              "Round fused ragged loop `loop` up to a multiple of flat positions, padding "
              "the intermediates' storage after their last row.",
              (loop("loop"), integer("multiple", decision=True)), returns=("loop",)),
    Primitive("pad_local", pad_local.pad_local,
              "Compute local tile `tensor` in full at the edge: drop the guards on its "
              "stores, clamping their reads; its copy-out keeps its guard. With `dim`, only "
              "the guards on that dim of the tile go.",
              (tensor("tensor"), integer("dim", default=None, keyword=True))),
    Primitive("pad_storage", pad_storage.pad_storage,
              "Pad the rows of intermediate `tensor` along `dim` to a multiple of `multiple`.",
              (tensor("tensor"), integer("dim"), integer("multiple", decision=True))),
    Primitive("fold_storage", fold_storage.fold_storage,
              "Shrink intermediate `tensor` to the slice one iteration of `loop` uses (for "
              "memory-starved targets, after compute_at).",
              (tensor("tensor"), loop("loop"))),
    Primitive("share_storage", share_storage.share_storage,
              "Keep intermediate `tensor`'s elements in the memory of `output`, whose one "
              "store reads each of them last (a softmax's exponentials in its output).",
              (tensor("tensor"), tensor("output"))),
    Primitive("store_row_pointers", row_pointers.store_row_pointers,
              "Let intermediate `tensor`, read only as rows of `table`, hold the rows' "
              "addresses where the target can (mcu): one load a row pointer.",
              (tensor("tensor"), tensor("table"))),
    Primitive("remap", remap.remap,
              "Visit the rows of ragged batch loop `loop` in `order` (longest first).",
              (loop("loop"), choice("order", remap.ORDERS, default="length-desc",
                                    decision=True)),
              returns=("loop",)),
    Primitive("hfuse", hfuse.hfuse,
              "Run two consecutive independent loop nests in one parallel loop.",
              (loop("nest_a"), loop("nest_b")), returns=("fused",)),
    Primitive("split_op", split_op.split_op,
              "Split `loop` into guard-free whole tiles of `factor` and a remainder loop.",
              (loop("loop"), integer("factor", decision=True)),
              returns=("tile", "element", "remainder")),
    Primitive("cross_thread_reduce", cross_thread_reduce.cross_thread_reduce,
              "Share the reduction into `tensor` over `loop` among `threads` threads of a "
              "block, combined by a tree in shared memory.",
              (tensor("tensor"), loop("loop"), integer("threads", decision=True)),
              returns=("thread", "stride")),
    Primitive("insert_barriers", barriers.insert_barriers,
              "Put a barrier before every statement that would race on shared memory.",
              is_pass=True),
)
