"""Fusion as schedule primitives: each partition's program becomes one scheduled kernel.

    layer I    compute_inline of every cheap intermediate (it lives in a register); a
               matmul's epilogue runs on the register block before it is stored; a small
               value broadcast to every row (an attention mask) computed once, before
               the rows
    layer II   reductions and the values they share computed at the row loop of the
               partition's widest output (compute_at), their storage folded to one row
               (fold_storage) or kept in the output it feeds (share_storage),
               initialisations hoisted (decompose): one pass over a row
               held in L1, as in softmax and layer norm

Every kernel then runs its rows on parallel threads and its inner loops in SIMD lanes; an
output that leaves the module is written with streaming stores where its nest allows.
A fusion step that the primitives refuse raises FusionRefused naming the stage, so the
caller can split the partition there (feedback to the partitioner). A matmul's register
block and column panels are the host's (default_matmul) unless a tuning chose others for
its partition (qc.autotune.tune_graph, which names partitions by matmul_key).
"""

import hashlib

import sympy

from ..driver.schedule import Schedule
from ..ir import nodes as ir
from ..ir.errors import QuiltError, ScheduleError
from ..ir.printer import render
from ..ir.walk import find_all
from ..lang.tensor import ReduceExpr
from ..runtime_c.host import cache_sizes, isa_for
from ..schedule.nest import resolve_loop
from .lower import PartitionProgram
from .primitives import at_largest, element_count

# Columns of the right operand a row block passes over before moving on, at most: 768 x
# 256 floats (a BERT-base weight panel) is 768 KiB, inside a Xeon core's L2. A deeper
# panel is narrower (_panel_blocks).
PANEL_COLUMNS = 256

# A row tile holds at most this many elements and rows (_row_tile).
ROW_TILE_ELEMENTS = 1024
ROW_TILE_ROWS = 8

# Calls costly enough that a value read twice, or read by a wider stage (a row's norm read
# by every element of the row), is stored once rather than recomputed.
_COSTLY = ("exp", "exp_nonpositive", "log", "erf", "tanh", "sigmoid", "sqrt")

# A stage at least this many times smaller than the partition's widest one, read by a
# wider stage (an attention mask [batch, seq] added to scores [batch, heads, seq, seq]), is
# computed once in a nest of its own rather than again for every element it is broadcast
# to.
BROADCAST_REUSE = 64


class FusionRefused(QuiltError):
    """A fusion step of a partition was refused: `stage` names the stage that could not
    join its consumers, `reason` the primitive's first line; the compiler sets `value`,
    the graph value the stage computes."""

    def __init__(self, stage, reason):
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason
        self.value = None


def _is_reduction(tensor):
    return isinstance(tensor.body, ReduceExpr)


def _readers(program):
    """{stage name: number of stages that read it}."""
    counts = {}
    for tensor in program.order:
        for source in tensor.inputs:
            counts[source.name] = counts.get(source.name, 0) + 1
    return counts


def _elements_at_most(tensor):
    """The most elements `tensor` holds, every size at the top of its range."""
    return at_largest(element_count(tensor.shape))


def _ancestors(tensor):
    """Names of every stage `tensor` reads, directly or through other stages."""
    found, pending = set(), list(tensor.inputs)
    while pending:
        source = pending.pop()
        if source.name not in found:
            found.add(source.name)
            pending.extend(source.inputs)
    return found


def _after_reduction(program):
    """Names of the stages that read a reduction, directly or through other stages."""
    found = set()
    for tensor in program.order:
        if any(_is_reduction(source) or source.name in found for source in tensor.inputs):
            found.add(tensor.name)
    return found


def _broadcast_sources(program, widest, after_reduction):
    """(sources, small): the names of the stages computed once, before the rows
    (BROADCAST_REUSE), and of every small stage with no reduction before it (none is in
    `after_reduction`). The sources are the small stages a wider stage reads; the other
    small stages are inlined into them."""
    small = {tensor.name for tensor in program.order
             if not _is_reduction(tensor) and tensor.name not in after_reduction
             and _elements_at_most(tensor) * BROADCAST_REUSE <= widest}
    sources = {source.name for tensor in program.order if tensor.name not in small
               for source in tensor.inputs if source.name in small}
    return sources, small


