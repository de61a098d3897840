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

Every sampler is one formula: a point reads a set of taps (1 for nearest, 2 x 2
for bilinear, 4 x 4 for bicubic), ``v = sum wy wx value``, where a tap inside
the image reads the pixel and a tap outside reads the fill (``constant``) or 0;
the gradients follow from it (:func:`grid_sample_backward`).

Everything is computed in float64 and converted to the images' dtype at the end
(uint8 and uint16: ``floor(v + 0.5)`` and saturation; float16 through
float32).  In nearest mode a float32 grid is unnormalized in float32
arithmetic, as PyTorch does, so near-ties round as they do there.
Arguments are assumed valid: the reference does not validate.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "affine_grid", "grid_sample", "affine_warp", "blog_affine_warp", "perspective_grid", "perspective_warp",
    "grid_sample_backward", "affine_warp_backward", "perspective_warp_backward",
    "antialias_mask", "supersampled_warp",
]

# the antialias filter's widest footprint, in input pixels (``fastwarp.cpu.antialias.CAP``)
AA_CAP = 16.0


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


def _unnormalize_f32(c, n, align_corners):
    """PyTorch's float32 arithmetic for a float32 grid: t = c + 1 in float32, then t * s
    (align_corners) or t * s - 0.5 as one fused multiply-add (PyTorch's CPU kernels are
    built with FMA contraction, its CUDA kernels too), s = (n - 1) / 2 or n / 2.  The
    product of two float32 numbers is exact in float64, so t * s - 0.5 there, rounded
    once to float32, is the fused result."""
    f = np.float32
    t = c + f(1)
    if align_corners:
        return t * f((n - 1) / 2)
    return (t.astype(np.float64) * (n / 2) - 0.5).astype(f)


def _reflect_f32(x, n, align_corners):
    """PyTorch's reflection of float32 pixel coordinates in float32, then the clamp (its
    vectorized CPU formula: d = |x - low|, extra = d - trunc(d / 2span) 2span,
    min(extra, 2span - extra) + low); nearest mode on a float32 grid uses it."""
    f = np.float32
    if align_corners:
        if n <= 1:
            return np.zeros_like(x, dtype=f)
        low, twice = f(0.0), f(2 * (n - 1))
    else:
        low, twice = f(-0.5), f(2 * n)
    d = np.abs(x - low)
    flips = np.trunc(d / twice)
    extra = (d.astype(np.float64) - flips.astype(np.float64) * float(twice)).astype(f)
    r = np.minimum(extra, twice - extra) + low
    return np.clip(r, f(0.0), f(n - 1))


def _pixel(c, n, align_corners, f32=False):
    """Pixel coordinate of normalized c (as float64; NaN for |c| >= 2**40), in float32
    arithmetic when ``f32`` and c is float32 (nearest mode rounds it as PyTorch does)."""
    c = np.asarray(c)
    with np.errstate(invalid="ignore"):
        if f32 and c.dtype == np.float32:
            x = _unnormalize_f32(c, n, align_corners)
        else:
            x = _unnormalize(c.astype(np.float64), n, align_corners)
        return np.where(np.abs(c) < 2.0**40, x.astype(np.float64), np.nan)


def _reflect(x, twice_low, twice_high):
    if twice_low == twice_high:
        return np.where(np.isnan(x), np.nan, 0.0)  # keep the "reads 0" marker of non-finite points
    low = twice_low / 2.0
    span = (twice_high - twice_low) / 2.0
    d = np.abs(x - low)
    flips = np.floor(d / span)
    extra = d - flips * span
    return np.where(flips % 2 == 0, extra + low, span - extra + low)


def _reflect_bounds(n, align_corners):
    return (0.0, 2.0 * (n - 1)) if align_corners else (-1.0, 2.0 * n - 1.0)


