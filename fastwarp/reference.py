"""Plain, vectorized NumPy reference of fastwarp's operations: the test oracle
and the benchmarks' "numpy" baseline.

Written from the math, independently of the Numba kernels (it shares no code
with them).  It generalizes the NumPy walk-through of the blog post the
project grew from (``affine_grid`` as a batched matrix product over a
homogeneous mesh, bilinear sampling by fancy indexing of the four
neighbours) to every flag, and fixes its off-by-one: the blog rescales a
normalized x with ``(x + 1) * W / 2``, which maps the last column's centre to
W, outside the image; the correct scale is W - 1 with ``align_corners=True``
and ``((x + 1) * W - 1) / 2`` with ``align_corners=False``.
:func:`blog_affine_warp` keeps the blog's version, for the demo's comparison.

Everything is computed in float64 and converted to the images' dtype at the end
(uint8: ``floor(v + 0.5)`` and saturation).  Arguments are assumed valid: the
reference does not validate.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "affine_grid", "grid_sample", "affine_warp", "blog_affine_warp",
    "grid_sample_backward", "affine_warp_backward",
]


def _linspace(n: int, align_corners: bool) -> np.ndarray:
    """Normalized coordinates of n pixels along one axis."""
    if align_corners:
        return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
    return (2.0 * np.arange(n) + 1.0) / n - 1.0


def affine_grid(theta, size, align_corners: bool = False) -> np.ndarray:
    """(N, Ho, Wo, 2) grid = theta @ [x; y; 1] over the output's normalized mesh."""
    theta = np.asarray(theta, np.float64).reshape(-1, 2, 3)
    ho, wo = size
    x_t, y_t = np.meshgrid(_linspace(wo, align_corners), _linspace(ho, align_corners))
    mesh = np.stack([x_t.ravel(), y_t.ravel(), np.ones(ho * wo)])  # (3, Ho*Wo)
    grid = theta @ mesh  # (N, 2, Ho*Wo)
    return np.moveaxis(grid.reshape(-1, 2, ho, wo), 1, -1)


def _unnormalize(c, n, align_corners):
    if align_corners:
        return (c + 1.0) / 2.0 * (n - 1)
    return ((c + 1.0) * n - 1.0) / 2.0


def _reflect(x, twice_low, twice_high):
    if twice_low == twice_high:
        return np.where(np.isnan(x), np.nan, 0.0)  # keep the "reads 0" marker of non-finite points
    low = twice_low / 2.0
    span = (twice_high - twice_low) / 2.0
    d = np.abs(x - low)
    flips = np.floor(d / span)
    extra = d - flips * span
    return np.where(flips % 2 == 0, extra + low, span - extra + low)


def _source(c, n, padding_mode, align_corners):
    """Pixel coordinates after the padding mode; non-finite or huge become NaN (read as 0)."""
    c = np.where(np.abs(c) < 2.0**40, c, np.nan)
    x = _unnormalize(c, n, align_corners)
    if padding_mode == "border":
        x = np.clip(x, 0, n - 1)
    elif padding_mode == "reflection":
        if align_corners:
            x = _reflect(x, 0.0, 2.0 * (n - 1))
        else:
            x = _reflect(x, -1.0, 2.0 * n - 1.0)
        x = np.clip(x, 0, n - 1)
    return x


def _gather(images, b, yi, xi):
    """images[b, yi, xi] with 0 where (yi, xi) is outside the image (or NaN)."""
    _, h, w, _ = images.shape
    ok = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
    xs = np.where(ok, xi, 0).astype(np.int64)
    ys = np.where(ok, yi, 0).astype(np.int64)
    return images[b, ys, xs] * ok[..., None]


def _finish(v, dtype):
    if dtype == np.uint8:
        return np.clip(np.floor(v + 0.5), 0, 255).astype(np.uint8)
    return v.astype(dtype)


def grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False):
    """Sample (N, H, W, C) images at a (N, Ho, Wo, 2) normalized grid."""
    dtype = images.dtype
    img = np.asarray(images, np.float64)
    grid = np.asarray(grid, np.float64)
    _, h, w, _ = img.shape
    b = np.arange(img.shape[0])[:, None, None]
    with np.errstate(invalid="ignore"):
        x = _source(grid[..., 0], w, padding_mode, align_corners)
        y = _source(grid[..., 1], h, padding_mode, align_corners)
        if mode == "nearest":
            out = _gather(img, b, np.rint(y), np.rint(x))
        else:
            x0 = np.floor(x)
            y0 = np.floor(y)
            wx = np.nan_to_num(x - x0)[..., None]  # NaN points gather 0 at every tap
            wy = np.nan_to_num(y - y0)[..., None]
            ia = _gather(img, b, y0, x0)
            ib = _gather(img, b, y0 + 1, x0)
            ic = _gather(img, b, y0, x0 + 1)
            id_ = _gather(img, b, y0 + 1, x0 + 1)
            out = ((1 - wy) * ((1 - wx) * ia + wx * ic) + wy * ((1 - wx) * ib + wx * id_))
    return _finish(out, dtype)


def affine_warp(images, theta, size=None, mode="bilinear", padding_mode="zeros",
                align_corners=False):
    """grid_sample(images, affine_grid(theta, size)); size defaults to the input's."""
    if size is None:
        size = images.shape[1:3]
    theta = np.broadcast_to(np.asarray(theta, np.float64), (images.shape[0], 2, 3))
    grid = affine_grid(theta, size, align_corners)
    return grid_sample(images, grid, mode, padding_mode, align_corners)


def blog_affine_warp(images, theta):
    """The blog post's warp as written: linspace grid, rescaled with W (not W - 1), clipped.

    Kept only to show what its off-by-one does; do not use it for real work.
    """
    dtype = images.dtype
    img = np.asarray(images, np.float64)
    n, h, w, _ = img.shape
    theta = np.broadcast_to(np.asarray(theta, np.float64), (n, 2, 3))
    grid = affine_grid(theta, (h, w), align_corners=True)
    x = (grid[..., 0] + 1.0) * w * 0.5  # the bug: W instead of W - 1
    y = (grid[..., 1] + 1.0) * h * 0.5
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    x1, y1 = x0 + 1, y0 + 1
    x0c, x1c = np.clip(x0, 0, w - 1), np.clip(x1, 0, w - 1)
    y0c, y1c = np.clip(y0, 0, h - 1), np.clip(y1, 0, h - 1)
    b = np.arange(n)[:, None, None]
    ia, ib = img[b, y0c, x0c], img[b, y1c, x0c]
    ic, id_ = img[b, y0c, x1c], img[b, y1c, x1c]
    wa = ((x1 - x) * (y1 - y))[..., None]
    wb = ((x1 - x) * (y - y0))[..., None]
    wc = ((x - x0) * (y1 - y))[..., None]
    wd = ((x - x0) * (y - y0))[..., None]
    return _finish(wa * ia + wb * ib + wc * ic + wd * id_, dtype)


# ---------------------------------------------------------------------------
# Backward: gradients of grid_sample and affine_warp, written from the math
# ---------------------------------------------------------------------------
#
# Bilinear v = sum_ab wy_a wx_b I[y_a, x_b] (taps outside the image read 0), so
#   dL/dI[y_a, x_b] += wy_a wx_b g                        (a scatter: np.add.at)
#   dv/dx = (1 - fy) (I01 - I00) + fy (I11 - I10)          (pixel units)
#   dv/dy = (1 - fx) (I10 - I00) + fx (I11 - I01)
# and dL/dgrid = sum_c g dv/d(pixel) * d(pixel)/d(grid), the last factor with
# PyTorch's convention at the clamps: slope 0 on and outside the bounds.


def _source_slope(c, n, padding_mode, align_corners):
    """d(pixel coordinate after the padding mode) / d(normalized c); 0 for non-finite or huge c."""
    scale = (n - 1) / 2.0 if align_corners else n / 2.0
    x = _unnormalize(c, n, align_corners)
    if padding_mode == "zeros":
        slope = np.full_like(x, scale)
    elif padding_mode == "border":
        slope = scale * ((x > 0) & (x < n - 1))
    else:
        twice_low, twice_high = (0.0, 2.0 * (n - 1)) if align_corners else (-1.0, 2.0 * n - 1.0)
        if twice_low == twice_high:
            slope = np.zeros_like(x)
        else:
            low = twice_low / 2.0
            span = (twice_high - twice_low) / 2.0
            d = x - low
            # mirrored once more each time |d| crosses a multiple of span; negative d starts mirrored
            flips = np.floor(np.abs(d) / span)
            sign = np.where(d < 0, -1.0, 1.0) * np.where(flips % 2 == 0, 1.0, -1.0)
            r = np.clip(_reflect(x, twice_low, twice_high), 0, n - 1)
            slope = scale * sign * ((r > 0) & (r < n - 1))
    return np.where(np.abs(c) < 2.0**40, slope, 0.0)


