"""Pixel-space helpers: build theta from rotation/scale/shear/translation, and
convert between theta and OpenCV's ``warpAffine`` matrices.

Conventions
-----------
* Pixel coordinates put pixel k's centre at the integer k, x the column and y
  the row, as OpenCV does; sizes are (H, W).
* An OpenCV matrix ``M`` (2x3) maps *source* pixels to *destination* pixels,
  as ``cv2.warpAffine(src, M, (Wo, Ho))`` takes it by default; with
  ``inverse_map=True`` it maps destination to source (``cv2.WARP_INVERSE_MAP``).
* ``theta`` maps normalized output coordinates to normalized input coordinates
  (see :mod:`fastwarp.api`), so ``theta = P_in^-1 . M^-1 . P_out`` where ``P``
  maps normalized to pixel coordinates for the given ``align_corners``.
  ``cv2.warpAffine(img, M, (Wo, Ho), flags=INTER_LINEAR,
  borderMode=BORDER_REPLICATE)`` and ``affine_warp(img, theta_from_cv2(M, ...),
  (Ho, Wo), padding_mode="border")`` then compute the same image (up to
  OpenCV's fixed-point rounding), with either ``align_corners``.
* :func:`affine_matrix` composes, about a centre: scale, then shear, then a
  rotation counter-clockwise on screen for a positive angle (as
  ``cv2.getRotationMatrix2D``), then a translation in output pixels.

All functions accept one transform (returning (2, 3)) or a batch: any argument
given as an array of N values yields (N, 2, 3).
"""

from __future__ import annotations

import numpy as np

__all__ = ["affine_matrix", "affine_theta", "theta_from_cv2", "cv2_from_theta", "invert_affine",
           "theta_from_homography"]


def _size(name: str, size) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (H, W) of positive ints; got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be a pair (H, W) of positive ints; got {size!r}")
    return h, w


def _to_pixel(size, align_corners: bool) -> np.ndarray:
    """3x3 matrix P: normalized (x, y, 1) -> pixel (u, v, 1) for an image of `size` (H, W)."""
    h, w = size
    if align_corners:
        sx, sy = (w - 1) / 2.0, (h - 1) / 2.0
    else:
        sx, sy = w / 2.0, h / 2.0
    return np.array([[sx, 0.0, (w - 1) / 2.0], [0.0, sy, (h - 1) / 2.0], [0.0, 0.0, 1.0]])


def _to_normalized(size, align_corners: bool) -> np.ndarray:
    """3x3 inverse of :func:`_to_pixel`; a 1-pixel axis with align_corners=True maps to 0."""
    p = _to_pixel(size, align_corners)
    out = np.eye(3)
    for k in (0, 1):
        if p[k, k] != 0.0:
            out[k, k] = 1.0 / p[k, k]
            out[k, 2] = -p[k, 2] / p[k, k]
        else:  # align_corners=True and n == 1: every point is the single pixel at 0
            out[k, k] = 0.0
            out[k, 2] = 0.0
    return out


def _homogeneous(m: np.ndarray) -> np.ndarray:
    h = np.zeros(m.shape[:-2] + (3, 3))
    h[..., :2, :] = m
    h[..., 2, 2] = 1.0
    return h


def _as_affine(name: str, m) -> np.ndarray:
    a = np.asarray(m, dtype=np.float64)
    if a.shape[-2:] != (2, 3) or a.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape (2, 3) or (N, 2, 3); got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite")
    return a


def invert_affine(m) -> np.ndarray:
    """Inverse of affine 2x3 matrices, shape (2, 3) or (N, 2, 3).

    Raises
    ------
    ValueError
        If a matrix is singular (its 2x2 part has zero determinant).
    """
    a = _as_affine("invert_affine: m", m)
    det = a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]
    if np.any(det == 0):
        raise ValueError("invert_affine: matrix is singular (zero determinant)")
    return np.linalg.inv(_homogeneous(a))[..., :2, :]


