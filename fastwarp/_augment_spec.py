"""What to do to every image of a batch run: :class:`TransformSpec` (an
:class:`~fastwarp.augment.AugmentSpec` or a fixed matrix, the output size, the flags).

A leaf module used by :mod:`fastwarp.folder` (``fastwarp warp``, Dask).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .augment import AugmentSpec, element_key

__all__ = ["TransformSpec", "as_range"]


def as_range(name: str, value) -> tuple[float, float]:
    """A number (a constant) or a (lo, hi) pair as a (lo, hi) tuple of floats.

    The reading of the old names (``rotate=``, ``shift=``); the canonical
    parser is :func:`fastwarp.augment.parse_range`.
    """
    if np.ndim(value) == 0:
        v = float(value)
        return v, v
    lo, hi = (float(v) for v in value)
    if not lo <= hi:
        raise ValueError(f"{name} range must have lo <= hi; got ({lo}, {hi})")
    return lo, hi


@dataclass(frozen=True, init=False)
class TransformSpec:
    """What to do to every image: an :class:`~fastwarp.augment.AugmentSpec` (fixed values or random
    ranges), or a fixed matrix, plus the output size and kernel flags.

    Ranges are ``(lo, hi)``; ``lo == hi`` is a fixed value (a single number
    follows :class:`~fastwarp.augment.AugmentSpec`'s rule: ``[-a, a]`` for
    ``rotation``, ``shear`` and ``translation``, constant for ``scale``).  The
    geometric transform is :meth:`fastwarp.augment.AugmentSpec.compose` (about
    the image centre: scale, shear, rotation counter-clockwise in degrees,
    translation in output pixels, then the ``perspective`` corner moves).
    ``rotate``, ``shift_x`` and ``shift_y`` are the old names of ``rotation``
    and ``translation`` (as constructor keywords and read-only attributes).
    ``matrix`` (6 numbers, OpenCV's source -> destination pixel matrix, or
    destination -> source with ``inverse_map``; 9 numbers: a homography as
    ``cv2.warpPerspective`` takes it) replaces the geometric parameters.
    ``fill_value`` (a number or one per channel) is what
    ``padding_mode="constant"`` reads outside the image.  ``antialias``
    filters each output pixel's footprint where the warp shrinks (the
    ``antialias`` of :func:`fastwarp.affine_warp`; mode bilinear or bicubic).

    ``size`` is the output (H, W) (default: the input's).  With ``resize``
    (default) the whole input is mapped onto the output before the geometric
    transform (a resize, which may change the aspect ratio); without it the
    output is a window of that size centred on the input's centre.  With
    ``matrix``, ``size`` is the output canvas (as OpenCV's ``dsize``).

    Random draws are keyed by ``element_key(relative path, copy index)``
    (:func:`fastwarp.augment.element_key`) and the seed.
    """

    augment: AugmentSpec
    matrix: tuple[float, ...] | None
    inverse_map: bool
    size: tuple[int, int] | None
    resize: bool
    mode: str
    padding_mode: str
    align_corners: bool
    fill_value: float | tuple[float, ...]
    antialias: bool

    def __init__(self, rotation=None, scale=None, shear=None, translation=None, perspective=None, *,
                 matrix=None, inverse_map: bool = False, size=None, resize: bool = True,
                 mode: str = "bilinear",
                 padding_mode: str = "zeros", align_corners: bool = False, seed: int = 0,
                 fill_value: float | tuple[float, ...] = 0.0, augment: AugmentSpec | None = None,
                 antialias: bool = False, rotate=None, shift_x=None, shift_y=None):
        geometry = (rotation, scale, shear, translation, perspective, rotate, shift_x, shift_y)
        if augment is None:
            augment = AugmentSpec.create("TransformSpec", rotation=rotation, scale=scale, shear=shear,
                                         translation=translation, perspective=perspective, seed=seed,
                                         rotate=rotate, shift_x=shift_x, shift_y=shift_y)
        elif any(v is not None for v in geometry):
            raise ValueError("TransformSpec: give augment= or the geometric parameters, not both")
        set_ = object.__setattr__
        set_(self, "augment", augment)
        set_(self, "matrix", None if matrix is None else tuple(float(v) for v in matrix))
        set_(self, "inverse_map", bool(inverse_map))
        set_(self, "size", None if size is None else (int(size[0]), int(size[1])))
        set_(self, "resize", bool(resize))
        set_(self, "mode", mode)
        set_(self, "padding_mode", padding_mode)
        set_(self, "align_corners", bool(align_corners))
        set_(self, "fill_value", fill_value)
        set_(self, "antialias", antialias)

    # canonical names, and the old ones as read-only aliases
    rotation = property(lambda self: self.augment.rotation, doc="Rotation range, degrees.")
    scale = property(lambda self: self.augment.scale, doc="Scale range.")
    shear = property(lambda self: self.augment.shear, doc="Shear range, degrees.")
    translation = property(lambda self: self.augment.translation, doc="(x, y) translation ranges, pixels.")
    perspective = property(lambda self: self.augment.perspective, doc="Corner displacement fraction.")
    seed = property(lambda self: self.augment.seed, doc="Seed of the random draws.")
    rotate = property(lambda self: self.augment.rotation, doc="Alias of :attr:`rotation`.")
    shift_x = property(lambda self: self.augment.translation[0], doc="Alias of ``translation[0]``.")
    shift_y = property(lambda self: self.augment.translation[1], doc="Alias of ``translation[1]``.")

    @property
    def is_random(self) -> bool:
        return self.matrix is None and self.augment.is_random

    def out_size(self, in_size) -> tuple[int, int]:
        return tuple(int(v) for v in (self.size or in_size[:2]))

    def params(self, key: str, copy: int) -> dict:
        """Geometric parameters for the file with relative path ``key`` and copy index ``copy``:
        ``rotation``, ``scale``, ``shear`` (floats) and ``translation`` (x, y) in pixels (the
        keywords of :func:`fastwarp.transforms.affine_theta`).

        Drawn by :meth:`fastwarp.augment.AugmentSpec.draw` for
        ``element_key(key, copy)``; the warp itself is :meth:`theta`.
        """
        p = self.augment.draw([element_key(key, copy)], (2, 2))
        return {"rotation": float(p["rotation"][0]), "scale": float(p["scale"][0, 0]),
                "shear": float(p["shear"][0, 0]),
                "translation": (float(p["translation"][0, 0]), float(p["translation"][0, 1]))}

    @property
    def flags(self) -> dict:
        """The sampling keywords of :func:`fastwarp.affine_warp` / :func:`fastwarp.perspective_warp`."""
        return {"mode": self.mode, "padding_mode": self.padding_mode, "align_corners": self.align_corners,
                "fill_value": self.fill_value, "antialias": self.antialias}

    def theta(self, in_size, key: str, copy: int) -> np.ndarray:
        """(2, 3) theta, or (3, 3) for a 9-number ``matrix``, for an input of (H, W) ``in_size``
        (read-only; cached for fixed transforms)."""
        in_size = tuple(int(v) for v in in_size[:2])
        if not self.is_random:
            return _fixed_theta(self, in_size)
        return self._theta(in_size, key, copy)

    def _theta(self, in_size, key: str, copy: int) -> np.ndarray:
        from .transforms import theta_from_cv2, theta_from_homography

        out = self.out_size(in_size)
        if self.matrix is not None and len(self.matrix) == 9:
            m = np.asarray(self.matrix, dtype=np.float64).reshape(3, 3)
            return theta_from_homography(m, in_size, out, align_corners=self.align_corners,
                                         inverse_map=self.inverse_map)
        if self.matrix is not None:
            m = np.asarray(self.matrix, dtype=np.float64).reshape(2, 3)
            return theta_from_cv2(m, in_size, out, align_corners=self.align_corners,
                                  inverse_map=self.inverse_map)
        frame = out if (self.resize and self.size is not None) else in_size
        return self.augment.theta(frame, out, element_key(key, copy), align_corners=self.align_corners)


@functools.lru_cache(maxsize=256)
def _fixed_theta(spec: TransformSpec, in_size: tuple[int, int]) -> np.ndarray:
    t = spec._theta(in_size, "", 0)
    t.flags.writeable = False
    return t
