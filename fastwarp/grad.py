"""Public backward API: gradients of :func:`fastwarp.grid_sample` and :func:`fastwarp.affine_warp`.

Given the gradient of a loss with respect to a forward call's output, these
return the gradients with respect to its inputs, exactly as PyTorch's autograd
of ``affine_grid`` + ``grid_sample`` defines them for the same flags
(including PyTorch's slopes at pixel borders and clamp kinks; see
``docs/gradients.md``).  The results are deterministic: bit-identical whatever
the number of threads.

dtypes: ``grad_out`` may be float32 or float64 and is converted to the images'
dtype; the image gradient has the images' dtype (uint8 images have no
gradient), the grid gradient the grid's dtype, and the theta gradient is
float64 (theta is used in float64).
"""

from __future__ import annotations

import numpy as np

from . import _backward as B
from ._dispatch import gpu_backend, wants_gpu
from ._runtime import call
from ._validate import (
    FLOAT_DTYPES,
    _asarray,
    as_native,
    check_flags,
    check_grid,
    check_images,
    check_size,
    check_theta,
    readonly,
)

__all__ = ["affine_warp_backward", "grid_sample_backward"]

# Empty stand-ins for the arrays of the operation the shared backward kernel is not running.
_NO_GRID = np.empty((0, 0, 0, 2))
_NO_GRID_GRAD = np.empty((0, 0, 0, 2))
_NO_THETA = np.empty((0, 2, 3))
_NO_THETA_GRAD = np.empty((0, 2, 3))
_NO_ROWS = np.empty((0, 0, 4))


def _float_images(fn: str, images) -> tuple[np.ndarray, bool]:
    src, batched = check_images(fn, images)
    if src.dtype.newbyteorder("=") not in FLOAT_DTYPES:
        raise TypeError(
            f"{fn}: images must have dtype float32, float64 to be differentiated "
            f"(integer images have no gradient); got {src.dtype}")
    return src, batched


def _check_grad_out(fn: str, grad_out, shape: tuple[int, ...], batched: bool,
                    dtype: np.dtype) -> np.ndarray:
    """grad_out as (N, Ho, Wo, C) native C-contiguous in the images' dtype; exact shape required."""
    g = _asarray(fn, "grad_out", grad_out)
    if g.dtype.newbyteorder("=") not in FLOAT_DTYPES:
        raise TypeError(f"{fn}: grad_out must have dtype float32, float64; got {g.dtype}")
    want = shape if batched else shape[1:]
    if g.shape != tuple(want):
        raise ValueError(f"{fn}: grad_out must have the forward output's shape {tuple(want)}; "
                         f"got {g.shape}")
    if not batched:
        g = g[None]
    return as_native(g.astype(dtype, copy=False))


def _image_grad_buffers(src: np.ndarray, ho: int) -> tuple[np.ndarray, np.ndarray]:
    """Scratch for the image gradient: K buffers per image (see ``_backward.row_chunks``)
    and, per buffer, which rows the kernel has written (and zeroed on first write)."""
    n, h, w, c = src.shape
    k = B.row_chunks(n, ho, h * w * c * src.itemsize)
    if k == 1:  # the buffer is the result: zero it all, every row counts as written
        return np.zeros((n, 1, h, w, c), src.dtype), np.ones((n, 1, h), np.uint8)
    return np.empty((n, k, h, w, c), src.dtype), np.zeros((n, k, h), np.uint8)