def theta_from_cv2(matrix, in_size, out_size=None, *, align_corners: bool = False,
                   inverse_map: bool = False) -> np.ndarray:
    """theta for :func:`fastwarp.affine_warp` equivalent to ``cv2.warpAffine(img, matrix, ...)``.

    Parameters
    ----------
    matrix : array_like, shape (2, 3) or (N, 2, 3)
        OpenCV pixel matrix, source -> destination (or destination -> source
        with ``inverse_map=True``).
    in_size, out_size : (int, int)
        (H, W) of the input and output images; ``out_size`` defaults to ``in_size``.
    align_corners : bool
        The flag the theta will be used with.
    inverse_map : bool
        Whether ``matrix`` already maps destination to source.

    Returns
    -------
    ndarray, float64, the shape of ``matrix``.
    """
    hin = _size("theta_from_cv2: in_size", in_size)
    hout = _size("theta_from_cv2: out_size", hin if out_size is None else out_size)
    m = _as_affine("theta_from_cv2: matrix", matrix)
    dst_to_src = m if inverse_map else invert_affine(m)
    t = _to_normalized(hin, align_corners) @ _homogeneous(dst_to_src) @ _to_pixel(hout, align_corners)
    return t[..., :2, :]


def theta_from_homography(matrix, in_size, out_size=None, *, align_corners: bool = False,
                          inverse_map: bool = False) -> np.ndarray:
    """theta for :func:`fastwarp.perspective_warp` equivalent to ``cv2.warpPerspective(img, matrix, ...)``.

    Parameters
    ----------
    matrix : array_like, shape (3, 3) or (N, 3, 3)
        OpenCV pixel homography, source -> destination (or destination ->
        source with ``inverse_map=True``, ``cv2.WARP_INVERSE_MAP``), for
        example from ``cv2.getPerspectiveTransform``.
    in_size, out_size, align_corners
        As in :func:`theta_from_cv2`.
    inverse_map : bool
        Whether ``matrix`` already maps destination to source.

    Returns
    -------
    ndarray, float64, the shape of ``matrix``, scaled so that theta[..., 2, 2]
    (w at the output's centre) is 1 where it is not 0: a homography's scale is
    arbitrary, and its sign decides which points fastwarp sees in front of the
    viewer (w > 0).

    Examples
    --------
    >>> import numpy as np
    >>> theta_from_homography(np.eye(3), (4, 6)).round(12)
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
    """
    hin = _size("theta_from_homography: in_size", in_size)
    hout = _size("theta_from_homography: out_size", hin if out_size is None else out_size)
    m = np.asarray(matrix, np.float64)
    if m.shape[-2:] != (3, 3) or m.ndim not in (2, 3):
        raise ValueError(f"theta_from_homography: matrix must have shape (3, 3) or (N, 3, 3); got {m.shape}")
    dst_to_src = m if inverse_map else np.linalg.inv(m)
    t = _to_normalized(hin, align_corners) @ dst_to_src @ _to_pixel(hout, align_corners)
    s = t[..., 2:3, 2:3]
    return t / np.where(s != 0, s, 1.0)


def cv2_from_theta(theta, in_size, out_size=None, *, align_corners: bool = False,
                   inverse_map: bool = False) -> np.ndarray:
    """OpenCV ``warpAffine`` matrix equivalent to ``affine_warp(img, theta, out_size)``.

    The inverse of :func:`theta_from_cv2` (same parameters).  Without
    ``inverse_map`` the theta must be invertible.
    """
    hin = _size("cv2_from_theta: in_size", in_size)
    hout = _size("cv2_from_theta: out_size", hin if out_size is None else out_size)
    t = _as_affine("cv2_from_theta: theta", theta)
    dst_to_src = (_to_pixel(hin, align_corners) @ _homogeneous(t)
                  @ _to_normalized(hout, align_corners))[..., :2, :]
    return dst_to_src if inverse_map else invert_affine(dst_to_src)


