"""Rows handed out in chunks to whichever thread asks first.

A kernel run by :func:`call_rows` receives a schedule, a small int64
array ``[next, done, chunks, rows, failed, active]``, shared by every thread of
the call.  Each thread claims the next chunk with an atomic fetch-and-add, runs its
rows, marks it done and claims again, until none is left:

    c = claim(sched)
    while c < sched[CHUNKS]:
        r0, r1 = chunk_rows(sched, c)
        ...                       # rows r0 .. r1 - 1
        c = next_chunk(sched)

so a thread that starts late (a helper still waking up) takes what is left
instead of holding the call up, and the calling thread only waits for chunks
already running (:func:`wait_chunks`).  The helpers are persistent daemon
threads (:class:`_Crew`) that poll for the next call for ``FASTWARP_SPIN_US``
microseconds after each one, yielding their core between checks, then sleep.
Every row is written by exactly one thread and rows are independent, so results
never depend on the thread count or on who ran what.
"""

from __future__ import annotations

import os
import platform
import threading
import time

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..core.runtime import SMALL_WORK, call

NEXT, DONE, CHUNKS, ROWS, FAILED, ACTIVE = range(6)


def schedule(rows: int, chunks: int) -> np.ndarray:
    """A fresh schedule of ``rows`` rows in ``chunks`` chunks (1 <= chunks <= rows, or 0 rows);
    ``sched[ACTIVE]`` counts the helpers inside the call's kernel."""
    s = _BLANK.copy()
    s[CHUNKS] = chunks
    s[ROWS] = rows
    return s


_BLANK = np.zeros(6, np.int64)


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




_POSIX = os.name == "posix"


@intrinsic
def os_yield(typingctx):
    """``sched_yield()`` on POSIX systems (another runnable thread on this core goes
    first, so a polling thread does not hold a core that other work wants); a
    spin-wait hint elsewhere."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        if _POSIX:
            fnty = ir.FunctionType(ir.IntType(32), [])
            builder.call(cgutils.get_or_insert_function(builder.module, fnty, "sched_yield"), [])
        elif platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
            fnty = ir.FunctionType(ir.VoidType(), [])
            builder.call(cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse2.pause"), [])
        return context.get_dummy_value()

    return sig, codegen


@njit(nogil=True, cache=True)
def spin_for_change(ctl, seen, spins):
    """ctl[0] once it differs from ``seen``, or after ``spins`` checks (then it may equal it);
    the thread yields its core between checks."""
    for _ in range(spins):
        g = atomic_load(ctl, 0)
        if g != seen:
            return g
        os_yield()
    return atomic_load(ctl, 0)


# Chunks per thread: enough that a late thread still finds work and that the
# last chunk to finish is short; an atomic claim costs tens of nanoseconds.
CHUNKS_PER_THREAD = 16

# How long a helper thread keeps polling for the next call after finishing one
# before it sleeps (FASTWARP_SPIN_US, microseconds; 0: sleep at once).  A sleeping
# thread takes tens of microseconds to wake, more on a VM whose idle virtual CPU was
# halted; a polling one joins within microseconds, and yields its core to any other
# runnable thread meanwhile (see bench/bench_call_patterns.py).
SPIN_US_DEFAULT = 2000


def spin_us() -> int:
    """The helpers' polling time in microseconds: ``FASTWARP_SPIN_US`` or the default.

    Raises ValueError when the variable is set but not an integer."""
    raw = os.environ.get("FASTWARP_SPIN_US", "")
    try:
        return max(0, int(raw)) if raw.strip() else SPIN_US_DEFAULT
    except ValueError:
        raise ValueError(f"FASTWARP_SPIN_US must be an integer number of microseconds, got {raw!r}") from None


def _calibrate(ctl: np.ndarray, micros: int) -> int:
    """The number of ``spin_for_change`` checks that take about ``micros`` microseconds here."""
    if micros <= 0:
        return 0
    probe = 2000  # three probes, about 3 ms here, paid once by the first threaded call
    spin_for_change(ctl, -1, 1)  # compile or load
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        spin_for_change(ctl, ctl[0], probe)
        best = min(best, time.perf_counter() - t0)
    return max(1, int(probe * micros * 1e-6 / max(best, 1e-9)))


class _Crew:
    """Helper threads that join every multi-threaded call.

    A call posts its job and bumps ``ctl[0]``; helpers that finished a call less
    than the spin time ago see the bump at once (polling it without the
    interpreter lock), the others are woken through a condition variable.  A
    helper whose index is beyond the call's thread count stays out of it.  A
    retired crew (replaced by a larger one) lets its threads end."""

    def __init__(self, n: int):
        self.size = n
        self.pid = os.getpid()
        self.ctl = np.zeros(1, np.int64)
        self.spins = _calibrate(self.ctl, spin_us())
        self.job: list = []
        self.sleeping = 0
        self.retired = False
        self.cond = threading.Condition()
        self.bump = threading.Lock()
        for i in range(n):
            threading.Thread(target=self._run, args=(i,), daemon=True, name=f"fastwarp-{i}").start()

    def _run(self, index: int) -> None:
        seen = 0
        while not self.retired:
            g = spin_for_change(self.ctl, seen, self.spins) if self.spins else int(self.ctl[0])
            if g == seen:
                with self.cond:
                    self.sleeping += 1
                    while int(self.ctl[0]) == seen:
                        self.cond.wait()
                    self.sleeping -= 1
                    g = int(self.ctl[0])
            seen = g
            try:
                # one unpacking: the caller may empty the list at any moment
                kernel, args, sched, wanted, errors = self.job
            except ValueError:
                continue
            if index < wanted:
                _helper(kernel, args, sched, errors)

    def post(self, job: list) -> None:
        self.job = job
        with self.bump:  # concurrent callers: every post bumps the generation
            self.ctl[0] += 1
        if self.sleeping:
            with self.cond:
                self.cond.notify_all()

    def retire(self) -> None:
        self.retired = True
        self.post([])  # wake every thread: each finds no job and ends


_crew: _Crew | None = None
_crew_lock = threading.Lock()


def _forget_crew() -> None:
    """In a forked child: none of the parent's helper threads exist there, and the lock
    may have been held by one of the parent's other threads at the fork."""
    global _crew, _crew_lock
    _crew = None
    _crew_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_crew)


