"""quiltc.runtime_c: the toolchain drivers that build, load and run what codegen emits.
`toolchain.py` compiles C into shared objects, `cache.py` keeps them on disk and in
memory, `call.py` wraps a loaded kernel as a Python callable that checks its arguments."""

from .cache import DEFAULT_CACHE, LibraryCache, cache_directory
from .call import CompiledKernel
from .toolchain import find_toolchain
