"""Random schedules for fuzz programs: primitives applied at random to random loops and
tensors of the current kernel.

Most steps draw a plausible target (a loop's direct child for fuse and tile, a row
loop for pad_loop, an intermediate for compute_at, a fused ragged loop for pad_bulk, a
loop around every use for fold_storage) and some draw any loop at all, so refusals are
exercised too. A QuiltError from a step is a refusal at schedule time: the
schedule stays as it was and the next step runs. Any other exception is a finding, and
propagates.
"""

from sympy.core.function import AppliedUndef

from quiltc.ir import nodes as ir
from quiltc.ir.errors import QuiltError
from quiltc.ir.walk import find_all
from quiltc.schedule.nest import walk_paths

MAX_STEPS = 6
FACTORS = (1, 2, 3, 4, 5, 8)
MULTIPLES = (2, 3, 4, 8)
# Weights of the primitives a step draws.
WEIGHTS = {
    "split": 4, "tile": 2, "reorder": 2, "fuse": 3, "pad_loop": 2, "split_op": 2,
    "remap": 1, "parallel": 2, "vectorize": 2, "unroll": 1, "compute_at": 3,
    "compute_inline": 2, "cache_read": 1, "cache_write": 1, "pad_storage": 1,
    "decompose": 1, "peel": 1, "distribute": 1, "pad_bulk": 1, "hfuse": 1, "pad_local": 1,
    "fold_storage": 1, "share_storage": 1, "online_softmax": 1, "stream": 1,
}
# The primitives the fuzzer leaves out: GPU thread mapping, and row pointers, which only
# the Cortex-M target renders.
NOT_DRAWN = {"bind", "cross_thread_reduce", "insert_barriers", "store_row_pointers"}
# Primitives that act only on what another makes (a local tile, a tensor computed inside a
# loop, a fused ragged loop): half the time that other one is tried just before.
PREPARED_BY = {"pad_local": "cache_write", "fold_storage": "compute_at", "pad_bulk": "fuse",
               "stream": "vectorize"}


def _loops(kernel):
    return [s for _, s in walk_paths(kernel.body) if isinstance(s, ir.For)]


def _pick(rng, items):
    return items[int(rng.integers(len(items)))] if items else None


def _nested_pairs(kernel):
    return [(loop, loop.body) for loop in _loops(kernel) if isinstance(loop.body, ir.For)]


def _sibling_pairs(kernel):
    """Consecutive loops of one sequence: the nests hfuse may join."""
    pairs = []
    for _, stmt in walk_paths(kernel.body):
        if isinstance(stmt, ir.Seq):
            pairs += [(a, b) for a, b in zip(stmt.stmts, stmt.stmts[1:])
                      if isinstance(a, ir.For) and isinstance(b, ir.For)]
    return pairs


def _sequence_loops(kernel):
    """Loops whose body runs several statements: the loops distribute may split."""
    return [loop for loop in _loops(kernel) if isinstance(loop.body, ir.Seq)]


def _loop(rng, kernel, prefer=None):
    """A loop variable: one of `prefer` (loops) mostly, any loop of the kernel sometimes."""
    loops = _loops(kernel)
    if prefer and rng.random() < 0.8:
        loops = prefer
    loop = _pick(rng, loops)
    return None if loop is None else loop.var


def _simd_loops(kernel):
    """Loops marked vector: what stream marks."""
    return [loop for loop in _loops(kernel) if loop.kind == "vector"]


def _batch_loops(kernel):
    batches = {dim.batch for dim in kernel.ragged_dims}
    return [loop for loop in _loops(kernel) if loop.extent in batches]


def _ragged_loops(kernel):
    """Batch loops, row loops and fused flat loops (extents that read a table): where
    splitting and padding have gone wrong before."""
    return _batch_loops(kernel) + [loop for loop in _loops(kernel)
                                   if loop.extent.atoms(AppliedUndef)]


def _flat_loops(kernel):
    """Loops over every position of a ragged batch (a batch loop fused with its rows):
    their extent is the last row offset, `L_off1(B)`."""
    return [loop for loop in _loops(kernel) if any(
        read.func.__name__.endswith("_off1") for read in loop.extent.atoms(AppliedUndef))]


def _enclosing_loops(kernel, name):
    """Loops inside which every access of buffer `name` lies: where fold_storage may fold it."""
    def accesses(node):
        return len(find_all(node, lambda n: isinstance(n, (ir.Load, ir.Store, ir.Reduce))
                            and n.buffer.name == name))
    total = accesses(kernel.body)
    return [loop for loop in _loops(kernel) if total and accesses(loop) == total]


def _local_tiles(kernel):
    """Buffers in local storage (cache_write's and cache_read's tiles): what pad_local pads."""
    return sorted({s.buffer.name for _, s in walk_paths(kernel.body)
                   if isinstance(s, ir.Alloc) and s.scope == "local"})


def _intermediates(kernel):
    return sorted({s.buffer.name for _, s in walk_paths(kernel.body) if isinstance(s, ir.Alloc)})


def _split(rng, sch, primitive, stages):
    kernel = sch.kernel
    prefer = _ragged_loops(kernel) if rng.random() < 0.5 else None
    loop, factor = _loop(rng, kernel, prefer), int(_pick(rng, FACTORS))
    guard = _pick(rng, [None, None, True, False])
    sch.split(loop, factor, guard=guard)
    return f"split({loop}, {factor}, guard={guard})"


