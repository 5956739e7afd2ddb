"""online_softmax: the sums that read a max through exp(c * (x - max)) run in the max's
own loop, each partial sum rescaled whenever the running max grows (Milakov and
Gimelshein's online softmax, the core of flash attention).

    M = -inf                                  M = -inf; Z = 0; C[:] = 0
    for jo in range(T):                       for jo in range(T):
        for ji in range(8):                       M_previous = M
            M max= S[8*jo + ji]                   for ji in range(8):
    Z = 0                                  ->         M max= S[8*jo + ji]
    for jo_1 in range(T):                         M_rescale = 1 if M_previous == M
        for ji_1 in range(8):                                 else exp(c * (M_previous - M))
            Z sum= exp(c * (S[..] - M))           Z = Z * M_rescale
    C[:] = 0                                      for ji_1 in range(8):
    for jo_2 in range(T):                             Z sum= exp(c * (S[..] - M))
        for ji_2, e in ...:                       for e in range(D): C[e] = C[e] * M_rescale
            C[e] sum= exp(c * (S[..] - M)) * V    for ji_2, e in ...:
                                                      C[e] sum= exp(c * (S[..] - M)) * V
    online_softmax(M, jo)

Every term a sum adds with the running max M is the term the max M' of the whole loop
would give times exp(c * (M' - M)), so multiplying the partial sums by
exp(c * (M_previous - M)) each time the max moves leaves, after the last iteration,
exactly the sums over the final max: no second pass over what the max reduced, and a
stage computed at `loop` (the scores of a tile of keys) is computed once. Each sum's
rescaling stands just above its first reduction loop, inside the loops that pick its
element, so a cache_write of the sum at one of those loops takes it along. The max may
run over a block of elements inside `loop` (query rows: loops of constant extent that
pick the element); each keeps its previous max and its factor in a local array.

What it asks: the max and each sum are decomposed (their start values set before their
loops); the max's element does not move with `loop`; each sum's loop follows the max's
with the same extent, writes only sums, and reads the max only as a factor
exp(c * (x - max)) of the summed value (c a positive constant, or 1), or an element of a
stage that joins too and stores just that exponential (read by nothing else). Statements
between them that touch none of their buffers (the sums' start values) move before the
max's loop; the first statement after it that cannot join ends the run.
"""

import sympy

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.index import symbol
from ...ir.printer import render
from ...ir.walk import substitute
from ..nest import (
    buffers_touched,
    fresh_name,
    get_at,
    replace_at,
    resolve_loop,
    walk_paths,
    with_body,
)
from .decompose import element_nest
from .exponential_terms import ExponentialStage, factors, reads, rescaled_exponential, solved

PRIMITIVE = "online_softmax"
MAXIMA = ("max", "nanmax")


def _writes(stmt):
    return [(path, node) for path, node in walk_paths(stmt)
            if isinstance(node, (ir.Store, ir.Reduce))]


def _symbols(indices):
    return set().union(*(sympy.sympify(index).free_symbols for index in indices))


def _nest_to(body, path):
    """The statements from `body` down to the one at `path` (exclusive), and their loops."""
    statements = [get_at(body, path[:depth]) for depth in range(len(path))]
    return statements, [stmt for stmt in statements if isinstance(stmt, ir.For)]


class _RunningMax:
    """The max reduction inside the merged loop: its Reduce, the statements above it, the
    loops whose variables pick its element (`block`) and its reduction loops."""

    def __init__(self, node, path, reduce):
        self.reduce = reduce
        self.statements, loops = _nest_to(node.body, path[1:])
        picked = _symbols(reduce.indices)
        self.block = [loop for loop in loops if loop.var in picked]
        self.reduction_vars = {loop.var for loop in loops if loop.var not in picked}
        self.load = ir.Load(reduce.buffer, reduce.indices)
        self.local_index = tuple(loop.var for loop in self.block) or (sympy.Integer(0),)
        self.local_shape = tuple(loop.extent for loop in self.block) or (1,)

    def nest(self, kernel, taken, template):
        """`template` (a statement over the block's variables) for every element of the
        block, under fresh loop names."""
        renaming = {loop.var: symbol(fresh_name(kernel, f"{loop.var}_block", taken))
                    for loop in self.block}
        return element_nest(self.statements, self.reduce, renaming, self.reduction_vars,
                            lambda _indices, mapping: substitute(template, mapping))


