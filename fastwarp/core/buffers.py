"""Large output arrays recycled instead of freshly allocated.

Freeing a large array and allocating one of the same size again can hand back
memory that the C allocator has just returned to the system (or a fresh
mapping), and the kernel that first writes it then pays a page fault and a
page of zeros per 4 KiB: on a 2 x 400 x 400 x 3 float32 warp that made the
allocating call 2-3 times slower than writing into ``out=``.  The arrays of at
least :data:`MIN_BYTES` that fastwarp returns are views of slabs kept in a
small pool instead; a slab is handed out again once nothing refers to it any
more (the caller dropped every array that views it), so a loop of calls reuses
memory that is already mapped, as PyTorch's caching allocator does.

The pool holds at most ``FASTWARP_POOL_BYTES`` bytes (environment variable,
read at import; default 256 MiB; 0 turns pooling off).  When a new slab would
not fit, idle slabs are dropped, least recently used first; :func:`clear`
drops every idle slab.  A slab is reused only when its reference count shows
that the pool alone holds it, so two live arrays never share memory.
"""

from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

MIN_BYTES = 1 << 20
DEFAULT_LIMIT = 256 << 20


def _limit() -> int:
    try:
        return max(0, int(os.environ.get("FASTWARP_POOL_BYTES", DEFAULT_LIMIT)))
    except ValueError:
        return DEFAULT_LIMIT


LIMIT = _limit()
_slabs: list[np.ndarray] = []  # least recently handed out first
_held = 0
_lock = threading.Lock()


def _idle(i: int) -> bool:
    """Whether only the pool refers to _slabs[i] (the list's reference and getrefcount's own)."""
    return sys.getrefcount(_slabs[i]) <= 2


def empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)``, from the pool when it is large (C-contiguous either way)."""
    global _held
    dtype = np.dtype(dtype)
    nbytes = math.prod(map(int, shape)) * dtype.itemsize  # Python ints: no overflow, no NumPy call
    if nbytes < MIN_BYTES or nbytes > LIMIT:
        return np.empty(shape, dtype)
    with _lock:
        for i in range(len(_slabs)):
            if _slabs[i].nbytes == nbytes and _idle(i):
                slab = _slabs.pop(i)
                break
        else:
            i = 0
            while _held + nbytes > LIMIT and i < len(_slabs):
                if _idle(i):
                    _held -= _slabs.pop(i).nbytes
                else:
                    i += 1
            if _held + nbytes > LIMIT:
                return np.empty(shape, dtype)
            slab = np.empty(nbytes, np.uint8)
            _held += nbytes
        _slabs.append(slab)
        return slab.view(dtype).reshape(shape)


def clear() -> int:
    """Drop the idle slabs (the ones no array refers to); returns the bytes released."""
    global _held
    freed = 0
    with _lock:
        i = 0
        while i < len(_slabs):
            if _idle(i):
                freed += _slabs.pop(i).nbytes
            else:
                i += 1
        _held -= freed
    return freed
