"""Public forward API: ``affine_grid``, ``grid_sample`` and the fused ``affine_warp``.

Convention (PyTorch's ``affine_grid``/``grid_sample``, in NHWC)
----------------------------------------------------------------
* Images are ``(N, H, W, C)`` (or one ``(H, W, C)`` image); a grid is
  ``(N, Ho, Wo, 2)`` whose last axis is ``(x, y)``: x is the column, y the row.
* Normalized coordinates: -1 is the left/top and +1 the right/bottom of the
  image.  With ``align_corners=True`` they are the *centres* of the corner
  pixels; with ``align_corners=False`` (the default, as in PyTorch) they are
  the *outer edges* of the corner pixels.
* Output pixel (i, j) of an (Ho, Wo) output sits at the normalized point
  ``(x_j, y_i)``; ``theta`` (2x3) maps it to the input point
  ``(x, y) = theta @ (x_j, y_i, 1)``, which is then read from the input.
  theta maps *output to input*: a theta that moves points right moves the
  picture left.
* Pixel coordinate of a normalized ``x`` in an image of width W:
  ``(x + 1) / 2 * (W - 1)`` (align_corners=True) or ``((x + 1) * W - 1) / 2``
  (False); pixel k's centre is the integer k.

Worked example: a 1x3 image ``[10, 20, 30]`` and the identity theta.  With
``align_corners=True`` the output points are x = -1, 0, 1 -> pixels 0, 1, 2 ->
``[10, 20, 30]``.  With theta's x-translation 0.5 and align_corners=True,
x = -0.5, 0.5, 1.5 -> pixels 0.5, 1.5, 2.5 -> bilinear ``[15, 25, 15]`` with
zeros padding (half of pixel 2.5 falls outside), ``[15, 25, 30]`` with border
padding.  The blog post this project grew from rescales with W instead of
W - 1 (``x = (x_s + 1) * W / 2``), which stretches the image by W/(W-1) and
shifts it; fastwarp uses the formulas above.

Padding
-------
``zeros``: taps outside the image read 0.  ``border``: the point is clamped to
the image (edge pixels repeat).  ``reflection``: the point is mirrored at the
border (the corner centres with align_corners=True, the image edges
otherwise).  A NaN, infinite or huge (|c| >= 2**40) grid coordinate reads 0
in every mode; other finite coordinates far outside follow the padding mode.

dtypes
------
float32 and float64 images give outputs of the same dtype; uint8 images are
interpolated in float32, rounded to nearest (ties up) and saturated to uint8.
theta and grid may be float32 or float64 whatever the image dtype; coordinates
are computed in float64.  For speed, the fused warp's inner loop steps the
coordinates of float32 and uint8 images in 32.32 fixed point (an error below
1e-8 px) and interpolates uint8 images in integers with weights rounded to
2**-20 (an error below 2.4e-4 of a grey level: a value that close to a .5 tie
may round the other way).

Compilation: each kernel compiles once per image dtype (read-only and
writable inputs share it; grids are read as float64), on first use, and is
cached on disk.
"""

from __future__ import annotations

import numpy as np

from . import _kernels as K
from ._dispatch import gpu_backend, wants_gpu
from ._runtime import call
from ._validate import (
    check_flags,
    check_grid,
    check_images,
    check_out,
    check_size,
    check_theta,
    readonly,
)

__all__ = ["affine_grid", "grid_sample", "affine_warp"]


def _prepare_out(fn, out, shape, dtype, batched, *inputs):
    """Allocate the (N, Ho, Wo, C) output, or check and view the caller's buffer."""
    if out is None:
        return np.empty(shape, dtype), None
    user_shape = shape if batched else shape[1:]
    check_out(fn, out, user_shape, dtype, *inputs)
    return (out if batched else out[None]), out


def affine_grid(theta, size, *, align_corners: bool = False, out: np.ndarray | None = None,
                device: str | None = None):
    """Normalized source coordinates of every output pixel for affine matrices.

    Parameters
    ----------
    theta : array_like, shape (N, 2, 3) or (2, 3)
        Affine matrices mapping normalized output coordinates to normalized
        input coordinates.  Any real dtype; must be finite.
    size : (int, int)
        Output size (Ho, Wo), both at least 1.
    align_corners : bool, default False
        Whether -1 and 1 are the centres (True) or the outer edges (False) of
        the corner pixels.
    out : ndarray, optional
        Buffer of the result's shape and dtype float64 to write into.
    device : {None, "cpu", "cuda"}
        None runs where the data lives (GPU arrays on the GPU); see
        :mod:`fastwarp._dispatch`.

    Returns
    -------
    grid : ndarray, float64, shape (N, Ho, Wo, 2) or (Ho, Wo, 2) for a (2, 3) theta
        ``grid[n, i, j] = theta[n] @ (x_j, y_i, 1)`` as (x, y).

    Raises
    ------
    ValueError
        Wrong theta shape, non-finite theta, size not two positive ints, wrong ``out``.
    TypeError
        Non-numeric theta, non-bool align_corners.
    """
    fn = "affine_grid"
    if wants_gpu(fn, device, theta, out):
        return gpu_backend(fn).affine_grid(theta, size, align_corners=align_corners, out=out)
    batched = np.ndim(theta) == 3
    n = len(theta) if batched else 1
    t = check_theta(fn, theta, n, batched)
    check_flags(fn, "bilinear", "zeros", align_corners)
    if size is None:
        raise TypeError(f"{fn}: size (Ho, Wo) is required; got None")
    ho, wo = check_size(fn, size, (0, 0))
    res, user = _prepare_out(fn, out, (n, ho, wo, 2), np.dtype(np.float64), batched, t)
    if n:
        call(K.affine_grid_kernel, *readonly(t), res, bool(align_corners), work=res.size)
    return user if user is not None else (res if batched else res[0])