def _pad_coord(x, n, padding_mode, align_corners):
    """Border / reflection applied to a (pixel) coordinate, then clamped; other modes unchanged."""
    if padding_mode == "border":
        return np.clip(x, 0, n - 1)
    if padding_mode == "reflection":
        return np.clip(_reflect(x, *_reflect_bounds(n, align_corners)), 0, n - 1)
    return x


def _source(c, n, padding_mode, align_corners):
    """Pixel coordinates after the padding mode; non-finite or huge become NaN (read as 0)."""
    return _pad_coord(_pixel(c, n, align_corners), n, padding_mode, align_corners)


def _tap_index(k, n, padding_mode, align_corners):
    """(index, inside) of integer tap coordinates k (float arrays) along an axis of n pixels.

    zeros / constant: the tap itself, inside iff 0 <= k <= n - 1; wrap: k mod n;
    border / reflection: k padded like a coordinate (PyTorch's bicubic taps)."""
    if padding_mode == "wrap":
        return np.mod(k, n), np.isfinite(k)
    k = _pad_coord(k, n, padding_mode, align_corners)
    return k, (k >= 0) & (k <= n - 1)


def _cubic(t, a=-0.75):
    """Cubic-convolution weights of the taps at -1, 0, 1, 2 for fraction t, and their d/dt."""
    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    def dnear(d):
        return (3 * (a + 2) * d - 2 * (a + 3)) * d

    def dfar(d):
        return (3 * a * d - 10 * a) * d + 8 * a

    w = [far(t + 1), near(t), near(1 - t), far(2 - t)]
    dw = [dfar(t + 1), dnear(t), -dnear(1 - t), -dfar(2 - t)]
    return w, dw


def _axis_taps(c, n, mode, padding_mode, align_corners):
    """The taps of normalized coordinates c along one axis: a list of (index, inside, weight, dweight/dc).

    Bilinear with border or reflection pads the coordinate, then reads the two
    taps (PyTorch's order); bicubic reads the 4 taps around the raw coordinate
    and pads each tap's index; wrap and constant act on the tap indices.
    """
    x = _pixel(c, n, align_corners, f32=mode == "nearest")
    scale = (n - 1) / 2.0 if align_corners else n / 2.0
    ok = ~np.isnan(x)
    x = np.where(ok, x, 0.0)
    if mode == "nearest":
        if padding_mode == "reflection" and np.asarray(c).dtype == np.float32:
            # PyTorch's float32 reflection of the float32 coordinate (x holds it exactly)
            x = _reflect_f32(x.astype(np.float32), n, align_corners).astype(np.float64)
        k = np.rint(_pad_coord(x, n, padding_mode, align_corners))
        idx, inside = _tap_index(k, n, padding_mode, align_corners)
        return [(idx, inside & ok, ok * 1.0, np.zeros_like(x))]
    if mode == "bilinear":
        slope = np.where(ok, _source_slope(c, n, padding_mode, align_corners), 0.0)
        xp = _pad_coord(x, n, padding_mode, align_corners)
        k0 = np.floor(xp)
        f = xp - k0
        taps = []
        # border / reflection padded the coordinate already: their taps are bounds-checked only
        tap_padding = "zeros" if padding_mode in ("border", "reflection") else padding_mode
        for k, w, dw in ((k0, 1 - f, -slope), (k0 + 1, f, slope)):
            idx, inside = _tap_index(k, n, tap_padding, align_corners)
            taps.append((idx, inside & ok, w * ok, dw * ok))
        return taps
    k0 = np.floor(x)
    ws, dws = _cubic(x - k0)
    taps = []
    for m, (w, dw) in enumerate(zip(ws, dws)):
        idx, inside = _tap_index(k0 - 1 + m, n, padding_mode, align_corners)
        taps.append((idx, inside & ok, w * ok, dw * scale * ok))
    return taps


def _fill(fill_value, c):
    return np.broadcast_to(np.asarray(fill_value, np.float64), (c,))


