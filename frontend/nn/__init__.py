"""quiltc.nn: small CNNs in numpy and what turns them into integer programs. `layers.py`
holds the layers and `Sequential` (trained with im2col and Adam; `im2col.py`),
`quantize.py` the integer primitives, `qmodel.py` int8 quantization, `bitserial.py` the
bit-serial LUT reference, `weightpool.py` network-wide weight pools, `digits.py` the
digits data set and CNN, `onnx_cnn.py` ONNX CNNs read in as `Sequential`s (one converter
per op in `onnx_ops.py`, constants and shapes folded by `onnx_folds.py`).
`quiltc.quantize`, `quiltc.qmodel`, `quiltc.bitserial`, `quiltc.weightpool` and
`quiltc.digits` name the same modules.
"""

from .layers import (
    Adam,
    AvgPool2d,
    Conv2d,
    Dense,
    DepthwiseConv2d,
    Flatten,
    Layer,
    MaxPool2d,
    ReLU,
    Sequential,
    softmax_cross_entropy,
)
from .onnx_cnn import OnnxCNN, from_onnx
