"""fastwarp as a stage of a Python data pipeline: warp batches in background threads.

:func:`warp_batches` takes any iterable of image batches (a generator reading
files, a ``DataLoader``, a ``tf.data`` iterator converted to NumPy...) and
yields the warped batches in the same order, while the next batches are read
and warped in background threads.  The Numba kernels release the GIL, so the
warp overlaps with whatever the consumer does (training step, encoding...).

Example
-------
>>> import numpy as np
>>> from fastwarp.pipeline import RandomAffine, warp_batches
>>> def batches():
...     for _ in range(3):
...         yield np.zeros((8, 32, 32, 3), np.uint8), np.arange(8)
>>> aug = RandomAffine(seed=0, rotate=(-20, 20), scale=(0.9, 1.1), size=(24, 24))
>>> for images, labels in warp_batches(batches(), aug, size=(24, 24), padding_mode="border"):
...     assert images.shape == (8, 24, 24, 3)

Guarantees: order is preserved; at most ``prefetch + workers`` batches are read
or warped ahead of the consumer (bounded memory); an exception raised by the
source or by the warp reaches the consumer at the position it happened; when
the consumer stops early (``break``, an exception, ``close()``), the
background threads stop and are joined.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

__all__ = ["prefetch_map", "warp_batches", "RandomAffine"]

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


class RandomAffine:
    """Random affine thetas per batch, reproducible from ``(seed, batch index, position)``.

    Each image gets a rotation, scale, shear and shift drawn uniformly from the
    given ranges, composed about the image centre as
    :func:`fastwarp.transforms.affine_matrix` does (scale, shear, rotation
    counter-clockwise, shift in output pixels).  A range is ``(lo, hi)`` or a
    single number (fixed).  Use it as the ``theta`` of :func:`warp_batches`.

    Parameters
    ----------
    seed : int
    rotate, scale, shear : float or (float, float)
        Degrees, zoom factor, degrees.
    shift : ((dx_lo, dx_hi), (dy_lo, dy_hi)) or (dx, dy)
        Output pixels.
    size : (Ho, Wo), optional
        The output size the thetas are for (the ``size`` given to warp_batches).
    resize : bool, default True
        With ``size``, whether the whole input is resized onto the output
        (True) or the output is a window of that size about the input's centre.
    align_corners : bool, default False
        The flag the thetas are used with.
    """

    def __init__(self, seed: int = 0, *, rotate=0.0, scale=1.0, shear=0.0, shift=(0.0, 0.0),
                 size=None, resize: bool = True, align_corners: bool = False):
        from .folder import TransformSpec, as_range

        sx, sy = shift
        self.spec = TransformSpec(
            rotate=as_range("rotate", rotate), scale=as_range("scale", scale),
            shear=as_range("shear", shear), shift_x=as_range("shift", sx), shift_y=as_range("shift", sy),
            size=None if size is None else (int(size[0]), int(size[1])), resize=resize,
            align_corners=align_corners, seed=int(seed))

    def __call__(self, index: int, images: np.ndarray) -> np.ndarray:
        """thetas (N, 2, 3) for batch number ``index`` of (N, H, W, C) ``images``."""
        in_size = images.shape[1:3] if images.ndim == 4 else images.shape[:2]
        n = images.shape[0] if images.ndim == 4 else 1
        t = np.stack([self.spec.theta(in_size, f"batch{index}", i) for i in range(n)])
        return t if images.ndim == 4 else t[0]


def warp_batches(batches: Iterable, theta, size=None, *, mode: str = "bilinear",
                 padding_mode: str = "zeros", align_corners: bool = False,
                 prefetch: int = 2, workers: int = 1) -> Iterator:
    """Warp every batch of an iterable with :func:`fastwarp.affine_warp`, ahead of the consumer.

    Parameters
    ----------
    batches : iterable
        Items are image arrays ``(N, H, W, C)`` / ``(H, W, C)`` (uint8, float32
        or float64), or tuples/lists whose first element is such an array and
        whose other elements (labels, ids...) are passed through untouched.
    theta : array_like or callable
        A fixed theta ((2, 3) or (N, 2, 3)), or ``theta(index, images)``
        returning one for batch number ``index`` (e.g. :class:`RandomAffine`).
        A callable runs in a worker thread; make it deterministic in ``index``
        rather than depend on call order.
    size : (Ho, Wo), optional
        Output size; defaults to each batch's input size.
    mode, padding_mode, align_corners
        As in :func:`fastwarp.affine_warp`.
    prefetch : int, default 2
        Batches kept ready ahead of the consumer.
    workers : int, default 1
        Batches warped at the same time (each warp is already multi-threaded).

    Yields
    ------
    The warped images, or a tuple ``(warped, *rest)`` for tuple items, in order.

    Raises
    ------
    Whatever the source or :func:`fastwarp.affine_warp` raises (e.g. ValueError
    for a bad shape), at the position of the offending batch.
    """
    from ._validate import check_flags
    from .api import affine_warp

    check_flags("warp_batches", mode, padding_mode, align_corners)
    fixed = None if callable(theta) else np.asarray(theta, dtype=np.float64)

    def work(indexed):
        index, item = indexed
        rest = None
        if isinstance(item, (tuple, list)):
            if not item:
                raise ValueError(f"warp_batches: batch {index} is an empty {type(item).__name__}")
            images, rest = item[0], tuple(item[1:])
        else:
            images = item
        t = theta(index, images) if fixed is None else fixed
        warped = affine_warp(images, t, size, mode=mode, padding_mode=padding_mode,
                             align_corners=align_corners)
        return warped if rest is None else (warped, *rest)

    return prefetch_map(work, _indexed(batches), workers=workers, prefetch=prefetch)


def _indexed(items):
    """enumerate() that closes the source when it is closed itself."""
    it = iter(items)
    try:
        yield from enumerate(it)
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