def grid_sample(images, grid, *, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool = False, out: np.ndarray | None = None,
                device: str | None = None):
    """Sample images at normalized grid points (PyTorch's ``grid_sample`` in NHWC).

    Parameters
    ----------
    images : ndarray, shape (N, H, W, C) or (H, W, C)
        float32, float64 or uint8; any layout or byte order.
    grid : ndarray, shape (N, Ho, Wo, 2) or (Ho, Wo, 2)
        float32 or float64 normalized (x, y) points, x the column.
    mode : {"bilinear", "nearest"}
    padding_mode : {"zeros", "border", "reflection"}
    align_corners : bool, default False
    out : ndarray, optional
        C-contiguous buffer of the result's shape and the images' dtype; must
        not overlap the inputs.
    device : {None, "cpu", "cuda"}
        None runs where the data lives: NumPy arrays on the CPU, arrays with
        ``__cuda_array_interface__`` on the GPU (returning device arrays).

    Returns
    -------
    ndarray, shape (N, Ho, Wo, C) (or (Ho, Wo, C)), the images' dtype.

    Raises
    ------
    TypeError
        Unsupported dtype, non-bool align_corners, ``out`` of the wrong type or dtype.
    ValueError
        Wrong ranks, mismatched batch sizes, unknown mode or padding, bad ``out``.
    """
    fn = "grid_sample"
    if wants_gpu(fn, device, images, grid, out):
        return gpu_backend(fn).grid_sample(images, grid, mode=mode, padding_mode=padding_mode,
                                           align_corners=align_corners, out=out)
    src, batched = check_images(fn, images)
    m, p, a = check_flags(fn, mode, padding_mode, align_corners)
    g = check_grid(fn, grid, src.shape[0], batched)
    shape = (src.shape[0], g.shape[1], g.shape[2], src.shape[3])
    res, user = _prepare_out(fn, out, shape, src.dtype, batched, src, g)
    if shape[0]:
        call(K.grid_sample_kernel, *readonly(src, g.astype(np.float64, copy=False)),
             res, m, p, a, work=res.size)
    return user if user is not None else (res if batched else res[0])


def affine_warp(images, theta, size=None, *, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool = False, out: np.ndarray | None = None,
                device: str | None = None):
    """Warp images by affine matrices in one pass, without materializing the grid.

    Equal to ``grid_sample(images, affine_grid(theta, size), ...)`` up to float
    rounding of the sample points (at an exact nearest-mode tie the two may pick
    different neighbours).

    Parameters
    ----------
    images : ndarray, shape (N, H, W, C) or (H, W, C)
        float32, float64 or uint8; any layout or byte order.
    theta : array_like, shape (N, 2, 3) or (2, 3)
        Normalized output -> input affine matrices, one per image or one for all.
    size : (int, int), optional
        Output size (Ho, Wo); defaults to the input's (H, W).
    mode, padding_mode, align_corners, out, device
        As in :func:`grid_sample`.

    Returns
    -------
    ndarray, shape (N, Ho, Wo, C) (or (Ho, Wo, C)), the images' dtype.

    Raises
    ------
    TypeError, ValueError
        As in :func:`grid_sample`; also for a wrong theta shape, a batch
        mismatch or a non-finite theta.
    """
    fn = "affine_warp"
    if wants_gpu(fn, device, images, theta, out):
        return gpu_backend(fn).affine_warp(images, theta, size, mode=mode, padding_mode=padding_mode,
                                           align_corners=align_corners, out=out)
    src, batched = check_images(fn, images)
    m, p, a = check_flags(fn, mode, padding_mode, align_corners)
    t = check_theta(fn, theta, src.shape[0], batched)
    ho, wo = check_size(fn, size, (src.shape[1], src.shape[2]))
    shape = (src.shape[0], ho, wo, src.shape[3])
    res, user = _prepare_out(fn, out, shape, src.dtype, batched, src)
    if shape[0]:
        call(K.affine_warp_kernel, *readonly(src, t), res, m, p, a, work=res.size)
    return user if user is not None else (res if batched else res[0])
