"""Random tensor programs for the fuzzer: dense float32, dense int32 and ragged ones, each
drawn from one numpy Generator so that a seed names a program.

A program is a small tree of our own (`Program`: dims, tensors, expressions) rather than
quiltc tensors, so the same tree becomes quiltc tensors (`to_quiltc`), an independent
numpy reference (fuzz_reference.py) and a standalone Python script (`source`) that
reproduces a finding. Stages read earlier tensors at any axis of the right dim, so the
trees cover elementwise chains, broadcasts, matmul-like and row reductions, and in
ragged programs (B, L, H) inputs, reductions over L and (B, L, L) score-like
intermediates with a row max.
"""

from dataclasses import dataclass, field

import numpy as np

# Two reductions of one program may name their reduce axes alike ("k"), which the
# language is meant to allow (a known bug makes them share one extent).
REUSE_REDUCE_AXIS_NAMES = True

MAX_SIZE = 16
MAX_BATCH = 6
MAX_LENGTH = 9
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
FLOAT_BINARY = ("+", "-", "*", "max", "min", "div")
FLOAT_UNARY = ("neg", "abs", "exp", "tanh")
INT_BINARY = ("+", "-", "*", "max", "min", "/", "%", "&", "|", "<<", ">>")
INT_UNARY = ("neg", "abs")
COMBINERS = ("sum", "max", "min", "nanmax")
KINDS = ("dense-float", "dense-int", "ragged")
# Loop names the lowering starts from, per dim (it renames repeats: i, i_1, ...).
AXIS_NAMES = {"M": "i", "N": "j", "K": "p", "B": "b", "L": "l", "H": "h"}


@dataclass(frozen=True)
class Dim:
    """A size of the program: drawn `size`, a qc.var over [lo, hi] when `symbolic`."""

    name: str
    size: int
    symbolic: bool
    lo: int = 1
    hi: int = MAX_SIZE


@dataclass(frozen=True)
class Load:
    tensor: str
    axes: tuple  # one axis name of the reading stage per dim of `tensor`


@dataclass(frozen=True)
class Const:
    value: object


@dataclass(frozen=True)
class Op:
    op: str
    args: tuple


@dataclass(frozen=True)
class Reduce:
    combiner: str
    axis: str  # the axis name used in loads
    dim: str
    label: str  # the qc.reduce_axis name
    body: object


@dataclass
class TensorSpec:
    """An input (body None) or a stage: `axes` pairs (axis name, dim name)."""

    name: str
    dims: tuple
    axes: tuple = ()
    body: object = None


@dataclass
class Program:
    kind: str
    dtype: str
    dims: dict
    tensors: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    lengths: list = None  # ragged row lengths
    extreme_values: bool = False  # int inputs with INT32_MIN/MAX, 0 and -1

    @property
    def ragged(self):
        return self.kind == "ragged"

    def tensor(self, name):
        return next(t for t in self.tensors if t.name == name)

    def inputs(self):
        return [t for t in self.tensors if t.body is None]


def _size(rng, hi=MAX_SIZE):
    """A size in [1, hi], often 1, a prime or the maximum."""
    if rng.random() < 0.3:
        return int(rng.choice([1, 2, 3, 5, 7, 13, hi]) if hi >= 13 else rng.choice([1, hi]))
    return int(rng.integers(1, hi + 1))


def _lengths(rng, batch):
    """Row lengths 0..MAX_LENGTH, empty rows, single elements and the maximum included."""
    return [int(rng.choice([0, 1, MAX_LENGTH])) if rng.random() < 0.35
            else int(rng.integers(0, MAX_LENGTH + 1)) for _ in range(batch)]


