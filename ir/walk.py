"""Generic traversal of IR trees: rebuild with children transformed, substitute index
symbols, and find nodes. Node classes list their child and sympy fields, so nothing here
names a node type."""

import dataclasses

import sympy

from .nodes import Node


def _map_field(value, fn):
    if isinstance(value, tuple):
        return tuple(_map_field(item, fn) for item in value)
    if isinstance(value, Node):
        return fn(value)
    return value


def map_children(node, fn, expr_fn=None):
    """A copy of `node` with fn applied to each child node (and expr_fn to each index)."""
    changes = {}
    for name in node.child_fields:
        old = getattr(node, name)
        new = _map_field(old, fn)
        if new is not old:
            changes[name] = new
    if expr_fn is not None:
        for name in node.expr_fields:
            old = getattr(node, name)
            new = tuple(expr_fn(e) for e in old) if isinstance(old, tuple) else expr_fn(old)
            changes[name] = new
    return dataclasses.replace(node, **changes) if changes else node


def rewrite(node, fn, expr_fn=None):
    """Rebuild `node` bottom-up; fn(n) returns a replacement for n or n itself."""

    def visit(n):
        return fn(map_children(n, visit, expr_fn))

    return visit(node)


def substitute(node, mapping):
    """Replace index symbols everywhere in `node`: `substitute(body, {i: io*8 + ii})`."""
    if not mapping:
        return node

    def expr_fn(expr):
        return expr.xreplace(mapping) if isinstance(expr, sympy.Basic) else expr

    return rewrite(node, lambda n: n, expr_fn)


def children(node):
    """The child nodes of `node`, in order."""
    out = []
    for name in node.child_fields:
        value = getattr(node, name)
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, Node):
                out.append(item)
    return out


def find_all(node, predicate):
    """Every node under (and including) `node` for which predicate holds, in pre-order."""
    found = []
    stack = [node]
    while stack:
        current = stack.pop()
        if predicate(current):
            found.append(current)
        stack.extend(reversed(children(current)))
    return found


def exprs_of(node):
    """Every sympy expression held directly by `node` (not its children)."""
    out = []
    for name in node.expr_fields:
        value = getattr(node, name)
        out.extend(value if isinstance(value, tuple) else (value,))
    return [e for e in out if isinstance(e, sympy.Basic)]
