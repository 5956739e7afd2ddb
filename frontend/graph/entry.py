"""The C entry point of a fused graph: it runs the partitions' kernels in order, each on
pointers into the caller's arrays, the constants blob or the workspace.

    void model(const float* hidden, const int64_t* mask, float* out,
               const char* constants, char* workspace, int64_t batch, int64_t seq)
    {
        model_p0(hidden, (float*)(constants + 0), (float*)(workspace + 0), batch, seq);
        #pragma omp parallel sections          <- layer III: independent partitions side
        {                                         by side, one thread each, one region
            #pragma omp section
            model_p1(...);
            #pragma omp section
            model_p2(...);
        }
        ...
    }
    int64_t model_workspace_bytes(int64_t batch, int64_t seq);

Layer III groups partitions that no path connects (the branches after a tensor with
several consumers) when running them side by side is faster. Apollo's measure on a GPU is
the sum of their costs minus the largest (what one launch saves over several); on a CPU
whose kernels each already use every thread, running them side by side saves the start
and join of all but one parallel region and costs the imbalance of whole kernels shared
among threads, so the region is chosen when the longest thread's share (largest first,
each to the least loaded thread) plus one region's cost beats the kernels one after
another, each split over all threads, with a region each. Costs are element operations
at the sizes' largest values.
"""

import re

import numpy as np
import sympy

from ..codegen.helpers import INDEX_OPERATIONS
from ..codegen.names import CIndexSpelling, as_operand
from ..ir.dtypes import as_dtype, storage_type
from ..ir.index import print_index
from ..runtime_c.aligned import aligned_empty
from .memory import ALIGNMENT
from .primitives import at_largest, element_count
from .rules import op_kind

# What starting and joining one parallel region costs, in element operations (about
# 2 microseconds of one core).
REGION_COST = 20_000


class _EntrySpelling(CIndexSpelling):
    """Sizes in the entry point, which has none of the kernels' helpers: the macros of
    _MACROS instead."""

    signed_floordiv = "QUILTC_GRAPH_FLOORDIV({a}, {b})"
    signed_mod = "QUILTC_GRAPH_MOD({a}, {b})"
    minimum = "QUILTC_GRAPH_MIN({args})"
    maximum = "QUILTC_GRAPH_MAX({args})"


# The kernels' index helpers as macros, each operand parenthesised.
_MACROS = {f"QUILTC_GRAPH_{operation.upper()}":
           f"#define QUILTC_GRAPH_{operation.upper()}(a, b) "
           "(" + re.sub(r"\b([ab])\b", r"(\1)", formula) + ")"
           for operation, formula in INDEX_OPERATIONS.items()}


def macro_definitions(text):
    """The #define lines of the _MACROS that the C `text` uses."""
    return [line for name, line in _MACROS.items() if name + "(" in text]


def c_expression(expr):
    """`expr` (a byte count over the sizes: sums, products, floors and Max) spelled in C
    with the entry point's macros."""
    return as_operand(print_index(sympy.sympify(expr), _EntrySpelling({})))


def graph_sizes(graph):
    """The graph's symbolic sizes, in the order they first appear in its inputs."""
    found = []
    for value in graph.inputs:
        for dim in value.shape:
            for size in sorted(sympy.sympify(dim).free_symbols, key=str):
                if size not in found:
                    found.append(size)
    return found


def partition_cost(part):
    """The element operations of `part` at the sizes' largest values (a matmul counts its
    multiply-adds)."""
    total = 0
    for node in part.nodes:
        count = element_count(node.output.shape)
        if op_kind(node.op) == "opaque":
            count *= sympy.sympify(node.inputs[0].shape[-1])
        elif op_kind(node.op) == "reduce":
            count = element_count(node.inputs[0].shape)
        total += at_largest(count)
    return total


def side_by_side_pays(costs, threads):
    """Whether kernels of `costs` finish sooner side by side on `threads` threads, each
    kernel on one, than one after another on all of them (see the module docstring)."""
    loads = [0] * threads
    for cost in sorted(costs, reverse=True):
        loads[loads.index(min(loads))] += cost
    one_after_another = sum(costs) / threads + len(costs) * REGION_COST
    return max(loads) + REGION_COST < one_after_another