def _costly(tensor):
    """Whether `tensor`'s element calls a function of _COSTLY or divides."""
    return _costly_value(tensor.body.value if isinstance(tensor.body, ReduceExpr)
                         else tensor.body)


def _costly_value(value):
    """Whether the IR value `value` calls a function of _COSTLY or divides."""
    return bool(find_all(value, lambda node: (isinstance(node, ir.Call) and node.fn in _COSTLY)
                         or (isinstance(node, ir.Bin) and node.op == "/")))


def schedule_partition(program, partition, level, name, panels=None):
    """The Schedule of `program` (a PartitionProgram of `partition`) at fusion `level`,
    its kernel called `name`; a matmul's register block is the program's, and `panels`
    (register blocks per column panel) replaces _panel_blocks' choice when given."""
    sch = Schedule(program.outputs, name=name)
    if partition.kind == "opaque":
        return _schedule_matmul(sch, program, panels)
    if level == 0:
        for tensor in program.outputs:
            _annotate_nest(sch, tensor)
        return sch
    _schedule_rows(sch, program)
    return sch


def _try(step, *args):
    """Apply an optional step (an annotation that only makes the kernel faster)."""
    try:
        return step(*args)
    except ScheduleError:
        return None


def _annotate_nest(sch, tensor):
    """Parallel outer rows and SIMD inner elements for the nest writing `tensor` (a
    reduction's initialisation hoisted first, so its inner loop is a SIMD reduction)."""
    if _is_reduction(tensor):
        _try(sch.decompose, tensor.name, sch.loops(tensor)[-1])
    loops = sch.loops(tensor)
    while len(loops) > 2 and _try(sch.fuse, loops[0], loops[1]) is not None:
        loops = sch.loops(tensor)
    if len(loops) == 1:
        loops = _try(sch.split, loops[0], 1024) or loops
    if len(loops) > 1:
        _try(sch.vectorize, loops[-1])
    _try(sch.parallel, loops[0])


def _fusion_step(step, stage, *args):
    try:
        step(stage.name, *args)
    except ScheduleError as failure:
        raise FusionRefused(stage.name, str(failure).splitlines()[0]) from failure


def _schedule_rows(sch, program):
    """Layer I and II for a partition of elementwise ops, reshapes and reductions."""
    outputs = {tensor.name for tensor in program.outputs}
    readers = _readers(program)
    anchor = max(program.outputs, key=_elements_at_most)
    widest = max(_elements_at_most(tensor) for tensor in program.order)
    after_reduction = _after_reduction(program)
    broadcast, small = _broadcast_sources(program, widest, after_reduction)
    kept = []
    for tensor in program.order:
        if tensor.name in outputs:
            continue
        if tensor.name in broadcast:
            _annotate_nest(sch, tensor)
            continue
        if tensor.name in small:
            _fusion_step(sch.compute_inline, tensor)
            continue
        # A value of a reduced shape computed from a reduction (a row's mean, its
        # 1 / sqrt(variance)) is computed once per row, not once per element that reads it.
        smaller = _elements_at_most(tensor) < widest
        if (_is_reduction(tensor) or (smaller and tensor.name in after_reduction)
                or (_costly(tensor) and (smaller or readers.get(tensor.name, 0) > 1))):
            kept.append(tensor)
        else:
            _fusion_step(sch.compute_inline, tensor)
    # Stages only other outputs read stay in nests of their own, before them.
    feeding = _ancestors(anchor)
    for tensor in kept:
        if tensor.name not in feeding:
            _annotate_nest(sch, tensor)
    kept = [tensor for tensor in kept if tensor.name in feeding]
    if kept:
        loops = sch.loops(anchor)
        while len(loops) > 2 and _try(sch.fuse, loops[0], loops[1]) is not None:
            loops = sch.loops(anchor)
        row = _row_tile(sch, loops)
        for tensor in reversed(kept):
            _fusion_step(sch.compute_at, tensor, row)
        for tensor in kept:
            if _is_reduction(tensor):
                _try(sch.decompose, tensor.name, sch.loops(tensor)[-1])
            inner = sch.loops(tensor)
            if len(inner) > 1:
                _try(sch.vectorize, inner[-1])
            if not _shares_output(sch, tensor, anchor):
                _try(sch.fold_storage, tensor.name, row)
        if len(loops) > 1:
            _try(sch.vectorize, sch.loops(anchor)[-1])
        _try(sch.parallel, row)
    else:
        _annotate_nest(sch, anchor)
    for tensor in program.outputs:
        if tensor is not anchor:
            _annotate_nest(sch, tensor)
    for tensor in program.outputs:
        if tensor.name in program.final:
            _stream_output(sch, tensor)


