"""quiltc.recipes: hand-written schedules, the default way to make a program fast on each
target: `cpu.py` (register-blocked matmul, row softmax), `cuda.py` (shared-tile matmul,
tree-reduction softmax, ragged kernels, attention; `quiltc.recipes_cuda`) and `mcu.py`
(int8 and bit-serial Cortex-M kernels). Each is a trace of schedule primitives.
"""

from .cpu import matmul_program, schedule_matmul, schedule_softmax, softmax_program
