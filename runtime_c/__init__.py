"""quiltc.runtime_c: the toolchain drivers that build, load and run what codegen emits.
`toolchain.py` compiles C into shared objects, `cache.py` keeps them on disk and in
memory, `call.py` wraps a loaded kernel as a Python callable that checks its arguments
(`forks.py` keeps a forked child's kernels from hanging), `host.py` tells the vector ISA
the compiler targets here. For CUDA, `nvcc.py` compiles PTX and cubin and `cuda_call.py`
calls a kernel on a GPU or through the emulation header `cuda_emu.h`.
For Cortex-M, `mcu_boards.py` describes the emulated boards, `mcu_toolchain.py` builds
projects from the board files in `mcu/` with arm-none-eabi-gcc and runs them under QEMU,
and `unicorn_run.py` (with `elf.py`) calls one function under unicorn, counting
instructions."""

from .cache import DEFAULT_CACHE, LibraryCache, cache_directory
from .call import CompiledKernel
from .toolchain import find_toolchain
