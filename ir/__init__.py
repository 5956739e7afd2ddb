"""quiltc.ir: the loop-nest IR. Nodes (nodes.py, with base.py and values.py), sympy index
arithmetic (index.py), storage layouts, traversal, the pseudo-code printer, the verifier
(verify.py, verify_gpu.py) and the reference interpreter. It imports nothing else of
quiltc."""

from . import dtypes
from .errors import (
    AllocationError,
    BuildError,
    LanguageError,
    QuiltError,
    ScheduleError,
    ShapeError,
    ToolchainMissing,
    VerifyError,
)
from .index import bounds, floordiv, proves, simplify, symbol, table
from .nodes import (
    Alloc,
    Barrier,
    Bin,
    Buffer,
    Call,
    Cast,
    CausalDim,
    Const,
    For,
    If,
    Index,
    Kernel,
    Load,
    RaggedDim,
    Reduce,
    Select,
    Seq,
    ShapeVar,
    Store,
    Un,
    Value,
    seq,
)
from .printer import render
from .verify import verify
