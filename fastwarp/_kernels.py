"""Numba CPU forward kernels: affine grid, grid sampling and the fused affine warp.

All kernels take validated, C-contiguous arrays (the checks live in
``fastwarp._validate``) and integer flags from ``fastwarp._coords``.  They are
compiled lazily on first call and cached on disk (``cache=True``).  Parallelism
is a ``prange`` over (image, output row); each iteration writes one output row,
so no two threads ever write the same element.

Two paths compute the same function (the conformance tests hold them to the
NumPy reference for every flag):

* the general path, :func:`sample_point`, follows the definition literally:
  normalized point -> padding -> taps with per-tap validity;
* the fast path, :func:`sample_pixel`, works on pixel coordinates.  Points with
  all four taps inside the image (the interior) take a branch-free bilinear
  read; border and reflection fold the point into the image first and read
  clamped taps; zeros padding writes 0 for points wholly outside and hands the
  thin band around the image to the general path.  The image is read through a
  flat view with the channel count ``C`` passed as a literal (1, 3 or 4; other
  counts run the same code with a runtime ``C``), so LLVM unrolls the channel
  loop and its SLP vectorizer (enabled for fastwarp, see ``_runtime``) packs
  it into SIMD lanes.

Interpolation accumulates in the image's float type (float32 for float32 and
uint8 images); coordinates are float64.
"""

from __future__ import annotations

from numba import njit, prange

from ._coords import (
    BILINEAR,
    ZEROS,
    base_coord,
    base_step,
    linear_taps,
    nearest_tap,
    pad_pixel,
    source_coord,
    unnormalize,
    unnormalize_scale,
)
from ._store import acc_type, to_output

# 'contract' lets LLVM fuse a * b + c into one FMA; nnan/ninf stay off because
# the kernels rely on NaN checks.
FASTMATH = {"contract"}
kernel = njit(parallel=True, nogil=True, cache=True, fastmath=FASTMATH)
inline = njit(nogil=True, cache=True, fastmath=FASTMATH)
always_inline = njit(nogil=True, cache=True, fastmath=FASTMATH, inline="always")

# Pixel coordinates below this bound take the fast path; it keeps every
# float -> int conversion in range and implies |normalized| < _coords.HUGE.
PIXEL_LIMIT = 2.0**30


@inline
def sample_point(src, n, x, y, out, i, j, mode, padding, align_corners):
    """General path: write out[n, i, j, :] = src[n] sampled at normalized (x, y)."""
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


@always_inline
def lerp(s, o, ob, b00, b01, b10, b11, fx, fy, C):
    """o[ob + c] = bilinear mix of the taps at flat offsets b.. (+ c), c < C.

    Two horizontal lerps and one vertical: top = p00 + fx (p01 - p00),
    bot = p10 + fx (p11 - p10), v = top + fy (bot - top).
    """
    ax = acc_type(fx, s)
    ay = acc_type(fy, s)
    for c in range(C):
        p00 = acc_type(s[b00 + c], s)
        p01 = acc_type(s[b01 + c], s)
        p10 = acc_type(s[b10 + c], s)
        p11 = acc_type(s[b11 + c], s)
        top = p00 + ax * (p01 - p00)
        bot = p10 + ax * (p11 - p10)
        o[ob + c] = to_output(top + ay * (bot - top), o)


@always_inline
def sample_pixel(src, s, o, n, i, j, x, y, gx, gy, out, C, mode, padding, align_corners):
    """Fast path: out[n, i, j, :] = src[n] at pixel (x, y) (= normalized (gx, gy)), |x|, |y| < 2**30."""
    H = src.shape[1]
    W = src.shape[2]
    ob = ((n * out.shape[1] + i) * out.shape[2] + j) * C
    img = n * H
    if mode == BILINEAR:
        if x >= 0.0 and x < W - 1 and y >= 0.0 and y < H - 1:
            # interior: floor is truncation, and x0 + 1, y0 + 1 are inside
            x0 = int(x)
            y0 = int(y)
            x1 = x0 + 1
            y1 = y0 + 1
        elif padding != ZEROS:
            # border / reflection: fold the point into [0, W-1] x [0, H-1], clamp the far taps
            x = pad_pixel(x, W, padding, align_corners)
            y = pad_pixel(y, H, padding, align_corners)
            x0 = int(x)
            y0 = int(y)
            x1 = min(x0 + 1, W - 1)
            y1 = min(y0 + 1, H - 1)
        elif x > -1.0 and x < W and y > -1.0 and y < H:
            # zeros padding, some taps outside: the general path weighs each tap
            sample_point(src, n, gx, gy, out, i, j, mode, padding, align_corners)
            return
        else:
            for c in range(C):
                o[ob + c] = 0
            return
        lerp(s, o, ob, ((img + y0) * W + x0) * C, ((img + y0) * W + x1) * C,
             ((img + y1) * W + x0) * C, ((img + y1) * W + x1) * C, x - x0, y - y0, C)
    else:
        xn = nearest_tap(pad_pixel(x, W, padding, align_corners), W)
        yn = nearest_tap(pad_pixel(y, H, padding, align_corners), H)
        if xn < 0 or yn < 0:
            for c in range(C):
                o[ob + c] = 0
        else:
            b = ((img + yn) * W + xn) * C
            for c in range(C):
                o[ob + c] = s[b + c]


