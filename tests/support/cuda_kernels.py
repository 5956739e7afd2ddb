"""The CUDA test kernels (the GPU recipes on small programs) and the check every CUDA test
makes: nvcc compiles the kernel for sm_80 and sm_90, and the same source, run on the CPU
under the emulation, matches numpy.

Sizes are qc.var where a test draws them, so one source serves every drawn shape and
nvcc and g++ run once per kernel and session (the build cache keeps the rest).
"""

import numpy as np
from hypothesis import strategies as st

import quiltc as qc
from quiltc import recipes, recipes_cuda
from quiltc.attention import reference_attention
from quiltc.runtime_c.nvcc import ARCHITECTURES, INSTALL_HINT

from . import helpers

MAX_LENGTH = 9
HEADS, HEAD_SIZE = 2, 4
FEATURES = 3

# Ragged batches: empty rows, single tokens and the longest row among them.
lengths_strategy = st.lists(st.one_of(st.sampled_from([0, 1, MAX_LENGTH]),
                                      st.integers(0, MAX_LENGTH)), min_size=1, max_size=5)


def require_cuda_tools():
    """Skip (or fail under QUILTC_REQUIRE_TOOLCHAINS=1) without nvcc or g++."""
    helpers.require_tool("nvcc", INSTALL_HINT)
    helpers.require_tool("g++", "apt-get install -y g++")


def build_both(kernel):
    """Compile `kernel` (a schedule or kernel) with nvcc, check the PTX and cubin of every
    architecture, and return the emulation build of the same source."""
    require_cuda_tools()
    gpu = qc.build(kernel, target="cuda")
    assert sorted(gpu.ptx) == sorted(gpu.cubin) == sorted(ARCHITECTURES)
    for arch in ARCHITECTURES:
        assert f".target {arch}" in gpu.ptx[arch]
        assert gpu.cubin[arch][:4] == b"\x7fELF"
    emulated = qc.build(kernel, target="cuda-emu")
    assert emulated.source == gpu.source
    return emulated


def matmul(symbolic=True, shape=(16, 16, 16)):
    """The 16 x 16 shared-tile matmul schedule; sizes M, N, K in [1, 64], or `shape`
    (rows, inner, columns)."""
    rows, inner, columns = (qc.var(name, 1, 64) for name in "MKN") if symbolic else shape
    _, _, c = recipes.matmul_program(rows, columns, inner)
    return recipes_cuda.schedule_matmul_cuda(c)


def matmul_arrays(seed, rows, inner, columns):
    """Inputs A (rows, inner) and B (inner, columns) and numpy's A @ B."""
    rng = np.random.default_rng(seed)
    a = helpers.random_array(rng, (rows, inner))
    b = helpers.random_array(rng, (inner, columns))
    return {"A": a, "B": b}, a @ b


def softmax(threads):
    """The tree-reduction row softmax over R rows of C columns (both in [1, 300])."""
    return recipes_cuda.schedule_softmax_cuda(qc.var("R", 1, 300), qc.var("C", 1, 300), threads)


def ragged_scale():
    """Y = 2 X + 1 over a ragged (B, L, 3) batch; returns (schedule, output tensor)."""
    batch = qc.var("B", 0, 8)
    length = qc.ragged_dim("L", batch, MAX_LENGTH)
    x = qc.placeholder((batch, length, FEATURES), "float32", "X")
    y = qc.compute((batch, length, FEATURES),
                   lambda b, l, f: x[b, l, f] * np.float32(2.0) + np.float32(1.0), "Y")
    return qc.Schedule(y, name="ragged_scale"), y


def attention(causal):
    """The ragged masked attention schedule over 2 heads of 4, rows up to 9 long."""
    return recipes_cuda.schedule_attention_cuda(HEADS, HEAD_SIZE, MAX_LENGTH, causal)


def attention_reference(rows, causal):
    """Per-sequence numpy attention of `rows`, shaped like the kernel's output rows."""
    return [r.reshape(-1, HEADS, HEAD_SIZE)
            for r in reference_attention(rows, HEADS, HEAD_SIZE, causal)]
