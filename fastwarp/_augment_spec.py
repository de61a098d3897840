"""What to do to every image of a batch run: :class:`TransformSpec` (geometry, random ranges, flags).

A leaf module shared by :mod:`fastwarp.folder` (``fastwarp warp``, Dask) and
:mod:`fastwarp.pipeline` (:class:`~fastwarp.pipeline.RandomAffine`).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

__all__ = ["TransformSpec", "as_range"]


def as_range(name: str, value) -> tuple[float, float]:
    """A number or a (lo, hi) pair as a (lo, hi) tuple of floats."""
    if np.ndim(value) == 0:
        v = float(value)
        return v, v
    lo, hi = (float(v) for v in value)
    if not lo <= hi:
        raise ValueError(f"{name} range must have lo <= hi; got ({lo}, {hi})")
    return lo, hi


def _key_words(key: str) -> list[int]:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]


@dataclass(frozen=True)
class TransformSpec:
    """What to do to every image: geometry (fixed values or random ranges) and kernel flags.

    Ranges are ``(lo, hi)``; ``lo == hi`` is a fixed value.  The geometric
    transform is the one of :func:`fastwarp.transforms.affine_matrix` (about
    the image centre: scale, shear, rotation counter-clockwise in degrees,
    shift in output pixels).  ``matrix`` (6 numbers, OpenCV's source ->
    destination pixel matrix, or destination -> source with ``inverse_map``;
    9 numbers: a homography as ``cv2.warpPerspective`` takes it) replaces the
    geometric parameters.  ``fill_value`` (a number or one per channel) is
    what ``padding_mode="constant"`` reads outside the image.

    ``size`` is the output (H, W) (default: the input's).  With ``resize``
    (default) the whole input is mapped onto the output before the geometric
    transform (a resize, which may change the aspect ratio); without it the
    output is a window of that size centred on the input's centre.  With
    ``matrix``, ``size`` is the output canvas (as OpenCV's ``dsize``).
    """

    rotate: tuple[float, float] = (0.0, 0.0)
    scale: tuple[float, float] = (1.0, 1.0)
    shear: tuple[float, float] = (0.0, 0.0)
    shift_x: tuple[float, float] = (0.0, 0.0)
    shift_y: tuple[float, float] = (0.0, 0.0)
    matrix: tuple[float, ...] | None = None
    inverse_map: bool = False
    size: tuple[int, int] | None = None
    resize: bool = True
    mode: str = "bilinear"
    padding_mode: str = "zeros"
    align_corners: bool = False
    seed: int = 0
    fill_value: float | tuple[float, ...] = 0.0

    @property
    def is_random(self) -> bool:
        return self.matrix is None and any(
            lo != hi for lo, hi in (self.rotate, self.scale, self.shear, self.shift_x, self.shift_y))

    def out_size(self, in_size) -> tuple[int, int]:
        return tuple(int(v) for v in (self.size or in_size[:2]))

    def params(self, key: str, copy: int) -> dict:
        """Geometric parameters for the file with relative path ``key`` and copy index ``copy``.

        Five uniforms are always drawn, in a fixed order, from a generator
        seeded by ``(seed, sha256(key), copy)``.
        """
        u = np.random.default_rng(np.random.SeedSequence([self.seed, *_key_words(key), copy])).random(5)

        def pick(r, x):
            return r[0] + (r[1] - r[0]) * x

        return {
            "rotation": pick(self.rotate, u[0]),
            "scale": pick(self.scale, u[1]),
            "shear": pick(self.shear, u[2]),
            "translation": (pick(self.shift_x, u[3]), pick(self.shift_y, u[4])),
        }

    @property
    def flags(self) -> dict:
        """The sampling keywords of :func:`fastwarp.affine_warp` / :func:`fastwarp.perspective_warp`."""
        return {"mode": self.mode, "padding_mode": self.padding_mode, "align_corners": self.align_corners,
                "fill_value": self.fill_value}

    def theta(self, in_size, key: str, copy: int) -> np.ndarray:
        """(2, 3) theta, or (3, 3) for a 9-number ``matrix``, for an input of (H, W) ``in_size``
        (read-only; cached for fixed transforms)."""
        in_size = tuple(int(v) for v in in_size[:2])
        if not self.is_random:
            return _fixed_theta(self, in_size)
        return self._theta(in_size, key, copy)

    def _theta(self, in_size, key: str, copy: int) -> np.ndarray:
        from .transforms import affine_theta, theta_from_cv2, theta_from_homography

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
        return affine_theta(frame, out, align_corners=self.align_corners, **self.params(key, copy))


@functools.lru_cache(maxsize=256)
def _fixed_theta(spec: TransformSpec, in_size: tuple[int, int]) -> np.ndarray:
    t = spec._theta(in_size, "", 0)
    t.flags.writeable = False
    return t
