"""Rows handed out in chunks to whichever thread asks first.

A kernel run by :func:`call_rows` receives a schedule, a small int64
array ``[next, done, chunks, rows, failed]``, shared by every thread of the
call.  Each thread claims the next chunk with an atomic fetch-and-add, runs its
rows, marks it done and claims again, until none is left:

    c = claim(sched)
    while c < sched[CHUNKS]:
        r0, r1 = chunk_rows(sched, c)
        ...                       # rows r0 .. r1 - 1
        c = next_chunk(sched)

so a thread that starts late (a worker still waking up) takes what is left
instead of holding the call up, and the calling thread only waits for chunks
already running (:func:`wait_chunks`).  Every row is written by exactly one
thread and rows are independent, so results never depend on the thread count or
on who ran what.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from ..core.runtime import SMALL_WORK, call

NEXT, DONE, CHUNKS, ROWS, FAILED = range(5)


def schedule(rows: int, chunks: int) -> np.ndarray:
    """A fresh schedule of ``rows`` rows in ``chunks`` chunks (1 <= chunks <= rows, or 0 rows)."""
    return np.array([0, 0, chunks, rows, 0], np.int64)


def _element(context, builder, aryty, ary, idx):
    data = context.make_array(aryty)(context, builder, ary).data
    return builder.gep(data, [idx], inbounds=True)


@intrinsic
def atomic_add(typingctx, arr, idx, value):
    """arr[idx] += value atomically (sequentially consistent); returns the old value."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1):
        return None
    sig = types.int64(arr, types.intp, types.int64)

    def codegen(context, builder, signature, args):
        ptr = _element(context, builder, signature.args[0], args[0], args[1])
        return builder.atomic_rmw("add", ptr, args[2], "seq_cst")

    return sig, codegen


@intrinsic
def atomic_load(typingctx, arr, idx):
    """arr[idx], read atomically (sequentially consistent)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1):
        return None
    sig = types.int64(arr, types.intp)

    def codegen(context, builder, signature, args):
        ptr = _element(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "seq_cst", 8)

    return sig, codegen


# plain functions: LLVM inlines them; Numba-IR inlining would copy them into every kernel
helper = njit(nogil=True, cache=True)


@helper
def claim(sched):
    """The index of a chunk nobody has claimed (>= sched[CHUNKS] when none is left)."""
    return atomic_add(sched, NEXT, 1)


@helper
def next_chunk(sched):
    """Mark the caller's chunk done and claim another."""
    atomic_add(sched, DONE, 1)
    return atomic_add(sched, NEXT, 1)


@helper
def chunk_rows(sched, c):
    """Rows [r0, r1) of chunk c: the rows split evenly over the chunks."""
    rows = sched[ROWS]
    chunks = sched[CHUNKS]
    return rows * c // chunks, rows * (c + 1) // chunks


@njit(nogil=True, cache=True)
def wait_chunks(sched):
    """Spin until every chunk is done or a thread reported a failure; True when all are done."""
    while atomic_load(sched, DONE) < sched[CHUNKS]:
        if atomic_load(sched, FAILED) != 0:
            return False
    return True




# Chunks per thread: enough that a late thread still finds work and that the
# last chunk to finish is short; an atomic claim costs tens of nanoseconds.
CHUNKS_PER_THREAD = 16

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _executor(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < n:
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="fastwarp")
            _pool_size = n
        return _pool


def _helper(job: list) -> None:
    """A pool thread's share of a call: whatever chunks are left when it starts.

    ``job`` is [kernel, args, sched]; the caller empties it when the call is done,
    so a thread that wakes up after that finds nothing to do and, until then,
    holds no reference to the call's arrays (the caller's output can be freed
    and its memory reused at once)."""
    try:
        kernel, args, sched = job
    except ValueError:
        return
    try:
        kernel(*args, sched)
    except BaseException:
        sched[FAILED] = 1  # the caller stops waiting and raises this exception
        raise


def call_rows(kernel, *args, rows: int, work: int) -> None:
    """Run ``kernel(*args, sched)`` over ``rows`` rows on the caller's Numba thread count.

    The caller runs the kernel itself and ``threads - 1`` pool threads join it;
    all of them claim chunks of rows from one schedule (see the module
    docstring), and the call returns once every chunk is done, without waiting
    for a pool thread that has not started yet (it will find nothing left).
    Calls below ``core.runtime.SMALL_WORK`` output elements, or from a thread
    limited to one kernel thread (``set_kernel_threads(1)``), run on the
    calling thread alone.  The first call of a specialization compiles it on
    the calling thread, before any pool thread calls it.
    """
    threads = numba.get_num_threads()
    if work < SMALL_WORK or rows <= 1 or threads <= 1:
        call(kernel, *args, schedule(rows, 1 if rows else 0))
        return
    call(kernel, *args, schedule(0, 0))  # compile here (no rows), before the pool's threads call it
    k = min(threads, rows)
    sched = schedule(rows, min(rows, CHUNKS_PER_THREAD * k))
    job = [kernel, args, sched]
    pool = _executor(k - 1)
    helpers = [pool.submit(_helper, job) for _ in range(k - 1)]
    try:
        kernel(*args, sched)
        done = wait_chunks(sched)
    finally:
        job.clear()
    if not done:
        for f in helpers:
            if f.done() and f.exception() is not None:
                raise f.exception()
        raise RuntimeError("fastwarp: a kernel thread failed")
