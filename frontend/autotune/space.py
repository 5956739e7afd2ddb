"""The shape-generic search space: register-blocked micro-kernels whose tile sizes come
from the host (vector width, vector registers, cache sizes), never from the shape.

A candidate is a dict of decisions; `sketch` turns it into a schedule of the workload's
contraction, and so into a trace whose JSON any worker replays:

    rows x cols        the register block of the output (cols a multiple of the lanes; as
                       many accumulators as the ISA leaves free for them)
    panel              column blocks per panel: the panel of the right operand (K x
                       panel*cols floats) stays in L2 while every row block passes over it
    order              "panels-outer" (each panel's row blocks, then its column blocks),
                       "rows-outer" (row blocks outside the column panels) or
                       "blocks-outer" (each column block's row blocks: the block's
                       K x cols slice of the right operand is what stays in cache)
    parallel           the loop OpenMP splits: "rows" (row blocks) or "panels"
    pack               whether the right operand's panel (its column block's slice, for
                       "blocks-outer") is first copied into a local buffer: rows of the
                       panel's width instead of the whole matrix's, fewer pages per k
                       step; pays when many row blocks share the copy
    tail               how an edge tile that sticks out of a dynamic size is computed:
                       "guard" (a predicate on every multiply-add) or "local" (local
                       padding: the whole tile in registers on clamped rows, a guarded
                       write-back; schedule/primitives/pad_local.py)

The sizes DietCode draws from the hardware are the register block (accumulators) and the
panel (L2); the dynamic size only enters the cost model (padding efficiency, balance).
"""

import functools
import itertools
import random
from dataclasses import dataclass

import sympy

from ..driver.schedule import Schedule
from ..ir.errors import QuiltError
from ..runtime_c.host import cache_sizes, isa_for

ORDERS = ("panels-outer", "rows-outer", "blocks-outer")
PARALLEL = ("rows", "panels")
TAILS = ("guard", "local")
PACKS = (False, True)
PANELS = (1, 2, 4, 8, 16)
# (order, parallel, pack, tail): every arrangement a dense contraction's sketch can make;
# a workload whose sketch makes fewer names its own (Workload.arrangements).
EVERY_ARRANGEMENT = tuple(itertools.product(ORDERS, PARALLEL, PACKS, TAILS))


@dataclass(frozen=True)
class HostLimits:
    """What the space is drawn from: float32 lanes, the vector registers a block may fill
    with accumulators, and the L2 size in bytes."""

    lanes: int
    accumulators: int
    l2_bytes: int


@functools.cache
def host_limits(lanes=None):
    """The limits of this host (or of the ISA with `lanes` float32 lanes)."""
    isa = isa_for(lanes)
    # Two of AVX-512's 32 registers hold a broadcast and a loaded vector; the rest may
    # accumulate (BLIS's skx sgemm kernel keeps 24 accumulators of 32).
    accumulators = 24 if isa.vector_registers >= 32 else 12
    return HostLimits(isa.float32_lanes, accumulators, cache_sizes().get("L2", 1 << 20))


def blocks(limits):
    """Every (rows, cols) register block the host allows: cols 1-4 vectors, rows x vectors
    accumulators within the budget and at least half of it (fewer independent
    accumulators than an FMA's latency times its issue rate leave the FMA units idle:
    4 cycles x 2 per cycle on current x86 cores), at least two rows so a broadcast feeds
    two FMAs."""
    found = []
    for vectors in (1, 2, 3, 4):
        for rows in range(2, 17):
            if limits.accumulators <= 2 * rows * vectors <= 2 * limits.accumulators:
                found.append((rows, vectors * limits.lanes))
    return found


def space(workload, limits=None):
    """Every candidate (a decisions dict) of `workload`'s space on this host."""
    return [dict(candidate) for candidate in _space(workload.row_extent, workload.column_extent,
                                                    workload.reduction_extent,
                                                    limits or host_limits(),
                                                    workload.arrangements)]