def _scatter(grad, b, yi, xi, values):
    """grad[b, yi, xi] += values where (yi, xi) is inside the image (NaN never is)."""
    _, h, w, _ = grad.shape
    ok = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
    bb = np.broadcast_to(b, ok.shape)[ok]
    np.add.at(grad, (bb, yi[ok].astype(np.int64), xi[ok].astype(np.int64)), values[ok])


def grid_sample_backward(grad_out, images, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False):
    """(dL/dimages, dL/dgrid) of grid_sample for dL/doutput = grad_out, all (N, ...) batched."""
    img = np.asarray(images, np.float64)
    g = np.asarray(grid, np.float64)
    go = np.asarray(grad_out, np.float64)
    _, h, w, _ = img.shape
    b = np.arange(img.shape[0])[:, None, None]
    gimg = np.zeros_like(img)
    ggrid = np.zeros_like(g)
    with np.errstate(invalid="ignore"):
        x = _source(g[..., 0], w, padding_mode, align_corners)
        y = _source(g[..., 1], h, padding_mode, align_corners)
        if mode == "nearest":
            _scatter(gimg, b, np.rint(y), np.rint(x), go)
        else:
            x0 = np.floor(x)
            y0 = np.floor(y)
            fx = np.nan_to_num(x - x0)[..., None]
            fy = np.nan_to_num(y - y0)[..., None]
            i00 = _gather(img, b, y0, x0)
            i01 = _gather(img, b, y0, x0 + 1)
            i10 = _gather(img, b, y0 + 1, x0)
            i11 = _gather(img, b, y0 + 1, x0 + 1)
            _scatter(gimg, b, y0, x0, (1 - fy) * (1 - fx) * go)
            _scatter(gimg, b, y0, x0 + 1, (1 - fy) * fx * go)
            _scatter(gimg, b, y0 + 1, x0, fy * (1 - fx) * go)
            _scatter(gimg, b, y0 + 1, x0 + 1, fy * fx * go)
            dvdx = (1 - fy) * (i01 - i00) + fy * (i11 - i10)
            dvdy = (1 - fx) * (i10 - i00) + fx * (i11 - i01)
            ggrid[..., 0] = (go * dvdx).sum(-1) * _source_slope(g[..., 0], w, padding_mode, align_corners)
            ggrid[..., 1] = (go * dvdy).sum(-1) * _source_slope(g[..., 1], h, padding_mode, align_corners)
    return gimg.astype(images.dtype), ggrid.astype(np.asarray(grid).dtype)


def affine_warp_backward(grad_out, images, theta, size=None, mode="bilinear", padding_mode="zeros",
                         align_corners=False):
    """(dL/dimages, dL/dtheta) of affine_warp; dL/dtheta has theta's shape (a (2, 3) theta
    shared by the batch gets the sum over the batch)."""
    if size is None:
        size = images.shape[1:3]
    t = np.asarray(theta, np.float64)
    full = np.broadcast_to(t, (images.shape[0], 2, 3))
    grid = affine_grid(full, size, align_corners)
    gimg, ggrid = grid_sample_backward(grad_out, images, grid, mode, padding_mode, align_corners)
    # grid[n, i, j] = theta[n] @ (x_j, y_i, 1)
    #   =>  dL/dtheta[n] = sum_ij outer(dL/dgrid[n, i, j], (x_j, y_i, 1))
    ho, wo = size
    x_t, y_t = np.meshgrid(_linspace(wo, align_corners), _linspace(ho, align_corners))
    mesh = np.stack([x_t, y_t, np.ones((ho, wo))], -1)
    gtheta = np.einsum("nhwk,hwl->nkl", ggrid, mesh)
    if t.shape == (2, 3):
        gtheta = gtheta.sum(0)
    return gimg, gtheta