def _sum_chunks(buf: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Sum each image's K chunk buffers in chunk order, over the rows each one wrote."""
    n, k = buf.shape[:2]
    if k == 1:
        return buf[:, 0]
    out = np.empty((n,) + buf.shape[2:], buf.dtype)
    call(B.sum_chunks_kernel, *readonly(buf, seen), out)
    return out


def grid_sample_backward(grad_out, images, grid, *, mode: str = "bilinear",
                         padding_mode: str = "zeros", align_corners: bool = False,
                         device: str | None = None):
    """Gradients of :func:`fastwarp.grid_sample` with respect to the images and the grid.

    Parameters
    ----------
    grad_out : ndarray, shape (N, Ho, Wo, C) (or (Ho, Wo, C) for a single image)
        dL/d output of ``grid_sample(images, grid, ...)``: exactly the forward
        output's shape; float32 or float64 (converted to the images' dtype).
    images : ndarray, shape (N, H, W, C) or (H, W, C)
        The forward call's images, float32 or float64.
    grid : ndarray, shape (N, Ho, Wo, 2) or (Ho, Wo, 2)
        The forward call's normalized (x, y) grid, float32 or float64.
    mode, padding_mode, align_corners
        The forward call's flags.
    device : {None, "cpu", "cuda"}
        As in :func:`fastwarp.grid_sample`.

    Returns
    -------
    grad_images : ndarray, images' shape and dtype
    grad_grid : ndarray, grid's shape and dtype
        Zero in nearest mode and for non-finite or huge grid points.

    Raises
    ------
    TypeError
        uint8 (or other non-float) images, non-float grad_out or grid, non-bool align_corners.
    ValueError
        grad_out not of the forward output's shape, wrong ranks, batch mismatch,
        unknown mode or padding.
    """
    fn = "grid_sample_backward"
    if wants_gpu(fn, device, grad_out, images, grid):
        return gpu_backend(fn).grid_sample_backward(grad_out, images, grid, mode=mode,
                                                    padding_mode=padding_mode,
                                                    align_corners=align_corners)
    src, batched = _float_images(fn, images)
    m, p, a = check_flags(fn, mode, padding_mode, align_corners)
    g = check_grid(fn, grid, src.shape[0], batched)
    n, ho, wo = g.shape[:3]
    gout = _check_grad_out(fn, grad_out, (n, ho, wo, src.shape[3]), batched, src.dtype)
    buf, seen = _image_grad_buffers(src, ho)
    # one specialization per image dtype: the grid is read in float64 anyway
    ggrid = np.zeros(g.shape, np.float64)
    if n:
        call(B.backward_kernel, *readonly(gout, src, g.astype(np.float64, copy=False), _NO_THETA),
             buf, seen, ggrid, _NO_ROWS, _NO_THETA_GRAD, False, m, p, a)
    gimg = _sum_chunks(buf, seen)
    ggrid = ggrid.astype(g.dtype, copy=False)
    if not batched:
        return gimg[0], ggrid[0]
    return gimg, ggrid


def affine_warp_backward(grad_out, images, theta, size=None, *, mode: str = "bilinear",
                         padding_mode: str = "zeros", align_corners: bool = False,
                         device: str | None = None):
    """Gradients of :func:`fastwarp.affine_warp` with respect to the images and theta.

    Fused: the sampling grid and its gradient are never materialized;
    ``dL/dtheta[n] = sum_ij outer(dL/d(x, y)_ij, (x_j, y_i, 1))``.

    Parameters
    ----------
    grad_out : ndarray, shape (N, Ho, Wo, C) (or (Ho, Wo, C) for a single image)
        dL/d output of ``affine_warp(images, theta, size, ...)``: exactly the
        forward output's shape; float32 or float64 (converted to the images' dtype).
    images : ndarray, shape (N, H, W, C) or (H, W, C)
        The forward call's images, float32 or float64.
    theta : array_like, shape (N, 2, 3) or (2, 3)
        The forward call's normalized output -> input matrices.
    size : (int, int), optional
        The forward call's output size (Ho, Wo); defaults to (H, W).
    mode, padding_mode, align_corners, device
        As in :func:`fastwarp.affine_warp`.

    Returns
    -------
    grad_images : ndarray, images' shape and dtype
    grad_theta : ndarray, float64, theta's shape
        (N, 2, 3) for (N, 2, 3) theta.  For a single (2, 3) theta the
        gradient of the broadcast: the sum over the batch, shape (2, 3).
        Zero in nearest mode.

    Raises
    ------
    TypeError, ValueError
        As in :func:`grid_sample_backward`; also for a wrong theta shape, a
        batch mismatch or a non-finite theta.
    """
    fn = "affine_warp_backward"
    if wants_gpu(fn, device, grad_out, images, theta):
        return gpu_backend(fn).affine_warp_backward(grad_out, images, theta, size, mode=mode,
                                                    padding_mode=padding_mode,
                                                    align_corners=align_corners)
    src, batched = _float_images(fn, images)
    m, p, a = check_flags(fn, mode, padding_mode, align_corners)
    shared = np.shape(theta) == (2, 3)
    t = check_theta(fn, theta, src.shape[0], batched)
    ho, wo = check_size(fn, size, (src.shape[1], src.shape[2]))
    n = src.shape[0]
    gout = _check_grad_out(fn, grad_out, (n, ho, wo, src.shape[3]), batched, src.dtype)
    buf, seen = _image_grad_buffers(src, ho)
    rows = np.empty((n, ho, 4), np.float64)
    gtheta = np.zeros((n, 2, 3), np.float64)
    if n:
        call(B.backward_kernel, *readonly(gout, src, _NO_GRID, t), buf, seen, _NO_GRID_GRAD, rows, gtheta,
             True, m, p, a)
    gimg = _sum_chunks(buf, seen)
    if shared:
        gtheta = gtheta.sum(axis=0)
    return (gimg if batched else gimg[0]), gtheta
