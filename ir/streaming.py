"""Which SIMD loops may write their stores past the caches: the "stream" loops of
schedule/primitives/stream.py. The primitive checks these rules when it marks a loop, and
the C target again when it renders one, since a later step may have changed the loop (a
guard from pad_loop, another loop reordered inside it): a loop that breaks them is then
written as a plain SIMD loop."""

import sympy

from . import nodes as ir
from .walk import find_all


def store_step(store, var):
    """How far the element `store` writes lies past the one it writes at `var` = 0."""
    offset = store.buffer.offset(store.indices)
    return sympy.expand(offset - offset.subs(var, 0))


def stream_obstacle(kernel, loop):
    """None when the body of `loop` is one store of an output of `kernel`, at consecutive
    elements, of a value that does not read that output; else (what stands in the way,
    what would work, the node to mark)."""
    store = loop.body
    if not isinstance(store, ir.Store):
        return (f"its body is a {type(store).__name__}, not one store",
                "Stream the innermost loop of a nest whose body is a single store "
                "(compute_inline the stages it reads).", loop)
    name = store.buffer.name
    if name not in kernel.outputs:
        return (f"it stores {name}, which is not an output of the kernel",
                "Stream only the stores of an output the caller reads after the kernel; a "
                "local buffer is meant to stay in cache.", store)
    step = store_step(store, loop.var)
    if step != loop.var:
        return (f"iteration {loop.var} stores the element {step} past the first one, not "
                f"{loop.var} past it: the elements are not consecutive",
                f"Stream a loop over the last dimension of {name}; reorder the loops so that "
                "the innermost one walks it.", store)
    if find_all(store.value, lambda node: isinstance(node, ir.Load) and node.buffer.name == name):
        return (f"it reads {name}, the output it stores, so its lines are in cache already",
                f"Keep the values it reads in a buffer of their own (share_storage put them "
                f"in {name}), or leave the loop a plain SIMD loop.", store)
    return None