def affine_matrix(in_size, out_size=None, *, rotation=0.0, scale=1.0, shear=0.0,
                  translation=(0.0, 0.0), center=None) -> np.ndarray:
    """OpenCV-style source -> destination pixel matrix from geometric parameters.

    ``M = T(c_out + translation) . R(rotation) . Shear(shear) . S(scale) . T(-center)``

    Parameters
    ----------
    in_size, out_size : (int, int)
        (H, W) of input and output; ``out_size`` defaults to ``in_size``.
    rotation : float or array (N,)
        Degrees, counter-clockwise on screen (y points down), as OpenCV.
    scale : float or array (N,)
        Isotropic zoom factor (> 1 enlarges).
    shear : float or array (N,)
        Horizontal shear angle in degrees: x' = x + tan(shear) * y.
    translation : (dx, dy) or array (N, 2)
        Shift in output pixels.
    center : (cx, cy), optional
        Pivot in input pixels; defaults to the input's centre ((W-1)/2, (H-1)/2),
        which lands on the output's centre.

    Returns
    -------
    ndarray, float64, (2, 3), or (N, 2, 3) when any argument is batched.
    """
    hin, win = _size("affine_matrix: in_size", in_size)
    hout, wout = _size("affine_matrix: out_size", (hin, win) if out_size is None else out_size)
    rot = np.asarray(rotation, np.float64)
    sc = np.asarray(scale, np.float64)
    sh = np.asarray(shear, np.float64)
    tr = np.asarray(translation, np.float64)
    if tr.shape[-1:] != (2,) or tr.ndim > 2:
        raise ValueError(f"affine_matrix: translation must be (dx, dy) or (N, 2); got shape {tr.shape}")
    for name, v in (("rotation", rot), ("scale", sc), ("shear", sh)):
        if v.ndim > 1:
            raise ValueError(f"affine_matrix: {name} must be a scalar or (N,); got shape {v.shape}")
    batched = max(rot.ndim, sc.ndim, sh.ndim, tr.ndim - 1) == 1
    n = np.broadcast_shapes(rot.shape, sc.shape, sh.shape, tr.shape[:-1])
    rot, sc, sh = (np.broadcast_to(v, n) for v in (rot, sc, sh))
    tr = np.broadcast_to(tr, n + (2,))
    cx, cy = ((win - 1) / 2.0, (hin - 1) / 2.0) if center is None else (float(c) for c in center)
    ox, oy = (wout - 1) / 2.0, (hout - 1) / 2.0
    a = np.deg2rad(rot)
    cos, sin = np.cos(a), np.sin(a)
    k = np.tan(np.deg2rad(sh))
    # linear part L = R . Shear . S with R = [[cos, sin], [-sin, cos]], Shear = [[1, k], [0, 1]]
    l00, l01 = cos * sc, (cos * k + sin) * sc
    l10, l11 = -sin * sc, (-sin * k + cos) * sc
    m = np.empty(n + (2, 3))
    m[..., 0, 0], m[..., 0, 1] = l00, l01
    m[..., 1, 0], m[..., 1, 1] = l10, l11
    m[..., 0, 2] = ox + tr[..., 0] - (l00 * cx + l01 * cy)
    m[..., 1, 2] = oy + tr[..., 1] - (l10 * cx + l11 * cy)
    return m if batched else m.reshape(2, 3)


def affine_theta(in_size, out_size=None, *, rotation=0.0, scale=1.0, shear=0.0,
                 translation=(0.0, 0.0), center=None, align_corners: bool = False) -> np.ndarray:
    """theta for :func:`fastwarp.affine_warp` from geometric parameters in pixels.

    Same parameters as :func:`affine_matrix`; equals
    ``theta_from_cv2(affine_matrix(...), in_size, out_size, align_corners=...)``.
    """
    m = affine_matrix(in_size, out_size, rotation=rotation, scale=scale, shear=shear,
                      translation=translation, center=center)
    return theta_from_cv2(m, in_size, out_size, align_corners=align_corners)
