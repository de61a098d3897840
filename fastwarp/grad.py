"""Public backward API: gradients of :func:`fastwarp.grid_sample` and :func:`fastwarp.affine_warp`.

Given the gradient of a loss with respect to a forward call's output, these
return the gradients with respect to its inputs, exactly as PyTorch's autograd
of ``affine_grid`` + ``grid_sample`` defines them for the same flags
(including PyTorch's slopes at pixel borders and clamp kinks; see
``docs/gradients.md``).  The results are deterministic: bit-identical whatever
the number of threads.

dtypes: ``grad_out`` may be float32 or float64 and is converted to the images'
dtype; the image gradient has the images' dtype (float16 images are
differentiated in float32; uint8 and uint16 images have no gradient), the grid
gradient the grid's dtype, and the theta gradient is float64 (theta is used in
float64).

Bilinear and nearest with zeros, border or reflection padding on float32 and
float64 images run the tuned backward kernel of ``fastwarp.cpu.backward``
(compiled once per image dtype); every other combination runs
``fastwarp.cpu.generic``, compiled per combination.
"""

from __future__ import annotations

import numpy as np

from .core import buffers
from .core.coords import BICUBIC, BILINEAR, BORDER, NEAREST, REFLECTION, ZEROS
from .core.dispatch import gpu_backend, wants_gpu
from .core.runtime import call
from .core.validate import (
    FLOAT_DTYPES,
    GRAD_DTYPES,
    _asarray,
    as_native,
    check_antialias,
    check_flags,
    check_grid,
    check_images,
    check_size,
    check_theta,
    compute_dtype,
    fill_for,
    readonly,
)
from .cpu import antialias as AA
from .cpu import backward as B
from .cpu import generic as G
from .cpu.sched import call_rows

__all__ = ["affine_warp_backward", "grid_sample_backward", "perspective_warp_backward"]

_TUNED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def tuned(mode: int, padding: int, dtype: np.dtype) -> bool:
    """Whether the tuned backward kernel of ``fastwarp.cpu.backward`` runs this combination."""
    return mode in (BILINEAR, NEAREST) and padding in (ZEROS, BORDER, REFLECTION) and dtype in _TUNED_DTYPES

# Empty stand-ins for the arrays of the operation the shared backward kernel is not running.
_NO_GRID = np.empty((0, 0, 0, 2))
_NO_GRID_GRAD = np.empty((0, 0, 0, 2))
_NO_THETA = np.empty((0, 2, 3))
_NO_ROWS = np.empty((0, 0, 4))
_NO_ROWS6 = np.empty((0, 0, 6))
_NO_THETA3 = np.empty((0, 3, 3))


def _float_images(fn: str, images) -> tuple[np.ndarray, bool]:
    src, batched = check_images(fn, images)
    if src.dtype.newbyteorder("=") not in GRAD_DTYPES:
        raise TypeError(
            f"{fn}: images must have dtype {', '.join(d.name for d in GRAD_DTYPES)} to be "
            f"differentiated (integer images have no gradient); got {src.dtype}")
    return src, batched


def _base_coords(n: int, align_corners: bool) -> np.ndarray:
    """Normalized coordinates of n output pixels (``coords.base_coord``)."""
    if align_corners:
        return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
    return (2.0 * np.arange(n) + 1.0) / n - 1.0