def _stream_output(sch, tensor):
    """Stream the stores of output `tensor`, which only the caller reads, when its nest is
    bound by memory: its lines then need not be fetched before they are written, nor
    evict the inputs (schedule/primitives/stream.py). Layer norm [4096, 768]: 1.3x on
    cold caches, 1.05-1.4x hot; where the stored value calls a costly function its
    nest is bound by arithmetic, and writing each line from registers costs more than
    it saves (three elementwise branches [4096, 768]: 0.9x). Both measured as compiled
    graphs side by side on a 2-core AVX2 host."""
    loop = sch.loops(tensor)[-1]
    store = resolve_loop(sch.kernel, loop, "stream")[1].body
    if isinstance(store, ir.Store) and not _costly_value(store.value):
        _try(sch.stream, loop)


def _shares_output(sch, tensor, anchor):
    """Whether `tensor` (a softmax's exponentials) is now kept in the memory of output
    `anchor`, whose store reads each of its elements last (share_storage): the output's
    lines are then fetched while the row is computed, not in a pass of their own, and the
    last pass scales in place. Softmax [12288, 128]: 1.2x on cold caches, 1.02-1.04x hot
    (its C timed side by side, 2-core AVX2 host)."""
    try:
        sch.share_storage(tensor.name, anchor.name)
    except ScheduleError:
        return False
    return True


def _row_tile(sch, loops):
    """The loop whose iterations are the partition's row tiles: the row loop itself, or,
    when rows are short and their number is known, the outer loop of its split into tiles
    of up to ROW_TILE_ROWS rows. Each pass over a tile starts when the pass before it ends
    (a softmax row's exp waits for the row's max); over one row of 128 the latency of
    those hand-overs is a good part of the time, and a tile of several rows gives every
    pass independent rows to overlap (softmax [12288, 128]: 1.07x with 8 rows a tile)."""
    row = loops[0]
    if len(loops) < 2:
        return row
    rows, *inner = (sympy.sympify(resolve_loop(sch.kernel, loop, "split")[1].extent)
                    for loop in loops)
    width = sympy.Mul(*inner)
    if not (rows.is_Integer and width.is_Integer):
        return row
    tile = 1
    while (2 * tile * int(width) <= ROW_TILE_ELEMENTS and int(rows) % (2 * tile) == 0
           and 2 * tile <= ROW_TILE_ROWS):
        tile *= 2
    return row if tile == 1 else sch.split(row, tile)[0]


def matmul_block():
    """(rows, columns, lanes) of the host's register block (recipes.cpu.schedule_matmul)."""
    isa = isa_for(None)
    rows, columns = isa.matmul_block()
    return rows, columns, isa.float32_lanes


def default_matmul(partition, constants):
    """(rows, columns, panels) a matmul partition is scheduled with when nothing is tuned:
    the host's register block, and panels as _panel_blocks picks them."""
    rows, columns, _ = matmul_block()
    program = PartitionProgram(partition, constants, (rows, columns))
    return rows, columns, _default_panels(program)


def _default_panels(program):
    """Register blocks per column panel of the program's product (_panel_blocks), for its
    block's columns and the width of the partition's first output."""
    product = next(tensor for tensor in program.order if _is_reduction(tensor))
    width = sympy.sympify(program.outputs[0].shape[-1])
    return _panel_blocks(product.body.axes, program.matmul_block[1], width)


def unblocked_kernel(partition, constants):
    """The partition's program lowered with a 1 x 1 block, unscheduled: the same kernel
    whatever block it is later scheduled with."""
    return Schedule(PartitionProgram(partition, constants).outputs).kernel


