"""`Schedule`: the current kernel plus the trace of primitives that produced it.

Each method applies one pure primitive (`kernel -> kernel`, in `primitives/`), tidies
the indices, records the call in the trace, and returns the new loop handles. Loops are
named by sympy symbols and may be passed by name: `sch.split("i", 8)`.
"""

from ..ir.errors import ScheduleError, VerifyError
from ..ir.printer import render
from .nest import writer_paths, loops_on_path
from .primitives import annotate, bind, cache, compute_at, compute_inline, decompose
from .primitives import fuse, hfuse, pad_loop, pad_storage, remap, reorder, split, split_op
from .primitives import fold_storage, tile
from .simplify import tidy
from .trace import Step, Trace


def _name(tensor):
    return tensor if isinstance(tensor, str) else getattr(tensor, "name", tensor)


class Schedule:
    """A kernel being scheduled. `print(sch)` shows the current IR; `sch.trace` the steps."""

    def __init__(self, kernel):
        self.kernel = tidy(kernel)
        self.original = self.kernel
        self.trace = Trace()

    def __repr__(self):
        return render(self.kernel)

    def _apply(self, primitive, fn, args, kwargs):
        kernel, results = fn(self.kernel, *args, **kwargs)
        try:
            self.kernel = tidy(kernel)
        except VerifyError as failure:
            # A primitive checks its own preconditions, but the verifier may still fail to
            # follow the bounds it produced (a remainder of a remainder): refuse the step.
            reason = str(failure).splitlines()[0]
            raise ScheduleError(
                primitive, f"apply {primitive}{args!r}",
                f"the verifier cannot prove the result stays in bounds ({reason})",
                "The schedule is left as it was; transform another loop or use another factor.",
            ) from failure
        self.trace.append(Step(primitive, args, tuple(sorted(kwargs.items())), tuple(results)))
        return results

    def loops(self, tensor):
        """The loops around the (last) statement that writes `tensor`, outermost first."""
        paths = writer_paths(self.kernel, _name(tensor))
        if not paths:
            raise ScheduleError(
                "loops", f"list the loops of {_name(tensor)!r}",
                "no statement in the kernel writes it",
                "Pass a compute tensor of this schedule (placeholders have no loops).",
            )
        return [loop.var for loop in loops_on_path(self.kernel.body, paths[-1])]

    def split(self, loop, factor, guard=None):
        """Split `loop` into (outer, inner) with inner extent `factor`; see primitives.split."""
        return tuple(self._apply("split", split.split, (loop, factor), {"guard": guard}))

    def fuse(self, outer, inner):
        """Fuse two directly nested loops into one; returns the fused loop."""
        return self._apply("fuse", fuse.fuse, (outer, inner), {})[0]

    def reorder(self, *loops):
        """Reorder perfectly nested loops into the given order (outermost first)."""
        self._apply("reorder", reorder.reorder, tuple(loops), {})

    def tile(self, x, y, x_factor, y_factor):
        """Split x and y and reorder to (x_outer, y_outer, x_inner, y_inner)."""
        return tuple(self._apply("tile", tile.tile, (x, y, x_factor, y_factor), {}))

    def unroll(self, loop):
        """Mark `loop` for full unrolling."""
        self._apply("unroll", annotate.unroll, (loop,), {})

    def vectorize(self, loop):
        """Mark `loop` as a SIMD loop (no carried dependence allowed)."""
        self._apply("vectorize", annotate.vectorize, (loop,), {})

    def parallel(self, loop):
        """Run the iterations of `loop` on parallel threads."""
        self._apply("parallel", annotate.parallel, (loop,), {})

    def bind(self, loop, axis):
        """Bind `loop` to a GPU axis such as "blockIdx.x" or "threadIdx.y"."""
        self._apply("bind", bind.bind, (loop, axis), {})

    def compute_at(self, tensor, loop):
        """Compute `tensor` inside `loop`, only the region that iteration reads."""
        self._apply("compute_at", compute_at.compute_at, (_name(tensor), loop), {})

    def compute_inline(self, tensor):
        """Substitute the elementwise `tensor` into its readers and drop its buffer."""
        self._apply("compute_inline", compute_inline.compute_inline, (_name(tensor),), {})

    def cache_read(self, tensor, scope, at):
        """Copy the region of `tensor` read inside loop `at` into a `scope` buffer first."""
        return self._apply("cache_read", cache.cache_read, (_name(tensor), scope), {"at": at})[0]

    def cache_write(self, tensor, scope, at):
        """Accumulate `tensor`'s region written inside `at` in a `scope` buffer, then copy out."""
        return self._apply("cache_write", cache.cache_write, (_name(tensor), scope), {"at": at})[0]

    def decompose(self, tensor, loop):
        """Move the initialisation of reduction `tensor` into its own nest before `loop`."""
        self._apply("decompose", decompose.decompose, (_name(tensor), loop), {})

    def pad_loop(self, loop, multiple):
        """Round `loop`'s extent up to a multiple, guarding what would run past it."""
        return self._apply("pad_loop", pad_loop.pad_loop, (loop, multiple), {})[0]

    def pad_storage(self, tensor, dim, multiple):
        """Pad the rows of intermediate `tensor` along `dim` to a multiple of `multiple`."""
        self._apply("pad_storage", pad_storage.pad_storage, (_name(tensor), dim, multiple), {})

    def fold_storage(self, tensor, loop):
        """Shrink intermediate `tensor` to the slice one iteration of `loop` uses (for
        memory-starved targets, after compute_at)."""
        self._apply("fold_storage", fold_storage.fold_storage, (_name(tensor), loop), {})

    def remap(self, loop, order="length-desc"):
        """Visit the rows of ragged batch loop `loop` in `order` (longest first)."""
        return self._apply("remap", remap.remap, (loop, order), {})[0]

    def hfuse(self, nest_a, nest_b):
        """Run two consecutive independent loop nests in one parallel loop."""
        return self._apply("hfuse", hfuse.hfuse, (nest_a, nest_b), {})[0]

    def split_op(self, loop, factor):
        """Split `loop` into guard-free whole tiles of `factor` and a remainder loop;
        returns (tile loop, element loop, remainder loop)."""
        return tuple(self._apply("split_op", split_op.split_op, (loop, factor), {}))

    def copy(self):
        """An independent copy (same kernel, same trace so far)."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.trace = Trace(self.trace.steps)
        return clone
