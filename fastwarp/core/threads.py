"""How many threads the Numba kernels use from the calling thread."""

from __future__ import annotations

import os

__all__ = ["cpu_count", "set_kernel_threads"]


def cpu_count() -> int:
    """CPUs this process may run on (affinity-aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def set_kernel_threads(n: int) -> int:
    """Let kernels launched from the calling thread use ``n`` threads (clipped to Numba's pool).

    Numba's setting is per thread, so a pool of I/O threads can each run the
    kernel single-threaded while the main thread keeps the whole pool.
    Returns the number set.
    """
    import numba

    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    return n