def _running_max(kernel, node, max_name, asked):
    """The running max under loop `node`, checked to be all that the loop writes."""
    writes = _writes(node)
    reduces = [(path, stmt) for path, stmt in writes
               if isinstance(stmt, ir.Reduce) and stmt.buffer.name == max_name
               and stmt.combiner in MAXIMA]
    others = sorted({stmt.buffer.name for _, stmt in writes} - {max_name})
    if len(reduces) != 1 or others or len(writes) != 1:
        obstacle = (f"loop {node.var} also writes {', '.join(others)}" if others
                    else f"loop {node.var} holds {len(reduces)} max reductions into {max_name} "
                         f"and {len(writes) - len(reduces)} other writes of it")
        raise ScheduleError(
            PRIMITIVE, asked, obstacle,
            f"Name the loop that steps through the max reduction into {max_name} and "
            "nothing else (distribute a loop that holds more).", render(kernel, mark=node))
    path, reduce = reduces[0]
    if reduce.init_when:
        raise ScheduleError(
            PRIMITIVE, asked,
            f"the max into {max_name} still sets its start value at its first iteration",
            f"decompose({max_name!r}, {str(node.var)!r}) first, so the running max starts "
            "before the loop.", render(kernel, mark=reduce))
    if node.var in _symbols(reduce.indices):
        raise ScheduleError(
            PRIMITIVE, asked, f"the element of {max_name} moves with loop {node.var} itself",
            "Apply it at the loop that steps through the max's reduction (a tile of keys).",
            render(kernel, mark=reduce))
    if node.kind != "serial":
        raise ScheduleError(
            PRIMITIVE, asked, f"loop {node.var} is {node.kind}",
            "The running max steps through its loop in order: apply it before annotating.",
            render(kernel, mark=node))
    running = _RunningMax(node, path, reduce)
    for loop in running.block:
        if not loop.extent.is_Integer:
            raise ScheduleError(
                PRIMITIVE, asked,
                f"loop {loop.var}, which picks the element of {max_name}, runs over "
                f"{loop.extent}, not a constant: each element's previous max needs a place",
                "Split that loop by a constant first (split_op leaves whole blocks).",
                render(kernel, mark=loop))
    return running


def _block_element(running, load, allowed):
    """The block element (an index of the local arrays) whose max `load` reads, in the
    reader's variables, or None when it is not one element of the block or moves with
    variables outside `allowed`."""
    block_vars = [loop.var for loop in running.block]
    solution = solved(running.reduce.indices, load.indices, block_vars)
    if solution is None:
        return None
    element = tuple(solution[var] for var in block_vars) or running.local_index
    return element if _symbols(element) <= allowed else None


def _exponential(factor, running, previous):
    """((exponential, argument of exp(c * (previous - max)) over the block's variables),
    the max's load) when `factor` is exp(c * (x - max)); else None."""
    moved = ir.Bin("-", ir.Load(previous, running.local_index), running.load)
    return rescaled_exponential(factor, running.reduce.buffer.name, moved)


def _rescale(running, reduce, allowed, previous, stages):
    """((exponential, argument of exp(c * (previous - max)) over the block's variables),
    the block element the sum reads) for a sum that reads the max as a factor
    exp(c * (x - max)), or an element of such a stage; or None and why it does not."""
    names = [running.reduce.buffer.name, *stages]
    if sum(len(reads(reduce.value, name)) for name in names) != 1:
        return None, f"its sum into {reduce.buffer.name} reads {' or '.join(names)} more than once"
    for factor in factors(reduce.value):
        found = _exponential(factor, running, previous)
        if isinstance(factor, ir.Load) and factor.buffer.name in stages:
            stage = stages[factor.buffer.name]
            found = stage.rescale, stage.max_read_by(factor)
        if found is None:
            continue
        element = None if found[1] is None else _block_element(running, found[1], allowed)
        if element is None:
            return None, (f"its sum into {reduce.buffer.name} reads an element of {names[0]} "
                          "that is not the running max's of the same iteration")
        return (found[0], element), None
    return None, (f"its sum into {reduce.buffer.name} reads {names[0]} other than as a factor "
                  f"exp(c * (x - {names[0]}))")


