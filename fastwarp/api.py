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

Modes
-----
``nearest`` reads the pixel at ``round_half_even(x)``; ``bilinear`` the 2 x 2
taps around the point; ``bicubic`` the 4 x 4 taps with PyTorch's cubic
convolution (a = -0.75), each tap's index padded per padding mode as PyTorch
does.  In nearest mode a float32 grid is unnormalized in float32 arithmetic,
as PyTorch does, so a point that close to a tie rounds the same way.

Padding (OpenCV's border names in brackets)
-------------------------------------------
``zeros``: taps outside the image read 0 (BORDER_CONSTANT with 0).
``constant``: taps outside read ``fill_value``, a scalar or one value per
channel (BORDER_CONSTANT); ``fill_value`` is ignored by the other modes.
``border``: the point is clamped to the image (BORDER_REPLICATE).
``reflection``: the point is mirrored at the border, the corner centres with
align_corners=True (BORDER_REFLECT_101) and the image edges otherwise
(BORDER_REFLECT).  ``wrap``: tap indices wrap modulo the image size
(BORDER_WRAP).  A NaN, infinite or huge (|c| >= 2**40) grid coordinate, and a
projective point behind the viewer, reads ``fill_value`` with constant padding
and 0 in every other mode; other finite coordinates far outside follow the
padding mode.

dtypes
------
float32, float64 and float16 images give outputs of the same dtype (float16
is computed in float32); uint8 and uint16 images are interpolated in floating
point, rounded to nearest (ties up) and saturated.  theta and grid may be
float32 or float64 whatever the image dtype; coordinates are computed in
float64.  For speed, bilinear sampling of float32 and uint8 images blends in
float32 (for uint8 an error below 1e-4 of a grey level: a value that close to a
.5 tie may round the other way), and the affine warp's interior spans step the
coordinates of float32 and uint8 images in 32.32 fixed point (an error below
1e-8 px) with fractions rounded to 2**-24.

Antialias
---------
``antialias=True`` (affine_warp, perspective_warp and their gradients) filters
where the warp shrinks: each output pixel reads its footprint, the mode's kernel
stretched by ``M = (J J^T)^(-1/2)`` (J the output -> input pixel Jacobian,
eigenvalues clamped into [1, 16^2]); where J has no singular value above 1 the
result is the plain warp bit for bit (``fastwarp.cpu.antialias``, docs/antialias.md).

Compilation: every forward call runs a kernel of ``fastwarp.cpu.generic`` built
for its combination (mode, padding, channel-count class) and compiled for the
image dtype on first use, so a call compiles only the path it runs; kernels
are cached on disk.
"""

from __future__ import annotations

import numpy as np

from .core import buffers
from .core.coords import BICUBIC, NEAREST
from .core.dispatch import gpu_backend, wants_gpu
from .core.runtime import call
from .core.validate import (
    check_antialias,
    check_flags,
    check_grid,
    check_images,
    check_out,
    check_size,
    check_theta,
    compute_dtype,
    fill_for,
    readonly,
)
from .cpu import antialias as AA
from .cpu import generic as G
from .cpu.sched import call_rows

__all__ = ["affine_grid", "grid_sample", "affine_warp", "perspective_grid", "perspective_warp"]

_NO_GRID = np.empty((0, 0, 0, 2))
_NO_THETA = np.empty((0, 3, 3))
_NO_GRID.flags.writeable = False
_NO_THETA.flags.writeable = False


def _run(src, res, mode, padding, align, fill, *, grid=None, theta=None, projective=False,
         antialias=False):
    """Sample ``src`` into ``res`` (both in the compute dtype) with the per-combination
    kernel; with ``antialias``, then the footprint filter over the pixels where the warp
    shrinks."""
    _plain(src, res, mode, padding, align, fill, grid=grid, theta=theta, projective=projective)
    if antialias:
        _antialias(src, res, mode, padding, align, fill, theta, projective)


def _antialias(src, res, mode, padding, align, fill, theta, projective):
    """Overwrite the shrinking pixels of the plain result ``res`` (``fastwarp.cpu.antialias``)."""
    hpx = AA.pixel_homographies(theta, src.shape[1:3], res.shape[1:3], align)
    if not projective and not (AA.largest_stretch(hpx) > 1.0).any():
        return  # no image shrinks anywhere: the plain result stands (nothing to compile)
    call_rows(AA.forward_kernel, *readonly(np.ascontiguousarray(src), hpx, fill), res, mode == BICUBIC,
              padding, align,
              rows=res.shape[0] * res.shape[1], work=4 * res.size)


def _plain(src, res, mode, padding, align, fill, *, grid=None, theta=None, projective=False):
    """Sample ``src`` into ``res`` with the per-combination kernel of ``fastwarp.cpu.generic``."""
    f32_nearest = grid is not None and mode == NEAREST and grid.dtype == np.float32
    source = G.GRID if grid is not None else (G.PERSPECTIVE if projective else G.AFFINE)
    if grid is not None and not f32_nearest:
        grid = grid.astype(np.float64, copy=False)
    kern = G.forward_kernel(mode, padding, G.channel_class(src.shape[3]), f32_nearest)
    grid = _NO_GRID if grid is None else grid
    theta = _NO_THETA if theta is None else theta
    call_rows(kern, *readonly(src, grid, theta, fill), res, source, padding, align,
              rows=res.shape[0] * res.shape[1], work=res.size)


def _sample(fn, src, batched, out, shape, mode, padding, align, fill, **where):
    """Allocate or check the output, convert float16 to the compute dtype and back, run."""
    res, user = _prepare_out(fn, out, shape, src.dtype, batched, src, *[v for v in where.values()
                                                                         if isinstance(v, np.ndarray)])
    if shape[0] and shape[1] and shape[2]:
        cdt = compute_dtype(src.dtype)
        if cdt != src.dtype:
            tmp = np.empty(shape, cdt)
            _run(src.astype(cdt), tmp, mode, padding, align, fill, **where)
            res[...] = tmp
        else:
            _run(src, res, mode, padding, align, fill, **where)
    return user if user is not None else (res if batched else res[0])


def _prepare_out(fn, out, shape, dtype, batched, *inputs):
    """Allocate the (N, Ho, Wo, C) output, or check and view the caller's buffer."""
    if out is None:
        return buffers.empty(shape, dtype), None
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
        :mod:`fastwarp.core.dispatch`.

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
    return _matrix_grid(fn, G.AFFINE, 2, theta, size, align_corners, out)


def _matrix_grid(fn, source, rows, theta, size, align_corners, out):
    """affine_grid (rows 2) and perspective_grid (rows 3) on the CPU: checks, output, kernel."""
    batched = np.ndim(theta) == 3
    n = len(theta) if batched else 1
    t = check_theta(fn, theta, n, batched, rows=rows)
    check_flags(fn, "bilinear", "zeros", align_corners)
    if size is None:
        raise TypeError(f"{fn}: size (Ho, Wo) is required; got None")
    ho, wo = check_size(fn, size, (0, 0))
    res, user = _prepare_out(fn, out, (n, ho, wo, 2), np.dtype(np.float64), batched, t)
    if n:
        call(G.grid_kernel, *readonly(t), res, source, bool(align_corners), work=res.size)
    return user if user is not None else (res if batched else res[0])


def grid_sample(images, grid, *, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool = False, fill_value=0.0, out: np.ndarray | None = None,
                device: str | None = None):
    """Sample images at normalized grid points (PyTorch's ``grid_sample`` in NHWC).

    Parameters
    ----------
    images : ndarray, shape (N, H, W, C) or (H, W, C)
        float32, float64, float16, uint8 or uint16; any layout or byte order.
    grid : ndarray, shape (N, Ho, Wo, 2) or (Ho, Wo, 2)
        float32 or float64 normalized (x, y) points, x the column.
    mode : {"bilinear", "nearest", "bicubic"}
    padding_mode : {"zeros", "border", "reflection", "constant", "wrap"}
    align_corners : bool, default False
    fill_value : float or sequence of float, default 0.0
        What taps outside the image read with ``padding_mode="constant"``: one
        value, or one per channel (in the images' units, e.g. 0-255 for uint8).
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
        Unsupported dtype, non-bool align_corners, non-numeric fill_value,
        ``out`` of the wrong type or dtype.
    ValueError
        Wrong ranks, mismatched batch sizes, unknown mode or padding, a
        fill_value of the wrong length or not finite, bad ``out``.

    Examples
    --------
    >>> import numpy as np, fastwarp as fw
    >>> img = np.array([[[10.0], [20.0], [30.0]]])           # one row, three pixels
    >>> grid = np.array([[[-1.0, 0.0], [0.0, 0.0], [1.5, 0.0]]])
    >>> fw.grid_sample(img, grid, align_corners=True, padding_mode="constant", fill_value=-1)[0, :, 0]
    array([10., 20., 14.])
    """
    fn = "grid_sample"
    if wants_gpu(fn, device, images, grid, out):
        return gpu_backend(fn).grid_sample(images, grid, mode=mode, padding_mode=padding_mode,
                                           align_corners=align_corners, fill_value=fill_value, out=out)
    src, batched = check_images(fn, images)
    m, p, a = check_flags(fn, mode, padding_mode, align_corners)
    g = check_grid(fn, grid, src.shape[0], batched)
    fill = fill_for(fn, fill_value, p, src.shape[3])
    shape = (src.shape[0], g.shape[1], g.shape[2], src.shape[3])
    return _sample(fn, src, batched, out, shape, m, p, a, fill, grid=g)


def affine_warp(images, theta, size=None, *, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool = False, fill_value=0.0, antialias: bool = False,
                out: np.ndarray | None = None, device: str | None = None):
    """Warp images by affine matrices in one pass, without materializing the grid.

    Equal to ``grid_sample(images, affine_grid(theta, size), ...)`` up to float
    rounding of the sample points (at an exact nearest-mode tie the two may pick
    different neighbours).

    Parameters
    ----------
    images : ndarray, shape (N, H, W, C) or (H, W, C)
        float32, float64, float16, uint8 or uint16; any layout or byte order.
    theta : array_like, shape (N, 2, 3) or (2, 3)
        Normalized output -> input affine matrices, one per image or one for all.
    size : (int, int), optional
        Output size (Ho, Wo); defaults to the input's (H, W).
    mode, padding_mode, align_corners, fill_value, out, device
        As in :func:`grid_sample`.
    antialias : bool, default False
        Where the warp shrinks (the output -> input pixel map's Jacobian has
        a singular value above 1), read the output pixel's whole footprint:
        the bilinear tent (or bicubic kernel) stretched along the footprint,
        normalized (``fastwarp.cpu.antialias`` documents the filter).  Pixels
        that do not shrink are exactly the ``antialias=False`` result.  Needs
        mode "bilinear" or "bicubic" (on the GPU too, forward and gradient).

    Returns
    -------
    ndarray, shape (N, Ho, Wo, C) (or (Ho, Wo, C)), the images' dtype.

    Raises
    ------
    TypeError, ValueError
        As in :func:`grid_sample`; also for a wrong theta shape, a batch
        mismatch, a non-finite theta, a non-bool ``antialias`` or
        ``antialias`` with mode "nearest".
    """
    fn = "affine_warp"
    if wants_gpu(fn, device, images, theta, out):
        return gpu_backend(fn).affine_warp(images, theta, size, mode=mode, padding_mode=padding_mode,
                                           align_corners=align_corners, fill_value=fill_value,
                                           antialias=antialias, out=out)
    src, batched = check_images(fn, images)
    m, p, a = check_flags(fn, mode, padding_mode, align_corners)
    aa = check_antialias(fn, antialias, m)
    t = check_theta(fn, theta, src.shape[0], batched)
    fill = fill_for(fn, fill_value, p, src.shape[3])
    ho, wo = check_size(fn, size, (src.shape[1], src.shape[2]))
    shape = (src.shape[0], ho, wo, src.shape[3])
    return _sample(fn, src, batched, out, shape, m, p, a, fill, theta=t, antialias=aa)


def _affine_rows(t: np.ndarray) -> bool:
    """Whether every (3, 3) matrix has the last row (0, 0, 1) exactly (an affine map)."""
    return bool((t[:, 2, 0] == 0).all() and (t[:, 2, 1] == 0).all() and (t[:, 2, 2] == 1).all())


def perspective_grid(theta, size, *, align_corners: bool = False, out: np.ndarray | None = None,
                     device: str | None = None):
    """Normalized source coordinates of every output pixel for projective matrices.

    Parameters
    ----------
    theta : array_like, shape (N, 3, 3) or (3, 3)
        Projective matrices mapping normalized output coordinates to normalized
        input coordinates: ``(u, v, w) = theta @ (x_j, y_i, 1)``.  Finite.
    size : (int, int)
        Output size (Ho, Wo), both at least 1.
    align_corners : bool, default False
    out : ndarray, optional
        float64 buffer of the result's shape.
    device : {None, "cpu", "cuda"}
        As in :func:`affine_grid`.

    Returns
    -------
    grid : ndarray, float64, shape (N, Ho, Wo, 2) or (Ho, Wo, 2) for a (3, 3) theta
        ``(u / w, v / w)``; NaN where ``w <= 0`` (the point is behind the
        viewer), which every sampler reads as no image.

    Raises
    ------
    ValueError
        theta not of shape (N, 3, 3) or (3, 3) (a (N, 2, 3) affine theta
        included: use :func:`affine_grid`), non-finite theta, bad size or ``out``.
    TypeError
        Non-numeric theta, non-bool align_corners.

    Examples
    --------
    >>> import numpy as np, fastwarp as fw
    >>> fw.perspective_grid(np.eye(3), (1, 2), align_corners=True)[0]
    array([[-1.,  0.],
           [ 1.,  0.]])
    """
    fn = "perspective_grid"
    if wants_gpu(fn, device, theta, out):
        return gpu_backend(fn).perspective_grid(theta, size, align_corners=align_corners, out=out)
    return _matrix_grid(fn, G.PERSPECTIVE, 3, theta, size, align_corners, out)


def perspective_warp(images, theta, size=None, *, mode: str = "bilinear", padding_mode: str = "zeros",
                     align_corners: bool = False, fill_value=0.0, antialias: bool = False,
                     out: np.ndarray | None = None, device: str | None = None):
    """Warp images by projective (homography) matrices in one pass.

    Equal to ``grid_sample(images, perspective_grid(theta, size), ...)`` up to
    float rounding; a theta whose last row is (0, 0, 1) gives
    :func:`affine_warp`'s numbers.

    Parameters
    ----------
    images : ndarray, shape (N, H, W, C) or (H, W, C)
        float32, float64, float16, uint8 or uint16.
    theta : array_like, shape (N, 3, 3) or (3, 3)
        Normalized output -> input projective matrices (see :func:`perspective_grid`).
    size : (int, int), optional
        Output size (Ho, Wo); defaults to the input's (H, W).
    mode, padding_mode, align_corners, fill_value, out
        As in :func:`grid_sample`.
    antialias : bool, default False
        As in :func:`affine_warp`; the footprint is taken per output pixel,
        so a shrink that grows across the image is filtered where it occurs.
    device : {None, "cpu", "cuda"}
        As in :func:`grid_sample`.

    Returns
    -------
    ndarray, shape (N, Ho, Wo, C) (or (Ho, Wo, C)), the images' dtype.

    Raises
    ------
    TypeError, ValueError
        As in :func:`grid_sample`; also for a theta not of shape (N, 3, 3) or
        (3, 3), a batch mismatch or a non-finite theta.
    """
    fn = "perspective_warp"
    if wants_gpu(fn, device, images, theta, out):
        return gpu_backend(fn).perspective_warp(images, theta, size, mode=mode, padding_mode=padding_mode,
                                                align_corners=align_corners, fill_value=fill_value,
                                                antialias=antialias, out=out)
    m, p, a = check_flags(fn, mode, padding_mode, align_corners)
    aa = check_antialias(fn, antialias, m)
    return _perspective(fn, images, theta, size, m, p, a, fill_value, out, antialias=aa)


def _perspective(fn, images, theta, size, m, p, a, fill_value, out=None, antialias=False):
    """perspective_warp after the flags are codes (``p`` may be an internal padding such as
    ``coords.TF_WRAP``, which only fastwarp.tf.layers uses)."""
    src, batched = check_images(fn, images)
    t = check_theta(fn, theta, src.shape[0], batched, rows=3)
    fill = fill_for(fn, fill_value, p, src.shape[3])
    ho, wo = check_size(fn, size, (src.shape[1], src.shape[2]))
    shape = (src.shape[0], ho, wo, src.shape[3])
    if _affine_rows(t):
        return _sample(fn, src, batched, out, shape, m, p, a, fill, theta=np.ascontiguousarray(t[:, :2]),
                       antialias=antialias)
    return _sample(fn, src, batched, out, shape, m, p, a, fill, theta=t, projective=True,
                   antialias=antialias)
