"""quiltc.lang: the tensor language (`var`, `ragged_dim`, `placeholder`, `compute`, the
reducers and elementwise math, in `tensor.py`; its sizes and axes, symbols that carry
their range or extent, in `symbols.py`) and its lowering to one loop-nest kernel
(`lower.py`). What is computed, never how: no loops, no memory. Imports only `quiltc.ir`.
"""

from .lower import lower
from .tensor import (
    ReduceExpr,
    Tensor,
    abs,
    cast,
    causal_dim,
    compute,
    erf,
    exp,
    exp_nonpositive,
    log,
    loop_extents,
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