def _generic_backward(gout, src, mode, padding, align, fill, *, grid=None, theta=None,
                      projective=False):
    """(grad_images, grad_grid or None, grad_theta or None) from the per-combination kernels."""
    n, ho, wo, c = gout.shape
    buf, seen = _image_grad_buffers(src, ho)
    f32_nearest = grid is not None and mode == NEAREST and grid.dtype == np.float32
    if grid is not None and not f32_nearest:
        grid = grid.astype(np.float64, copy=False)
    ggrid = np.zeros(grid.shape) if grid is not None else _NO_GRID_GRAD
    rows = np.zeros((n, ho, 6)) if theta is not None else _NO_ROWS6
    source = G.GRID if grid is not None else (G.PERSPECTIVE if projective else G.AFFINE)
    if n:
        kern = G.backward_kernel(mode, padding, G.channel_class(c), f32_nearest)
        call_rows(kern, *readonly(gout, src, _NO_GRID if grid is None else grid,
                                  _NO_THETA3 if theta is None else theta, fill),
                  buf, seen, ggrid, rows, source, padding, align, rows=n * buf.shape[1], work=gout.size)
    gimg = _sum_chunks(buf, seen)
    gtheta = None
    if theta is not None:
        gtheta = G.theta_grad(rows, _base_coords(ho, align), 3 if projective else 2)
    return gimg, (ggrid if grid is not None else None), gtheta


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
    """Scratch for the image gradient: K buffers per image (see ``backward.row_chunks``)
    and, per buffer, which rows the kernel has written (and zeroed on first write).
    Large buffers come from the output pool (``core.buffers``): memory a loop of calls
    has mapped already, instead of fresh pages that fault on first write."""
    n, h, w, c = src.shape
    k = B.row_chunks(n, ho, h * w * c * src.itemsize)
    buf = buffers.empty((n, k, h, w, c), src.dtype)
    if k == 1:  # the buffer is the result: zero it all, every row counts as written
        buf.fill(0)
        return buf, np.ones((n, 1, h), np.uint8)
    return buf, np.zeros((n, k, h), np.uint8)


