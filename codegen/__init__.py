"""quiltc.codegen: renderers from the IR to target source. `base.py` holds
`CLikeRenderer`, shared by every C-like target; `names.py` the identifiers and types they
share; `helpers.py` the C helper functions kernels call; `c.py` is the C99 + OpenMP target."""

from .base import CLikeRenderer
from .c import CRenderer, c_signature, render_c