@always_inline
def warp_row(src, s, o, n, i, ux, dux, uy, duy, gx, dgx, gy, dgy, out, C,
             mode, padding, align_corners):
    """One output row of the fused warp.

    Along a row the source point is affine in the column j: pixel
    (ux + j dux, uy + j duy), normalized (gx + j dgx, gy + j dgy).  A row whose
    ends are within PIXEL_LIMIT is entirely so and takes the fast path; any
    other row (huge or non-finite points) goes through the general path.
    """
    Wo = out.shape[2]
    xe = ux + (Wo - 1) * dux
    ye = uy + (Wo - 1) * duy
    if (abs(ux) < PIXEL_LIMIT and abs(xe) < PIXEL_LIMIT
            and abs(uy) < PIXEL_LIMIT and abs(ye) < PIXEL_LIMIT):
        for j in range(Wo):
            sample_pixel(src, s, o, n, i, j, ux + j * dux, uy + j * duy, gx + j * dgx, gy + j * dgy,
                         out, C, mode, padding, align_corners)
    else:
        for j in range(Wo):
            sample_point(src, n, gx + j * dgx, gy + j * dgy, out, i, j, mode, padding, align_corners)


@always_inline
def sample_row(src, s, o, grid, n, i, out, C, mode, padding, align_corners):
    """One output row of grid_sample: the fast path for every point within PIXEL_LIMIT."""
    H = src.shape[1]
    W = src.shape[2]
    for j in range(out.shape[2]):
        gx = grid[n, i, j, 0]
        gy = grid[n, i, j, 1]
        x = unnormalize(gx, W, align_corners)
        y = unnormalize(gy, H, align_corners)
        if abs(x) < PIXEL_LIMIT and abs(y) < PIXEL_LIMIT:  # False for NaN and infinities
            sample_pixel(src, s, o, n, i, j, x, y, gx, gy, out, C, mode, padding, align_corners)
        else:
            sample_point(src, n, gx, gy, out, i, j, mode, padding, align_corners)


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
    N, Ho, Wo, C = out.shape
    s = src.reshape(-1)
    o = out.reshape(-1)
    for r in prange(N * Ho):
        n = r // Ho
        i = r - n * Ho
        # the channel count as a literal for the common cases (see the module docstring)
        if C == 3:
            sample_row(src, s, o, grid, n, i, out, 3, mode, padding, align_corners)
        elif C == 1:
            sample_row(src, s, o, grid, n, i, out, 1, mode, padding, align_corners)
        elif C == 4:
            sample_row(src, s, o, grid, n, i, out, 4, mode, padding, align_corners)
        else:
            sample_row(src, s, o, grid, n, i, out, C, mode, padding, align_corners)


@always_inline
def pixel_ratio(n_in, n_out, align_corners):
    """Input pixels per output pixel for a unit normalized scale: s_in / s_out (0 if s_out is 0)."""
    s_out = unnormalize_scale(n_out, align_corners)
    if s_out == 0.0:
        return 0.0
    return unnormalize_scale(n_in, align_corners) / s_out


@kernel
def affine_warp_kernel(src, theta, out, mode, padding, align_corners):
    """Fused affine_grid + grid_sample: each pixel's source point is computed, then sampled."""
    N, H, W, C = src.shape
    Ho = out.shape[1]
    Wo = out.shape[2]
    s = src.reshape(-1)
    o = out.reshape(-1)
    xb0 = base_coord(0, Wo, align_corners)
    dxb = base_step(Wo, align_corners)
    rxx = pixel_ratio(W, Wo, align_corners)
    rxy = pixel_ratio(W, Ho, align_corners)
    ryx = pixel_ratio(H, Wo, align_corners)
    ryy = pixel_ratio(H, Ho, align_corners)
    sx = unnormalize_scale(W, align_corners)
    sy = unnormalize_scale(H, align_corners)
    cxo = 0.5 * (Wo - 1)  # the centre of the output, in output pixels
    cyo = 0.5 * (Ho - 1)
    for r in prange(N * Ho):
        n = r // Ho
        i = r - n * Ho
        yb = base_coord(i, Ho, align_corners)
        # normalized source of pixel j: (gx + j dgx, gy + j dgy) = theta[n] @ (xb0 + j dxb, yb, 1)
        gx = theta[n, 0, 0] * xb0 + theta[n, 0, 1] * yb + theta[n, 0, 2]
        gy = theta[n, 1, 0] * xb0 + theta[n, 1, 1] * yb + theta[n, 1, 2]
        dgx = theta[n, 0, 0] * dxb
        dgy = theta[n, 1, 0] * dxb
        # the same in input pixels, x_j = ux + j dux, from the pixel-space matrix
        # A = P_in theta P_out^-1 (x = a00 j + a01 i + a02); written this way the
        # identity and same-size theta give exact integer coordinates
        a00 = theta[n, 0, 0] * rxx
        a01 = theta[n, 0, 1] * rxy
        a10 = theta[n, 1, 0] * ryx
        a11 = theta[n, 1, 1] * ryy
        ux = a01 * (i - cyo) + (sx * theta[n, 0, 2] + 0.5 * (W - 1)) - a00 * cxo
        uy = a11 * (i - cyo) + (sy * theta[n, 1, 2] + 0.5 * (H - 1)) - a10 * cxo
        dux = a00
        duy = a10
        if C == 3:
            warp_row(src, s, o, n, i, ux, dux, uy, duy, gx, dgx, gy, dgy, out, 3,
                     mode, padding, align_corners)
        elif C == 1:
            warp_row(src, s, o, n, i, ux, dux, uy, duy, gx, dgx, gy, dgy, out, 1,
                     mode, padding, align_corners)
        elif C == 4:
            warp_row(src, s, o, n, i, ux, dux, uy, duy, gx, dgx, gy, dgy, out, 4,
                     mode, padding, align_corners)
        else:
            warp_row(src, s, o, n, i, ux, dux, uy, duy, gx, dgx, gy, dgy, out, C,
                     mode, padding, align_corners)
