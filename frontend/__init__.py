"""quiltc: a reference compiler for irregular tensor programs.

What a user touches: the tensor language (`var`, `placeholder`, `compute`, reducers and
elementwise math), `Schedule` with its primitives, and `build`, which turns a schedule
into a callable for a target ("c", "cuda", "cuda-emu"). Ragged batches are
`RaggedArray`s and their operators live in `quiltc.ops`; small CNNs (`quiltc.nn`) compress
to weight pools (`quiltc.weightpool`) and become Cortex-M projects (`quiltc.mcu`). The IR
lives in `quiltc.ir`, schedules in `quiltc.schedule`, renderers in `quiltc.codegen`,
toolchain drivers in `quiltc.runtime_c`.
"""

import sys

from . import autotune, graph, mcu, nn, ops, recipes
from .driver import Schedule, build, export
from .ir import dtypes
from .ir.arrays import RaggedArray
from .ir.dtypes import float32, float64, int8, int16, int32, uint8
from .ir.errors import (
    AllocationError,
    BuildError,
    LanguageError,
    QuiltError,
    ScheduleError,
    ShapeError,
    ToolchainMissing,
    VerifyError,
)
from .lang import (
    Tensor,
    abs,
    cast,
    causal_dim,
    compute,
    erf,
    exp,
    exp_nonpositive,
    log,
    lower,
    max,
    maximum,
    min,
    minimum,
    nanmax,
    placeholder,
    ragged_dim,
    reduce_axis,
    requantize,
    smlad,
    sqrt,
    sum,
    tanh,
    var,
    where,
)
from .nn import bitserial, digits, qmodel, quantize, weightpool
from .ops import attention, encoder
from .progress import configure_logging, quiet
from .recipes import cuda as recipes_cuda

# The module paths of the flat layout that users import: `import quiltc.attention` finds
# quiltc.ops.attention.
for _name, _module in {"attention": attention, "encoder": encoder, "recipes_cuda": recipes_cuda,
                       "bitserial": bitserial, "digits": digits, "qmodel": qmodel,
                       "quantize": quantize, "weightpool": weightpool}.items():
    sys.modules[f"{__name__}.{_name}"] = _module
del _name, _module

configure_logging()

__all__ = [
    "AllocationError", "BuildError", "LanguageError", "QuiltError", "ScheduleError", "ShapeError",
    "ToolchainMissing", "VerifyError", "RaggedArray", "Schedule", "Tensor", "abs", "build", "cast",
    "export", "quiet", "configure_logging",
    "causal_dim", "compute", "dtypes", "erf", "exp", "exp_nonpositive", "float32", "float64",
    "int8", "int16", "int32", "log",
    "lower", "max", "maximum", "min", "minimum", "nanmax", "placeholder", "ragged_dim",
    "reduce_axis", "sqrt", "sum",
    "tanh", "uint8", "var", "where", "requantize", "smlad", "autotune", "graph", "nn",
    "quantize", "qmodel",
    "bitserial", "weightpool", "digits", "mcu", "ops", "attention", "encoder", "recipes",
    "recipes_cuda",
]
