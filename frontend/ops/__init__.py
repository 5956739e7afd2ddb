"""quiltc.ops: ragged operators built and cached on first use. `ragged.py` holds the
elementwise, normalisation and matmul operators over RaggedArrays, `dense.py` the linear
layers over their flat tokens (weights packed once into column panels), `attention.py` the
masked multi-head attention (`quiltc.attention`), `encoder.py` a transformer encoder
layer that takes a PyTorch state_dict (`quiltc.encoder`), `arguments.py` the checks
every public op runs on its arguments first.
"""

from .dense import linear, pack_weight, padded_rows
from .ragged import (
    MAX_BATCH,
    MAX_TOKENS,
    add,
    add_bias,
    add_layer_norm,
    bias_gelu,
    gelu_value,
    reference_gelu,
    reference_layer_norm,
    trmm,
    vgemm,
)