def _sum_chunks(buf: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Sum each image's K chunk buffers in chunk order, over the rows each one wrote."""
    n, k = buf.shape[:2]
    if k == 1:
        return buf[:, 0]
    out = buffers.empty((n,) + buf.shape[2:], buf.dtype)
    call(B.sum_chunks_kernel, *readonly(buf, seen), out)
    return out


def grid_sample_backward(grad_out, images, grid, *, mode: str = "bilinear",
                         padding_mode: str = "zeros", align_corners: bool = False, fill_value=0.0,
                         device: str | None = None):
    """Gradients of :func:`fastwarp.grid_sample` with respect to the images and the grid.

    Parameters
    ----------
    grad_out : ndarray, shape (N, Ho, Wo, C) (or (Ho, Wo, C) for a single image)
        dL/d output of ``grid_sample(images, grid, ...)``: exactly the forward
        output's shape; float32 or float64 (converted to the images' dtype).
    images : ndarray, shape (N, H, W, C) or (H, W, C)
        The forward call's images, float32, float64 or float16.
    grid : ndarray, shape (N, Ho, Wo, 2) or (Ho, Wo, 2)
        The forward call's normalized (x, y) grid, float32 or float64.
    mode, padding_mode, align_corners, fill_value
        The forward call's flags (``fill_value`` counts with constant padding:
        taps outside read it, which enters the grid gradient).
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
        unknown mode or padding, bad fill_value.
    """
    fn = "grid_sample_backward"
    if wants_gpu(fn, device, grad_out, images, grid):
        return gpu_backend(fn).grid_sample_backward(grad_out, images, grid, mode=mode,
                                                    padding_mode=padding_mode,
                                                    align_corners=align_corners, fill_value=fill_value)
    src0, batched = _float_images(fn, images)
    m, p, a = check_flags(fn, mode, padding_mode, align_corners)
    g = check_grid(fn, grid, src0.shape[0], batched)
    fill = fill_for(fn, fill_value, p, src0.shape[3])
    n, ho, wo = g.shape[:3]
    cdt = compute_dtype(src0.dtype)  # float16 images are differentiated in float32
    src = src0.astype(cdt, copy=False)
    gout = _check_grad_out(fn, grad_out, (n, ho, wo, src0.shape[3]), batched, cdt)
    if tuned(m, p, src.dtype) and not (m == NEAREST and g.dtype == np.float32):
        buf, seen = _image_grad_buffers(src, ho)
        # one specialization per image dtype: the grid is read in float64 anyway
        ggrid = np.zeros(g.shape, np.float64)
        if n:
            kern = B.backward_kernel(False, m, B.channel_class(m, src.shape[3]))
            call(kern, *readonly(gout, src, g.astype(np.float64, copy=False), _NO_THETA),
                 buf, seen, ggrid, _NO_ROWS, p, a)
        gimg = _sum_chunks(buf, seen)
    else:
        gimg, ggrid, _ = _generic_backward(gout, src, m, p, a, fill, grid=g)
    gimg = gimg.astype(src0.dtype, copy=False)
    ggrid = ggrid.astype(g.dtype, copy=False)
    if not batched:
        return gimg[0], ggrid[0]
    return gimg, ggrid


def _warp_backward(fn, grad_out, images, theta, size, mode, padding_mode, align_corners, fill_value,
                   rows, antialias=False):
    """Shared body of the affine (rows 2) and projective (rows 3) warp backward."""
    src0, batched = _float_images(fn, images)
    m, p, a = check_flags(fn, mode, padding_mode, align_corners)
    aa = check_antialias(fn, antialias, m)
    shared = np.shape(theta) == (rows, 3)
    t = check_theta(fn, theta, src0.shape[0], batched, rows=rows)
    fill = fill_for(fn, fill_value, p, src0.shape[3])
    ho, wo = check_size(fn, size, (src0.shape[1], src0.shape[2]))
    n = src0.shape[0]
    cdt = compute_dtype(src0.dtype)
    src = src0.astype(cdt, copy=False)
    gout = _check_grad_out(fn, grad_out, (n, ho, wo, src0.shape[3]), batched, cdt)
    hpx = AA.pixel_homographies(t, src.shape[1:3], (ho, wo), a) if aa else None
    if aa and rows == 2 and not (AA.largest_stretch(hpx) > 1.0).any():
        aa = False  # nothing shrinks: the plain gradient is the whole gradient
    full = gout
    if aa and n:
        # the plain gradient of the pixels that keep the plain sample, the filter's of the others
        mask = np.empty((n, ho, wo), np.uint8)
        call_rows(AA.mask_kernel, *readonly(hpx), mask, rows=n * ho, work=mask.size)
        gout = np.where(mask[..., None].astype(bool), gout.dtype.type(0), gout)
    # a projective theta always takes the generic kernels: even with the last row
    # (0, 0, 1) that row has a gradient, dL/dw = -(dL/dx x + dL/dy y)
    if rows == 2 and tuned(m, p, src.dtype):
        buf, seen = _image_grad_buffers(src, ho)
        rsum = np.empty((n, ho, 4), np.float64)
        if n:
            kern = B.backward_kernel(True, m, B.channel_class(m, src.shape[3]))
            call(kern, *readonly(gout, src, _NO_GRID, t), buf, seen,
                 _NO_GRID_GRAD, rsum, p, a)
        gimg = _sum_chunks(buf, seen)
        gtheta = G.theta_grad(rsum, _base_coords(ho, a), 2)
    else:
        gimg, _, gtheta = _generic_backward(gout, src, m, p, a, fill, theta=t, projective=rows == 3)
    if aa and n:
        g_aa, gt_aa = _antialias_backward(full, src, hpx, fill, m, p, a, rows, (ho, wo))
        gimg = gimg + g_aa
        gtheta = gtheta + gt_aa
    gimg = gimg.astype(src0.dtype, copy=False)
    if shared:
        gtheta = gtheta.sum(axis=0)
    return (gimg if batched else gimg[0]), gtheta


def _antialias_backward(gout, src, hpx, fill, mode, padding, align, rows, size):
    """(grad_images, grad_theta) of the filtered pixels (``fastwarp.cpu.antialias``):
    dL/dH summed per output row in the kernel, then in row order here, and
    dL/dtheta = N_in^T dL/dH P_out^T for H = N_in theta P_out."""
    n, ho = gout.shape[:2]
    buf, seen = _image_grad_buffers(src, ho)
    ghrows = np.zeros((n, ho, 9))
    call_rows(AA.backward_kernel, *readonly(gout, src, hpx, fill), buf, seen, ghrows, mode == BICUBIC,
              padding, align, rows == 3, rows=n * buf.shape[1], work=4 * gout.size)
    n_in, p_out = AA.normalizers(src.shape[1:3], size, align)
    gh = ghrows.sum(axis=1).reshape(n, 3, 3)
    return _sum_chunks(buf, seen), (n_in.T @ gh @ p_out.T)[:, :rows]


def affine_warp_backward(grad_out, images, theta, size=None, *, mode: str = "bilinear",
                         padding_mode: str = "zeros", align_corners: bool = False, fill_value=0.0,
                         antialias: bool = False, device: str | None = None):
    """Gradients of :func:`fastwarp.affine_warp` with respect to the images and theta.

    Fused: the sampling grid and its gradient are never materialized;
    ``dL/dtheta[n] = sum_ij outer(dL/d(x, y)_ij, (x_j, y_i, 1))``.

    Parameters
    ----------
    grad_out : ndarray, shape (N, Ho, Wo, C) (or (Ho, Wo, C) for a single image)
        dL/d output of ``affine_warp(images, theta, size, ...)``: exactly the
        forward output's shape; float32 or float64 (converted to the images' dtype).
    images : ndarray, shape (N, H, W, C) or (H, W, C)
        The forward call's images, float32, float64 or float16.
    theta : array_like, shape (N, 2, 3) or (2, 3)
        The forward call's normalized output -> input matrices.
    size : (int, int), optional
        The forward call's output size (Ho, Wo); defaults to (H, W).
    mode, padding_mode, align_corners, fill_value, antialias, device
        As in :func:`fastwarp.affine_warp`.  With ``antialias`` the gradient
        covers the filter, including how its footprint depends on theta.

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
                                                    align_corners=align_corners, fill_value=fill_value,
                                                    antialias=antialias)
    return _warp_backward(fn, grad_out, images, theta, size, mode, padding_mode, align_corners, fill_value, 2,
                          antialias)


def perspective_warp_backward(grad_out, images, theta, size=None, *, mode: str = "bilinear",
                              padding_mode: str = "zeros", align_corners: bool = False, fill_value=0.0,
                              antialias: bool = False, device: str | None = None):
    """Gradients of :func:`fastwarp.perspective_warp` with respect to the images and theta.

    With ``(u, v, w) = theta @ (x_j, y_i, 1)`` and the sample point
    ``(u / w, v / w)``: ``dL/du = dL/dx / w``, ``dL/dv = dL/dy / w``,
    ``dL/dw = -(dL/dx x + dL/dy y) / w`` and
    ``dL/dtheta[n] = sum_ij outer(dL/d(u, v, w)_ij, (x_j, y_i, 1))``; points
    behind the viewer (w <= 0) contribute nothing.

    Parameters
    ----------
    grad_out, images, size, mode, padding_mode, align_corners, fill_value, antialias
        As in :func:`affine_warp_backward`.
    theta : array_like, shape (N, 3, 3) or (3, 3)
        The forward call's normalized output -> input projective matrices.
    device : {None, "cpu", "cuda"}
        As in :func:`affine_warp_backward`.

    Returns
    -------
    grad_images : ndarray, images' shape and dtype
    grad_theta : ndarray, float64, shape (N, 3, 3), or (3, 3) for a single
        theta (the sum over the batch).  Zero in nearest mode.

    Raises
    ------
    TypeError, ValueError
        As in :func:`affine_warp_backward`, for (N, 3, 3) matrices.
    """
    fn = "perspective_warp_backward"
    if wants_gpu(fn, device, grad_out, images, theta):
        return gpu_backend(fn).perspective_warp_backward(grad_out, images, theta, size, mode=mode,
                                                         padding_mode=padding_mode,
                                                         align_corners=align_corners,
                                                         fill_value=fill_value, antialias=antialias)
    return _warp_backward(fn, grad_out, images, theta, size, mode, padding_mode, align_corners, fill_value, 3,
                          antialias)