def _stage(body, running, previous, kernel):
    """The ExponentialStage that loop body `body` is, or None and why it is not one."""
    writes = _writes(body)
    store = writes[0][1] if len(writes) == 1 else None
    found = None if not isinstance(store, ir.Store) else _exponential(store.value, running,
                                                                       previous)
    if found is None:
        return None, "it writes other than sums or one stage of exp(c * (x - max))"
    if store.buffer.name in kernel.outputs:
        return None, f"{store.buffer.name} is an output, whose exponentials must use the final max"
    loops = [loop.var for loop in _nest_to(body, writes[0][0])[1]]
    return ExponentialStage(store, loops, *found), None


def _consumer(node, stmt, running, previous, outer, stages, kernel):
    """[(reduce path in the loop's body, Reduce, rescale)] for loop `stmt`, its variable
    renamed to `node`'s, if it can join loop `node` (a stage of exponentials joins as a
    new entry of `stages`, with nothing to rescale); else None and why not. `outer` holds
    the variables bound around `node`."""
    if not isinstance(stmt, ir.For) or sympy.simplify(stmt.extent - node.extent) != 0:
        return None, f"it is not a loop over the {node.extent} iterations of loop {node.var}"
    body = substitute(stmt.body, {stmt.var: node.var})
    if not any(isinstance(write, ir.Reduce) for _, write in _writes(body)):
        stage, why = _stage(body, running, previous, kernel)
        if stage is None:
            return None, why
        stages[stage.store.buffer.name] = stage
        return (body, []), None
    found = []
    for path, write in _writes(body):
        if not (isinstance(write, ir.Reduce) and write.combiner == "sum"):
            return None, f"it writes {write.buffer.name} other than by a sum"
        if write.init_when:
            return None, (f"its sum into {write.buffer.name} still sets its start value at "
                          f"its first iteration (decompose it at loop {stmt.var} first)")
        if any(step[0] == "otherwise" for step in path):
            return None, f"its sum into {write.buffer.name} stands in the else branch of a guard"
        if node.var in _symbols(write.indices):
            return None, f"its sum's element of {write.buffer.name} moves with loop {stmt.var}"
        spatial = {loop.var for loop in _nest_to(body, path)[1]} & _symbols(write.indices)
        rescale, why = _rescale(running, write, spatial | outer, previous, stages)
        if rescale is None:
            return None, why
        found.append((path, write, rescale))
    return (body, found), None


def _gather(kernel, node, siblings, running, previous, outer):
    """(merged [(body, [(path, Reduce, rescale)])], hoisted statements, siblings used), or
    a reason when no sum can join. A stage of exponentials joins only if every statement
    that reads it joins too: one left outside would read values of a stale max."""
    merged, hoisted, waiting, used, reason, stages = [], [], [], 0, None, {}
    joined_written, joined_read = buffers_touched(node)
    for count, stmt in enumerate(siblings, start=1):
        written, read = buffers_touched(stmt)
        if read & ({running.reduce.buffer.name} | set(stages)):
            found, reason = _consumer(node, stmt, running, previous, outer, stages, kernel)
            if found is None:
                break
            merged.append(found)
            hoisted += waiting
            waiting, used = [], count
        elif written & (joined_read | joined_written) or read & joined_written:
            reason = reason or f"a statement writing {', '.join(sorted(written))} stands between"
            break
        else:
            waiting.append(stmt)
            continue
        joined_written, joined_read = joined_written | written, joined_read | read
    for name in stages:
        if len(reads(kernel.body, name)) != sum(len(reads(body, name)) for body, _ in merged):
            return [], [], 0, reason or f"{name} is also read by a statement that cannot join"
    return merged, hoisted, used, reason


