"""A whole graph as one C module: the partitions' kernels, a memory plan, and one entry
point that runs them (entry.py).

    module = qc.graph.compile(graph)              # or a path to an .onnx file
    y = module(hidden=h, mask=m)                  # any value of the symbolic dims
    module.write("out/")                          # model.c, model.h, model.weights

Feedback: a partition whose fusion the schedule primitives refuse is split at the refused
stage, the (pattern, reason) pair is added to the persistent override list (rules.py),
and the graph is partitioned again. A compiled graph's source is kept in the build cache
under a key of the graph's text, the level and quiltc's own sources, so compiling the
same graph again skips scheduling and the C compiler.
"""

import dataclasses
import functools
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import sympy

from ..driver.build import load_library, render
from ..driver.schedule import Schedule
from ..ir.dtypes import as_dtype, storage_type
from ..ir.errors import QuiltError, ShapeError
from ..ir.printer import render as render_ir
from ..runtime_c.aligned import aligned_empty, output_empty
from ..runtime_c.cache import cache_directory
from ..runtime_c.host import openmp_threads
from . import entry
from .graph import Graph
from .lower import PartitionProgram, constant_arrays, pack_panels
from .memory import plan_memory
from .partition import partition
from .rules import pattern, read_overrides, record_override
from .schedules import FusionRefused, matmul_block, matmul_key, schedule_partition

_MAX_FEEDBACK_ROUNDS = 32
# Input shapes whose checked sizes a module keeps (see FusedModule._prepare).
_PREPARED_SHAPES = 4096
_PACKAGE = Path(__file__).resolve().parents[1]


def compile(graph, level=3, name="model", record=True, cache=True,  # noqa: A001
            sanitize=False, matmul_choices=None):
    """A FusedModule computing `graph` (a Graph, or an ONNX path or model) fused at `level`
    (0 unfused, 1 loop fusion, 2 reductions stitched, 3 independent partitions side by
    side). `record=False` keeps feedback out of the persistent override list; `cache=False`
    schedules and renders anew even when the cache holds this graph; `sanitize=True`
    builds with AddressSanitizer and UndefinedBehaviorSanitizer (libasan preloaded).
    `matmul_choices` ({matmul_key: {"rows", "cols", "panel"}}, as qc.autotune.tune_graph
    finds them) sets the register block and panels of the matmul partitions it names."""
    if not isinstance(graph, Graph):
        from .onnx_import import from_onnx

        graph = from_onnx(graph)
    if not name.isidentifier():
        raise QuiltError(f"module name {name!r} must be a C identifier")
    started = time.perf_counter()
    constants = constant_arrays(graph)
    matmul_choices = dict(matmul_choices or {})
    key = _cache_key(graph, level, name, matmul_choices)
    cached = _read_cached(key) if cache else None
    if cached is not None:
        split_edges = {tuple(edge) for edge in cached["split_edges"]}
        _add_packed(constants, cached["packed"])
        module = FusedModule(graph, level, split_edges, constants, name, cached["learned"])
        module.load(cached["source"], cached["declarations"], sanitize)
    else:
        plan, scheduled, programs, learned, split_edges = _fuse(graph, level, name, constants,
                                                               record, matmul_choices)
        packed = {packed_name: list(entry) for program in programs
                  for packed_name, entry in program.packed.items()}
        _add_packed(constants, packed)
        module = FusedModule(graph, level, split_edges, constants, name, learned, plan)
        source, declarations = module.generate(scheduled, programs)
        module.load(source, declarations, sanitize)
        if cache:
            _write_cached(key, {"source": source, "declarations": declarations,
                                "split_edges": sorted(split_edges), "learned": learned,
                                "packed": packed})
    module.compile_seconds = time.perf_counter() - started
    return module


def _add_packed(constants, packed):
    """Add each weight matrix's panels ({packed name: (constant, columns)}) to `constants`."""
    for packed_name, (source, columns) in packed.items():
        constants[packed_name] = pack_panels(constants[source], columns)


