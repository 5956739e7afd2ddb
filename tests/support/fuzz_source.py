"""A fuzz program as Python source: the quiltc tensors, then (for a reproducer) the
schedule trace, the build and the call on the very inputs that failed.

The fuzzer builds its tensors by running this text, so a reproducer printed from it is
exactly the program that ran, not a second rendering that might differ.
"""

import numpy as np

from .fuzz_programs import Const, Load, Reduce, reachable

HEADER = "import numpy as np\nimport quiltc as qc\n"


def _const(program, value):
    if program.dtype == "int32":
        return f"({int(value)})" if value < 0 else str(int(value))
    return f"np.float32({float(value)!r})"


def value(program, expr):
    """The Python text of expression `expr` inside a compute lambda."""
    if isinstance(expr, Load):
        return f"{expr.tensor}[{', '.join(expr.axes)}]"
    if isinstance(expr, Const):
        return _const(program, expr.value)
    if isinstance(expr, Reduce):
        return f"qc.{expr.combiner}({value(program, expr.body)}, axis=k)"
    args = [value(program, a) for a in expr.args]
    op = expr.op
    if op in ("+", "-", "*", "/", "&", "|", "<<", ">>"):
        return f"({args[0]} {op} {args[1]})"
    if op in ("max", "min"):
        return f"qc.{op}imum({args[0]}, {args[1]})"
    if op == "div":
        return f"({args[0]} / (qc.abs({args[1]}) + np.float32(1.0)))"
    if op == "%":
        return f"({args[0]} - ({args[0]} / {args[1]}) * {args[1]})"
    if op == "neg":
        return f"(-{args[0]})"
    if op == "abs":
        return f"qc.abs({args[0]})"
    if op == "exp":
        return f"qc.exp(qc.minimum({args[0]}, np.float32(4.0)))"
    if op == "tanh":
        return f"qc.tanh({args[0]})"
    if op == "select":
        return f"qc.where({args[0]} > {args[1]}, {args[2]}, {args[3]})"
    raise ValueError(f"unknown fuzz op {op!r}")


def _size_lines(program):
    lines = []
    for dim in program.dims.values():
        if dim.name == "L":
            lines.append(f'L = qc.ragged_dim("L", B, {dim.hi})')
        elif dim.symbolic:
            lines.append(f'{dim.name} = qc.var("{dim.name}", {dim.lo}, {dim.hi})')
        else:
            lines.append(f"{dim.name} = {dim.size}")
    return lines


def tensors(program):
    """Source that defines the program's sizes and the tensors its outputs read, then
    `outputs` (the lowering would drop the others)."""
    lines = _size_lines(program)
    for spec in reachable(program):
        shape = ", ".join(spec.dims) + ("," if len(spec.dims) == 1 else "")
        if spec.body is None:
            lines.append(f'{spec.name} = qc.placeholder(({shape}), "{program.dtype}", '
                         f'"{spec.name}")')
            continue
        if isinstance(spec.body, Reduce):
            lines.append(f'k = qc.reduce_axis({spec.body.dim}, "{spec.body.label}")')
        params = ", ".join(name for name, _ in spec.axes)
        lines.append(f"{spec.name} = qc.compute(({shape}), lambda {params}: "
                     f'{value(program, spec.body)}, "{spec.name}")')
    lines.append(f"outputs = [{', '.join(program.outputs)}]")
    return "\n".join(lines) + "\n"


def build(source_text):
    """Run `tensors(program)` text; returns its output tensors."""
    namespace = {}
    exec(compile(HEADER + source_text, "<fuzz program>", "exec"), namespace)
    return namespace["outputs"]


def _array(array):
    text = f"np.array({array.tolist()!r}, dtype=np.{array.dtype})"
    return text if array.size else f"{text}.reshape({array.shape!r})"


def arguments(arrays):
    """Source for the call's keyword arguments (ragged ones as RaggedArrays)."""
    parts = []
    for name, array in arrays.items():
        if isinstance(array, list):
            rows = ", ".join(_array(np.asarray(r)) for r in array)
            inner = tuple(array[0].shape[1:]) if array else ()
            parts.append(f"{name}=qc.RaggedArray.from_list([{rows}], inner_shape={inner!r})")
        else:
            parts.append(f"{name}={_array(array)}")
    return ", ".join(parts)


def reproducer(program, trace, arrays, sanitize, name):
    """A standalone script: the program, its schedule, the build and the failing call."""
    lines = [HEADER.rstrip(), "", tensors(program).rstrip(),
             f'sch = qc.Schedule(outputs, name="{name}")']
    lines += [line for line in str(trace).splitlines() if line.strip()]
    lines.append(f"fn = qc.build(sch{', sanitize=True' if sanitize else ''})")
    lines.append(f"print(fn({arguments(arrays)}))")
    return "\n".join(lines) + "\n"
