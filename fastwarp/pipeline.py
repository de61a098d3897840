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

from collections.abc import Iterable, Iterator

import numpy as np

from ._augment_spec import TransformSpec, as_range
from ._prefetch import prefetch_map
from ._threads import cpu_count, set_kernel_threads

__all__ = ["prefetch_map", "warp_batches", "RandomAffine"]

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
                 padding_mode: str = "zeros", align_corners: bool = False, fill_value=0.0,
                 prefetch: int = 2, workers: int = 1) -> Iterator:
    """Warp every batch of an iterable with :func:`fastwarp.affine_warp` (or
    :func:`fastwarp.perspective_warp` for 3 x 3 matrices), ahead of the consumer.

    Parameters
    ----------
    batches : iterable
        Items are image arrays ``(N, H, W, C)`` / ``(H, W, C)`` (any dtype
        fastwarp takes), or tuples/lists whose first element is such an array and
        whose other elements (labels, ids...) are passed through untouched.
    theta : array_like or callable
        A fixed theta ((2, 3) or (N, 2, 3); (3, 3) or (N, 3, 3) for a
        projective warp), or ``theta(index, images)``
        returning one for batch number ``index`` (e.g. :class:`RandomAffine`).
        A callable runs in a worker thread; make it deterministic in ``index``
        rather than depend on call order.
    size : (Ho, Wo), optional
        Output size; defaults to each batch's input size.
    mode, padding_mode, align_corners, fill_value
        As in :func:`fastwarp.affine_warp`.
    prefetch : int, default 2
        Batches kept ready ahead of the consumer.
    workers : int, default 1
        Batches warped at the same time.  The cores are shared out: each
        worker's kernel runs on ``CPUs // workers`` threads (at least 1), so
        several workers do not oversubscribe the machine.

    Yields
    ------
    The warped images, or a tuple ``(warped, *rest)`` for tuple items, in order.

    Raises
    ------
    Whatever the source or :func:`fastwarp.affine_warp` raises (e.g. ValueError
    for a bad shape), at the position of the offending batch.
    """
    from ._validate import check_flags
    from .api import affine_warp, perspective_warp

    check_flags("warp_batches", mode, padding_mode, align_corners)
    fixed = None if callable(theta) else np.asarray(theta, dtype=np.float64)
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"warp_batches: workers must be an int >= 1; got {workers!r}")
    kernel_threads = max(1, cpu_count() // workers)

    def work(indexed):
        set_kernel_threads(kernel_threads)
        index, item = indexed
        rest = None
        if isinstance(item, (tuple, list)):
            if not item:
                raise ValueError(f"warp_batches: batch {index} is an empty {type(item).__name__}")
            images, rest = item[0], tuple(item[1:])
        else:
            images = item
        t = theta(index, images) if fixed is None else fixed
        warp = perspective_warp if np.shape(t)[-2:] == (3, 3) else affine_warp
        warped = warp(images, t, size, mode=mode, padding_mode=padding_mode, align_corners=align_corners,
                      fill_value=fill_value)
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