def _fuse(graph, level, name, constants, record, matmul_choices):
    """Partition and schedule `graph`, splitting partitions until every one schedules:
    (plan, [(kernel, trace)], programs, learned (pattern, reason) pairs, split edges)."""
    split_edges, learned = set(), []
    memo = {}
    for _ in range(_MAX_FEEDBACK_ROUNDS):
        plan = partition(graph, min(level, 2), split_edges=split_edges)
        choices = [_matmul_choice(part, constants, matmul_choices) for part in plan.partitions]
        # Outputs no other partition reads leave the module: their nests may stream them.
        read_inside = {value.name for part in plan.partitions for node in part.nodes
                       for value in node.inputs}
        final = {value.name for value in graph.outputs} - read_inside
        programs = [PartitionProgram(part, constants, block, final)
                    for part, (block, _) in zip(plan.partitions, choices)]
        try:
            scheduled = [_scheduled(program, part, min(level, 2), f"{name}_{part.name}", memo,
                                    panels)
                         for program, part, (_, panels) in zip(programs, plan.partitions,
                                                                choices)]
            plan.level = level
            return plan, scheduled, programs, learned, split_edges
        except FusionRefused as refused:
            edges = [edge for edge in _edges_around(plan, refused.value)
                     if edge[:2] not in split_edges]
            if not edges:
                raise
            for producer, consumer, key in edges:
                split_edges.add((producer, consumer))
                learned.append((key, refused.reason))
                if record:
                    record_override(key, refused.reason)
    raise QuiltError(f"fusion of {name} did not settle after {_MAX_FEEDBACK_ROUNDS} splits")


def _matmul_choice(part, constants, matmul_choices):
    """(register block, panels) of a partition: a tuned choice where `matmul_choices`
    names its matmul, else the host's block and panels left to the schedule."""
    choice = (matmul_choices.get(matmul_key(part, constants))
              if matmul_choices and part.kind == "opaque" else None)
    if choice is None:
        return matmul_block()[:2], None
    return (choice["rows"], choice["cols"]), choice["panel"]


def _scheduled(program, part, level, kernel_name, memo, panels=None):
    """(kernel, trace text) of `program` scheduled at `level` (a matmul's with `panels`),
    named `kernel_name`; a program equal to one scheduled before (memo: naive kernel text
    and panels -> result) reuses it."""
    key = (render_ir(Schedule(program.outputs).kernel), panels, program.final)
    if key not in memo:
        try:
            sch = schedule_partition(program, part, level, "kernel", panels)
        except FusionRefused as failure:
            # Stage names are canonical (v3, v3_sum, v3_block): name the graph value.
            failure.value = program.value_names[failure.stage.split("_")[0]]
            raise
        memo[key] = (sch.kernel, str(sch.trace))
    kernel, trace = memo[key]
    return dataclasses.replace(kernel, name=kernel_name), trace


def _edges_around(plan, value):
    """(producer, consumer, pattern) of the edges inside a partition from the node computing
    `value` (a name) to its consumers there, then those into it: the consumers' first, since
    a stage is refused where its readers are."""
    for part in plan.partitions:
        computing = {node.output.name: node for node in part.nodes}
        if value not in computing:
            continue
        out = [(value, node.output.name, pattern(computing[value], node, position))
               for node in part.nodes for position, read in enumerate(node.inputs)
               if read.name == value]
        into = [(read.name, value, pattern(computing[read.name], computing[value], position))
                for position, read in enumerate(computing[value].inputs) if read.name in computing]
        return out + into
    return []


@functools.lru_cache(maxsize=1)
def _source_digest():
    """A digest of quiltc's own sources (every package the layout maps, wherever each
    lives): a cached module is only as good as the compiler that made it."""
    from .. import codegen, ir, runtime_c, schedule

    folders = sorted({Path(package.__file__).parent for package in (ir, schedule, codegen,
                                                                      runtime_c)} | {_PACKAGE})
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(folder.rglob("*.py")) + sorted(folder.rglob("*.h")):
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _cache_key(graph, level, name, matmul_choices):
    text = "\0".join([str(graph), str(level), name, json.dumps(sorted(read_overrides().items())),
                      str(matmul_block()), json.dumps(matmul_choices, sort_keys=True),
                      str(openmp_threads()), _source_digest()])
    return hashlib.sha256(text.encode()).hexdigest()


