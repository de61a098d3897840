"""Numba CPU kernels compiled per combination: every mode, padding mode and coordinate source.

Every forward call runs here; so do the backward calls outside the tuned
backward kernel of ``fastwarp.cpu.backward`` (bilinear and nearest with zeros,
border and reflection padding on float32 and float64 images): bicubic,
constant and wrap padding, projective warps, float16 images, and nearest
sampling of a float32 grid in PyTorch's float32 arithmetic.  Each kernel is
built by a factory for one combination (mode, padding, channel-count class),
whose flags reach the kernel as closure constants; Numba prunes the branches
of the other combinations before typing, so a call compiles only the path it
runs, and each combination has its own on-disk cache entry.  The coordinate
source (grid, affine or projective matrix) is a runtime argument, so
grid_sample, affine_warp and perspective_warp share a combination's kernel.

Conventions are those of ``fastwarp.core.coords`` and ``fastwarp.reference``: a
point reads a set of taps (1, 2 x 2 or 4 x 4) and ``v = sum wy wx value``,
where a tap inside the image reads the pixel and a tap outside reads the fill
value (``constant``; 0 for zeros).  bilinear and nearest with border or
reflection pad the *coordinate* (PyTorch); bicubic pads each tap's *index*
(PyTorch's ``get_value_bounded``); wrap takes every tap index modulo the size
(OpenCV's ``BORDER_WRAP``).  Points that are NaN, infinite or beyond
``coords.HUGE`` (and projective points with w <= 0) read the fill value with
constant padding and 0 otherwise.  The general per-tap paths accumulate in
float64; the interior fast paths in the accumulation type of
``store.acc_type`` (float32 for float32 and uint8 images).  Values are rounded
to the output dtype once (``store.to_output``).

Parallelism: the kernels are plain ``nogil`` functions over output rows
(forward) or (image, row chunk) tasks (backward) that claim chunks of them from
a shared schedule (``cpu.sched``): the calling thread and pool threads run
the same kernel until no chunk is left; Numba's parallel lowering would more
than double each combination's compilation.  The forward writes disjoint rows;
the backward scatters each task into its own buffer (``backward.row_chunks``)
and reduces in a fixed order, so results never depend on the thread count.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ..core.coords import (
    BICUBIC,
    BILINEAR,
    BORDER,
    CONSTANT,
    CUBIC_A,
    HUGE,
    NEAREST,
    REFLECTION,
    WRAP,
    ZEROS,
    base_coord,
    pad_pixel,
    round_half_even,
    source_coord_and_grad,
    unnormalize,
    unnormalize_scale,
)
from ..core.runtime import (
    NUMBA_ONLY,
    shared,  # (Python or the GPU kernels call these too)
)
from ..core.runtime import numba_only as jit  # (only Numba code calls these)
from .backward import scatter_taps, touch
from .bilinear import (
    PREFETCH_MIN_BYTES,
    bound_index,
    linear_pair,
    prefetch_offset,
    rows_c1,
    rows_c3,
    rows_c4,
    rows_cn,
    wrap_index,
)
from .rows import AFFINE, GRID, PERSPECTIVE, base_coords, pixel_affine, project, row_pixels, row_points
from .sched import CHUNKS, chunk_rows, claim, next_chunk
from .simd import cubic_pixel, cubic_pixel_taps, cubic_points
from .span import prefetch_ahead
from .store import acc_type, to_output


@jit
def unnormalize_f32(c, n, align_corners):
    """PyTorch's float32 unnormalize of a float32 c: t = c + 1, then t (n - 1) / 2, or
    t n / 2 - 1/2 as one fused multiply-add (see ``reference._unnormalize_f32``: the
    float64 product of two float32 numbers is exact, so one rounding to float32 is the FMA)."""
    t = c + np.float32(1.0)
    if align_corners:
        return t * np.float32((n - 1) * 0.5)
    return np.float32(np.float64(t) * (n * 0.5) - 0.5)


@jit
def reflect_f32(x, n, align_corners):
    """PyTorch's reflection of a float32 pixel coordinate in float32, then the clamp into
    [0, n - 1] (its vectorized CPU formula: d = |x - low|, extra = d - trunc(d / 2span) 2span,
    min(extra, 2span - extra) + low), so that nearest mode on a float32 grid picks the pixel
    PyTorch picks at near-ties.  x is finite."""
    if align_corners:
        if n <= 1:
            return np.float32(0.0)
        low = np.float32(0.0)
        twice = np.float32(2 * (n - 1))
    else:
        low = np.float32(-0.5)
        twice = np.float32(2 * n)
    d = abs(x - low)
    flips = np.float32(int(d / twice))
    extra = np.float32(np.float64(d) - np.float64(flips) * np.float64(twice))  # (exact: Sterbenz)
    r = min(extra, twice - extra) + low
    return min(max(r, np.float32(0.0)), np.float32(n - 1))


@shared
def nearest_f32(c, n, padding, align_corners):
    """The pixel coordinate nearest mode reads for a float32 grid value c, in PyTorch's
    float32 arithmetic: :func:`unnormalize_f32`, then :func:`reflect_f32` for reflection
    (border's clamp is exact in either precision), as a float64."""
    x = unnormalize_f32(c, n, align_corners)
    if padding == REFLECTION:
        x = reflect_f32(x, n, align_corners)
    return float(x)


@jit
def tap_index(k, n, padding, align_corners):
    """Index read by the integer tap coordinate k, -1 when the tap reads the fill.

    wrap: k mod n; border / reflection: k padded like a coordinate (bicubic's
    per-tap padding; for bilinear and nearest the coordinate is padded first
    and the taps land inside, or on the one tap past the edge, of weight 0);
    zeros / constant: k itself if inside.
    """
    if padding == WRAP:
        return wrap_index(k, n)
    if padding == BORDER or padding == REFLECTION:
        return bound_index(pad_pixel(k, n, padding, align_corners), n)
    return bound_index(k, n)


@shared
def nearest_pair(x, y, W, H, padding, align_corners):
    """(column, row) read by nearest mode at pixel point (x, y): the padded point rounded half
    to even, each -1 where it falls outside and reads the fill."""
    px = pad_pixel(x, W, padding, align_corners)
    py = pad_pixel(y, H, padding, align_corners)
    return (tap_index(round_half_even(px), W, padding, align_corners),
            tap_index(round_half_even(py), H, padding, align_corners))


@shared
def cubic_weights(t):
    """Cubic convolution (a = -0.75) weights of the taps at -1, 0, 1, 2 for the fraction t."""
    a = CUBIC_A
    d0 = t + 1.0
    d3 = 2.0 - t
    u = 1.0 - t
    w0 = ((a * d0 - 5.0 * a) * d0 + 8.0 * a) * d0 - 4.0 * a
    w1 = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
    w2 = ((a + 2.0) * u - (a + 3.0)) * u * u + 1.0
    w3 = ((a * d3 - 5.0 * a) * d3 + 8.0 * a) * d3 - 4.0 * a
    return w0, w1, w2, w3


@shared
def cubic_slopes(t):
    """d/dt of :func:`cubic_weights`."""
    a = CUBIC_A
    d0 = t + 1.0
    d3 = 2.0 - t
    u = 1.0 - t
    s0 = (3.0 * a * d0 - 10.0 * a) * d0 + 8.0 * a
    s1 = (3.0 * (a + 2.0) * t - 2.0 * (a + 3.0)) * t
    s2 = -(3.0 * (a + 2.0) * u - 2.0 * (a + 3.0)) * u
    s3 = -((3.0 * a * d3 - 10.0 * a) * d3 + 8.0 * a)
    return s0, s1, s2, s3


@shared
def cubic_taps(x, n, padding, align_corners):
    """The four tap indices around pixel coordinate x (-1: reads the fill) and the fraction."""
    f = math.floor(x)
    return (tap_index(f - 1.0, n, padding, align_corners), tap_index(f, n, padding, align_corners),
            tap_index(f + 1.0, n, padding, align_corners), tap_index(f + 2.0, n, padding, align_corners),
            x - f)


def channel_class(c: int) -> int:
    """The channel count compiled in as a constant: 1, 3 or 4; 0 for any other count."""
    return c if c in (1, 3, 4) else 0


@jit
def bicubic_point(s, n, H, W, C, x, y, fill, o, ob, padding, align_corners):
    """General bicubic path: o[ob + c] = sum_a wy_a sum_b wx_b v_ab over the 4 x 4 taps
    around pixel point (x, y) of image n of the flat images s (H x W x C each), each
    tap index padded (:func:`cubic_taps`); as :func:`bilinear_point`, one compilation
    per dtype."""
    xa, xb, xc, xd, tx = cubic_taps(x, W, padding, align_corners)
    ya, yb, yc, yd, ty = cubic_taps(y, H, padding, align_corners)
    # flat offsets of the tap columns and rows, -1 where the tap reads the fill
    cols = (xa * C if xa >= 0 else -1, xb * C if xb >= 0 else -1,
            xc * C if xc >= 0 else -1, xd * C if xd >= 0 else -1)
    img = n * H
    rows = ((img + ya) * W * C if ya >= 0 else -1, (img + yb) * W * C if yb >= 0 else -1,
            (img + yc) * W * C if yc >= 0 else -1, (img + yd) * W * C if yd >= 0 else -1)
    wx = cubic_weights(tx)
    wy = cubic_weights(ty)
    for c in range(C):
        f = fill[c]
        acc = 0.0
        for a in range(4):
            r = rows[a]
            line = 0.0
            for b in range(4):
                k = cols[b]
                v = s[np.uint64(r + k + c)] if r >= 0 and k >= 0 else f
                line += wx[b] * v
            acc += wy[a] * line
        o[ob + c] = to_output(acc, o)


def cubic_taps_blend(s, o, b0, urow, uC, uo, wx0, wx1, wx2, wx3, wy0, wy1, wy2, wy3, C,
                     spill):  # pragma: no cover - overloaded below
    """o[uo + c] = sum_a wy_a sum_k wx_k I[row a, tap k] over the 4 x 4 taps whose first is
    at flat offset b0 (row stride urow, pixel stride uC): 3- and 4-channel uint8 and
    float32 pixels (C a literal) as SIMD vectors (``simd.cubic_pixel``,
    ``simd.cubic_pixel_taps``; ``spill``: the next pixel is written afterwards), every
    other pixel unrolled on flat offsets."""
    raise NotImplementedError


def _cubic_scalar(s, o, b0, urow, uC, uo, wx0, wx1, wx2, wx3, wy0, wy1, wy2, wy3, C, spill):
    b1 = b0 + urow
    b2 = b1 + urow
    b3 = b2 + urow
    for c in range(C):
        k = np.uint64(c)
        r0 = wx0 * s[b0 + k] + wx1 * s[b0 + uC + k] + wx2 * s[b0 + 2 * uC + k] + wx3 * s[b0 + 3 * uC + k]
        r1 = wx0 * s[b1 + k] + wx1 * s[b1 + uC + k] + wx2 * s[b1 + 2 * uC + k] + wx3 * s[b1 + 3 * uC + k]
        r2 = wx0 * s[b2 + k] + wx1 * s[b2 + uC + k] + wx2 * s[b2 + 2 * uC + k] + wx3 * s[b2 + 3 * uC + k]
        r3 = wx0 * s[b3 + k] + wx1 * s[b3 + uC + k] + wx2 * s[b3 + 2 * uC + k] + wx3 * s[b3 + 3 * uC + k]
        o[uo + k] = to_output(wy0 * r0 + wy1 * r1 + wy2 * r2 + wy3 * r3, o)


@overload(cubic_taps_blend, inline="always", prefer_literal=True, jit_options={"cache": True, **NUMBA_ONLY})
def _cubic_taps_blend(s, o, b0, urow, uC, uo, wx0, wx1, wx2, wx3, wy0, wy1, wy2, wy3, C, spill):
    # uint8 pixels as 16-lane tap rows (converted 16 taps at once, summed down the column
    # first); float32 pixels one 4-lane vector per tap, in the scalar blend's order
    vector = (isinstance(C, types.IntegerLiteral) and C.literal_value in (3, 4)
              and s.dtype in (types.uint8, types.float32) and o.dtype == s.dtype)
    if not vector:
        return _cubic_scalar
    nc = C.literal_value
    pixel = cubic_pixel if s.dtype == types.uint8 else cubic_pixel_taps
    # the last load of a 3-channel pixel reads this far past its first tap
    reach = 16 if s.dtype == types.uint8 else 3 * nc + 4

    def impl(s, o, b0, urow, uC, uo, wx0, wx1, wx2, wx3, wy0, wy1, wy2, wy3, C, spill):
        b = np.int64(b0)
        row = np.int64(urow)
        ob = np.int64(uo)
        safe = nc == 4 or b + 3 * row + reach <= s.size
        if spill and safe:
            pixel(s, o, b, row, ob, wx0, wx1, wx2, wx3, wy0, wy1, wy2, wy3, nc, True, False)
        elif safe:
            pixel(s, o, b, row, ob, wx0, wx1, wx2, wx3, wy0, wy1, wy2, wy3, nc, False, False)
        else:
            pixel(s, o, b, row, ob, wx0, wx1, wx2, wx3, wy0, wy1, wy2, wy3, nc, False, True)

    return impl


@functools.cache
def forward_kernel(mode: int, padding: int, cclass: int, f32_nearest: bool):
    """The forward kernel of a combination: ``kernel(src, grid, theta, fill, out, source,
    padding, align_corners, sched)``.  The padding mode is the kernel's runtime argument,
    so every padding of one (mode, channel class, float32-grid nearest) shares one compiled
    kernel; ``source`` (GRID, AFFINE or PERSPECTIVE) is an argument too."""
    return _forward_kernel(mode, cclass, f32_nearest)


@functools.cache
def _forward_kernel(mode: int, cclass: int, f32_nearest: bool):
    """The forward kernel of one mode and channel class.

    Each output row runs in two passes: its sample points in input pixels
    (:func:`row_pixels`), then the sampling: bilinear rows in the shared row
    functions of ``fastwarp.cpu.bilinear``, nearest rows point by point here, and
    bicubic rows 64 points at a time here: a tap pass (``simd.cubic_points``, eight
    points per step) finds the points whose 16 taps lie inside and stores their
    first-tap offsets and weights, then a blend pass reads those unrolled on flat
    offsets and sends the others through the general per-tap path in float64.
    """

    @njit(nogil=True, cache=True, fastmath=False)
    def kernel(src, grid, theta, fill, out, source, padding, align_corners, sched):
        N, Ho, Wo, C0 = out.shape
        H = src.shape[1]
        W = src.shape[2]
        C = C0 if cclass == 0 else cclass
        s = src.reshape(-1)
        o = out.reshape(-1)
        uC = np.uint64(C)
        urow = np.uint64(W * C)
        # a row's points (8 spare NaNs for the vector loads of span.point_row), and the
        # columns' normalized x
        pts = np.full((3, Wo + 8), np.nan)
        xs = pts[0]
        ys = pts[1]
        xbs = pts[2]
        base_coords(Wo, align_corners, xbs)
        if mode == BILINEAR:
            # scratch of the bilinear rows (see bilinear.rows_c1) and the fill row
            tmp = (np.empty((1, 64), np.int64), np.empty((4, 64), np.float32), np.empty((4, 64)),
                   np.empty(64, np.uint8), np.empty(Wo, np.int64))
            fillrow = np.empty(Wo * C if padding == ZEROS or padding == CONSTANT else 0, out.dtype)
            for k in range(fillrow.size):
                fillrow[k] = to_output(fill[k % C], o)
        elif mode == BICUBIC:
            # scratch of the tap pass (simd.cubic_points): first-tap offsets, the 4 x and 4 y
            # weights in the accumulation type, which points have all 16 taps inside
            coffs = np.empty(64, np.int64)
            cw = np.full((8, 64), acc_type(0.0, s))
            cin = np.empty(64, np.uint8)
        pa = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        ahead = 0
        last = -1
        chunk = claim(sched)
        while chunk < sched[CHUNKS]:
            r0, r1 = chunk_rows(sched, chunk)
            if mode == BILINEAR:
                # the rows in the shared functions of ``bilinear`` (one per channel class and
                # dtype; the padding mode is their runtime argument)
                a = (src, grid, theta, fill, out, source, padding, align_corners, r0, r1, xbs, xs, ys,
                     fillrow)
                if cclass == 3:
                    rows_c3(*a, *tmp)
                elif cclass == 1:
                    rows_c1(*a, *tmp)
                elif cclass == 4:
                    rows_c4(*a, *tmp)
                else:
                    rows_cn(*a, *tmp)
                chunk = next_chunk(sched)
                continue
            for r in range(r0, r1):
                n = r // Ho
                i = r - n * Ho
                if source == AFFINE and n != last:
                    pa = pixel_affine(theta, n, W, H, Wo, Ho, align_corners)
                    if mode == BICUBIC and H * W * C * s.itemsize >= PREFETCH_MIN_BYTES:
                        ahead = prefetch_offset(pa[1], pa[4], W, C, 3)
                    last = n
                row_pixels(grid, theta, n, i, H, W, Ho, Wo, source, align_corners, pa, xbs, xs, ys, True)
                if mode == BICUBIC:
                    for t0 in range(0, Wo, coffs.size):
                        m = min(coffs.size, Wo - t0)
                        # tap pass: offsets and weights of the points whose 16 taps lie inside
                        for t in range(0, m, 8):
                            cubic_points(xs, ys, t0 + t, W, H, n * H * W * C, W * C, C, coffs, cw, cin, t)
                        prefetch_ahead(s, coffs, m, ahead)  # the taps of a row further down
                        for t in range(m):
                            j = t0 + t
                            ob = ((n * Ho + i) * Wo + j) * C
                            if cin[t]:
                                # v = sum_a wy_a sum_b wx_b I[y_a, x_b] over the 4 x 4 taps (cubic
                                # convolution), unrolled on flat offsets
                                cubic_taps_blend(s, o, np.uint64(coffs[t]), urow, uC, np.uint64(ob), cw[0, t],
                                                 cw[1, t], cw[2, t], cw[3, t], cw[4, t], cw[5, t], cw[6, t],
                                                 cw[7, t], C, j + 1 < Wo)
                                continue
                            x = xs[j]
                            y = ys[j]
                            if x != x or y != y or ((padding == ZEROS or padding == CONSTANT) and not (
                                    x >= -2.0 and y >= -2.0 and x < W + 1.0 and y < H + 1.0)):
                                for c in range(C):  # NaN (no image), or every tap outside: the fill
                                    o[ob + c] = to_output(fill[c], o)
                                continue
                            bicubic_point(s, n, H, W, C, x, y, fill, o, ob, padding, align_corners)
                    continue
                for j in range(Wo):
                    ob = ((n * Ho + i) * Wo + j) * C
                    x = xs[j]
                    y = ys[j]
                    if x != x or y != y:  # NaN: no image
                        for c in range(C):
                            o[ob + c] = to_output(fill[c], o)
                        continue
                    # nearest: v = I[round(y), round(x)] after padding the coordinate
                    if f32_nearest:  # a float32 grid (source GRID), read in its own precision
                        x = nearest_f32(grid[n, i, j, 0], W, padding, align_corners)
                        y = nearest_f32(grid[n, i, j, 1], H, padding, align_corners)
                    xi, yi = nearest_pair(x, y, W, H, padding, align_corners)
                    if xi >= 0 and yi >= 0:
                        b = ((n * H + yi) * W + xi) * C
                        for c in range(C):
                            o[ob + c] = s[b + c]
                    else:
                        for c in range(C):
                            o[ob + c] = to_output(fill[c], o)
            chunk = next_chunk(sched)

    return kernel


@functools.cache
def backward_kernel(mode: int, padding: int, cclass: int, f32_nearest: bool):
    """The backward kernel of a combination: ``kernel(gout, src, grid, theta, fill, buf,
    rows_seen, ggrid, rows, source, padding, align_corners, sched)``; as in the forward,
    every padding of one (mode, channel class, float32-grid nearest) shares one kernel."""
    return _backward_kernel(mode, cclass, f32_nearest)


@functools.cache
def _backward_kernel(mode: int, cclass: int, f32_nearest: bool):
    """The backward kernel of one mode and channel class.

    buf[n, k]: the image gradient of chunk k's output rows (rows marked in
    rows_seen); grid source: ggrid[n, i, j] = dL/d grid (must arrive zeroed);
    affine / projective: rows[n, i] = (sum_j d, sum_j d x_j) for d = dL/du,
    dL/dv, dL/dw of (u, v, w) = theta[n] @ (x_j, y_i, 1), reduced into
    dL/dtheta by :func:`theta_grad`.
    """

    @njit(nogil=True, cache=True, fastmath=False)
    def kernel(gout, src, grid, theta, fill, buf, rows_seen, ggrid, rows, source, padding, align_corners,
               sched):
        N, Ho, Wo, C0 = gout.shape
        H = src.shape[1]
        W = src.shape[2]
        C = C0 if cclass == 0 else cclass
        K = buf.shape[1]
        scale_x = unnormalize_scale(W, align_corners)
        scale_y = unnormalize_scale(H, align_corners)
        s = src.reshape(-1)
        go = gout.reshape(-1)
        xbs = np.empty(Wo)
        for j in range(Wo):
            xbs[j] = base_coord(j, Wo, align_corners)
        chunk = claim(sched)
        while chunk < sched[CHUNKS]:
            t0, t1 = chunk_rows(sched, chunk)
            for t in range(t0, t1):
                n = t // K
                k = t - n * K
                gimg = buf[n, k]
                gf = gimg.reshape(-1)
                seen = rows_seen[n, k]
                for i in range(k * Ho // K, (k + 1) * Ho // K):
                    yb = base_coord(i, Ho, align_corners)
                    su = 0.0
                    sux = 0.0
                    sv = 0.0
                    svx = 0.0
                    sw = 0.0
                    swx = 0.0
                    for j in range(Wo):
                        xb = xbs[j]
                        w = 1.0
                        if source == GRID:
                            gx = grid[n, i, j, 0]
                            gy = grid[n, i, j, 1]
                        else:
                            gx, gy, w = project(theta, n, xb, yb, source == PERSPECTIVE)
                        if not (abs(gx) < HUGE and abs(gy) < HUGE):
                            continue
                        dx = 0.0
                        dy = 0.0
                        if mode == NEAREST:
                            # dL/dI[round(y), round(x)] += g; piecewise constant: no coordinate gradient
                            if f32_nearest:  # a float32 grid (source GRID), read in its own precision
                                x = nearest_f32(grid[n, i, j, 0], W, padding, align_corners)
                                y = nearest_f32(grid[n, i, j, 1], H, padding, align_corners)
                            else:
                                x = unnormalize(gx, W, align_corners)
                                y = unnormalize(gy, H, align_corners)
                            xi, yi = nearest_pair(x, y, W, H, padding, align_corners)
                            if xi >= 0 and yi >= 0:
                                touch(gimg, seen, yi)
                                for c in range(C):
                                    gimg[yi, xi, c] += gout[n, i, j, c]
                        elif mode == BILINEAR:
                            px = unnormalize(gx, W, align_corners)
                            py = unnormalize(gy, H, align_corners)
                            if px > 0.0 and px < W - 1 and py > 0.0 and py < H - 1:
                                # strictly inside, where every padding is the identity with slope 1:
                                # the four taps on flat offsets, in the accumulation type
                                x0 = int(px)
                                y0 = int(py)
                                touch(gimg, seen, y0)
                                touch(gimg, seen, y0 + 1)
                                dx, dy = scatter_taps(s, go, gf, ((n * H + y0) * W + x0) * C,
                                                      (y0 * W + x0) * C, ((n * Ho + i) * Wo + j) * C, W * C,
                                                      px - x0, py - y0, C)
                                dx *= scale_x
                                dy *= scale_y
                            else:
                                # dL/dI[tap] += w g; dv/dx = (1 - fy) (v01 - v00) + fy (v11 - v10), likewise y
                                x, sx = source_coord_and_grad(gx, W, padding, align_corners)
                                y, sy = source_coord_and_grad(gy, H, padding, align_corners)
                                x0, x1, fx = linear_pair(x, W, padding, align_corners)
                                y0, y1, fy = linear_pair(y, H, padding, align_corners)
                                if y0 >= 0:
                                    touch(gimg, seen, y0)
                                if y1 >= 0:
                                    touch(gimg, seen, y1)
                                for c in range(C):
                                    g = gout[n, i, j, c]
                                    f = fill[c]
                                    v00 = f
                                    v01 = f
                                    v10 = f
                                    v11 = f
                                    if y0 >= 0:
                                        if x0 >= 0:
                                            v00 = src[n, y0, x0, c]
                                            gimg[y0, x0, c] += (1.0 - fy) * (1.0 - fx) * g
                                        if x1 >= 0:
                                            v01 = src[n, y0, x1, c]
                                            gimg[y0, x1, c] += (1.0 - fy) * fx * g
                                    if y1 >= 0:
                                        if x0 >= 0:
                                            v10 = src[n, y1, x0, c]
                                            gimg[y1, x0, c] += fy * (1.0 - fx) * g
                                        if x1 >= 0:
                                            v11 = src[n, y1, x1, c]
                                            gimg[y1, x1, c] += fy * fx * g
                                    dx += g * ((1.0 - fy) * (v01 - v00) + fy * (v11 - v10))
                                    dy += g * ((1.0 - fx) * (v10 - v00) + fx * (v11 - v01))
                                dx *= sx
                                dy *= sy
                        else:
                            # v = sum_ab wy_a wx_b I_ab: dL/dI_ab += wy_a wx_b g, dv/dx = sum wy_a wx_b' I_ab
                            x = unnormalize(gx, W, align_corners)
                            y = unnormalize(gy, H, align_corners)
                            xa, xb_, xc, xd, tx = cubic_taps(x, W, padding, align_corners)
                            ya, yb_, yc, yd, ty = cubic_taps(y, H, padding, align_corners)
                            xs = (xa, xb_, xc, xd)
                            ys = (ya, yb_, yc, yd)
                            wx = cubic_weights(tx)
                            wy = cubic_weights(ty)
                            sxs = cubic_slopes(tx)
                            sys_ = cubic_slopes(ty)
                            for a in range(4):
                                if ys[a] >= 0:
                                    touch(gimg, seen, ys[a])
                            for c in range(C):
                                g = gout[n, i, j, c]
                                f = fill[c]
                                for a in range(4):
                                    for b in range(4):
                                        v = f
                                        if ys[a] >= 0 and xs[b] >= 0:
                                            v = src[n, ys[a], xs[b], c]
                                            gimg[ys[a], xs[b], c] += wy[a] * wx[b] * g
                                        dx += g * wy[a] * sxs[b] * v
                                        dy += g * sys_[a] * wx[b] * v
                            dx *= scale_x
                            dy *= scale_y
                        if source == GRID:
                            ggrid[n, i, j, 0] = dx
                            ggrid[n, i, j, 1] = dy
                        else:
                            # chain through (x, y) = (u / w, v / w):
                            # dL/du = dx / w, dL/dw = -(dx x + dy y) / w
                            du = dx
                            dv = dy
                            if source == PERSPECTIVE:
                                du = dx / w
                                dv = dy / w
                            su += du
                            sux += du * xb
                            sv += dv
                            svx += dv * xb
                            if source == PERSPECTIVE:
                                dw = -(dx * gx + dy * gy) / w
                                sw += dw
                                swx += dw * xb
                    if source != GRID:
                        rows[n, i, 0] = su
                        rows[n, i, 1] = sux
                        rows[n, i, 2] = sv
                        rows[n, i, 3] = svx
                        rows[n, i, 4] = sw
                        rows[n, i, 5] = swx
            chunk = next_chunk(sched)

    return kernel


def theta_grad(rows: np.ndarray, ybs: np.ndarray, nrows: int) -> np.ndarray:
    """dL/dtheta[n, r] = (sum_i S_r x, sum_i S_r y_i, sum_i S_r) from the per-row sums, in row order."""
    n = rows.shape[0]
    g = np.empty((n, nrows, 3))
    for r in range(nrows):
        s1 = rows[:, :, 2 * r]
        sx = rows[:, :, 2 * r + 1]
        g[:, r, 0] = sx.sum(axis=1)
        g[:, r, 1] = (s1 * ybs).sum(axis=1)
        g[:, r, 2] = s1.sum(axis=1)
    return g


@njit(parallel=True, nogil=True, cache=True)
def grid_kernel(theta, out, source, align_corners):
    """affine_grid (source AFFINE, theta (N, 2, 3)): out[n, i, j] = theta[n] @ (x_j, y_i, 1);
    perspective_grid (PERSPECTIVE, theta (N, 3, 3)): (u / w, v / w) for (u, v, w) =
    theta[n] @ (x_j, y_i, 1), NaN where w <= 0: the points the fused perspective warp
    samples (:func:`row_points`), bit for bit."""
    N, Ho, Wo, _ = out.shape
    xbs = np.empty(Wo)
    base_coords(Wo, align_corners, xbs)
    for r in prange(N * Ho):
        n = r // Ho
        i = r - n * Ho
        row_points(out, theta, n, i, Ho, Wo, source, align_corners, xbs, out[n, i, :, 0], out[n, i, :, 1])