def _loop_pair(rng, sch, primitive, stages):
    """tile, fuse and reorder: mostly a loop and its direct child, sometimes any two."""
    kernel = sch.kernel
    pairs = _nested_pairs(kernel)
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


def _ragged_multiple(rng, sch, primitive, stages):
    """pad_loop and split_op: a ragged loop and a multiple."""
    loop = _loop(rng, sch.kernel, _ragged_loops(sch.kernel))
    multiple = int(_pick(rng, MULTIPLES))
    getattr(sch, primitive)(loop, multiple)
    return f"{primitive}({loop}, {multiple})"


# The loops each single-loop primitive prefers (any loop for the others).
_PREFERRED_LOOPS = {"distribute": _sequence_loops, "pad_bulk": _flat_loops,
                    "peel": _ragged_loops, "remap": _batch_loops, "stream": _simd_loops}


def _one_loop(rng, sch, primitive, stages):
    """Primitives of one loop (pad_bulk's with a multiple)."""
    kernel = sch.kernel
    prefer = _PREFERRED_LOOPS.get(primitive)
    loop = _loop(rng, kernel, prefer(kernel) if prefer else None)
    if primitive == "pad_bulk":
        multiple = int(_pick(rng, MULTIPLES))
        sch.pad_bulk(loop, multiple)
        return f"pad_bulk({loop}, {multiple})"
    getattr(sch, primitive)(loop)
    return f"{primitive}({loop})"


def _hfuse(rng, sch, primitive, stages):
    pair = _pick(rng, _sibling_pairs(sch.kernel))
    if pair is None:
        return None
    sch.hfuse(pair[0].var, pair[1].var)
    return f"hfuse({pair[0].var}, {pair[1].var})"


def _tensor(rng, sch, primitive, stages):
    """Primitives of a tensor: mostly an intermediate (a local tile for pad_local)."""
    kernel = sch.kernel
    names = _intermediates(kernel) if rng.random() < 0.8 else stages
    if primitive == "pad_local" and _local_tiles(kernel) and rng.random() < 0.8:
        names = _local_tiles(kernel)
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
    if primitive == "pad_local":
        dim = _pick(rng, [None, None, 0, 1])
        sch.pad_local(tensor, dim=dim)
        return f"pad_local({tensor}, dim={dim})"
    if primitive == "share_storage":
        output = _pick(rng, stages)
        sch.share_storage(tensor, output)
        return f"share_storage({tensor}, {output})"
    loop = _loop(rng, kernel, _enclosing_loops(kernel, tensor)
                 if primitive == "fold_storage" else None)
    if primitive in ("cache_read", "cache_write"):
        getattr(sch, primitive)(tensor, "local", at=loop)
    else:
        getattr(sch, primitive)(tensor, loop)
    return f"{primitive}({tensor}, {loop})"


# How each drawn primitive picks its targets.
_STEPS = {
    "split": _split, "tile": _loop_pair, "fuse": _loop_pair, "reorder": _loop_pair,
    "pad_loop": _ragged_multiple, "split_op": _ragged_multiple, "hfuse": _hfuse,
    **dict.fromkeys(("peel", "distribute", "pad_bulk", "remap", "parallel", "vectorize",
                     "unroll", "stream"), _one_loop),
    **dict.fromkeys(("compute_at", "compute_inline", "cache_read", "cache_write",
                     "decompose", "pad_storage", "pad_local", "fold_storage", "share_storage",
                     "online_softmax"), _tensor),
}


def _step(rng, sch, primitive, stages):
    """Apply one `primitive` to drawn targets; returns the call as text, or None when the
    kernel has no target for it."""
    if primitive not in _STEPS:
        raise ValueError(f"unknown primitive {primitive!r}")
    return _STEPS[primitive](rng, sch, primitive, stages)


def random_schedule(rng, sch, stages):
    """Apply up to MAX_STEPS random primitives to `sch` (stages: the program's compute
    tensor names); returns (applied, refused) lists of the calls as text."""
    names = sorted(WEIGHTS)
    weights = [WEIGHTS[n] for n in names]
    total = sum(weights)
    applied, refused = [], []
    for _ in range(int(rng.integers(0, MAX_STEPS + 1))):
        primitive = str(rng.choice(names, p=[w / total for w in weights]))
        if primitive in PREPARED_BY and rng.random() < 0.5:
            _attempt(rng, sch, PREPARED_BY[primitive], stages, applied, refused)
        _attempt(rng, sch, primitive, stages, applied, refused)
    return applied, refused


def _attempt(rng, sch, primitive, stages, applied, refused):
    """One step of `primitive`, its call text added to `applied` or its refusal to
    `refused`; a refusal must leave the schedule as it was."""
    before = sch.kernel
    try:
        call = _step(rng, sch, primitive, stages)
    except QuiltError as refusal:
        if sch.kernel is not before:
            raise AssertionError(f"{primitive} refused but changed the kernel") from refusal
        refused.append(f"{primitive}: {str(refusal).splitlines()[0][:120]}")
        return
    if call is not None:
        applied.append(call)
