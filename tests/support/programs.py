"""The tensor programs that many tests schedule, each a small function returning the
output tensor, next to a `*_arrays(seed, ...)` function returning (inputs, reference):
random inputs of the given extents and numpy's result, each a dict name -> array.

Sizes are ints (or qc.var sizes passed as they are); with `symbolic=True` every size is a
qc.var over [1, 16] instead, named as the docstring says, so one program covers static
and dynamic shapes while the arrays keep the drawn extents. matmul and row_softmax are
the programs the operator recipes (quiltc.recipes) schedule. Two hand-built kernels cover
loop nests the tensor language cannot spell, and `schedule` opens a program of either
kind with some primitive calls already applied.
"""

import numpy as np

import quiltc as qc
from quiltc import recipes
from quiltc.ir import nodes as ir
from quiltc.ir.index import symbol
from quiltc.schedule.schedule import Schedule

from . import helpers


def size(name, extent, symbolic):
    """`extent` itself, or with `symbolic` the size variable `name` over [1, 16]."""
    return qc.var(name, 1, 16) if symbolic else extent


def _rng(seed):
    return np.random.default_rng(seed)


def scale(rows, columns, symbolic=False):
    """B = 2*A + 1 over a (rows, columns) array; sizes M, N."""
    M, N = size("M", rows, symbolic), size("N", columns, symbolic)
    A = qc.placeholder((M, N), "float32", "A")
    return qc.compute((M, N), lambda i, j: A[i, j] * 2.0 + 1.0, "B")


def scale_arrays(seed, rows, columns):
    """Inputs and reference of `scale`."""
    A = helpers.random_array(_rng(seed), (rows, columns))
    return {"A": A}, {"B": A * np.float32(2.0) + np.float32(1.0)}


def volume(shape, symbolic=False):
    """B[i, j, l] = A[i, j, l] * 3 - 1 over a 3-D array; sizes M, N, P."""
    sizes = tuple(size(name, extent, symbolic) for name, extent in zip("MNP", shape))
    A = qc.placeholder(sizes, "float32", "A")
    return qc.compute(sizes, lambda i, j, l: A[i, j, l] * 3.0 - 1.0, "B")


def volume_arrays(seed, shape):
    """Inputs and reference of `volume`."""
    A = helpers.random_array(_rng(seed), shape)
    return {"A": A}, {"B": A * np.float32(3.0) - np.float32(1.0)}


def two_stages(rows, columns):
    """B = A + 1, C = 2*B: two elementwise loop nests (loops i, j and i_1, j_1), the
    second reading what the first writes."""
    A = qc.placeholder((rows, columns), "float32", "A")
    B = qc.compute((rows, columns), lambda i, j: A[i, j] + 1.0, "B")
    return qc.compute((rows, columns), lambda i, j: B[i, j] * 2.0, "C")


def two_stages_arrays(seed, rows, columns):
    """Inputs and reference of `two_stages`."""
    A = helpers.random_array(_rng(seed), (rows, columns))
    return {"A": A}, {"C": (A + np.float32(1.0)) * np.float32(2.0)}


def matmul(rows, inner, columns, symbolic=False, dtype="float32"):
    """C = A @ B with A (rows, inner) and B (inner, columns), reduction loop k; sizes
    M, K, N."""
    M, K, N = (size(name, extent, symbolic)
               for name, extent in (("M", rows), ("K", inner), ("N", columns)))
    return recipes.matmul_program(M, N, K, dtype)[-1]


def matmul_arrays(seed, rows, inner, columns):
    """Inputs and reference of `matmul`."""
    rng = _rng(seed)
    A, B = helpers.random_array(rng, (rows, inner)), helpers.random_array(rng, (inner, columns))
    return {"A": A, "B": B}, {"C": A @ B}


def row_softmax(rows, columns, symbolic=False, dtype="float32"):
    """softmax = exps / row_sum over each row of X, computed stably: row_max (loops i, j),
    exps = exp(X - row_max) (i_1, j_1), row_sum of exps (i_2, j_2), softmax (i_3, j_3);
    sizes N, K."""
    N, K = size("N", rows, symbolic), size("K", columns, symbolic)
    return recipes.softmax_program(N, K, dtype)[-1]


