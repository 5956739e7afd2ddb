"""distribute: loop fission. A loop over a sequence of statements becomes one loop per
statement, in order, so each can then be blocked, reordered or vectorized on its own.

    for i in range(N):                  for i in range(N):
        S[i] = A[i] * 2          ->         S[i] = A[i] * 2
        T[i] = S[i] + B[i]              for i_1 in range(N):
                                            T[i_1] = S[i_1] + B[i_1]

Fission runs every instance of an earlier statement before any instance of a later one,
where the loop interleaved them. That keeps the meaning exactly when no element one of two
statements writes is touched by the other in a different iteration: each iteration's
own elements (S[i] above) may flow from the first statement to the second. The check is
the parallel loops' one (`dependence.py`), on the accesses of each pair of statements to
each buffer either writes: a pair that may meet across iterations refuses.
"""

from ...ir import nodes as ir
from ...ir.errors import ScheduleError
from ...ir.index import symbol
from ...ir.printer import render
from ...ir.walk import substitute
from ..dependence import accesses, independent
from ..nest import fresh_name, ranges_on_path, replace_at, resolve_loop, with_body


def _crossing(node, ranges, first, second):
    """None when statements `first` and `second` of loop `node` meet only within one
    iteration; else the obstacle."""
    found_first, found_second = accesses(first, frozenset()), accesses(second, frozenset())
    written = {a.buffer.name for a in found_first + found_second if a.is_write}
    for name in sorted(written):
        of_first = [a for a in found_first if a.buffer.name == name]
        of_second = [a for a in found_second if a.buffer.name == name]
        if not (of_first and of_second):
            continue
        overlap = independent(of_first + of_second, node.var, node.extent, ranges)
        if overlap is not None:
            return overlap[0]
    return None


def _statements(body):
    """The statements a loop with `body` distributes over. A guard without an else around
    a sequence (what split with a guard or compute_at of a partial tile leaves) guards each
    statement: its condition reads indices only, never a buffer the statements write."""
    if isinstance(body, ir.If) and body.otherwise is None and isinstance(body.then, ir.Seq):
        return tuple(ir.If(body.cond, statement) for statement in body.then.stmts)
    return body.stmts if isinstance(body, ir.Seq) else (body,)


def distribute(kernel, loop):
    """Split `loop`, whose body is a sequence of statements (or one guard around such a
    sequence), into one loop per statement in the same order; returns the new loops, the
    first keeping the name."""
    path, node = resolve_loop(kernel, loop, "distribute")
    asked = f"distribute loop {node.var} over the statements of its body"
    statements = _statements(node.body)
    if len(statements) < 2:
        raise ScheduleError(
            "distribute", asked,
            f"the body of loop {node.var} is one {type(node.body).__name__}, not a sequence",
            "Distribute a loop whose body holds several statements (a loop that compute_at "
            "gathered several stages into, or a fused elementwise chain).",
            render(kernel, mark=node),
        )
    ranges = ranges_on_path(kernel, path)
    for position, first in enumerate(statements):
        for second in statements[position + 1:]:
            obstacle = _crossing(node, ranges, first, second)
            if obstacle is not None:
                raise ScheduleError(
                    "distribute", asked,
                    f"{obstacle}, so running every instance of one statement before the "
                    "other would change what is read",
                    "Distribute only statements that exchange values within one iteration; "
                    "keep dependent statements in one loop.",
                    render(kernel, mark=node),
                )
    loops, names = [], []
    for position, statement in enumerate(statements):
        var = node.var if position == 0 else symbol(fresh_name(kernel, f"{node.var}_{position}"))
        body = statement if position == 0 else substitute(statement, {node.var: var})
        loops.append(ir.For(var, node.extent, body, node.kind))
        names.append(var)
    kernel = with_body(kernel, replace_at(kernel.body, path, ir.seq(*loops)))
    return kernel, names
