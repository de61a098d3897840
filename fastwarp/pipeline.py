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
>>> aug = RandomAffine(seed=0, rotation=20, scale=(0.9, 1.1), perspective=0.1, size=(24, 24))
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

from .augment import AugmentSpec, element_key
from .batch.prefetch import prefetch_map
from .core.threads import cpu_count, set_kernel_threads

__all__ = ["prefetch_map", "warp_batches", "RandomAffine"]

class RandomAffine:
    """Random augmentation thetas per batch, drawn and composed by :class:`fastwarp.augment.AugmentSpec`.

    Each image gets a rotation, scale, shear, translation (and perspective)
    drawn uniformly from the given ranges, composed about the image centre
    (scale, shear, rotation counter-clockwise, translation in output pixels,
    then the corner moves), from the seed and a per-image key.  Use it as the
    ``theta`` of :func:`warp_batches` (thetas are 3 x 3 with a perspective,
    which :func:`warp_batches` warps with :func:`fastwarp.perspective_warp`).

    Parameters
    ----------
    seed : int, default 0
    rotation : float or (low, high), default 0
        Degrees; a number a means [-a, a].
    scale : float or (low, high), default 1
        Zoom factor (> 1 enlarges); a number is a constant.
    shear : float or (low, high), default 0
        Horizontal shear angle, degrees; a number a means [-a, a].
    translation : float, (x, y) or ((x_lo, x_hi), (y_lo, y_hi)), default 0
        Output pixels; a number t means [-t, t].
    perspective : float in [0, 1], default 0
        Corner displacement, as ``keras.layers.RandomPerspective``'s ``scale``.
    spec : AugmentSpec, optional
        The whole augmentation at once (instead of the parameters above and ``seed``).
    key : {"position", "content"} or callable, default "position"
        The per-image key.  ``"position"``: (batch index, position in the
        batch).  ``"content"``: the SHA-256 of the image's bytes, so an image
        gets the same augmentation however the stream is batched.  A callable
        ``key(index, images)`` returns one key (int, str or bytes) per image.
    size : (Ho, Wo), optional
        The output size the thetas are for (the ``size`` given to warp_batches).
    resize : bool, default True
        With ``size``, whether the whole input is resized onto the output
        (True) or the output is a window of that size about the input's centre.
    align_corners : bool, default False
        The flag the thetas are used with.
    rotate, shift
        Old names of ``rotation`` and ``translation`` (aliases).  They read a
        single number, or ``shift=(dx, dy)``, as a constant, as before.
    """

    def __init__(self, seed: int | None = None, *, rotation=None, scale=None, shear=None, translation=None,
                 perspective=None, spec: AugmentSpec | None = None, key="position", size=None,
                 resize: bool = True, align_corners: bool = False, rotate=None, shift=None):
        geometry = (rotation, scale, shear, translation, perspective, rotate, shift, seed)
        if spec is None:
            spec = AugmentSpec.create("RandomAffine", rotation=rotation, scale=scale, shear=shear,
                                      translation=translation, perspective=perspective,
                                      seed=0 if seed is None else seed, rotate=rotate, shift=shift)
        elif any(v is not None for v in geometry):
            raise ValueError("RandomAffine: give spec= or the parameters and seed, not both")
        if not (key in ("position", "content") or callable(key)):
            raise ValueError(f"RandomAffine: key must be 'position', 'content' or a callable; got {key!r}")
        self.spec = spec
        self.key = key
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.resize = bool(resize)
        self.align_corners = bool(align_corners)

    def keys(self, index: int, images: np.ndarray) -> list:
        """The element keys of batch number ``index`` of (N, H, W, C) ``images``."""
        if self.key == "position":
            return [element_key(index, i) for i in range(len(images))]
        if self.key == "content":
            return [element_key(np.ascontiguousarray(im).tobytes()) for im in images]
        keys = list(self.key(index, images))
        if len(keys) != len(images):
            raise ValueError(f"RandomAffine: key() gave {len(keys)} keys for {len(images)} images")
        return [element_key(k) for k in keys]

    def __call__(self, index: int, images: np.ndarray) -> np.ndarray:
        """thetas (N, 2, 3) (or (N, 3, 3) with a perspective) for batch number ``index`` of
        (N, H, W, C) ``images``; one theta for one (H, W, C) image."""
        images = np.asarray(images)
        batch = images if images.ndim == 4 else images[None]
        in_size = batch.shape[1:3]
        out = self.size or in_size
        frame = out if (self.resize and self.size is not None) else in_size
        t = self.spec.theta(frame, out, np.array(self.keys(index, batch), np.uint64),
                            align_corners=self.align_corners)
        return t if images.ndim == 4 else t[0]


def warp_batches(batches: Iterable, theta, size=None, *, mode: str = "bilinear",
                 padding_mode: str = "zeros", align_corners: bool = False, fill_value=0.0,
                 antialias: bool = False, prefetch: int = 2, workers: int = 1) -> Iterator:
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
    mode, padding_mode, align_corners, fill_value, antialias
        As in :func:`fastwarp.affine_warp` (``antialias``: filter each output
        pixel's footprint where the warp shrinks).
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
    from .api import affine_warp, perspective_warp
    from .core.validate import check_antialias, check_flags

    m, _, _ = check_flags("warp_batches", mode, padding_mode, align_corners)
    check_antialias("warp_batches", antialias, m)
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
                      fill_value=fill_value, antialias=antialias)
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
