"""Numba CPU forward kernels: affine grid, grid sampling and the fused affine warp.

All kernels take validated, C-contiguous arrays (the checks live in
``fastwarp._validate``) and integer flags from ``fastwarp._coords``.  They are
compiled lazily on first call and cached on disk (``cache=True``).  Parallelism
is a ``prange`` over (image, output row); each iteration writes one output row,
so no two threads ever write the same element.

Interpolation accumulates in the image's float type (float32 for float32 and
uint8 images); coordinates are computed in float64.
"""

from __future__ import annotations

from numba import njit, prange

from ._coords import (
    BILINEAR,
    base_coord,
    linear_taps,
    nearest_tap,
    source_coord,
)
from ._store import acc_type, to_output

# 'contract' lets LLVM fuse a * b + c into one FMA; nnan/ninf stay off because
# the kernels rely on NaN checks.
FASTMATH = {"contract"}
kernel = njit(parallel=True, nogil=True, cache=True, fastmath=FASTMATH)
inline = njit(nogil=True, cache=True, fastmath=FASTMATH)


@inline
def sample_point(src, n, x, y, out, i, j, mode, padding, align_corners):
    """Write out[n, i, j, :] = src[n] sampled at normalized (x, y)."""
    H = src.shape[1]
    W = src.shape[2]
    C = src.shape[3]
    ix = source_coord(x, W, padding, align_corners)
    iy = source_coord(y, H, padding, align_corners)
    if mode == BILINEAR:
        # v = wy0 (wx0 I[y0,x0] + wx1 I[y0,x1]) + wy1 (wx0 I[y1,x0] + wx1 I[y1,x1])
        x0, x1, wx0, wx1 = linear_taps(ix, W)
        y0, y1, wy0, wy1 = linear_taps(iy, H)
        ax0 = acc_type(wx0, src)
        ax1 = acc_type(wx1, src)
        ay0 = acc_type(wy0, src)
        ay1 = acc_type(wy1, src)
        for c in range(C):
            top = ax0 * src[n, y0, x0, c] + ax1 * src[n, y0, x1, c]
            bot = ax0 * src[n, y1, x0, c] + ax1 * src[n, y1, x1, c]
            out[n, i, j, c] = to_output(ay0 * top + ay1 * bot, out)
    else:
        # v = I[round(y), round(x)], or 0 when that pixel is outside the image
        xn = nearest_tap(ix, W)
        yn = nearest_tap(iy, H)
        if xn < 0 or yn < 0:
            for c in range(C):
                out[n, i, j, c] = 0
        else:
            for c in range(C):
                out[n, i, j, c] = src[n, yn, xn, c]


@kernel
def affine_grid_kernel(theta, out, align_corners):
    """out[n, i, j] = theta[n] @ (x_j, y_i, 1): the normalized source of each output pixel."""
    N, Ho, Wo, _ = out.shape
    for r in prange(N * Ho):
        n = r // Ho
        i = r - n * Ho
        yb = base_coord(i, Ho, align_corners)
        for j in range(Wo):
            xb = base_coord(j, Wo, align_corners)
            out[n, i, j, 0] = theta[n, 0, 0] * xb + theta[n, 0, 1] * yb + theta[n, 0, 2]
            out[n, i, j, 1] = theta[n, 1, 0] * xb + theta[n, 1, 1] * yb + theta[n, 1, 2]


@kernel
def grid_sample_kernel(src, grid, out, mode, padding, align_corners):
    """out[n, i, j] = src[n] sampled at grid[n, i, j] = (x, y)."""
    N, Ho, Wo, _ = out.shape
    for r in prange(N * Ho):
        n = r // Ho
        i = r - n * Ho
        for j in range(Wo):
            sample_point(src, n, grid[n, i, j, 0], grid[n, i, j, 1], out, i, j,
                         mode, padding, align_corners)


@kernel
def affine_warp_kernel(src, theta, out, mode, padding, align_corners):
    """Fused affine_grid + grid_sample: each pixel's source point is computed, then sampled."""
    N, Ho, Wo, _ = out.shape
    for r in prange(N * Ho):
        n = r // Ho
        i = r - n * Ho
        yb = base_coord(i, Ho, align_corners)
        # (x, y) = theta[n] @ (xb, yb, 1); the yb terms are constant along the row
        cx = theta[n, 0, 1] * yb + theta[n, 0, 2]
        cy = theta[n, 1, 1] * yb + theta[n, 1, 2]
        for j in range(Wo):
            xb = base_coord(j, Wo, align_corners)
            sample_point(src, n, theta[n, 0, 0] * xb + cx, theta[n, 1, 0] * xb + cy, out, i, j,
                         mode, padding, align_corners)
