"""quiltc.mcu: networks as Cortex-M C. `model.py` turns a quantized or pooled network into
kernels and tables (`model.c`, `weights.c`), `project.py` writes and runs a whole
embedded project (startup, linker script, Makefile) under QEMU or unicorn.
"""

from .project import (
    DEFAULT_BOARD,
    EmulatedRun,
    declared_bytes,
    emit_project,
    emulated_run,
    int8_conv_for,
    quantized_inputs,
    readme,
)
