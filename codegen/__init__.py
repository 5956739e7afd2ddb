"""quiltc.codegen: renderers from the IR to target source. `base.py` holds
`CLikeRenderer`, shared by every C-like target; `names.py` the identifiers and types they
share; `helpers.py` the C helper functions kernels call; `prelude.py` the tables ragged
kernels compute first. Targets: `c.py` (C99 + OpenMP), `cuda.py` (CUDA C kernels and their
host launcher) and `mcu.py` (CMSIS-style Cortex-M C: fixed-width integers, static buffers,
const tables)."""

from .base import CLikeRenderer
from .c import CRenderer, c_signature, render_c