def row_softmax_arrays(seed, rows, columns, dtype="float32"):
    """Inputs and reference of `row_softmax`."""
    X = helpers.random_array(_rng(seed), (rows, columns), dtype)
    exps = np.exp(X - X.max(axis=1, keepdims=True))
    return {"X": X}, {"softmax": exps / exps.sum(axis=1, keepdims=True)}


def stencil(rows, columns, symbolic=False):
    """P = 2*A + 1 (elementwise, one column wider), C[i, j] = (P[i, j] + P[i, j + 1]) *
    w[j]: a producer whose consumer reads two neighbouring columns; sizes N, M."""
    N, M = size("N", rows, symbolic), size("M", columns, symbolic)
    A = qc.placeholder((N, M + 1), "float32", "A")
    w = qc.placeholder((M,), "float32", "w")
    P = qc.compute((N, M + 1), lambda i, j: A[i, j] * 2.0 + 1.0, "P")
    return qc.compute((N, M), lambda i, j: (P[i, j] + P[i, j + 1]) * w[j], "C")


def stencil_arrays(seed, rows, columns):
    """Inputs and reference of `stencil`."""
    rng = _rng(seed)
    A = helpers.random_array(rng, (rows, columns + 1))
    w = helpers.random_array(rng, (columns,))
    P = A * np.float32(2.0) + np.float32(1.0)
    return {"A": A, "w": w}, {"C": (P[:, :-1] + P[:, 1:]) * w}


def bias_gelu(rows, columns, symbolic=False):
    """H = X + b (bias), G = tanh-GELU(H), Y = G * s: two elementwise intermediates;
    sizes N, C."""
    N, C = size("N", rows, symbolic), size("C", columns, symbolic)
    X = qc.placeholder((N, C), "float32", "X")
    b = qc.placeholder((C,), "float32", "b")
    s = qc.placeholder((C,), "float32", "s")
    H = qc.compute((N, C), lambda i, j: X[i, j] + b[j], "H")
    G = qc.compute(
        (N, C),
        lambda i, j: 0.5 * H[i, j] * (1.0 + qc.tanh(0.7978846 * (H[i, j] + 0.044715 * H[i, j]
                                                                 * H[i, j] * H[i, j]))),
        "G",
    )
    return qc.compute((N, C), lambda i, j: G[i, j] * s[j], "Y")


def bias_gelu_arrays(seed, rows, columns):
    """Inputs and reference of `bias_gelu`."""
    rng = _rng(seed)
    X = helpers.random_array(rng, (rows, columns))
    b, s = helpers.random_array(rng, (columns,)), helpers.random_array(rng, (columns,))
    H = X + b
    inner = np.float32(0.7978846) * (H + np.float32(0.044715) * H * H * H)
    Y = np.float32(0.5) * H * (np.float32(1.0) + np.tanh(inner)) * s
    return {"X": X, "b": b, "s": s}, {"Y": Y}


def ragged_kernel():
    """out[i, j] = 1 for j < i + 1: a hand-built triangular nest whose inner extent
    depends on the outer loop (the tensor language has no ragged loops yet)."""
    i, j = symbol("i"), symbol("j")
    out = ir.Buffer("out", qc.float32, (4, 4))
    store = ir.Store(out, (i, j), ir.Const(1.0, qc.float32))
    return ir.Kernel("ragged", (out,), ir.For(i, 4, ir.For(j, i + 1, store)), ("out",))


def two_inner_loops_kernel():
    """for i: (for j: out[i, j] = 1; for l: out[i, l] = 1): a hand-built loop whose body
    is a Seq of two loops, so it is not perfectly nested."""
    i, j, l = symbol("i"), symbol("j"), symbol("l")
    out = ir.Buffer("out", qc.float32, (4, 4))
    one = ir.Const(1.0, qc.float32)
    first, second = ir.Store(out, (i, j), one), ir.Store(out, (i, l), one)
    body = ir.Seq((ir.For(j, 4, first), ir.For(l, 4, second)))
    return ir.Kernel("two", (out,), ir.For(i, 4, body), ("out",))


def schedule(program, steps=()):
    """A schedule of `program` (a tensor, or a hand-built kernel) after the primitive
    calls `steps`, each a tuple (primitive name, *arguments)."""
    sch = Schedule(program) if isinstance(program, ir.Kernel) else qc.Schedule(program)
    for primitive, *arguments in steps:
        getattr(sch, primitive)(*arguments)
    return sch
