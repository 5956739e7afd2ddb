"""Kernels in a forked child: run them on one thread instead of hanging.

GCC's OpenMP runtime keeps a pool of worker threads once a process has run a parallel
region. `fork()` copies only the calling thread, so in the child the pool's threads are
gone while the runtime still counts on them: the child's next parallel region waits for
them forever. That is what `multiprocessing` does by default on Linux. Where a kernel
has run before the fork, the child's first kernel call switches OpenMP to one thread
(through the kernel library's own OpenMP runtime) and warns once, naming the way out.
"""

import ctypes
import os
import warnings

_state = {"kernel_ran": False, "forked_after_kernels": False, "serial": False}

FORK_WARNING = (
    "quiltc: this process was forked after it ran parallel kernels; GCC's OpenMP runtime "
    "cannot start threads in a forked child, so kernels run on one thread here. Start "
    "worker processes with multiprocessing's 'spawn' method "
    "(multiprocessing.set_start_method('spawn')) to keep them parallel."
)


def _after_fork_in_child():
    _state["forked_after_kernels"] = _state["kernel_ran"]
    _state["serial"] = False


os.register_at_fork(after_in_child=_after_fork_in_child)


def before_kernel_call(library_path):
    """Called before every call into a loaded kernel library: in a child forked after
    kernels ran, make OpenMP serial (once) so parallel loops cannot hang."""
    _state["kernel_ran"] = True
    if not _state["forked_after_kernels"] or _state["serial"]:
        return
    try:
        # dlsym through the kernel's own handle finds whichever OpenMP runtime it links.
        set_threads = ctypes.CDLL(library_path).omp_set_num_threads
    except (OSError, AttributeError):
        _state["serial"] = True  # a library without OpenMP has no pool to lose
        return
    set_threads(1)
    _state["serial"] = True
    warnings.warn(FORK_WARNING, RuntimeWarning, stacklevel=3)