def matmul_key(partition, constants):
    """A name for a matmul partition that neither its register block nor the ranges of the
    graph's dims change: a digest of its unblocked kernel's parameters and body. Tuned
    choices of block and panels are found by it."""
    kernel = unblocked_kernel(partition, constants)
    text = f"{kernel.params}\n{render(kernel.body)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _schedule_matmul(sch, program, panels=None):
    """The core's register-blocked matmul (a rows x columns block of the product summed
    in registers over k, lanes in SIMD) computed inside the row-block loop of the
    partition's output, whose elementwise epilogue then runs on the block in L1. The
    block is the one the program pads the product to; `panels` as in
    schedule_partition."""
    outputs = {tensor.name for tensor in program.outputs}
    product = next(tensor for tensor in program.order if _is_reduction(tensor))
    for tensor in program.order:
        if tensor.name in program.staged:
            _annotate_nest(sch, tensor)
        elif tensor.name not in outputs and tensor is not product:
            _fusion_step(sch.compute_inline, tensor)
    rows, columns = program.matmul_block
    lanes = isa_for(None).float32_lanes
    # The product's block is computed inside the store loop of the first value the
    # partition writes out; a later one (a multi-output partition) reads that value back.
    final, *later = program.outputs
    *batch, i, j = sch.loops(final)
    i_outer, i_inner = sch.split(i, rows)
    j_outer, j_inner = sch.split(j, columns)
    # Column panels: the panel of the right operand stays in L2 while every row block
    # passes over it, and each row block's rows stay in L1 across the panel.
    extent = sympy.sympify(final.shape[-1])
    panels = panels or _default_panels(program)
    grouped = extent.is_Integer and int(extent) >= 2 * panels * columns
    if grouped:
        j_group, j_outer = sch.split(j_outer, panels)
        sch.reorder(j_group, *batch, i_outer, j_outer, i_inner, j_inner)
        block_loop = j_outer
        # Threads take contiguous runs of (panel group, batch or row block) pairs, so each
        # keeps mostly to its own panel group in its own L2; threads splitting the rows of
        # every group fetched every group (1.35x slower on 4096 x 768 x 3072, 2 threads).
        # Under batch loops the row blocks stay serial: proving a loop fused from three
        # with symbolic extents race-free took seconds a kernel.
        parallel = _fused([j_group, *(batch or [i_outer])], sch)
    else:
        sch.reorder(j_outer, i_outer, i_inner, j_inner)
        block_loop = i_outer
    _fusion_step(sch.compute_at, product, block_loop)
    _try(sch.fold_storage, product.name, block_loop)
    *_, block_i, block_j, k = sch.loops(product)
    sch.reorder(k, block_i, block_j)
    sch.decompose(product.name, k)
    vectors, vector_lanes = sch.split(block_j, lanes)
    sch.unroll(block_i)
    sch.unroll(vectors)
    sch.vectorize(vector_lanes)
    _try(sch.vectorize, j_inner)
    if not grouped:
        # The batch loops (fused into one), else the column blocks.
        parallel = _fused(batch, sch) if batch else j_outer
    _try(sch.parallel, parallel)
    for tensor in later:
        _annotate_nest(sch, tensor)
    return sch


def _panel_blocks(reduce_axes, columns, width):
    """Register blocks of `columns` per panel: PANEL_COLUMNS, fewer where a panel as deep
    as the reduction would fill more than half the L2 (FFN2's 3072-deep panel of 256
    columns is 3 MiB), and a divisor of the `width`'s blocks where that is a number:
    a last, partial panel would guard every block, and compute_at of the product at a
    guarded block is beyond the verifier (768 columns of 16 in panels of 5 on a 512 KiB
    L2 were refused)."""
    depth = sympy.Mul(*(sympy.sympify(extent) for _, extent in reduce_axes))
    most = PANEL_COLUMNS // columns
    if depth.is_Integer:
        fitting = cache_sizes().get("L2", 1 << 20) // 2 // (4 * int(depth) * columns)
        most = max(1, min(most, fitting))
    if not (width.is_Integer and int(width) % columns == 0):
        return most
    blocks = int(width) // columns
    return max(panels for panels in range(1, most + 1) if blocks % panels == 0)


def _fused(loops, sch):
    """`loops` (directly nested, outermost first) fused into one loop as far as fuse
    allows: the outermost loop of what is left."""
    outer = loops[0]
    for loop in loops[1:]:
        fused = _try(sch.fuse, outer, loop)
        if fused is None:
            break
        outer = fused
    return outer