def _expression(rng, program, stage_axes, depth, forced=None):
    """A random value over loads of tensors readable at `stage_axes` ((name, dim) pairs);
    `forced` is a load that must appear (one reading the reduce axis)."""
    integer = program.dtype == "int32"
    if depth <= 0 or rng.random() < 0.25:
        if forced is not None:
            return forced
        if rng.random() < 0.15:
            return Const(int(rng.integers(-9, 10)) if integer
                         else float(np.float32(rng.uniform(-2, 2))))
        return _random_load(rng, program, stage_axes) or Const(1 if integer else 1.0)
    unary, binary = (INT_UNARY, INT_BINARY) if integer else (FLOAT_UNARY, FLOAT_BINARY)
    choice = rng.random()
    if choice < 0.2:
        args = (_expression(rng, program, stage_axes, depth - 1, forced),)
        return _with_a_load(rng, program, stage_axes, Op(str(rng.choice(unary)), args))
    if choice < 0.3:
        # A float condition compares an input with a constant: a computed value may round
        # differently in C (contracted multiply-adds) and flip the branch.
        inputs = [t for t in _readable(program, stage_axes) if t.body is None]
        if integer or inputs:
            test = (_expression(rng, program, stage_axes, depth - 1) if integer
                    else _random_load(rng, program, stage_axes, inputs[0]))
            bound = Const(int(rng.integers(-3, 4)) if integer
                          else float(np.float32(rng.uniform(-0.5, 0.5))))
            then = _expression(rng, program, stage_axes, depth - 1, forced)
            otherwise = _expression(rng, program, stage_axes, depth - 1)
            if rng.random() < 0.5:
                then, otherwise = otherwise, then
            return _with_a_load(rng, program, stage_axes,
                                Op("select", (test, bound, then, otherwise)))
    a = _expression(rng, program, stage_axes, depth - 1, forced)
    b = _expression(rng, program, stage_axes, depth - 1)
    if rng.random() < 0.5:
        a, b = b, a
    op = str(rng.choice(binary))
    args = (a, b)
    return _with_a_load(rng, program, stage_axes, Op(op, args))


def _with_a_load(rng, program, stage_axes, op):
    """`op`, its first operand replaced by a load where all its operands are constants:
    Python would fold them (5 / 3 is a float) before quiltc sees them."""
    if not all(isinstance(a, Const) for a in op.args[:2]):
        return op
    load = _random_load(rng, program, stage_axes)
    return Op(op.op, (load, *op.args[1:])) if load is not None else op


def _readable(program, stage_axes):
    """Tensors every dim of which some axis of the stage runs over (ragged tensors only in
    stages over the batch)."""
    dims = {dim for _, dim in stage_axes}
    return [t for t in program.tensors if set(t.dims) <= dims]


def _random_load(rng, program, stage_axes, tensor=None, must_use=None):
    candidates = [tensor] if tensor is not None else _readable(program, stage_axes)
    if not candidates:
        return None
    spec = candidates[int(rng.integers(len(candidates)))]
    axes = []
    for dim in spec.dims:
        if must_use is not None and dim == must_use[1] and must_use[0] not in axes:
            axes.append(must_use[0])
            continue
        options = [name for name, d in stage_axes if d == dim]
        axes.append(options[int(rng.integers(len(options)))])
    return Load(spec.name, tuple(axes))


def _stage(rng, program, index, shape, reduce_dim, reductions):
    """Stage `index` of `shape` (dim names), reducing over `reduce_dim` when given."""
    counts = {}
    axes = []
    for dim in shape:
        base = AXIS_NAMES[dim]
        axes.append((base + ("2" * counts.get(dim, 0)), dim))
        counts[dim] = counts.get(dim, 0) + 1
    axes = tuple(axes)
    depth = int(rng.integers(1, 4))
    if not _readable(program, axes + ((("k", reduce_dim),) if reduce_dim else ())):
        return None
    if reduce_dim is None:
        body = _expression(rng, program, axes, depth)
        return TensorSpec(f"T{index}", shape, axes, body)
    axis = ("k", reduce_dim)
    every = axes + (axis,)
    holders = [t for t in _readable(program, every) if reduce_dim in t.dims]
    if not holders:
        return None
    holder = holders[int(rng.integers(len(holders)))]
    forced = _random_load(rng, program, every, holder, must_use=axis)
    reuse = REUSE_REDUCE_AXIS_NAMES and reductions and rng.random() < 0.3
    label = "k" if reuse else f"k{index}"
    combiner = str(rng.choice(COMBINERS))
    body = Reduce(combiner, "k", reduce_dim, label,
                  _expression(rng, program, every, depth - 1, forced))
    return TensorSpec(f"T{index}", shape, axes, body)