def _with_rescale(kernel, body, path, reduce, factor, element, taken):
    """`body` with a nest that multiplies every element the sum at `path` accumulates by
    its block element of `factor`, just above the sum's first reduction loop: inside the
    loops that pick the element, so that a cache of the sum at one of them (cache_write)
    takes the rescaling along. The nest's own loops get fresh names."""
    statements, _ = _nest_to(body, path)
    spatial = _symbols(reduce.indices)
    depth = next((d for d, stmt in enumerate(statements)
                  if isinstance(stmt, ir.For) and stmt.var not in spatial), len(statements))
    inner = [stmt for stmt in statements[depth:] if isinstance(stmt, ir.For)]
    renaming = {loop.var: symbol(fresh_name(kernel, f"{loop.var}_rescale", taken))
                for loop in inner if loop.var in spatial}

    def scaled(indices, mapping):
        at = tuple(sympy.sympify(index).xreplace(mapping) for index in element)
        return ir.Store(reduce.buffer, indices, ir.Bin(
            "*", ir.Load(reduce.buffer, indices), ir.Load(factor, at)))

    rescale = element_nest(statements[depth:], reduce, renaming,
                           {loop.var for loop in inner if loop.var not in spatial}, scaled)
    (field, position), parent_path = path[depth - 1] if depth else (None, None), path[:depth - 1]
    if field == "stmts":
        parent = get_at(body, parent_path)
        stmts = parent.stmts[:position] + (rescale,) + parent.stmts[position:]
        return replace_at(body, parent_path, ir.Seq(stmts))
    return replace_at(body, path[:depth], ir.seq(rescale, get_at(body, path[:depth])))


def _outer_vars(kernel, path):
    loops = [get_at(kernel.body, path[:depth]) for depth in range(len(path))]
    return ({loop.var for loop in loops if isinstance(loop, ir.For)}
            | {var.symbol for var in kernel.shape_vars})


def online_softmax(kernel, max_name, loop):
    """Merge the sums that follow the max reduction into `max_name` and read it through
    exp(c * (x - max)) into the max's `loop`, rescaling their partial sums as the max
    grows; the merged loop keeps `loop`'s name."""
    path, node = resolve_loop(kernel, loop, PRIMITIVE)
    asked = f"merge the sums over exp(x - {max_name}) into loop {node.var} of its running max"
    running = _running_max(kernel, node, max_name, asked)
    parent = get_at(kernel.body, path[:-1]) if path else None
    if not isinstance(parent, ir.Seq):
        raise ScheduleError(
            PRIMITIVE, asked, f"nothing follows loop {node.var} in its block",
            "Compute the sums over exp(x - max) after the max, in the same block (compute_at "
            "them at the loop around the max).", render(kernel, mark=node))
    taken = set()
    dtype = running.reduce.buffer.dtype
    previous = ir.Buffer(fresh_name(kernel, f"{max_name}_previous", taken), dtype,
                         running.local_shape)
    position = path[-1][1]
    merged, hoisted, count, reason = _gather(kernel, node, parent.stmts[position + 1:],
                                             running, previous, _outer_vars(kernel, path))
    if not merged:
        raise ScheduleError(
            PRIMITIVE, asked,
            f"the statement after it that reads {max_name} cannot join: {reason}"
            if reason else f"no statement after it reads {max_name}",
            "Decompose each sum at its loop, order its loops so the loop matching "
            f"{node.var} is outermost, and let it read exp(c * (x - {max_name})) inlined "
            "or from a stage of just that, tiled the same way.",
            render(kernel, mark=node))
    factors, bodies = {}, []
    for body, found in merged:
        # The last sum first, so that inserting its rescaling moves no path still to use.
        for reduce_path, reduce, (exponential, element) in sorted(found, key=lambda f: f[0],
                                                                  reverse=True):
            if exponential not in factors:
                factors[exponential] = ir.Buffer(
                    fresh_name(kernel, f"{max_name}_rescale", taken), dtype, running.local_shape)
            body = _with_rescale(kernel, body, reduce_path, reduce, factors[exponential],
                                 element, taken)
        bodies.append(body)
    previous_load = ir.Load(previous, running.local_index)
    # -inf == -inf before any finite value arrives: the sums are still zero, so keep them.
    unchanged = ir.Bin("==", previous_load, running.load)
    set_factors = [running.nest(kernel, taken, ir.Store(
        buffer, running.local_index,
        ir.Select(unchanged, ir.as_value(1.0, dtype), ir.Call(fn, (argument,)))))
        for (fn, argument), buffer in factors.items()]
    keep_previous = running.nest(kernel, taken, ir.Store(previous, running.local_index,
                                                         running.load))
    merged_loop = ir.For(node.var, node.extent, ir.seq(
        keep_previous, node.body, *set_factors, *bodies),
        node.kind)
    for buffer in (previous, *factors.values()):
        merged_loop = ir.Alloc(buffer, "local", merged_loop)
    stmts = (parent.stmts[:position] + tuple(hoisted) + (merged_loop,)
             + parent.stmts[position + 1 + count:])
    return with_body(kernel, replace_at(kernel.body, path[:-1], ir.Seq(stmts))), []