@functools.cache
def _space(row_extent, width, depth, limits, arrangements=EVERY_ARRANGEMENT):
    """The space as tuples of (decision, value) pairs; searches draw from it hundreds of
    times, so it is enumerated once per workload shape, host and set of arrangements."""
    tails = {rows: _has_row_tail(row_extent, rows) for rows, _ in blocks(limits)}
    found = []
    for (rows, cols), panel, (order, parallel, pack, tail) in itertools.product(
            blocks(limits), PANELS, arrangements):
        # Without a partial row block there is no guard for local padding to remove.
        if width % (cols * panel) or (tail == "local" and not tails[rows]):
            continue
        # Inside the row loop the panel would be copied again for every row block.
        if pack and order == "rows-outer":
            continue
        # The right operand's panel must leave half the L2 to the rows passing over it.
        if depth * cols * panel * 4 > limits.l2_bytes // 2 and panel > 1:
            continue
        found.append((("rows", rows), ("cols", cols), ("panel", panel), ("order", order),
                      ("parallel", parallel), ("pack", pack), ("tail", tail)))
    return tuple(found)


def sample(workload, count, rng, limits=None):
    """`count` distinct candidates drawn uniformly from the space (all when fewer)."""
    candidates = space(workload, limits)
    return candidates if len(candidates) <= count else rng.sample(candidates, count)


def mutate(decisions, workload, rng, limits=None):
    """A neighbour of `decisions`: one of its choices (the block, the panel, the order,
    the parallel loop, packing or the tail) redrawn among the values the space allows with the
    others kept."""
    keys = {"block": ("rows", "cols"), "panel": ("panel",), "order": ("order",),
            "parallel": ("parallel",), "pack": ("pack",), "tail": ("tail",)}
    candidates = space(workload, limits)
    for choice in rng.sample(sorted(keys), len(keys)):
        kept = [key for key in decisions if key not in keys[choice]]
        neighbours = [c for c in candidates if c != decisions
                      and all(c[key] == decisions[key] for key in kept)]
        if neighbours:
            return rng.choice(neighbours)
    return rng.choice(candidates)


def sketch(workload, decisions, lanes=None):
    """The schedule `decisions` make of `workload`'s program; ScheduleError when the
    program refuses them."""
    lanes = lanes or host_limits().lanes
    rows, cols, panel = decisions["rows"], decisions["cols"], decisions["panel"]
    sch = Schedule(workload.kernel)
    output = workload.output
    for stage in workload.inlined:
        sch.compute_inline(stage)
    i, j, k = sch.loops(output)
    i_outer, i_inner = sch.split(i, rows)
    j_outer, j_inner = sch.split(j, cols)
    j_panel, j_block = sch.split(j_outer, panel)
    order = decisions["order"]
    if order == "panels-outer":
        sch.reorder(j_panel, i_outer, j_block, k, i_inner, j_inner)
    elif order == "rows-outer":
        sch.reorder(i_outer, j_panel, j_block, k, i_inner, j_inner)
    else:
        sch.reorder(j_panel, j_block, i_outer, k, i_inner, j_inner)
    local = sch.cache_write(output, "local", at=i_outer if order == "blocks-outer" else j_block)
    sch.decompose(local, k)
    vectors, vector_lanes = sch.split(j_inner, lanes)
    sch.unroll(i_inner)
    sch.unroll(vectors)
    sch.vectorize(vector_lanes)
    if decisions["pack"]:
        sch.cache_read(workload.right, "local",
                       at=j_block if order == "blocks-outer" else j_panel)
    if decisions["tail"] == "local":
        sch.pad_local(local)
    sch.parallel(i_outer if decisions["parallel"] == "rows" else j_panel)
    return sch


def _has_row_tail(row_extent, rows):
    """Whether some size in the range leaves a partial row block (else there is no guard
    for local padding to remove)."""
    return not sympy.simplify(sympy.sympify(row_extent) % rows) == 0


def describe(decisions):
    """One line naming a candidate: `8x32 p4 panels-outer par=rows packed tail=local`."""
    return (f"{decisions['rows']}x{decisions['cols']} p{decisions['panel']} "
            f"{decisions['order']} par={decisions['parallel']}"
            f"{' packed' if decisions['pack'] else ''} tail={decisions['tail']}")


def try_sketch(workload, decisions):
    """The workload's sketch of `decisions` (Workload.sketch), or None when the program
    refuses them."""
    try:
        return workload.sketch(decisions)
    except QuiltError:  # a ScheduleError, or a graph partition's FusionRefused
        return None


def seeded(seed):
    """The random generator every search draws from, so a resumed search redraws the same
    candidates and finds them measured in the database."""
    return random.Random(seed)