def _cache_path(key):
    return cache_directory() / "graphs" / f"{key}.json"


def _read_cached(key):
    """The cached record of `key`, or None when missing or unreadable (then it is rebuilt)."""
    try:
        record = json.loads(_cache_path(key).read_text())
        return record if {"source", "declarations", "split_edges", "learned",
                          "packed"} <= set(record) \
            else None
    except (OSError, ValueError):
        return None


def _write_cached(key, record):
    path = _cache_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(record))
    os.replace(temporary, path)


class FusedModule:
    """A compiled graph: call it with the inputs by name. `plan` (the partitions), `regions`
    (partitions run together), `memory` (the workspace plan), `source`, `header`, `calls`
    (kernels run per call), `launches` (parallel regions per call) and `compile_seconds`
    describe it."""

    def __init__(self, graph, level, split_edges, constants, name, learned, plan=None):
        self.graph, self.level, self.name = graph, level, name
        self.split_edges = split_edges
        self.learned = [tuple(pair) for pair in learned]
        if plan is not None:
            self.plan = plan
        self.sizes = entry.graph_sizes(graph)
        self.constant_offsets, self.constants = entry.pack_constants(constants)
        self.compile_seconds = 0.0
        self._workspace = np.empty(0, np.uint8)
        self._prepared = {}

    # A module loaded from the cache needs none of these to run, so each is made on first
    # use (the cached compile of a BERT layer then takes a tenth of a second).

    @functools.cached_property
    def plan(self):
        plan = partition(self.graph, min(self.level, 2), split_edges=self.split_edges)
        plan.level = self.level
        return plan

    @functools.cached_property
    def regions(self):
        return entry.regions(self.plan.partitions, self.level, openmp_threads())

    @functools.cached_property
    def memory(self):
        return plan_memory(self.regions, self.graph)

    @property
    def calls(self):
        return len(self.plan.partitions)

    @property
    def launches(self):
        return len(self.regions)

    @property
    def header(self):
        return entry.header(self)

    def generate(self, scheduled, programs):
        """(source, cffi declarations) of the kernels `scheduled` ((kernel, trace) pairs,
        one per partition) and the entry point."""
        rendered = render(scheduled, "c", comment=f"quiltc fused graph {self.name}")
        source = rendered.source + "\n\n" + entry.entry_source(self, rendered.kernels, programs)
        return source, rendered.declarations + "\n" + entry.entry_declarations(self)

    def load(self, source, declarations, sanitize=False):
        """Build (through the cache) and load `source`."""
        library = load_library(source, declarations, sanitize=sanitize)
        self.source = source
        self.library_path = str(library.path)
        self._ffi = library.ffi
        self._entry = getattr(library.handle, self.name)
        self._workspace_bytes = getattr(library.handle, f"{self.name}_workspace_bytes")
        self._constants_pointer = self._ffi.cast("char *", self.constants.ctypes.data)
        self._pointer_types = [f"{storage_type(as_dtype(value.dtype))} *"
                               for value in (*self.graph.inputs, *self.graph.outputs)]

    def __call__(self, out=None, **arrays):
        """The graph's outputs for `arrays` (input name -> array): one array, or a tuple.
        `out` (an array, or a tuple of one per output) receives them instead of new arrays:
        each C-contiguous, writeable and of its output's shape and dtype, so a repeated
        call allocates nothing."""
        inputs = self.graph.inputs
        if out is not None and any(value.name == "out" for value in inputs):
            out, arrays = None, {**arrays, "out": out}  # the graph's own input named out
        unknown = sorted(set(arrays) - {value.name for value in inputs})
        if unknown:
            raise ShapeError(f"unknown inputs {', '.join(unknown)}; the graph takes "
                             f"{', '.join(value.name for value in inputs)}")
        shapes = tuple(np.shape(arrays[value.name]) if value.name in arrays else None
                       for value in inputs)
        prepared = self._prepared.get(shapes) or self._prepare(shapes, arrays)
        output_shapes, ordered, needed = prepared
        if self._workspace.size < needed:
            self._workspace = aligned_empty(needed, np.uint8)
        contiguous = [np.ascontiguousarray(arrays[value.name], dtype=value.dtype)
                      for value in inputs]
        if out is None:
            outputs = [output_empty(shape, value.dtype)
                       for shape, value in zip(output_shapes, self.graph.outputs)]
        else:
            outputs = self._given_outputs(out, output_shapes)
            # An input sharing memory with an output is read from a copy: the kernels
            # write the output while later rows may still read the input.
            contiguous = [np.array(array) if any(np.may_share_memory(array, o)
                                                 for o in outputs) else array
                          for array in contiguous]
        ffi = self._ffi
        # from_buffer, not cast of .ctypes.data: a third of a small graph's call went there
        pointers = [ffi.from_buffer(pointer_type, array)
                    for pointer_type, array in zip(self._pointer_types, contiguous + outputs)]
        self._entry(*pointers, self._constants_pointer,
                    ffi.from_buffer("char *", self._workspace), *ordered)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _given_outputs(self, out, shapes):
        """`out` (one array or a tuple of them) checked against the outputs' `shapes`."""
        given = list(out) if isinstance(out, (tuple, list)) else [out]
        values = self.graph.outputs
        if len(given) != len(values):
            raise ShapeError(f"out= takes {len(values)} array(s), one per output "
                             f"({', '.join(value.name for value in values)}); got {len(given)}")
        for array, shape, value in zip(given, shapes, values):
            if not (isinstance(array, np.ndarray) and array.shape == tuple(shape)
                    and array.dtype == value.dtype and array.flags.c_contiguous
                    and array.flags.writeable):
                described = (f"{array.dtype}{list(array.shape)}" if isinstance(array, np.ndarray)
                             else type(array).__name__)
                raise ShapeError(f"out= for output {value.name} must be a writeable "
                                 f"C-contiguous {value.dtype}{list(shape)} numpy array; got "
                                 f"{described}: pass np.empty({tuple(shape)}, np.{value.dtype})")
        for position, array in enumerate(given):
            if any(np.may_share_memory(array, other) for other in given[position + 1:]):
                raise ShapeError("out= arrays share memory; pass a separate array per output")
        return given

    def _prepare(self, shapes, arrays):
        """(output shapes, the sizes in entry order, workspace bytes) for inputs of
        `shapes`, checked against the graph once per shape: the checks and sympy
        substitutions took 8 of the 22 microseconds a call of a small graph took (its
        kernels 1.6)."""
        sizes = self.graph._bind_sizes(arrays)
        ordered = [sizes[size] for size in self.sizes]
        prepared = ([_concrete(value.shape, sizes) for value in self.graph.outputs], ordered,
                    int(self._workspace_bytes(*ordered)))
        if len(self._prepared) >= _PREPARED_SHAPES:
            self._prepared.clear()
        self._prepared[shapes] = prepared
        return prepared

    def peak_bytes(self, **sizes):
        """The workspace bytes (every intermediate, after reuse) at `sizes` (by name)."""
        return self.memory.bytes_at(self.memory.total, _by_symbol(self.sizes, sizes))

    def intermediate_bytes(self, **sizes):
        """The bytes of every intermediate tensor at `sizes`, were none to share memory."""
        return self.memory.bytes_at(self.memory.unshared, _by_symbol(self.sizes, sizes))

    def write(self, folder):
        """Write NAME.c, NAME.h and NAME.weights into `folder`; returns their paths."""
        os.makedirs(folder, exist_ok=True)
        paths = [os.path.join(folder, f"{self.name}{suffix}")
                 for suffix in (".c", ".h", ".weights")]
        Path(paths[0]).write_text(self.source)
        Path(paths[1]).write_text(self.header)
        self.constants.tofile(paths[2])
        return paths

    def __repr__(self):
        return (f"FusedModule({self.name}: {self.calls} kernels in {self.launches} launches, "
                f"inputs {', '.join(v.name for v in self.graph.inputs)})")


def _by_symbol(symbols, sizes):
    missing = [str(size) for size in symbols if str(size) not in sizes]
    if missing:
        raise ShapeError(f"give every size by name: missing {', '.join(missing)}")
    return {size: sizes[str(size)] for size in symbols}


def _concrete(shape, sizes):
    return tuple(int(sympy.sympify(dim).xreplace(sizes)) for dim in shape)