def _helpers(n: int) -> _Crew:
    """A crew of at least ``n`` helper threads for this process (a forked child starts its own)."""
    global _crew
    crew = _crew
    if crew is not None and crew.size >= n and crew.pid == os.getpid():
        return crew
    with _crew_lock:
        if _crew is None or _crew.size < n or _crew.pid != os.getpid():
            if _crew is not None and _crew.pid == os.getpid():
                _crew.retire()
            _crew = _Crew(n)
        return _crew


def _helper(kernel, args, sched, errors: list) -> None:
    """A helper's share of a call: whatever chunks are left when it starts.

    The caller empties the job list when the call is done, so a helper that wakes
    up after that finds nothing to do; one that took the job just before runs the
    kernel, finds no chunk left and writes nothing.  ``sched[ACTIVE]`` counts the
    helpers inside the kernel, so that a failed call waits for them before it raises."""
    sched[ACTIVE] += 1  # under the interpreter lock, as the caller reads it
    try:
        kernel(*args, sched)
    except BaseException as e:  # noqa: BLE001 - reported to the caller, which raises it
        errors.append(e)
        sched[FAILED] = 1  # the caller stops waiting and raises this exception
    finally:
        sched[ACTIVE] -= 1


def _stop(sched: np.ndarray) -> None:
    """After a failure: no thread claims another chunk, and the helpers inside the kernel
    finish theirs (their rows may still be written) before the caller raises."""
    sched[NEXT] += sched[CHUNKS]  # every later claim is past the last chunk
    while sched[ACTIVE] > 0:
        time.sleep(0.0001)


def call_rows(kernel, *args, rows: int, work: int) -> None:
    """Run ``kernel(*args, sched)`` over ``rows`` rows on the caller's Numba thread count.

    The caller runs the kernel itself and ``threads - 1`` helper threads join it;
    all of them claim chunks of rows from one schedule (see the module
    docstring), and the call returns once every chunk is done, without waiting
    for a helper that has not started yet (it will find nothing left).
    Calls below ``core.runtime.SMALL_WORK`` output elements, or from a thread
    limited to one kernel thread (``set_kernel_threads(1)``), run on the
    calling thread alone.  The first call of a specialization compiles it on
    the calling thread, before any helper calls it.
    """
    # (small work skips even the thread-count query)
    threads = numba.get_num_threads() if work >= SMALL_WORK and rows > 1 else 1
    if threads <= 1:
        call(kernel, *args, schedule(rows, 1 if rows else 0))
        return
    call(kernel, *args, schedule(0, 0))  # compile here (no rows), before the helpers call it
    k = min(threads, rows)
    sched = schedule(rows, min(rows, CHUNKS_PER_THREAD * k))
    errors: list = []
    job = [kernel, args, sched, k - 1, errors]
    _helpers(k - 1).post(job)
    try:
        kernel(*args, sched)
        done = wait_chunks(sched)
    except BaseException:
        job.clear()
        _stop(sched)
        raise
    job.clear()
    if not done:
        _stop(sched)
        if errors:
            raise errors[0]
        raise RuntimeError("fastwarp: a kernel thread failed")
