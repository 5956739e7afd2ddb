"""Arrays whose data starts on a cache-line boundary.

numpy's allocator aligns data to 16 bytes only, so a row of 128 floats that starts 16
bytes past a line makes every other 32-byte vector load or store of it straddle two lines
(a softmax over [12288, 128] rows ran 3-5% slower for it on an AVX2 host). The arrays
quiltc allocates for a kernel (outputs, workspaces, packed constants) start on a line.
"""

import math

import numpy as np

CACHE_LINE = 64
# Below this many bytes an output comes straight from np.empty: aligning one costs about 3
# microseconds a call, more than the few vectors it holds lose to split lines.
_ALIGNED_OUTPUT_BYTES = 16 << 10


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array of `shape` and `dtype` whose data starts on a
    CACHE_LINE boundary (it views a slightly larger byte buffer, which it keeps alive)."""
    dtype = np.dtype(dtype)
    nbytes = _count(shape) * dtype.itemsize
    storage = np.empty(nbytes + CACHE_LINE, np.uint8)
    start = (-storage.ctypes.data) % CACHE_LINE
    return storage[start:start + nbytes].view(dtype).reshape(shape)


def output_empty(shape, dtype):
    """A new array for a kernel's output: aligned_empty's from 16 KiB on, np.empty's below,
    where a call would spend more on aligning than the kernel gains from it."""
    if _count(shape) * np.dtype(dtype).itemsize < _ALIGNED_OUTPUT_BYTES:
        return np.empty(shape, dtype)
    return aligned_empty(shape, dtype)


def _count(shape):
    return math.prod(shape if isinstance(shape, tuple | list) else (shape,))
