"""Numba CPU backward kernels: gradients of ``grid_sample`` and of the fused ``affine_warp``.

For one output pixel sampled at the normalized point (x, y), bilinear mode reads

    v = sum_{a, b in {0, 1}} wy_a wx_b I[y_a, x_b]

so the gradients are a *scatter* ``dL/dI[y_a, x_b] += wy_a wx_b g`` and a
*gather* of the slopes ``dv/dix = sum_a wy_a (I[y_a, x_1] - I[y_a, x_0])``
(and the same along y), chained with ``d ix / d x`` of the padding mode
(:func:`fastwarp.core.coords.source_coord_grad`, PyTorch's slopes at the clamp
kinks).  Nearest mode scatters ``g`` to the nearest pixel and has a zero
gradient with respect to the coordinates.  For the affine warp,
``(x, y) = theta @ (x_j, y_i, 1)`` gives ``dL/dtheta = sum_ij outer(dL/d(x, y), (x_j, y_i, 1))``.

Determinism
-----------
The scatter into the image gradient is the only place where two output pixels
write the same element.  The output rows of each image are split into K fixed
chunks (K depends on the shapes only, see :func:`row_chunks`); each
(image, chunk) task runs serially and scatters into its own buffer, and the K
buffers are summed in chunk order.  With K > 1 a buffer row is zeroed on the
chunk's first write to it (``rows_seen``), so a chunk pays only for the rows
its points reach.  Per-row partial sums of the theta gradient are reduced in
a fixed order (``generic.theta_grad``).  The work partition never depends on
the thread count, so the gradients are bit-identical with 1 or 64 threads.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from ..core.coords import (
    BILINEAR,
    BORDER,
    base_coord,
    linear_taps_grad,
    nearest_tap,
    source_coord,
    source_coord_and_grad,
    unnormalize,
    unnormalize_scale,
)
from ..core.runtime import NUMBA_ONLY
from .bilinear import prefetch_offset
from .rows import pixel_affine
from .simd import prefetch
from .store import acc_type

FASTMATH = {"contract"}
kernel = njit(parallel=True, nogil=True, cache=True, fastmath=FASTMATH)
inline = njit(nogil=True, cache=True, fastmath=FASTMATH, inline="always")
# an ordinary compiled function: one body per signature, shared by every kernel that calls it
row_function = njit(nogil=True, cache=True, fastmath=FASTMATH, **NUMBA_ONLY)

# Parallel tasks to aim for when the batch is small (a constant, never the
# thread count, so that the result does not depend on the machine), and the
# most scratch memory the per-chunk image buffers may take.
TARGET_TASKS = 16
SCRATCH_BYTES = 128 * 2**20


def row_chunks(n: int, ho: int, image_bytes: int) -> int:
    """Chunks K per image: 1 when the batch alone gives TARGET_TASKS tasks, else
    enough for about TARGET_TASKS tasks, at most one per output row and within
    SCRATCH_BYTES of buffers.  Depends on the shapes only."""
    if n >= TARGET_TASKS or n == 0:
        return 1
    k = min(-(-TARGET_TASKS // n), ho)
    k = min(k, SCRATCH_BYTES // max(1, n * image_bytes))
    return max(k, 1)


@inline
def touch(gimg, seen, y):
    """Zero row y of a chunk's buffer the first time the chunk writes to it.

    Buffers start uninitialized: a chunk pays only for the rows it reaches, and
    the reduction reads only those (``seen``)."""
    if not seen[y]:
        for x in range(gimg.shape[1]):
            for c in range(gimg.shape[2]):
                gimg[y, x, c] = 0
        seen[y] = 1


@inline
def nearest_point(gout, n, i, j, x, y, gimg, seen, padding, align_corners):
    """Nearest mode: gimg[round(iy), round(ix)] += gout[n, i, j] (the read pixel), nothing outside.

    The output is piecewise constant in (x, y): zero gradient for the coordinates.
    """
    H = gimg.shape[0]
    W = gimg.shape[1]
    xn = nearest_tap(source_coord(x, W, padding, align_corners), W)
    yn = nearest_tap(source_coord(y, H, padding, align_corners), H)
    if xn >= 0 and yn >= 0:
        touch(gimg, seen, yn)
        for c in range(gimg.shape[2]):
            gimg[yn, xn, c] += gout[n, i, j, c]


@inline
def bilinear_point(src, gout, n, i, j, x, y, gimg, seen, padding, align_corners):
    """Bilinear mode: scatter gout[n, i, j] into gimg (H, W, C) and return dL/dx, dL/dy at (x, y)."""
    H = src.shape[1]
    W = src.shape[2]
    ix, sx = source_coord_and_grad(x, W, padding, align_corners)
    iy, sy = source_coord_and_grad(y, H, padding, align_corners)
    x0, x1, wx0, wx1, mx0, mx1 = linear_taps_grad(ix, W)
    y0, y1, wy0, wy1, my0, my1 = linear_taps_grad(iy, H)
    ax0 = acc_type(wx0, src)
    ax1 = acc_type(wx1, src)
    ay0 = acc_type(wy0, src)
    ay1 = acc_type(wy1, src)
    bx0 = acc_type(mx0, src)
    bx1 = acc_type(mx1, src)
    by0 = acc_type(my0, src)
    by1 = acc_type(my1, src)
    a00 = ay0 * ax0
    a01 = ay0 * ax1
    a10 = ay1 * ax0
    a11 = ay1 * ax1
    gx = acc_type(0.0, src)
    gy = acc_type(0.0, src)
    touch(gimg, seen, y0)
    touch(gimg, seen, y1)
    for c in range(src.shape[3]):
        g = gout[n, i, j, c]
        v00 = src[n, y0, x0, c]
        v01 = src[n, y0, x1, c]
        v10 = src[n, y1, x0, c]
        v11 = src[n, y1, x1, c]
        # dv/dix = wy0 (m1 I[y0,x1] - m0 I[y0,x0]) + wy1 (m1 I[y1,x1] - m0 I[y1,x0]), same along y
        gx += g * (ay0 * (bx1 * v01 - bx0 * v00) + ay1 * (bx1 * v11 - bx0 * v10))
        gy += g * (by1 * (ax0 * v10 + ax1 * v11) - by0 * (ax0 * v00 + ax1 * v01))
        # dL/dI[tap] += weight g
        gimg[y0, x0, c] += a00 * g
        gimg[y0, x1, c] += a01 * g
        gimg[y1, x0, c] += a10 * g
        gimg[y1, x1, c] += a11 * g
    # chain rule through unnormalize and the padding mode
    return gx * sx, gy * sy


# the fast path takes pixel points below this bound (as the forward's PIXEL_LIMIT)
PIXEL_LIMIT = 2.0**30
# columns per block of fused_bilinear_row's two passes
SCRATCH_COLUMNS = 64


@inline
def scatter_taps(s, go, gf, sb, gb, ob, row, fx, fy, C):
    """Interior bilinear pixel on flat views: scatter the upstream gradient go[ob + c]
    into the taps of gf at gb (+ row, + C) and return the pixel-space slopes
    (dv/dx, dv/dy summed against go) from the taps of s at sb.

    Unsigned offsets spare each access Numba's negative-index wraparound.
    """
    ax1 = acc_type(fx, s)
    ax0 = acc_type(1.0 - fx, s)
    ay1 = acc_type(fy, s)
    ay0 = acc_type(1.0 - fy, s)
    a00 = ay0 * ax0
    a01 = ay0 * ax1
    a10 = ay1 * ax0
    a11 = ay1 * ax1
    gx = acc_type(0.0, s)
    gy = acc_type(0.0, s)
    uC = np.uint64(C)
    ur = np.uint64(row)
    us = np.uint64(sb)
    ug = np.uint64(gb)
    uo = np.uint64(ob)
    for c in range(C):
        k = np.uint64(c)
        g = go[uo + k]
        v00 = s[us + k]
        v01 = s[us + uC + k]
        v10 = s[us + ur + k]
        v11 = s[us + ur + uC + k]
        gx += g * (ay0 * (v01 - v00) + ay1 * (v11 - v10))
        gy += g * (ax0 * (v10 - v00) + ax1 * (v11 - v01))
        gf[ug + k] += a00 * g
        gf[ug + uC + k] += a01 * g
        gf[ug + ur + k] += a10 * g
        gf[ug + ur + uC + k] += a11 * g
    return gx, gy


@inline
def bilinear_any(src, gout, s, go, gf, n, i, j, x, y, gimg, seen, padding, align_corners):
    """bilinear_point, through :func:`scatter_taps` when the pixel point is strictly inside
    (0, W - 1) x (0, H - 1): there every padding mode is the identity with slope 1 and
    all four taps are in the image (``gf`` is ``gimg`` flat)."""
    H = src.shape[1]
    W = src.shape[2]
    C = src.shape[3]
    px = unnormalize(x, W, align_corners)
    py = unnormalize(y, H, align_corners)
    if px > 0.0 and px < W - 1 and py > 0.0 and py < H - 1:  # false for NaN
        x0 = int(px)  # floor for px > 0
        y0 = int(py)
        touch(gimg, seen, y0)
        touch(gimg, seen, y0 + 1)
        gx, gy = scatter_taps(s, go, gf, ((n * H + y0) * W + x0) * C, (y0 * W + x0) * C,
                              ((n * gout.shape[1] + i) * gout.shape[2] + j) * C, W * C,
                              px - x0, py - y0, C)
        return (gx * unnormalize_scale(W, align_corners),
                gy * unnormalize_scale(H, align_corners))
    return bilinear_point(src, gout, n, i, j, x, y, gimg, seen, padding, align_corners)


@inline
def fused_bilinear_row(src, gout, s, go, gf, n, i, gimg, seen, xbs, t00, t10, cx, cy, C,
                       padding, align_corners, scr, wscr, ahead):
    """Bilinear backward of output row i of the fused warp; returns the row sums
    (sum_j dx, sum_j dx x_j, sum_j dy, sum_j dy x_j) of dL/d(x, y) (normalized).

    Points strictly inside (0, W-1) x (0, H-1) take :func:`scatter_taps`.  With
    border padding (W, H >= 2) every point does: clamped into the image, it is
    read from the taps at (min(floor(y), H-2), min(floor(x), W-2)) with the
    clamp's slope (1 strictly inside the bounds, 0 on and beyond them, as
    :func:`fastwarp.core.coords.clip_grad`).  Other points go through
    :func:`bilinear_point`.  Two passes per block of columns, as in the
    forward's fixed-point loop: the coordinates of every point into the task's
    scratch ``scr``/``wscr`` (allocated once per task by the kernel), then the scatter.
    ``ahead`` (unless 0): before the scatter, ask for the lines of the image and of its
    gradient at the block's taps + ahead (the taps of a row further down,
    ``bilinear.prefetch_offset``): a rotated walk leaves the hardware prefetcher behind,
    and the scatter's read-modify-writes wait for every line they miss.

    Inlined into the parallel kernel: there Numba marks the arrays as not
    aliasing each other, and the backward runs 1.4-1.9x faster than with this
    row as an ordinary function (same code, same flags; measured on Zen 3).
    """
    H = src.shape[1]
    W = src.shape[2]
    Ho = gout.shape[1]
    Wo = gout.shape[2]
    row = W * C
    scale_x = unnormalize_scale(W, align_corners)
    scale_y = unnormalize_scale(H, align_corners)
    clamp = padding == BORDER and W >= 2 and H >= 2
    offs = scr[0]
    fast = scr[1]
    rows0 = scr[2]
    fxs = wscr[0]
    fys = wscr[1]
    dxs = wscr[2]
    dys = wscr[3]
    sx = 0.0
    sxx = 0.0
    sy = 0.0
    syx = 0.0
    for j0 in range(0, Wo, SCRATCH_COLUMNS):
        m = min(SCRATCH_COLUMNS, Wo - j0)
        # pass 1, branch-free (LLVM vectorizes it across pixels): the point, whether it
        # takes the fast path, its clamped taps' offset, fractions and slopes
        for t in range(m):
            xb = xbs[j0 + t]
            px = unnormalize(t00 * xb + cx, W, align_corners)
            py = unnormalize(t10 * xb + cy, H, align_corners)
            in_x = (px > 0.0) & (px < W - 1)  # false for NaN
            in_y = (py > 0.0) & (py < H - 1)
            ok = (in_x & in_y) | (clamp & (abs(px) < PIXEL_LIMIT) & (abs(py) < PIXEL_LIMIT))
            xc = min(max(px, 0.0), W - 1.0) if ok else 0.0
            yc = min(max(py, 0.0), H - 1.0) if ok else 0.0
            x0 = min(int(xc), W - 2)
            y0 = min(int(yc), H - 2)
            offs[t] = y0 * W + x0
            rows0[t] = y0
            fast[t] = ok
            fxs[t] = xc - x0
            fys[t] = yc - y0
            dxs[t] = scale_x if in_x else 0.0
            dys[t] = scale_y if in_y else 0.0
        if ahead != 0:
            sb0 = n * H * W * C
            for t in range(0, m, 2):
                k = offs[t] * C + ahead
                prefetch(s, min(max(sb0 + k, 0), s.size - 1))
                prefetch(gf, min(max(k, 0), gf.size - 1))
        # pass 2: scatter and gather
        for t in range(m):
            j = j0 + t
            if fast[t]:
                y0 = rows0[t]
                touch(gimg, seen, y0)
                touch(gimg, seen, y0 + 1)
                gx, gy = scatter_taps(s, go, gf, (n * H * W + offs[t]) * C, offs[t] * C,
                                      ((n * Ho + i) * Wo + j) * C, row, fxs[t], fys[t], C)
                dx = gx * dxs[t]
                dy = gy * dys[t]
            else:
                xb = xbs[j]
                dx, dy = bilinear_point(src, gout, n, i, j, t00 * xb + cx, t10 * xb + cy, gimg, seen,
                                        padding, align_corners)
            sx += dx
            sxx += dx * xbs[j]
            sy += dy
            syx += dy * xbs[j]
    return sx, sxx, sy, syx


@row_function
def point_row(src, gout, s, go, gf, n, i, gimg, seen, xbs, grid, ggrid, t00, t10, cx, cy, fused, bilinear,
              padding, align_corners):
    """Output row i through the per-point paths (:func:`bilinear_any` or
    :func:`nearest_point`); the points are theta's (fused: x = t00 x_j + cx,
    y = t10 x_j + cy) or grid[n, i]'s, whose gradient goes to ggrid[n, i].
    Returns the fused warp's row sums as :func:`fused_bilinear_row` (zeros
    for a grid or nearest mode)."""
    sx = 0.0
    sxx = 0.0
    sy = 0.0
    syx = 0.0
    for j in range(gout.shape[2]):
        xb = xbs[j]
        if fused:
            x = t00 * xb + cx
            y = t10 * xb + cy
        else:
            x = grid[n, i, j, 0]
            y = grid[n, i, j, 1]
        if bilinear:
            dx, dy = bilinear_any(src, gout, s, go, gf, n, i, j, x, y, gimg, seen, padding, align_corners)
            if fused:
                sx += dx
                sxx += dx * xb
                sy += dy
                syx += dy * xb
            else:
                ggrid[n, i, j, 0] = dx
                ggrid[n, i, j, 1] = dy
        else:
            nearest_point(gout, n, i, j, x, y, gimg, seen, padding, align_corners)
    return sx, sxx, sy, syx


def channel_class(mode: int, c: int) -> int:
    """The channel count the tuned backward compiles in: 3 for bilinear RGB images (LLVM
    unrolls the per-channel scatter), 0 (any count) otherwise, which keeps the suite of
    specializations small."""
    return 3 if mode == BILINEAR and c == 3 else 0


@functools.cache
def backward_kernel(fused: bool, mode: int, cclass: int):
    """The tuned backward of grid_sample (fused=False) or of the fused affine_warp
    (fused=True) in one mode, for one channel-count class (``cclass``: 3
    compiled in, or 0 for any count; :func:`channel_class`); the three reach
    the kernel as closure constants, so that a call compiles only its own path.
    The padding mode is an argument: one kernel serves zeros, border and
    reflection.

    kernel(gout, src, grid, theta, buf, rows_seen, ggrid, rows, padding, align_corners):
    buf[n, k]: image gradient of chunk k's output rows (rows marked in rows_seen).
    grid_sample: the points come from grid, ggrid[n, i, j] = dL/d grid[n, i, j]
    (ggrid must arrive zeroed: nearest mode leaves it untouched).
    affine_warp: the points are theta[n] @ (x_j, y_i, 1); rows[n, i] holds the row sums
    (sum_j dx, sum_j dx x_j, sum_j dy, sum_j dy x_j), which ``generic.theta_grad`` reduces
    into dL/dtheta without the grid or its gradient ever being materialized.
    The unused arrays of the other operation may be empty.
    """
    bilinear = mode == BILINEAR
    fused_bilinear = fused and bilinear

    @kernel
    def backward(gout, src, grid, theta, buf, rows_seen, ggrid, rows, padding, align_corners):
        N, Ho, Wo, C0 = gout.shape
        C = C0 if cclass == 0 else cclass
        K = buf.shape[1]
        s = src.reshape(-1)
        go = gout.reshape(-1)
        xbs = np.empty(Wo)  # the output columns' normalized x, computed once
        for j in range(Wo):
            xbs[j] = base_coord(j, Wo, align_corners)
        for t in prange(N * K):
            n = t // K
            k = t - n * K
            gimg = buf[n, k]
            gf = gimg.reshape(-1)
            seen = rows_seen[n, k]
            scr = np.empty((3, SCRATCH_COLUMNS), np.int64)  # scratch of fused_bilinear_row
            wscr = np.empty((4, SCRATCH_COLUMNS))
            t00 = 0.0
            t10 = 0.0
            ahead = 0
            if fused:
                t00 = theta[n, 0, 0]
                t10 = theta[n, 1, 0]
            if fused_bilinear:
                # (the point moves by (pa[1], pa[4]) input pixels per output row)
                pa = pixel_affine(theta, n, src.shape[2], src.shape[1], Wo, Ho, align_corners)
                ahead = prefetch_offset(pa[1], pa[4], src.shape[2], C, 1)
            for i in range(k * Ho // K, (k + 1) * Ho // K):
                cx = 0.0
                cy = 0.0
                if fused:
                    # (x, y) = theta[n] @ (xb, yb, 1); the yb terms are constant along the row
                    yb = base_coord(i, Ho, align_corners)
                    cx = theta[n, 0, 1] * yb + theta[n, 0, 2]
                    cy = theta[n, 1, 1] * yb + theta[n, 1, 2]
                if fused_bilinear:
                    sums = fused_bilinear_row(src, gout, s, go, gf, n, i, gimg, seen, xbs, t00, t10, cx, cy,
                                              C, padding, align_corners, scr, wscr, ahead)
                else:
                    sums = point_row(src, gout, s, go, gf, n, i, gimg, seen, xbs, grid, ggrid, t00, t10,
                                     cx, cy, fused, bilinear, padding, align_corners)
                if fused:
                    rows[n, i, 0] = sums[0]
                    rows[n, i, 1] = sums[1]
                    rows[n, i, 2] = sums[2]
                    rows[n, i, 3] = sums[3]

    return backward


@kernel
def sum_chunks_kernel(buf, seen, out):
    """out[n, y] = sum over k = 0, 1, ... K-1, in that order, of buf[n, k, y] where seen[n, k, y].

    Parallel over (image, row); each row is summed by one thread in chunk order,
    so the result does not depend on the thread count.
    """
    N, K, H = seen.shape
    for r in prange(N * H):
        n = r // H
        y = r - n * H
        o = out[n, y].reshape(-1)
        for e in range(o.size):
            o[e] = 0
        for k in range(K):
            if seen[n, k, y]:
                b = buf[n, k, y].reshape(-1)
                for e in range(o.size):
                    o[e] += b[e]
