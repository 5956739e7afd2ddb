"""quiltc.ops: ragged operators built and cached on first use. `ragged.py` holds the
elementwise, normalisation and matmul operators over RaggedArrays, `attention.py` the
masked multi-head attention (`quiltc.attention`), `encoder.py` a transformer encoder
layer that takes a PyTorch state_dict (`quiltc.encoder`), `arguments.py` the checks
every public op runs on its arguments first.
"""

from .ragged import (
    MAX_BATCH,
    MAX_TOKENS,
    add,
    add_bias,
    add_layer_norm,
    bias_gelu,
    gelu_value,
    linear,
    padded_rows,
    reference_gelu,
    reference_layer_norm,
    trmm,
    vgemm,
)