def regions(partitions, level, threads):
    """The partitions in run order, grouped into regions: lists run side by side at
    level 3 on `threads` threads (see the module docstring), single partitions otherwise."""
    if level < 3:
        return [[part] for part in partitions]
    produced_by = {value.name: part for part in partitions for value in part.outputs}
    groups, done = [], set()
    pending = list(partitions)
    while pending:
        ready = [part for part in pending
                 if all(produced_by.get(value.name, part) is part
                        or produced_by[value.name].number in done for value in part.inputs)]
        if len(ready) > 1 and side_by_side_pays([partition_cost(part) for part in ready],
                                                 threads):
            groups.append(ready)
        else:
            ready = ready[:1]
            groups.append(ready)
        done.update(part.number for part in ready)
        pending = [part for part in pending if part.number not in done]
    return groups


def entry_source(module, kernels, programs):
    """The entry point and workspace-size function of `module` (a FusedModule) calling
    `kernels` (one per partition, with the PartitionPrograms that name their buffers)."""
    calls = {}
    for kernel, program, part in zip(kernels, programs, module.plan.partitions):
        arguments = [_pointer(module, program.value_names[buffer.name], buffer.dtype)
                     for buffer in kernel.params]
        arguments += [var.symbol.name for var in kernel.shape_vars]
        calls[part.number] = f"{kernel.name}({', '.join(arguments)});"
    lines = [f"void {module.name}({', '.join(parameters(module))})", "{"]
    for region in module.regions:
        if len(region) == 1:
            lines.append(f"    {calls[region[0].number]}")
            continue
        lines += ["    #pragma omp parallel sections", "    {"]
        for part in region:
            lines += ["        #pragma omp section", f"        {calls[part.number]}"]
        lines.append("    }")
    lines.append("}")
    lines += ["", f"int64_t {module.name}_workspace_bytes({_size_parameters(module)})", "{",
              f"    return {c_expression(module.memory.total)};", "}"]
    text = "\n".join(lines)
    macros = macro_definitions(text)
    return "\n".join(macros + [""] * bool(macros) + [text])


def parameters(module):
    """The entry point's parameter declarations."""
    graph = module.graph
    inputs = [f"const {storage_type(as_dtype(v.dtype))}* {v.name}" for v in graph.inputs]
    outputs = [f"{storage_type(as_dtype(v.dtype))}* {v.name}" for v in graph.outputs]
    sizes = [f"int64_t {size.name}" for size in module.sizes]
    return inputs + outputs + ["const char* constants", "char* workspace"] + sizes


def _size_parameters(module):
    return ", ".join(f"int64_t {size.name}" for size in module.sizes) or "void"


def entry_declarations(module):
    """The C declarations of the entry point and the workspace-size function."""
    return (f"void {module.name}({', '.join(parameters(module))});\n"
            f"int64_t {module.name}_workspace_bytes({_size_parameters(module)});")


def header(module):
    """A header for users' own builds: the two declarations and how to call them."""
    guard = f"QUILTC_{module.name.upper()}_H"
    return "\n".join([
        f"#ifndef {guard}", f"#define {guard}", "#include <stdint.h>", "",
        f"/* {module.name}: a fused graph of {module.calls} kernels. `constants` is the",
        f" * contents of {module.name}.weights, loaded at a 64-byte aligned address;",
        f" * `workspace` holds {module.name}_workspace_bytes(sizes) bytes, 64-byte aligned. */",
        entry_declarations(module), "", f"#endif /* {guard} */", ""])


def _pointer(module, name, dtype):
    """The C expression of the pointer to value `name` (of IR `dtype`) in the entry point:
    into the constants blob, into the workspace, or an argument of the entry point."""
    ctype = storage_type(dtype)
    if name in module.constant_offsets:
        return f"({ctype}*)(constants + {module.constant_offsets[name]})"
    if name in module.memory.offsets:
        return f"({ctype}*)(workspace + {c_expression(module.memory.offsets[name])})"
    return f"({ctype}*){name}"


def pack_constants(constants):
    """({name: byte offset}, blob): every constant (a kernel may read even one element as
    an array) at a 64-byte aligned offset of one blob that starts on a 64-byte boundary."""
    offsets, position = {}, 0
    for name, array in constants.items():
        offsets[name] = position
        position += array.nbytes + (-array.nbytes) % ALIGNMENT
    size = max(position, 1)
    blob = aligned_empty(size, np.uint8)
    blob.fill(0)
    for name, array in constants.items():
        blob[offsets[name]:offsets[name] + array.nbytes] = \
            np.ascontiguousarray(array).view(np.uint8).reshape(-1)
    return offsets, blob
