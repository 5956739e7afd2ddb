"""quiltc.demo: `python -m quiltc.demo` (or `make demo`). `run.py` shows the CPU side
(matmul, softmax, ragged encoder, against numpy and PyTorch), `mcu.py` the Cortex-M side.
"""

from .run import main
