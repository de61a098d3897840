"""Process-wide Numba settings fastwarp needs, applied once at import.

Threading layer
    Numba's ``workqueue`` layer aborts the process when two threads enter a
    parallel kernel at once, which is exactly what ``tf.data`` parallel maps and
    thread pools do.  Unless the user chose a layer (``NUMBA_THREADING_LAYER``),
    fastwarp asks for ``threadsafe``: TBB if the ``tbb`` package is installed
    (a fastwarp dependency on the platforms that have it), else OpenMP.  Unless
    the user set ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``, OpenMP gets
    ``OMP_WAIT_POLICY=PASSIVE`` with ``GOMP_SPINCOUNT=1000``: idle workers spin
    for a few microseconds only (the default spins for about a millisecond and
    slows down whatever runs next), yet calls in a loop still find them awake
    (measured on 2 cores: 13 us per call on a tiny batch against 86 us when the
    workers sleep at once, for no measurable extra CPU time while idle).

SLP vectorizer
    LLVM's SLP vectorizer packs the per-channel arithmetic of a pixel into SIMD
    lanes.  Numba leaves it off globally (numba issue 8705); fastwarp turns it
    on only while its own kernels compile (:func:`slp_vectorize`), and the
    conformance tests guard every flag combination.
"""

from __future__ import annotations

import contextlib
import os
import threading

import numba
from numba.core import config

_user_layer = "NUMBA_THREADING_LAYER" in os.environ
if not _user_layer:
    config.THREADING_LAYER = "threadsafe"
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ["GOMP_SPINCOUNT"] = "1000"

# Numba options of the functions that only other Numba functions call: Numba then builds
# no CPython or C entry point for them (each is lowered, optimized and turned into
# machine code at the first call, a large share of its compile time).  Calling such a
# function from Python crashes the interpreter, so every function that Python code calls
# (kernels, and the scalar helpers the GPU kernels call, which Numba's CUDA simulator
# runs from Python) keeps its entry points.
NUMBA_ONLY = {"no_cpython_wrapper": True, "no_cfunc_wrapper": True}

# The decorators of the CPU kernels' helper functions (fastmath explicit: a helper never
# inherits its caller's): ``numba_only`` for those only Numba code calls, ``shared`` for
# those Python or the GPU kernels call too.
numba_only = numba.njit(cache=True, nogil=True, fastmath=False, **NUMBA_ONLY)
shared = numba.njit(cache=True, nogil=True, fastmath=False)

_slp_lock = threading.Lock()
_slp_depth = 0
_slp_saved = config.SLP_VECTORIZE


@contextlib.contextmanager
def slp_vectorize():
    """Enable LLVM's SLP vectorizer while fastwarp kernels compile (re-entrant, thread-safe)."""
    global _slp_depth, _slp_saved
    with _slp_lock:
        if _slp_depth == 0:
            _slp_saved = config.SLP_VECTORIZE
            config.SLP_VECTORIZE = 1
        _slp_depth += 1
    try:
        yield
    finally:
        with _slp_lock:
            _slp_depth -= 1
            if _slp_depth == 0:
                config.SLP_VECTORIZE = _slp_saved


# Calls whose output has fewer elements than this run on the calling thread
# alone: waking a sleeping OpenMP worker costs tens of microseconds, more than
# a second thread saves on so little work (bench/bench_call_patterns.py, "tiny").
SMALL_WORK = 16384


def _compile_with_slp(kernel) -> None:
    """Make every compilation of ``kernel`` (a Numba dispatcher) run with SLP on.

    Numba compiles a new specialization, or loads it from the cache, through
    the dispatcher's ``compile`` method, whichever thread calls; wrapping it
    once per dispatcher leaves the per-call path free of any lookup.
    """
    compile_ = kernel.compile

    def compile(sig):
        with slp_vectorize():
            return compile_(sig)

    kernel.compile = compile
    kernel._fastwarp_slp = True


def call(kernel, *args, work: int | None = None):
    """Run a kernel; every compilation of it runs with SLP on.

    ``work`` (the number of output elements) below :data:`SMALL_WORK` runs the
    kernel on the calling thread only (Numba's thread count is per calling
    thread, so concurrent callers are unaffected); results never depend on the
    thread count.
    """
    if not getattr(kernel, "_fastwarp_slp", False):
        _compile_with_slp(kernel)
    if work is not None and work < SMALL_WORK:
        threads = numba.get_num_threads()
        if threads > 1:
            numba.set_num_threads(1)
            try:
                return kernel(*args)
            finally:
                numba.set_num_threads(threads)
    return kernel(*args)


def threading_layer() -> str:
    """The Numba threading layer in use (after the first parallel call), or the requested one."""
    try:
        return numba.threading_layer()
    except ValueError:
        return str(config.THREADING_LAYER)


def start_numba_without_blas() -> bool:
    """Start Numba's CPU target without importing ``scipy.linalg`` (for short-lived processes).

    Numba's CPU context, on the first call of any compiled function in a
    process (a cache load included), imports ``numba.np.arraymath``, which
    imports ``scipy.linalg`` when SciPy is installed, only to learn whether
    ``np.correlate`` and ``np.convolve`` may use BLAS: a large part of the
    first call's latency in a fresh process.  fastwarp's kernels call no BLAS, so
    the command-line tools start the context with that import refused:
    ``np.correlate``/``np.convolve`` in Numba code of the same process then use
    Numba's own loop, and ``np.dot`` and ``np.linalg`` import SciPy when they
    first compile, as usual.  Returns False (and does nothing) where the context
    has started already or ``scipy.linalg`` is imported anyway.
    """
    import sys

    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return False
    from numba.core.registry import cpu_target

    # A None entry makes every import of scipy.linalg (or below it) fail at once.  Unlike a
    # finder added to sys.meta_path, it leaves alone the imports other threads run meanwhile
    # (``fastwarp warp`` decodes files while the context starts).
    sys.modules["scipy.linalg"] = None
    try:
        cpu_target.target_context.refresh()
    finally:
        if "scipy.linalg" in sys.modules and sys.modules["scipy.linalg"] is None:
            del sys.modules["scipy.linalg"]
    return True