def _dense_program(rng, kind):
    dtype = "int32" if kind == "dense-int" else "float32"
    names = list(rng.permutation(["M", "N", "K"])[: int(rng.integers(1, 4))])
    dims = {n: Dim(n, _size(rng), bool(rng.random() < 0.4)) for n in names}
    program = Program(kind, dtype, dims, extreme_values=dtype == "int32" and rng.random() < 0.4)
    # The first input has every dim, so each qc.var is bound by its shape at call time.
    for n in range(int(rng.integers(1, 4))):
        count = len(names) if n == 0 else int(rng.integers(1, len(names) + 1))
        program.tensors.append(TensorSpec(f"X{n}", tuple(rng.permutation(names)[:count])))
    shapes = [(), *[(a,) for a in names], *[(a, b) for a in names for b in names if a != b]]
    return program, [s for s in shapes if s], names


def _ragged_program(rng):
    dtype = "int32" if rng.random() < 0.25 else "float32"
    batch = int(rng.integers(1, MAX_BATCH + 1))
    dims = {"B": Dim("B", batch, bool(rng.random() < 0.7), 1, MAX_BATCH),
            "L": Dim("L", MAX_LENGTH, False, 0, MAX_LENGTH),
            "H": Dim("H", int(rng.integers(1, 5)), bool(rng.random() < 0.3), 1, 4)}
    program = Program("ragged", dtype, dims, lengths=_lengths(rng, batch),
                      extreme_values=dtype == "int32" and rng.random() < 0.3)
    program.tensors.append(TensorSpec("X0", ("B", "L", "H")))
    if rng.random() < 0.6:
        program.tensors.append(TensorSpec("X1", ("B", "L", "H")))
    if rng.random() < 0.4:
        program.tensors.append(TensorSpec("X2", ("H",)))
    shapes = [("B", "L", "H"), ("B", "H"), ("B", "L"), ("B", "L", "L")]
    return program, shapes, ["L", "H"]


def generate(seed, kind=None):
    """The program `seed` names (of `kind`, else a kind drawn from the seed)."""
    rng = np.random.default_rng(seed)
    kind = kind or str(rng.choice(KINDS, p=[0.35, 0.3, 0.35]))
    if kind == "ragged":
        program, shapes, reducible = _ragged_program(rng)
    else:
        program, shapes, reducible = _dense_program(rng, kind)
    reductions = 0
    stages = int(rng.integers(1, 5))
    index = 0
    while index < stages or not _last_may_be_output(program):
        if index > stages + 6:
            break
        shape = shapes[int(rng.integers(len(shapes)))]
        reduce_dim = (str(rng.choice(reducible)) if rng.random() < 0.45 else None)
        stage = _stage(rng, program, index, shape, reduce_dim, reductions)
        index += 1
        if stage is None:
            continue
        reductions += isinstance(stage.body, Reduce)
        program.tensors.append(stage)
    stages = [t for t in program.tensors if t.body is not None]
    if not stages or not _may_be_output(program, stages[-1]):
        return generate(seed + 2**40, kind)
    program.outputs = [t.name for t in stages[:-1]
                       if _may_be_output(program, t) and rng.random() < 0.3]
    program.outputs.append(stages[-1].name)
    if not _sizes_bound(program):
        return generate(seed + 2**40, kind)
    return program, rng


def tensors_read(expr):
    """Names of the tensors `expr` loads."""
    if isinstance(expr, Load):
        return {expr.tensor}
    if isinstance(expr, Reduce):
        return tensors_read(expr.body)
    if isinstance(expr, Op):
        return set().union(*(tensors_read(a) for a in expr.args))
    return set()


def reachable(program):
    """The tensors the outputs depend on (the lowering drops the rest)."""
    seen, todo = set(), list(program.outputs)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            spec = program.tensor(name)
            todo.extend(tensors_read(spec.body) if spec.body is not None else ())
    return [t for t in program.tensors if t.name in seen]


def _sizes_bound(program):
    """Whether the inputs the kernel keeps fix every size its stages use."""
    used = reachable(program)
    bound = {d for t in used if t.body is None for d in t.dims}
    return {d for t in used for d in t.dims} <= bound


def _may_be_output(program, spec):
    # A (B, L, L) tensor has two ragged dims: no RaggedArray holds it.
    return spec.dims.count("L") <= 1


def _last_may_be_output(program):
    return program.tensors[-1].body is not None and _may_be_output(program, program.tensors[-1])