def _finish(v, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        hi = np.iinfo(dtype).max
        return np.clip(np.floor(v + 0.5), 0, hi).astype(dtype)
    if dtype == np.float16:
        return v.astype(np.float32).astype(np.float16)
    return v.astype(dtype)


def _combine(img, grid, mode, padding_mode, align_corners, fill_value):
    """Per point: its taps, the value each tap reads (image inside, the fill outside) and the validity."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # NaN and huge points are masked
        return _combine_taps(img, grid, mode, padding_mode, align_corners, fill_value)


def _combine_taps(img, grid, mode, padding_mode, align_corners, fill_value):
    _, h, w, c = img.shape
    tx = _axis_taps(grid[..., 0], w, mode, padding_mode, align_corners)
    ty = _axis_taps(grid[..., 1], h, mode, padding_mode, align_corners)
    outside = _fill(fill_value, c) if padding_mode == "constant" else np.zeros(c)
    valid = (np.isfinite(_pixel(grid[..., 0], w, align_corners))
             & np.isfinite(_pixel(grid[..., 1], h, align_corners)))
    b = np.arange(img.shape[0])[:, None, None]
    pairs = []
    for yi, yin, wy, dwy in ty:
        for xi, xin, wx, dwx in tx:
            inside = yin & xin
            ys = np.where(inside, yi, 0).astype(np.int64)
            xs = np.where(inside, xi, 0).astype(np.int64)
            val = np.where(inside[..., None], img[b, ys, xs], outside)
            pairs.append((b, ys, xs, inside, val, wy, wx, dwy, dwx))
    return pairs, valid, outside


def grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False, fill_value=0.0):
    """Sample (N, H, W, C) images at a (N, Ho, Wo, 2) normalized grid.

    mode: nearest, bilinear or bicubic (PyTorch's cubic convolution, a = -0.75);
    padding_mode: zeros, border, reflection, constant (taps outside read
    fill_value, a scalar or one value per channel) or wrap (tap indices modulo
    the size).  A float32 grid is unnormalized in float32 as PyTorch does.
    NaN or huge points read fill_value with constant padding, 0 otherwise.
    """
    dtype = images.dtype
    img = np.asarray(images, np.float64)
    grid = np.asarray(grid)
    pairs, valid, outside = _combine(img, grid, mode, padding_mode, align_corners, fill_value)
    out = np.zeros(grid.shape[:-1] + (img.shape[3],))
    for *_, val, wy, wx, _dwy, _dwx in pairs:
        out += (wy * wx)[..., None] * val
    out = np.where(valid[..., None], out, outside)
    return _finish(out, dtype)


def affine_warp(images, theta, size=None, mode="bilinear", padding_mode="zeros",
                align_corners=False, fill_value=0.0, antialias=False):
    """grid_sample(images, affine_grid(theta, size)); size defaults to the input's.
    With ``antialias``, the pixels where the warp shrinks are the footprint filter's
    (:func:`antialias_sample`)."""
    if size is None:
        size = images.shape[1:3]
    theta = np.broadcast_to(np.asarray(theta, np.float64), (images.shape[0], 2, 3))
    grid = affine_grid(theta, size, align_corners)
    out = grid_sample(images, grid, mode, padding_mode, align_corners, fill_value)
    if antialias:
        _antialias_into(out, images, theta, size, mode, padding_mode, align_corners, fill_value)
    return out


def perspective_grid(theta, size, align_corners=False) -> np.ndarray:
    """(N, Ho, Wo, 2) grid (u / w, v / w) with (u, v, w) = theta @ [x; y; 1]; NaN where w <= 0."""
    theta = np.asarray(theta, np.float64).reshape(-1, 3, 3)
    ho, wo = size
    x_t, y_t = np.meshgrid(_linspace(wo, align_corners), _linspace(ho, align_corners))
    mesh = np.stack([x_t.ravel(), y_t.ravel(), np.ones(ho * wo)])
    uvw = theta @ mesh  # (N, 3, Ho*Wo)
    w = uvw[:, 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        grid = np.where(w > 0, uvw[:, :2] / np.where(w > 0, w, 1.0), np.nan)
    return np.moveaxis(grid.reshape(-1, 2, ho, wo), 1, -1)


def perspective_warp(images, theta, size=None, mode="bilinear", padding_mode="zeros",
                     align_corners=False, fill_value=0.0, antialias=False):
    """grid_sample(images, perspective_grid(theta, size)); size defaults to the input's.
    ``antialias`` as in :func:`affine_warp`."""
    if size is None:
        size = images.shape[1:3]
    theta = np.broadcast_to(np.asarray(theta, np.float64), (images.shape[0], 3, 3))
    grid = perspective_grid(theta, size, align_corners)
    out = grid_sample(images, grid, mode, padding_mode, align_corners, fill_value)
    if antialias:
        _antialias_into(out, images, theta, size, mode, padding_mode, align_corners, fill_value)
    return out


# ---------------------------------------------------------------------------
# Antialias: the footprint filter where the warp shrinks
# ---------------------------------------------------------------------------
#
# Output pixel (j, i) reads the input pixel point p = dehom(H (j, i, 1)), with
# H = N_in theta P_out (output pixels -> normalized -> input pixels), and
# J = dp/d(j, i).  Where J's largest singular value exceeds 1, the output is
#   v = sum_q k((M d)_x) k((M d)_y) value(q) / sum_q k(.) k(.),   d = q - p,
# with M = U diag(1 / clip(s, 1, AA_CAP)) U^T from J = U diag(s) V^T, and k the
# tent (bilinear) or the cubic-convolution kernel (bicubic); value(q) as a
# bicubic tap reads it (per-tap padding).  Elsewhere the plain sample stands.


def _pixel_homography(theta, in_size, out_size, align_corners):
    (hi, wi), (ho, wo) = in_size, out_size
    t = np.asarray(theta)
    if t.shape[-2] == 2:
        t = np.concatenate([t, np.broadcast_to(np.array([0.0, 0.0, 1.0], t.dtype), t.shape[:-2] + (1, 3))],
                           axis=-2)

    def to_pixel(n):
        return ((n - 1) / 2.0, (n - 1) / 2.0) if align_corners else (n / 2.0, (n - 1) / 2.0)

    def from_pixel(n):
        if align_corners:
            return (2.0 / (n - 1), -1.0) if n > 1 else (0.0, 0.0)
        return 2.0 / n, 1.0 / n - 1.0

    (sx, ox), (sy, oy) = to_pixel(wi), to_pixel(hi)
    (tx, px), (ty, py) = from_pixel(wo), from_pixel(ho)
    n_in = np.array([[sx, 0, ox], [0, sy, oy], [0, 0, 1.0]])
    p_out = np.array([[tx, 0, px], [0, ty, py], [0, 0, 1.0]])
    return n_in @ t @ p_out, n_in, p_out


def _point_and_jacobian(h, ho, wo):
    """p (N, Ho, Wo, 2), J (N, Ho, Wo, 2, 2) and w (N, Ho, Wo) of the pixel homographies h (N, 3, 3);
    complex h gives complex results (complex-step derivatives)."""
    jj, ii = np.meshgrid(np.arange(wo, dtype=np.float64), np.arange(ho, dtype=np.float64))
    mesh = np.stack([jj, ii, np.ones_like(jj)], -1)  # (Ho, Wo, 3)
    uvw = np.einsum("nkl,hwl->nhwk", h, mesh)
    w = uvw[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = uvw[..., :2] / w[..., None]
        last = h[:, None, None, None, 2, :2]
        jac = (h[:, None, None, :2, :2] - p[..., :, None] * last) / w[..., None, None]
    return p, jac, w


def _filter_matrix(jac):
    """M = U diag(1 / clip(s, 1, AA_CAP)) U^T and the largest singular value, from the SVD of J."""
    u, s, _ = np.linalg.svd(jac)
    f = 1.0 / np.clip(s, 1.0, AA_CAP)
    return u @ (f[..., :, None] * np.swapaxes(u, -1, -2)), s[..., 0]


def _kernel(t, mode):
    """k(t) and k'(t) of the tent or the cubic convolution (a = -0.75)."""
    d = np.abs(t)
    sign = np.where(t >= 0, 1.0, -1.0)
    if mode == "bilinear":
        inside = d < 1
        return np.where(inside, 1 - d, 0.0), np.where(inside, -sign, 0.0)
    a = -0.75
    near = d <= 1
    far = (d > 1) & (d < 2)
    k = np.where(near, ((a + 2) * d - (a + 3)) * d * d + 1,
                 np.where(far, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a, 0.0))
    dk = np.where(near, (3 * (a + 2) * d - 2 * (a + 3)) * d,
                  np.where(far, (3 * a * d - 10 * a) * d + 8 * a, 0.0))
    return k, sign * dk


def _aa_setup(images, theta, size, align_corners):
    h, _, _ = _pixel_homography(np.asarray(theta, np.float64), images.shape[1:3], size, align_corners)
    p, jac, w = _point_and_jacobian(h, *size)
    with np.errstate(invalid="ignore"):
        ok = (w > 0) & np.isfinite(p).all(-1) & (np.abs(p) < 2.0**40 * max(images.shape[1:3])).all(-1)
        ok &= np.isfinite(jac).all((-1, -2))
    jac = np.where(ok[..., None, None], jac, np.eye(2))
    m, smax = _filter_matrix(jac)
    mask = ok & (smax > 1.0 + 1e-9)
    return p, m, mask


def _aa_taps(images, p, m, mask, mode, padding_mode, align_corners, fill_value):
    """For the masked pixels: a list of (b, row, col, inside, value, weight, ka, da, kb, db, d) taps."""
    n, hi, wi, c = images.shape
    r = 1.0 if mode == "bilinear" else 2.0
    pm = p[mask]
    mm = m[mask]
    b = np.nonzero(mask)[0]
    sinv = np.linalg.inv(mm)
    ex = np.ceil(r * np.abs(sinv[:, 0]).sum(-1).max(initial=0)) + 1
    ey = np.ceil(r * np.abs(sinv[:, 1]).sum(-1).max(initial=0)) + 1
    outside = _fill(fill_value, c) if padding_mode == "constant" else np.zeros(c)
    fx, fy = np.floor(pm[:, 0]), np.floor(pm[:, 1])
    taps = []
    for oy in np.arange(-ey, ey + 1):
        for ox in np.arange(-ex, ex + 1):
            qx, qy = fx + ox, fy + oy
            d = np.stack([qx - pm[:, 0], qy - pm[:, 1]], -1)
            ka, da = _kernel(mm[:, 0, 0] * d[:, 0] + mm[:, 0, 1] * d[:, 1], mode)
            kb, db = _kernel(mm[:, 1, 0] * d[:, 0] + mm[:, 1, 1] * d[:, 1], mode)
            xi, xin = _tap_index(qx, wi, padding_mode, align_corners)
            yi, yin = _tap_index(qy, hi, padding_mode, align_corners)
            inside = xin & yin
            ys = np.where(inside, yi, 0).astype(np.int64)
            xs = np.where(inside, xi, 0).astype(np.int64)
            val = np.where(inside[:, None], images[b, ys, xs], outside)
            taps.append((b, ys, xs, inside, val, ka * kb, ka, da, kb, db, d))
    return taps


def _antialias_values(img, p, m, mask, mode, padding_mode, align_corners, fill_value):
    taps = _aa_taps(img, p, m, mask, mode, padding_mode, align_corners, fill_value)
    acc = sum(t[5][:, None] * t[4] for t in taps)
    wsum = sum(t[5] for t in taps)
    return acc / wsum[:, None], taps, wsum


def _antialias_into(out, images, theta, size, mode, padding_mode, align_corners, fill_value):
    img = np.asarray(images, np.float64)
    p, m, mask = _aa_setup(img, theta, size, align_corners)
    if mask.any():
        v, _, _ = _antialias_values(img, p, m, mask, mode, padding_mode, align_corners, fill_value)
        out[mask] = _finish(v, out.dtype)


def antialias_mask(images, theta, size, align_corners=False) -> np.ndarray:
    """(N, Ho, Wo) bool: the output pixels where ``antialias=True`` replaces the plain sample."""
    return _aa_setup(np.asarray(images), theta, size, align_corners)[2]


def supersampled_warp(images, theta, size=None, samples=8, weights="box", align_corners=False,
                      padding_mode="zeros"):
    """A quality reference for antialiasing: each output pixel averages ``samples`` x ``samples``
    bilinear samples of the exact warp, placed on a grid over the pixel.

    ``weights``: "box" (the pixel's square, equal weights: area averaging) or
    "gauss" (a Gaussian of sigma 0.5 output pixels, sampled over a 3 x 3 pixel
    window).  theta may be (N, 2, 3) affine or (N, 3, 3) projective.  float64 out.
    """
    img = np.asarray(images, np.float64)
    if size is None:
        size = img.shape[1:3]
    ho, wo = size
    t = np.broadcast_to(np.asarray(theta, np.float64), (img.shape[0],) + np.shape(theta)[-2:])
    h, _, _ = _pixel_homography(t, img.shape[1:3], size, align_corners)
    span = 1.0 if weights == "box" else 3.0
    offs = ((np.arange(samples) + 0.5) / samples - 0.5) * span
    jj, ii = np.meshgrid(np.arange(wo, dtype=np.float64), np.arange(ho, dtype=np.float64))
    acc = 0.0
    total = 0.0
    hi, wi = img.shape[1:3]
    for oy in offs:
        for ox in offs:
            wgt = 1.0 if weights == "box" else np.exp(-(ox * ox + oy * oy) / (2 * 0.25))
            mesh = np.stack([jj + ox, ii + oy, np.ones_like(jj)], -1)
            uvw = np.einsum("nkl,hwl->nhwk", h, mesh)
            with np.errstate(divide="ignore", invalid="ignore"):
                px = np.where(uvw[..., 2] > 0, uvw[..., 0] / uvw[..., 2], np.nan)
                py = np.where(uvw[..., 2] > 0, uvw[..., 1] / uvw[..., 2], np.nan)
            # pixel point -> normalized, then the plain bilinear sampler
            gx = (2 * px + 1) / wi - 1 if not align_corners else (2 * px / max(wi - 1, 1) - 1)
            gy = (2 * py + 1) / hi - 1 if not align_corners else (2 * py / max(hi - 1, 1) - 1)
            grid = np.stack([gx, gy], -1)
            acc = acc + wgt * grid_sample(img, grid, "bilinear", padding_mode, align_corners)
            total += wgt
    return acc / total


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
    if padding_mode in ("zeros", "constant", "wrap"):  # the coordinate itself is not padded
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


def grid_sample_backward(grad_out, images, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False, fill_value=0.0):
    """(dL/dimages, dL/dgrid) of grid_sample for dL/doutput = grad_out, all (N, ...) batched.

    The output is sum_taps wy wx value, so dL/dI[tap] += wy wx g (taps inside
    the image only) and dL/dx = sum_taps wy (dwx/dx) value g (the fill counts
    as a value), likewise y.
    """
    img = np.asarray(images, np.float64)
    g = np.asarray(grid)
    go = np.asarray(grad_out, np.float64)
    gimg = np.zeros_like(img)
    ggrid = np.zeros(g.shape)
    pairs, valid, _ = _combine(img, g, mode, padding_mode, align_corners, fill_value)
    for b, ys, xs, inside, val, wy, wx, dwy, dwx in pairs:
        ok = inside & valid
        bb = np.broadcast_to(b, ok.shape)[ok]
        np.add.at(gimg, (bb, ys[ok], xs[ok]), ((wy * wx)[..., None] * go)[ok])
        gv = (go * val).sum(-1)
        ggrid[..., 0] += np.where(valid, wy * dwx * gv, 0.0)
        ggrid[..., 1] += np.where(valid, dwy * wx * gv, 0.0)
    return gimg.astype(images.dtype), ggrid.astype(g.dtype)


def affine_warp_backward(grad_out, images, theta, size=None, mode="bilinear", padding_mode="zeros",
                         align_corners=False, fill_value=0.0, antialias=False):
    """(dL/dimages, dL/dtheta) of affine_warp; dL/dtheta has theta's shape (a (2, 3) theta
    shared by the batch gets the sum over the batch)."""
    if size is None:
        size = images.shape[1:3]
    if antialias:
        return _antialias_backward(grad_out, images, theta, size, mode, padding_mode, align_corners,
                                   fill_value, affine_warp_backward)
    t = np.asarray(theta, np.float64)
    full = np.broadcast_to(t, (images.shape[0], 2, 3))
    grid = affine_grid(full, size, align_corners)
    gimg, ggrid = grid_sample_backward(grad_out, images, grid, mode, padding_mode, align_corners,
                                       fill_value)
    # grid[n, i, j] = theta[n] @ (x_j, y_i, 1)
    #   =>  dL/dtheta[n] = sum_ij outer(dL/dgrid[n, i, j], (x_j, y_i, 1))
    ho, wo = size
    x_t, y_t = np.meshgrid(_linspace(wo, align_corners), _linspace(ho, align_corners))
    mesh = np.stack([x_t, y_t, np.ones((ho, wo))], -1)
    gtheta = np.einsum("nhwk,hwl->nkl", ggrid, mesh)
    if t.shape == (2, 3):
        gtheta = gtheta.sum(0)
    return gimg, gtheta


def perspective_warp_backward(grad_out, images, theta, size=None, mode="bilinear", padding_mode="zeros",
                              align_corners=False, fill_value=0.0, antialias=False):
    """(dL/dimages, dL/dtheta) of perspective_warp; a (3, 3) theta gets the sum over the batch.

    grid = (u / w, v / w) with (u, v, w) = theta @ b, b = (x_j, y_i, 1):
    dL/du = gx / w, dL/dv = gy / w, dL/dw = -(gx u + gy v) / w**2, and
    dL/dtheta[n, r] = sum_ij dL/d(u, v, w)_r b.  Points with w <= 0 contribute 0.
    """
    if size is None:
        size = images.shape[1:3]
    if antialias:
        return _antialias_backward(grad_out, images, theta, size, mode, padding_mode, align_corners,
                                   fill_value, perspective_warp_backward)
    t = np.asarray(theta, np.float64)
    full = np.broadcast_to(t, (images.shape[0], 3, 3))
    grid = perspective_grid(full, size, align_corners)
    gimg, ggrid = grid_sample_backward(grad_out, images, grid, mode, padding_mode, align_corners,
                                       fill_value)
    ho, wo = size
    x_t, y_t = np.meshgrid(_linspace(wo, align_corners), _linspace(ho, align_corners))
    mesh = np.stack([x_t, y_t, np.ones((ho, wo))], -1)  # (Ho, Wo, 3)
    uvw = np.einsum("nkl,hwl->nhwk", full, mesh)
    w = uvw[..., 2]
    ok = w > 0
    ws = np.where(ok, w, 1.0)
    du = np.where(ok, ggrid[..., 0] / ws, 0.0)
    dv = np.where(ok, ggrid[..., 1] / ws, 0.0)
    dw = np.where(ok, -(ggrid[..., 0] * uvw[..., 0] + ggrid[..., 1] * uvw[..., 1]) / ws**2, 0.0)
    d = np.stack([du, dv, dw], -1)
    gtheta = np.einsum("nhwk,hwl->nkl", d, mesh)
    if t.shape == (3, 3):
        gtheta = gtheta.sum(0)
    return gimg, gtheta


# Antialias backward.  v = sum_q w_q value_q / W with w_q = k(a) k(b), (a, b) = M (q - p):
#   dL/dvalue_q = g w_q / W (a scatter), dL/dw_q = g . (value_q - v) / W,
#   dL/dp = -sum_q dL/dw_q (k'(a) k(b) M[0] + k(a) k'(b) M[1]),
#   dL/dM[r] = sum_q dL/dw_q (k'(a) k(b), k(a) k'(b))[r] (q - p),
# then dL/dJ through the SVD form of M (central differences of that smooth 2 x 2
# function), and p, J -> H -> theta by complex-step derivatives of the pixel map.


def _antialias_backward(grad_out, images, theta, size, mode, padding_mode, align_corners, fill_value,
                        plain_backward):
    img = np.asarray(images, np.float64)
    go = np.asarray(grad_out, np.float64)
    t = np.asarray(theta, np.float64)
    rows = t.shape[-2]
    full = np.broadcast_to(t, (img.shape[0], rows, 3))
    p, m, mask = _aa_setup(img, full, size, align_corners)
    gimg, gtheta = plain_backward(np.where(mask[..., None], 0.0, go), img, full, size, mode, padding_mode,
                                  align_corners, fill_value)
    if mask.any():
        v, taps, wsum = _antialias_values(img, p, m, mask, mode, padding_mode, align_corners, fill_value)
        g = go[mask]
        gp = np.zeros((len(g), 2))
        gm = np.zeros((len(g), 2, 2))
        mm = m[mask]
        for b, ys, xs, inside, val, w, ka, da, kb, db, d in taps:
            ok = inside & (w != 0)
            np.add.at(gimg, (b[ok], ys[ok], xs[ok]), (g * (w / wsum)[:, None])[ok])
            gw = (g * (val - v)).sum(-1) / wsum
            ga, gb = gw * da * kb, gw * ka * db
            gp -= ga[:, None] * mm[:, 0] + gb[:, None] * mm[:, 1]
            gm[:, 0] += ga[:, None] * d
            gm[:, 1] += gb[:, None] * d
        h, n_in, p_out = _pixel_homography(full, img.shape[1:3], size, align_corners)
        _, jac, _ = _point_and_jacobian(h, *size)
        jm = jac[mask]
        gj = np.zeros_like(jm)
        eps = 1e-6
        for r in range(2):
            for c in range(2):
                e = np.zeros((2, 2))
                e[r, c] = eps
                dm = (_filter_matrix(jm + e)[0] - _filter_matrix(jm - e)[0]) / (2 * eps)
                gj[:, r, c] = (gm * dm).sum((-1, -2))
        gh = np.zeros((img.shape[0], 3, 3))
        bidx = np.nonzero(mask)[0]
        for k in range(9):
            e = np.zeros((3, 3), complex)
            e[k // 3, k % 3] = 1e-30j
            pc, jc, _ = _point_and_jacobian(h + e, *size)
            dp = pc.imag[mask] / 1e-30
            dj = jc.imag[mask] / 1e-30
            contrib = (gp * dp).sum(-1) + (gj * dj).sum((-1, -2))
            np.add.at(gh[:, k // 3, k % 3], bidx, contrib)
        gtheta = gtheta + (n_in.T @ gh @ p_out.T)[:, :rows]
    return gimg.astype(np.asarray(images).dtype), (gtheta.sum(0) if t.ndim == 2 else gtheta)
