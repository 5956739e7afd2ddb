"""What online_softmax rescales: a factor exp(c * (x - max)) of a summed value (c a
positive constant, or 1), a stage that stores just that exponential, and which element
of the max a read picks (index equations solved with sympy)."""

import sympy

from ...ir import nodes as ir
from ...ir.walk import find_all, rewrite

EXPONENTIALS = ("exp", "exp_nonpositive")


def scaled_difference(argument, name):
    """The node `x - max` of an exponential's `argument` (a load of buffer `name`
    subtracted) when the argument is that difference, or it times positive constants."""
    if (isinstance(argument, ir.Bin) and argument.op == "-" and isinstance(argument.b, ir.Load)
            and argument.b.buffer.name == name and not reads(argument.a, name)):
        return argument
    if isinstance(argument, ir.Bin) and argument.op == "*":
        for inner, scale in ((argument.a, argument.b), (argument.b, argument.a)):
            if isinstance(scale, ir.Const) and scale.value > 0:
                found = scaled_difference(inner, name)
                if found is not None:
                    return found
    return None


def factors(value):
    """The factors of a product `value` (itself when it is no product)."""
    if isinstance(value, ir.Bin) and value.op == "*":
        return factors(value.a) + factors(value.b)
    return [value]


def reads(value, name):
    """The loads of buffer `name` in `value`."""
    return find_all(value, lambda n: isinstance(n, ir.Load) and n.buffer.name == name)


def solved(target, source, unknowns):
    """{unknown: value} that makes each index of `target` equal `source`'s, or None."""
    equations = [sympy.expand(a - b) for a, b in zip(target, source)]
    if not unknowns:
        return {} if all(equation == 0 for equation in equations) else None
    solutions = sympy.solve(equations, unknowns, dict=True)
    return solutions[0] if len(solutions) == 1 and set(solutions[0]) == set(unknowns) else None


def rescaled_exponential(factor, max_name, moved):
    """((exponential, its argument with `x - max` replaced by `moved`), the load of the
    max) when `factor` is exp(c * (x - max)) of buffer `max_name`; else None."""
    if not (isinstance(factor, ir.Call) and factor.fn in EXPONENTIALS):
        return None
    difference = scaled_difference(factor.args[0], max_name)
    if difference is None:
        return None
    # map_children keeps a node whose children are unchanged, so `difference` is found.
    argument = rewrite(factor.args[0], lambda node: moved if node is difference else node)
    return (factor.fn, argument), difference.b


class ExponentialStage:
    """A stage that stores exp(c * (x - max)) in the merged loop: its elements follow the
    running max, so a sum that reads one is rescaled as if it read the max itself."""

    def __init__(self, store, loops, rescale, max_load):
        self.store, self.loops = store, loops
        self.rescale, self.max_load = rescale, max_load

    def max_read_by(self, load):
        """The load of the max behind the element `load` reads, or None."""
        solution = solved(self.store.indices, load.indices, self.loops)
        if solution is None:
            return None
        return ir.Load(self.max_load.buffer, tuple(sympy.sympify(index).xreplace(solution)
                                                   for index in self.max_load.indices))
