"""``map`` computed ahead in background threads, in order and bounded: :func:`prefetch_map`.

A leaf module: :mod:`fastwarp.pipeline` builds :func:`~fastwarp.pipeline.warp_batches`
on it and re-exports it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["prefetch_map"]

_DONE = object()


class _Raise:
    def __init__(self, exc: BaseException):
        self.exc = exc


def prefetch_map(fn: Callable, iterable: Iterable, *, workers: int = 1, prefetch: int = 2) -> Iterator:
    """``map(fn, iterable)`` computed ahead in background threads, in order, bounded.

    Parameters
    ----------
    fn : callable
        Applied to every item in a pool of ``workers`` threads.
    iterable : iterable
        Consumed by one background thread (so a slow source overlaps too).
    workers : int, default 1
        Threads running ``fn``.
    prefetch : int, default 2
        How many results may wait for the consumer; at most
        ``prefetch + workers`` items are in flight.

    Yields
    ------
    ``fn(item)`` for each item, in the order of ``iterable``.  An exception
    from ``fn`` or from the iterable is raised at its position.  Closing the
    generator (or leaving a ``for`` loop) stops and joins the threads; the
    source is closed (``close()``) if it has that method.
    """
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"prefetch_map: workers must be an int >= 1; got {workers!r}")
    if not isinstance(prefetch, int) or prefetch < 0:
        raise ValueError(f"prefetch_map: prefetch must be an int >= 0; got {prefetch!r}")
    return _prefetch(fn, iterable, workers, prefetch)


def _prefetch(fn, iterable, workers, prefetch):
    # The queue holds futures in source order; the feeder blocks when it is full.
    q: queue.Queue = queue.Queue(maxsize=max(1, prefetch + workers - 1))
    stop = threading.Event()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="fastwarp-prefetch")

    def put(x) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def feed():
        it = iter(iterable)
        try:
            for item in it:
                if stop.is_set():
                    return
                fut = pool.submit(fn, item)
                if not put(fut):
                    fut.cancel()
                    return
            put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put(_Raise(e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001, S110 - best effort on shutdown
                    pass

    feeder = threading.Thread(target=feed, name="fastwarp-prefetch-feeder", daemon=True)
    feeder.start()
    try:
        while True:
            x = q.get()
            if x is _DONE:
                return
            if isinstance(x, _Raise):
                raise x.exc
            yield x.result()
    finally:
        stop.set()
        while True:  # unblock the feeder and drop what was computed ahead
            try:
                x = q.get_nowait()
            except queue.Empty:
                break
            if isinstance(x, Future):
                x.cancel()
        feeder.join()
        pool.shutdown(wait=True, cancel_futures=True)
