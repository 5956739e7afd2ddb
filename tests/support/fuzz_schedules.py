"""Random schedules for fuzz programs: primitives applied at random to random loops and
tensors of the current kernel.

Most steps draw a plausible target (a loop's direct child for fuse and tile, a row
loop for pad_loop, an intermediate for compute_at) and some draw any loop at all, so
refusals are exercised too. A QuiltError from a step is a refusal at schedule time: the
schedule stays as it was and the next step runs. Any other exception is a finding, and
propagates.
"""

from sympy.core.function import AppliedUndef

from quiltc.ir import nodes as ir
from quiltc.ir.errors import QuiltError
from quiltc.schedule.nest import walk_paths

MAX_STEPS = 6
FACTORS = (1, 2, 3, 4, 5, 8)
MULTIPLES = (2, 3, 4, 8)
# Weights of the primitives a step draws.
WEIGHTS = {
    "split": 4, "tile": 2, "reorder": 2, "fuse": 3, "pad_loop": 2, "split_op": 2,
    "remap": 1, "parallel": 2, "vectorize": 2, "unroll": 1, "compute_at": 3,
    "compute_inline": 2, "cache_read": 1, "cache_write": 1, "pad_storage": 1,
    "decompose": 1,
}


def _loops(kernel):
    return [s for _, s in walk_paths(kernel.body) if isinstance(s, ir.For)]


def _pick(rng, items):
    return items[int(rng.integers(len(items)))] if items else None


def _nested_pairs(kernel):
    return [(loop, loop.body) for loop in _loops(kernel) if isinstance(loop.body, ir.For)]


def _loop(rng, kernel, prefer=None):
    """A loop variable: one of `prefer` (loops) mostly, any loop of the kernel sometimes."""
    loops = _loops(kernel)
    if prefer and rng.random() < 0.8:
        loops = prefer
    loop = _pick(rng, loops)
    return None if loop is None else loop.var


def _batch_loops(kernel):
    batches = {dim.batch for dim in kernel.ragged_dims}
    return [loop for loop in _loops(kernel) if loop.extent in batches]


def _ragged_loops(kernel):
    """Batch loops, row loops and fused flat loops (extents that read a table): where
    splitting and padding have gone wrong before."""
    return _batch_loops(kernel) + [loop for loop in _loops(kernel)
                                   if loop.extent.atoms(AppliedUndef)]


def _intermediates(kernel):
    return sorted({s.buffer.name for _, s in walk_paths(kernel.body) if isinstance(s, ir.Alloc)})


def _step(rng, sch, primitive, stages):
    """Apply one `primitive` to drawn targets; returns the call as text, or None when the
    kernel has no target for it."""
    kernel = sch.kernel
    pairs = _nested_pairs(kernel)
    if primitive == "split":
        prefer = _ragged_loops(kernel) if rng.random() < 0.5 else None
        loop, factor = _loop(rng, kernel, prefer), int(_pick(rng, FACTORS))
        guard = _pick(rng, [None, None, True, False])
        sch.split(loop, factor, guard=guard)
        return f"split({loop}, {factor}, guard={guard})"
    if primitive in ("tile", "fuse", "reorder"):
        pair = _pick(rng, pairs) if pairs and rng.random() < 0.85 else None
        if pair is None:
            outer, inner = _loop(rng, kernel), _loop(rng, kernel)
        else:
            outer, inner = pair[0].var, pair[1].var
        if outer is None:
            return None
        if primitive == "tile":
            x, y = int(_pick(rng, FACTORS)), int(_pick(rng, FACTORS))
            sch.tile(outer, inner, x, y)
            return f"tile({outer}, {inner}, {x}, {y})"
        if primitive == "fuse":
            sch.fuse(outer, inner)
            return f"fuse({outer}, {inner})"
        sch.reorder(inner, outer)
        return f"reorder({inner}, {outer})"
    if primitive in ("pad_loop", "split_op"):
        loop = _loop(rng, kernel, _ragged_loops(kernel))
        if primitive == "pad_loop":
            multiple = int(_pick(rng, MULTIPLES))
            sch.pad_loop(loop, multiple)
            return f"pad_loop({loop}, {multiple})"
        factor = int(_pick(rng, MULTIPLES))
        sch.split_op(loop, factor)
        return f"split_op({loop}, {factor})"
    if primitive == "remap":
        loop = _loop(rng, kernel, _batch_loops(kernel))
        sch.remap(loop)
        return f"remap({loop})"
    if primitive in ("parallel", "vectorize", "unroll"):
        loop = _loop(rng, kernel)
        getattr(sch, primitive)(loop)
        return f"{primitive}({loop})"
    if primitive in ("compute_at", "compute_inline", "cache_read", "cache_write",
                     "decompose", "pad_storage"):
        names = _intermediates(kernel) if rng.random() < 0.8 else stages
        tensor = _pick(rng, names)
        if tensor is None:
            return None
        if primitive == "compute_inline":
            sch.compute_inline(tensor)
            return f"compute_inline({tensor})"
        if primitive == "pad_storage":
            dim, multiple = int(rng.integers(1, 3)), int(_pick(rng, MULTIPLES))
            sch.pad_storage(tensor, dim, multiple)
            return f"pad_storage({tensor}, {dim}, {multiple})"
        loop = _loop(rng, kernel)
        if primitive in ("cache_read", "cache_write"):
            getattr(sch, primitive)(tensor, "local", at=loop)
        else:
            getattr(sch, primitive)(tensor, loop)
        return f"{primitive}({tensor}, {loop})"
    raise ValueError(f"unknown primitive {primitive!r}")


def random_schedule(rng, sch, stages):
    """Apply up to MAX_STEPS random primitives to `sch` (stages: the program's compute
    tensor names); returns (applied, refused) lists of the calls as text."""
    names = sorted(WEIGHTS)
    weights = [WEIGHTS[n] for n in names]
    total = sum(weights)
    applied, refused = [], []
    for _ in range(int(rng.integers(0, MAX_STEPS + 1))):
        primitive = str(rng.choice(names, p=[w / total for w in weights]))
        before = sch.kernel
        try:
            call = _step(rng, sch, primitive, stages)
        except QuiltError as refusal:
            if sch.kernel is not before:
                raise AssertionError(f"{primitive} refused but changed the kernel") from refusal
            refused.append(f"{primitive}: {str(refusal).splitlines()[0][:120]}")
            continue
        if call is not None:
            applied.append(call)
    return applied, refused
