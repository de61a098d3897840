"""numba.cuda kernels: one thread per output pixel, channels looped inside.

The coordinate math is not restated here: the kernels call the ``@njit`` scalar
functions of :mod:`fastwarp.core.coords` and of ``fastwarp.cpu`` (``generic``,
``bilinear``, ``rows``: ``unnormalize``, ``pad_pixel``, ``linear_pair``, ``nearest_pair``,
``cubic_taps``, ``cubic_weights`` ...) directly.  numba-cuda compiles a CPU
``@njit`` function called from a kernel as a CUDA device function from the same
Python source (Numba's target extension retargets the dispatcher), and Numba's
CUDA simulator simply calls the CPU-compiled function, so the same kernel
source runs on a GPU and in the simulator.  (Wrapping ``f.py_func`` with
``cuda.jit(device=True)`` would not help: its own calls, e.g. ``pad_pixel``
-> ``reflect``, still reach the ``@njit`` globals.)

The rules are those of the CPU kernels (``fastwarp.cpu.generic``): a point reads
a set of taps (1, 2 x 2 or 4 x 4), a tap inside the image reads the pixel and
a tap outside reads the fill value (``constant``; 0 for zeros); bilinear and
nearest with border or reflection pad the *coordinate*, bicubic pads each
tap's *index*, wrap takes every tap index modulo the size.  Points that are
NaN, infinite or beyond ``coords.HUGE`` (and projective points with w <= 0)
read the fill value.

What *is* written here is the per-pixel blend and the store, because the CPU
kernels do those with ``@overload`` helpers (``fastwarp.cpu.store``) that have no
Python implementation the simulator could run:

* accumulation type: float64 for float64 and uint16 images, float32 for
  float32, float16 and uint8 images (weights and pixels are cast to it);
* store: floats are cast (float16 rounds to nearest even), integers are
  ``floor(v + 0.5)`` saturated to the dtype's range;
* coordinates in float64, whatever the dtype of theta or grid (nearest mode on
  a float32 grid unnormalizes in float32, as PyTorch does).

One set of kernels is built per image dtype by :func:`kernels`, lazily, so
importing this module compiles nothing.  Launch layout: ``cuda.grid(3)`` gives
(column j, row i, image); the z dimension strides over the batch so any N fits
in the 65535 blocks CUDA allows there.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
from numba import cuda, float64

from ..core.coords import (
    BILINEAR,
    HUGE,
    NEAREST,
    base_coord,
    pad_pixel,
    source_coord_and_grad,
    unnormalize,
    unnormalize_scale,
)
from ..cpu.antialias import (
    aa_tap,
    footprint_real,
    footprint_slope,
    kernel_weight,
    map_point,
    shrinks,
    support,
    tap_range,
)
from ..cpu.bilinear import linear_pair
from ..cpu.generic import (
    cubic_slopes,
    cubic_taps,
    cubic_weights,
    nearest_f32,
    nearest_pair,
)
from ..cpu.rows import project_point

_built: dict = {}

#: Most threads per block the fused theta reduction's shared memory is sized for.
MAX_BLOCK_THREADS = 256


def _acc_type(dtype: np.dtype):
    """The accumulation type of images of ``dtype`` (see the module docstring)."""
    return np.float64 if dtype in (np.float64, np.uint16) else np.float32


def kernels(dtype) -> SimpleNamespace:
    """Forward kernels for images of ``dtype`` (uint8, uint16, float16, float32, float64), built once."""
    dtype = np.dtype(dtype)
    key = dtype.name
    if key not in _built:
        integer = dtype.kind in "iu"
        lo = float(np.iinfo(dtype).min) if integer else 0.0
        hi = float(np.iinfo(dtype).max) if integer else 0.0
        _built[key] = _build(_acc_type(dtype), integer, lo, hi)
    return _built[key]


def grid_kernels() -> SimpleNamespace:
    """The affine / perspective grid kernel (dtype-independent: the grid is float64)."""
    if "grid" not in _built:
        _built["grid"] = SimpleNamespace(matrix_grid=cuda.jit(_matrix_grid_kernel))
    return _built["grid"]


@cuda.jit(device=True)
def project(theta, t, xb, yb):
    """(x, y, w) = the normalized source point of output point (xb, yb) for matrix theta[t]:
    ``rows.project_point`` (left-to-right sums, NaN behind the viewer) of an affine
    (2 x 3) or projective (3 x 3) theta read in float64; a last row (0, 0, 1) gives the
    affine numbers bit for bit."""
    if theta.shape[1] == 3:
        return project_point(
            np.float64(theta[t, 0, 0]), np.float64(theta[t, 0, 1]), np.float64(theta[t, 0, 2]),
            np.float64(theta[t, 1, 0]), np.float64(theta[t, 1, 1]), np.float64(theta[t, 1, 2]),
            np.float64(theta[t, 2, 0]), np.float64(theta[t, 2, 1]), np.float64(theta[t, 2, 2]), xb, yb, True)
    return project_point(
        np.float64(theta[t, 0, 0]), np.float64(theta[t, 0, 1]), np.float64(theta[t, 0, 2]),
        np.float64(theta[t, 1, 0]), np.float64(theta[t, 1, 1]), np.float64(theta[t, 1, 2]),
        0.0, 0.0, 1.0, xb, yb, False)


def _matrix_grid_kernel(theta, out, align_corners):
    """out[n, i, j] = the normalized source point of output pixel (i, j) (:func:`project`);
    a single theta row serves every image."""
    j, i, nz = cuda.grid(3)
    N, Ho, Wo, _ = out.shape
    if i >= Ho or j >= Wo:
        return
    xb = base_coord(j, Wo, align_corners)
    yb = base_coord(i, Ho, align_corners)
    for n in range(nz, N, cuda.gridDim.z):
        x, y, _ = project(theta, n if theta.shape[0] > 1 else 0, xb, yb)
        out[n, i, j, 0] = x
        out[n, i, j, 1] = y


def _build(acc, integer, lo, hi) -> SimpleNamespace:
    """Compile-on-first-launch kernels for one accumulation type and store rule."""

    @cuda.jit(device=True)
    def store(out, n, i, j, c, v):
        """out[n, i, j, c] = v converted like fastwarp.cpu.store.to_output."""
        if integer:
            r = math.floor(v + 0.5)  # round half up, then saturate
            if r < lo:
                r = lo
            elif r > hi:
                r = hi
            out[n, i, j, c] = r
        else:
            out[n, i, j, c] = v

    @cuda.jit(device=True)
    def tap(src, n, y, x, c, f):
        """The tap (y, x) of channel c in the accumulation type; f where an index is -1 (outside)."""
        if y >= 0 and x >= 0:
            return acc(src[n, y, x, c])
        return f

    @cuda.jit(device=True)
    def cubic_line(src, n, y, xa, xb, xc, xd, w0, w1, w2, w3, c, f):
        """sum_b w_b I[y, x_b] along one row of bicubic taps."""
        return (w0 * tap(src, n, y, xa, c, f) + w1 * tap(src, n, y, xb, c, f)
                + w2 * tap(src, n, y, xc, c, f) + w3 * tap(src, n, y, xd, c, f))

    @cuda.jit(device=True)
    def sample(src, n, x, y, x32, y32, fill, out, i, j, mode, padding, align_corners, f32):
        """out[n, i, j, :] = src[n] sampled at the normalized point (x, y).

        f32 (nearest mode on a float32 grid): the pixel point is unnormalized from
        the float32 values (x32, y32) in float32 arithmetic, as PyTorch does.
        """
        H = src.shape[1]
        W = src.shape[2]
        C = src.shape[3]
        if not (abs(x) < HUGE and abs(y) < HUGE):  # NaN, infinite, huge or behind the viewer
            for c in range(C):
                store(out, n, i, j, c, fill[c])
            return
        px = unnormalize(x, W, align_corners)
        py = unnormalize(y, H, align_corners)
        if mode == NEAREST:
            # v = I[round(y), round(x)] after padding the coordinate, the fill outside
            if f32:
                px = nearest_f32(x32, W, padding, align_corners)
                py = nearest_f32(y32, H, padding, align_corners)
            xi, yi = nearest_pair(px, py, W, H, padding, align_corners)
            for c in range(C):
                if xi >= 0 and yi >= 0:
                    out[n, i, j, c] = src[n, yi, xi, c]
                else:
                    store(out, n, i, j, c, fill[c])
        elif mode == BILINEAR:
            # v = (1 - fy) ((1 - fx) I00 + fx I01) + fy ((1 - fx) I10 + fx I11)
            px = pad_pixel(px, W, padding, align_corners)
            py = pad_pixel(py, H, padding, align_corners)
            x0, x1, fx = linear_pair(px, W, padding, align_corners)
            y0, y1, fy = linear_pair(py, H, padding, align_corners)
            ax0 = acc(1.0 - fx)
            ax1 = acc(fx)
            ay0 = acc(1.0 - fy)
            ay1 = acc(fy)
            for c in range(C):
                f = acc(fill[c])
                v00 = tap(src, n, y0, x0, c, f)
                v01 = tap(src, n, y0, x1, c, f)
                v10 = tap(src, n, y1, x0, c, f)
                v11 = tap(src, n, y1, x1, c, f)
                top = ax0 * v00 + ax1 * v01
                bot = ax0 * v10 + ax1 * v11
                store(out, n, i, j, c, ay0 * top + ay1 * bot)
        else:
            # v = sum_a wy_a sum_b wx_b I[y_a, x_b] over the 4 x 4 taps (cubic convolution,
            # a = -0.75), each tap index padded
            xa, xb, xc, xd, tx = cubic_taps(px, W, padding, align_corners)
            ya, yb, yc, yd, ty = cubic_taps(py, H, padding, align_corners)
            wx0, wx1, wx2, wx3 = cubic_weights(tx)
            wy0, wy1, wy2, wy3 = cubic_weights(ty)
            bx0 = acc(wx0)
            bx1 = acc(wx1)
            bx2 = acc(wx2)
            bx3 = acc(wx3)
            for c in range(C):
                f = acc(fill[c])
                v = (acc(wy0) * cubic_line(src, n, ya, xa, xb, xc, xd, bx0, bx1, bx2, bx3, c, f)
                     + acc(wy1) * cubic_line(src, n, yb, xa, xb, xc, xd, bx0, bx1, bx2, bx3, c, f)
                     + acc(wy2) * cubic_line(src, n, yc, xa, xb, xc, xd, bx0, bx1, bx2, bx3, c, f)
                     + acc(wy3) * cubic_line(src, n, yd, xa, xb, xc, xd, bx0, bx1, bx2, bx3, c, f))
                store(out, n, i, j, c, v)

    @cuda.jit
    def grid_sample(src, grid, fill, out, mode, padding, align_corners, f32):
        """out[n, i, j] = src[n] sampled at grid[n, i, j] = (x, y)."""
        j, i, nz = cuda.grid(3)
        N, Ho, Wo, _ = out.shape
        if i >= Ho or j >= Wo:
            return
        for n in range(nz, N, cuda.gridDim.z):
            sample(src, n, np.float64(grid[n, i, j, 0]), np.float64(grid[n, i, j, 1]),
                   np.float32(grid[n, i, j, 0]), np.float32(grid[n, i, j, 1]), fill, out, i, j,
                   mode, padding, align_corners, f32)

    @cuda.jit
    def warp(src, theta, fill, out, mode, padding, align_corners):
        """Fused grid + sampling: the point of output pixel (i, j) from theta[n] (affine
        (N, 2, 3) or projective (N, 3, 3), :func:`project`), then sampled."""
        j, i, nz = cuda.grid(3)
        N, Ho, Wo, _ = out.shape
        if i >= Ho or j >= Wo:
            return
        xb = base_coord(j, Wo, align_corners)
        yb = base_coord(i, Ho, align_corners)
        for n in range(nz, N, cuda.gridDim.z):
            x, y, _ = project(theta, n if theta.shape[0] > 1 else 0, xb, yb)
            sample(src, n, x, y, np.float32(0.0), np.float32(0.0), fill, out, i, j, mode, padding,
                   align_corners, False)

    return SimpleNamespace(grid_sample=grid_sample, warp=warp, sample=sample, store=store, tap=tap)


# ------------------------------------------------------------------ antialias

def antialias_kernels(dtype) -> SimpleNamespace:
    """The antialias filter for images of ``dtype`` (forward only), built once."""
    dtype = np.dtype(dtype)
    key = "antialias-" + dtype.name
    if key not in _built:
        _built[key] = _build_antialias(kernels(dtype).store)
    return _built[key]


def _build_antialias(store) -> SimpleNamespace:
    """The footprint filter of ``fastwarp.cpu.antialias``, one thread per output pixel."""

    @cuda.jit
    def antialias(src, hpx, fill, out, cubic, padding, align_corners):
        """Overwrite the shrinking pixels of the plain result ``out``: at output pixel o with
        input point p and footprint matrix M (``antialias.footprint_real`` of the Jacobian of
        the pixel map hpx[n]), v = sum_q w_q I[q] / sum_q w_q, w_q = k((M d)_x) k((M d)_y),
        d = q - p, over the taps of the footprint's box, each tap index padded (the fill
        outside); accumulated in float64 in the CPU's tap order.  Pixels that do not
        shrink keep the plain sample.  The tap loop restates ``antialias.padded_sum`` one
        channel at a time: that function takes arrays, which the simulator cannot hand to a
        CPU-compiled function, and per-channel accumulators that a GPU thread has no room for.
        """
        j, i, nz = cuda.grid(3)
        N, Ho, Wo, C = out.shape
        if i >= Ho or j >= Wo:
            return
        H = src.shape[1]
        W = src.shape[2]
        for n in range(nz, N, cuda.gridDim.z):
            w, px, py, j00, j01, j10, j11 = map_point(
                hpx[n, 0, 0], hpx[n, 0, 1], hpx[n, 0, 2], hpx[n, 1, 0], hpx[n, 1, 1], hpx[n, 1, 2],
                hpx[n, 2, 0], hpx[n, 2, 1], hpx[n, 2, 2], float64(j), float64(i))
            if not shrinks(w, px, py, j00, j01, j10, j11):
                continue
            m00, m01, m11 = footprint_real(j00, j01, j10, j11)
            ex, ey = support(m00, m01, m11, cubic)
            x0, x1 = tap_range(px, ex)
            y0, y1 = tap_range(py, ey)
            for c in range(C):
                acc = 0.0
                wsum = 0.0
                for qy in range(y0, y1 + 1):
                    dy = qy - py
                    row = aa_tap(float(qy), H, padding, align_corners)
                    for qx in range(x0, x1 + 1):
                        dx = qx - px
                        ka = kernel_weight(m00 * dx + m01 * dy, cubic)[0]
                        if ka == 0.0:
                            continue
                        wq = ka * kernel_weight(m01 * dx + m11 * dy, cubic)[0]
                        if wq == 0.0:
                            continue
                        wsum += wq
                        col = aa_tap(float(qx), W, padding, align_corners)
                        if row >= 0 and col >= 0:
                            acc += wq * np.float64(src[n, row, col, c])
                        else:
                            acc += wq * fill[c]
                store(out, n, i, j, c, acc / wsum)

    return SimpleNamespace(antialias=antialias)


def antialias_backward_kernels(dtype) -> SimpleNamespace:
    """The antialias filter's gradient for float16, float32 or float64 images (float16 in
    float32, as the other backward kernels), built once."""
    dtype = np.dtype(dtype)
    key = "antialias-backward-" + dtype.name
    if key not in _built:
        acc = np.float64 if dtype == np.float64 else np.float32
        _built[key] = _build_antialias_backward(acc, backward_kernels(dtype).scatter)
    return _built[key]


def _build_antialias_backward(acc, scatter) -> SimpleNamespace:
    """The CPU's ``antialias.backward_kernel`` on the GPU, one thread per task of output rows."""

    @cuda.jit
    def antialias_backward(gout, src, hpx, fill, gimg, gh, K, cubic, padding, align_corners, projective,
                           atomic):
        """Task t = n K + k: output rows [k Ho / K, (k+1) Ho / K) of image n.  At each
        shrinking pixel (v = sum_q w_q I[q] / W as in the forward): dL/dI[q] += g w_q / W into
        gimg[n] (atomic adds) or gimg[t] (a task's own buffer, deterministic); dL/dH of the
        row into gh[n, i] (p = (u / w, v / w) by hand, the footprint M by complex step,
        :func:`antialias.footprint_slope`).  dL/dw_q = sum_c g_c (I[q, c] - v_c) / W is
        summed as (sum_c g_c I[q, c] - sum_c g_c v_c) / W, so no per-channel scratch is needed.
        """
        t = cuda.grid(1)
        N, Ho, Wo, C = gout.shape
        if t >= N * K:
            return
        H = src.shape[1]
        W = src.shape[2]
        n = t // K
        k = t - n * K
        gn = n if atomic else t
        h00, h01, h02 = hpx[n, 0, 0], hpx[n, 0, 1], hpx[n, 0, 2]
        h10, h11, h12 = hpx[n, 1, 0], hpx[n, 1, 1], hpx[n, 1, 2]
        h20, h21, h22 = hpx[n, 2, 0], hpx[n, 2, 1], hpx[n, 2, 2]
        for i in range(k * Ho // K, (k + 1) * Ho // K):
            for j in range(Wo):
                fj = float64(j)
                fi = float64(i)
                w, px, py, j00, j01, j10, j11 = map_point(h00, h01, h02, h10, h11, h12, h20, h21, h22,
                                                           fj, fi)
                if not shrinks(w, px, py, j00, j01, j10, j11):
                    continue
                m00, m01, m11 = footprint_real(j00, j01, j10, j11)
                ex, ey = support(m00, m01, m11, cubic)
                x0, x1 = tap_range(px, ex)
                y0, y1 = tap_range(py, ey)
                # pass 1: W = sum_q w_q and G = sum_c g_c v_c
                wsum = 0.0
                for qy in range(y0, y1 + 1):
                    for qx in range(x0, x1 + 1):
                        wsum += (kernel_weight(m00 * (qx - px) + m01 * (qy - py), cubic)[0]
                                 * kernel_weight(m01 * (qx - px) + m11 * (qy - py), cubic)[0])
                big_g = 0.0
                for c in range(C):
                    a = 0.0
                    for qy in range(y0, y1 + 1):
                        row = aa_tap(float(qy), H, padding, align_corners)
                        for qx in range(x0, x1 + 1):
                            wq = (kernel_weight(m00 * (qx - px) + m01 * (qy - py), cubic)[0]
                                  * kernel_weight(m01 * (qx - px) + m11 * (qy - py), cubic)[0])
                            if wq == 0.0:
                                continue
                            col = aa_tap(float(qx), W, padding, align_corners)
                            a += wq * (np.float64(src[n, row, col, c]) if row >= 0 and col >= 0 else fill[c])
                    big_g += np.float64(gout[n, i, j, c]) * (a / wsum)
                # pass 2: the scatter and dL/dw_q, chained to p and M
                gpx = 0.0
                gpy = 0.0
                g00 = 0.0
                g01 = 0.0
                g11 = 0.0
                for qy in range(y0, y1 + 1):
                    dy = qy - py
                    row = aa_tap(float(qy), H, padding, align_corners)
                    for qx in range(x0, x1 + 1):
                        dx = qx - px
                        ka, da = kernel_weight(m00 * dx + m01 * dy, cubic)
                        kb, db = kernel_weight(m01 * dx + m11 * dy, cubic)
                        if ka * kb == 0.0 and da * kb == 0.0 and ka * db == 0.0:
                            continue
                        col = aa_tap(float(qx), W, padding, align_corners)
                        inside = row >= 0 and col >= 0
                        wq = ka * kb
                        sg = 0.0
                        for c in range(C):
                            g = np.float64(gout[n, i, j, c])
                            sg += g * (np.float64(src[n, row, col, c]) if inside else fill[c])
                            if inside and wq != 0.0:
                                scatter(gimg, gn, row, col, c, acc(g * wq / wsum), atomic)
                        gw = (sg - big_g) / wsum
                        ga = gw * da * kb  # dL/d(M d)_x
                        gb = gw * ka * db  # dL/d(M d)_y
                        gpx -= ga * m00 + gb * m01
                        gpy -= ga * m01 + gb * m11
                        g00 += ga * dx
                        g01 += ga * dy + gb * dx
                        g11 += gb * dy
                # dL/dH: p = (u / w, v / w) with (u, v, w) = H (j, i, 1); M = footprint(J(H))
                for b in range(3):
                    base = fj if b == 0 else (fi if b == 1 else 1.0)
                    gh[n, i, b] += gpx * base / w
                    gh[n, i, 3 + b] += gpy * base / w
                    if projective:
                        gh[n, i, 6 + b] -= (gpx * px + gpy * py) * base / w
                for kk in range(9 if projective else 6):
                    if not projective and kk % 3 == 2:
                        continue  # J of an affine map does not depend on the translation
                    d00, d01, d11 = footprint_slope(h00, h01, h02, h10, h11, h12, h20, h21, h22, fj, fi, kk)
                    gh[n, i, kk] += g00 * d00 + g01 * d01 + g11 * d11

    @cuda.jit
    def mask_shrinking(gout, hpx, masked):
        """masked = gout with 0 at the pixels the filter replaces (their gradient is the filter's)."""
        j, i, nz = cuda.grid(3)
        N, Ho, Wo, C = gout.shape
        if i >= Ho or j >= Wo:
            return
        for n in range(nz, N, cuda.gridDim.z):
            w, px, py, j00, j01, j10, j11 = map_point(
                hpx[n, 0, 0], hpx[n, 0, 1], hpx[n, 0, 2], hpx[n, 1, 0], hpx[n, 1, 1], hpx[n, 1, 2],
                hpx[n, 2, 0], hpx[n, 2, 1], hpx[n, 2, 2], float64(j), float64(i))
            keep = not shrinks(w, px, py, j00, j01, j10, j11)
            for c in range(C):
                masked[n, i, j, c] = gout[n, i, j, c] if keep else 0.0

    return SimpleNamespace(antialias_backward=antialias_backward, mask_shrinking=mask_shrinking)


# ------------------------------------------------------------------- backward

def backward_kernels(dtype) -> SimpleNamespace:
    """Backward kernels for float16, float32 or float64 images, built once (float16 images
    are differentiated in float32, their gradient buffers float32)."""
    dtype = np.dtype(dtype)
    key = "backward-" + dtype.name
    if key not in _built:
        _built[key] = _build_backward(np.float64 if dtype == np.float64 else np.float32)
    return _built[key]


def _build_backward(acc) -> SimpleNamespace:
    """Backward kernels accumulating in ``acc`` (the images' compute type)."""
    tap = kernels(np.float64 if acc is np.float64 else np.float32).tap

    @cuda.jit(device=True)
    def scatter(gimg, gn, y, x, c, v, atomic):
        """gimg[gn, y, x, c] += v (an atomic add when threads share gimg); nothing for a tap
        outside the image (an index of -1: it read the fill)."""
        if y < 0 or x < 0:
            return
        if atomic:
            cuda.atomic.add(gimg, (gn, y, x, c), v)
        else:
            gimg[gn, y, x, c] += v

    @cuda.jit(device=True)
    def cubic_row(src, gimg, gn, n, c, y, wy, sy, xa, xb, xc, xd, wx0, wx1, wx2, wx3, sx0, sx1, sx2, sx3,
                  g, f, atomic):
        """One row of bicubic taps: dL/dI[y, x_b] += wy wx_b g; returns this row's
        (sum_b wy sx_b v_b, sum_b sy wx_b v_b) times g (dv/dx, dv/dy, pixel units)."""
        v0 = tap(src, n, y, xa, c, f)
        v1 = tap(src, n, y, xb, c, f)
        v2 = tap(src, n, y, xc, c, f)
        v3 = tap(src, n, y, xd, c, f)
        scatter(gimg, gn, y, xa, c, wy * wx0 * g, atomic)
        scatter(gimg, gn, y, xb, c, wy * wx1 * g, atomic)
        scatter(gimg, gn, y, xc, c, wy * wx2 * g, atomic)
        scatter(gimg, gn, y, xd, c, wy * wx3 * g, atomic)
        gx = g * wy * (sx0 * v0 + sx1 * v1 + sx2 * v2 + sx3 * v3)
        gy = g * sy * (wx0 * v0 + wx1 * v1 + wx2 * v2 + wx3 * v3)
        return gx, gy

    @cuda.jit(device=True)
    def backprop(src, gout, n, i, j, x, y, x32, y32, fill, gimg, gn, mode, padding, align_corners,
                 atomic, f32):
        """Scatter gout[n, i, j, :] into gimg[gn] and return (dL/dx, dL/dy) at the normalized
        point (x, y) (0 for nearest mode and for points that read no image)."""
        H = src.shape[1]
        W = src.shape[2]
        C = src.shape[3]
        if not (abs(x) < HUGE and abs(y) < HUGE):
            return 0.0, 0.0
        if mode == NEAREST:
            # dL/dI[round(y), round(x)] += g; piecewise constant in (x, y)
            px = unnormalize(x, W, align_corners)
            py = unnormalize(y, H, align_corners)
            if f32:
                px = nearest_f32(x32, W, padding, align_corners)
                py = nearest_f32(y32, H, padding, align_corners)
            xi, yi = nearest_pair(px, py, W, H, padding, align_corners)
            for c in range(C):
                scatter(gimg, gn, yi, xi, c, acc(gout[n, i, j, c]), atomic)
            return 0.0, 0.0
        if mode == BILINEAR:
            # dL/dI[tap] += w g; dv/dx = (1 - fy) (v01 - v00) + fy (v11 - v10), likewise y,
            # chained through unnormalize and the padding mode
            px, sx = source_coord_and_grad(x, W, padding, align_corners)
            py, sy = source_coord_and_grad(y, H, padding, align_corners)
            x0, x1, fx = linear_pair(px, W, padding, align_corners)
            y0, y1, fy = linear_pair(py, H, padding, align_corners)
            ax0 = acc(1.0 - fx)
            ax1 = acc(fx)
            ay0 = acc(1.0 - fy)
            ay1 = acc(fy)
            gx = acc(0.0)
            gy = acc(0.0)
            for c in range(C):
                g = acc(gout[n, i, j, c])
                f = acc(fill[c])
                v00 = tap(src, n, y0, x0, c, f)
                v01 = tap(src, n, y0, x1, c, f)
                v10 = tap(src, n, y1, x0, c, f)
                v11 = tap(src, n, y1, x1, c, f)
                scatter(gimg, gn, y0, x0, c, ay0 * ax0 * g, atomic)
                scatter(gimg, gn, y0, x1, c, ay0 * ax1 * g, atomic)
                scatter(gimg, gn, y1, x0, c, ay1 * ax0 * g, atomic)
                scatter(gimg, gn, y1, x1, c, ay1 * ax1 * g, atomic)
                gx += g * (ay0 * (v01 - v00) + ay1 * (v11 - v10))
                gy += g * (ax0 * (v10 - v00) + ax1 * (v11 - v01))
            return np.float64(gx) * sx, np.float64(gy) * sy
        # bicubic: dL/dI_ab += wy_a wx_b g, dv/dx = sum wy_a wx_b' I_ab (each tap index padded)
        px = unnormalize(x, W, align_corners)
        py = unnormalize(y, H, align_corners)
        xa, xb, xc, xd, tx = cubic_taps(px, W, padding, align_corners)
        ya, yb, yc, yd, ty = cubic_taps(py, H, padding, align_corners)
        w0, w1, w2, w3 = cubic_weights(tx)
        wx0 = acc(w0)
        wx1 = acc(w1)
        wx2 = acc(w2)
        wx3 = acc(w3)
        s0, s1, s2, s3 = cubic_slopes(tx)
        sx0 = acc(s0)
        sx1 = acc(s1)
        sx2 = acc(s2)
        sx3 = acc(s3)
        w0, w1, w2, w3 = cubic_weights(ty)
        s0, s1, s2, s3 = cubic_slopes(ty)
        gx = acc(0.0)
        gy = acc(0.0)
        for c in range(C):
            g = acc(gout[n, i, j, c])
            f = acc(fill[c])
            rx, ry = cubic_row(src, gimg, gn, n, c, ya, acc(w0), acc(s0), xa, xb, xc, xd, wx0, wx1, wx2,
                               wx3, sx0, sx1, sx2, sx3, g, f, atomic)
            gx += rx
            gy += ry
            rx, ry = cubic_row(src, gimg, gn, n, c, yb, acc(w1), acc(s1), xa, xb, xc, xd, wx0, wx1, wx2,
                               wx3, sx0, sx1, sx2, sx3, g, f, atomic)
            gx += rx
            gy += ry
            rx, ry = cubic_row(src, gimg, gn, n, c, yc, acc(w2), acc(s2), xa, xb, xc, xd, wx0, wx1, wx2,
                               wx3, sx0, sx1, sx2, sx3, g, f, atomic)
            gx += rx
            gy += ry
            rx, ry = cubic_row(src, gimg, gn, n, c, yd, acc(w3), acc(s3), xa, xb, xc, xd, wx0, wx1, wx2,
                               wx3, sx0, sx1, sx2, sx3, g, f, atomic)
            gx += rx
            gy += ry
        return (np.float64(gx) * unnormalize_scale(W, align_corners),
                np.float64(gy) * unnormalize_scale(H, align_corners))

    @cuda.jit(device=True)
    def warp_grad(src, gout, theta, fill, n, i, j, Ho, Wo, gimg, gn, mode, padding, align_corners,
                  atomic):
        """Backward of output pixel (i, j) of the fused warp: scatter into gimg[gn] and return
        (dL/du, dL/dv, dL/dw) of (u, v, w) = theta[n] @ (x_j, y_i, 1) (dL/dw = 0 for affine).

        Projective: (x, y) = (u / w, v / w), so dL/du = dL/dx / w, dL/dw = -(dL/dx x + dL/dy y) / w.
        """
        xb = base_coord(j, Wo, align_corners)
        yb = base_coord(i, Ho, align_corners)
        x, y, w = project(theta, n if theta.shape[0] > 1 else 0, xb, yb)
        if not (abs(x) < HUGE and abs(y) < HUGE):
            return 0.0, 0.0, 0.0
        dx, dy = backprop(src, gout, n, i, j, x, y, np.float32(0.0), np.float32(0.0), fill, gimg, gn,
                          mode, padding, align_corners, atomic, False)
        if theta.shape[1] == 3:
            return dx / w, dy / w, -(dx * x + dy * y) / w
        return dx, dy, 0.0

    @cuda.jit
    def grid_sample_backward(gout, src, grid, fill, gimg, ggrid, mode, padding, align_corners, f32):
        """One thread per output pixel: atomics into gimg, ggrid[n, i, j] = dL/d grid[n, i, j]."""
        j, i, nz = cuda.grid(3)
        N, Ho, Wo, _ = gout.shape
        if i >= Ho or j >= Wo:
            return
        for n in range(nz, N, cuda.gridDim.z):
            dx, dy = backprop(src, gout, n, i, j, np.float64(grid[n, i, j, 0]), np.float64(grid[n, i, j, 1]),
                              np.float32(grid[n, i, j, 0]), np.float32(grid[n, i, j, 1]), fill, gimg, n,
                              mode, padding, align_corners, True, f32)
            ggrid[n, i, j, 0] = dx
            ggrid[n, i, j, 1] = dy

    @cuda.jit
    def warp_backward(gout, src, theta, fill, gimg, partial, mode, padding, align_corners):
        """One thread per output pixel: atomics into gimg; dL/dtheta reduced per block.

        Each thread's contribution outer((dL/du, dL/dv[, dL/dw]), (x_j, y_i, 1)) is summed
        over the block by a fixed-order tree in shared memory into partial[n, block y,
        block x], which :func:`_theta_from_partials` sums in block order: deterministic, and
        no per-pixel scratch buffer.  Threads outside the output contribute 0 (and stay for
        the barriers).
        """
        sh = cuda.shared.array((9, MAX_BLOCK_THREADS), float64)
        tid = cuda.threadIdx.y * cuda.blockDim.x + cuda.threadIdx.x
        nthreads = cuda.blockDim.x * cuda.blockDim.y
        j = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        i = cuda.blockIdx.y * cuda.blockDim.y + cuda.threadIdx.y
        N, Ho, Wo, _ = gout.shape
        K = 3 * theta.shape[1]  # entries of dL/dtheta
        inside = i < Ho and j < Wo
        half = 1  # largest power of two below nthreads: the tree's first stride
        while half * 2 < nthreads:
            half *= 2
        for n in range(cuda.blockIdx.z, N, cuda.gridDim.z):
            du = 0.0
            dv = 0.0
            dw = 0.0
            xb = 0.0
            yb = 0.0
            if inside:
                du, dv, dw = warp_grad(src, gout, theta, fill, n, i, j, Ho, Wo, gimg, n, mode, padding,
                                       align_corners, True)
                xb = base_coord(j, Wo, align_corners)
                yb = base_coord(i, Ho, align_corners)
            # d theta = outer(dL/d(u, v, w), (x_j, y_i, 1))
            sh[0, tid] = du * xb
            sh[1, tid] = du * yb
            sh[2, tid] = du
            sh[3, tid] = dv * xb
            sh[4, tid] = dv * yb
            sh[5, tid] = dv
            sh[6, tid] = dw * xb
            sh[7, tid] = dw * yb
            sh[8, tid] = dw
            cuda.syncthreads()
            stride = half
            while stride > 0:
                if tid < stride and tid + stride < nthreads:
                    for k in range(K):
                        sh[k, tid] += sh[k, tid + stride]
                cuda.syncthreads()
                stride //= 2
            if tid < K:
                partial[n, cuda.blockIdx.y, cuda.blockIdx.x, tid] = sh[tid, 0]
            cuda.syncthreads()  # sh is reused by the next image

    @cuda.jit
    def grid_sample_backward_chunks(gout, src, grid, fill, buf, ggrid, mode, padding, align_corners, f32):
        """Deterministic: thread t = n K + k scatters output rows [k Ho / K, (k+1) Ho / K) into buf[t]."""
        t = cuda.grid(1)
        N, Ho, Wo, _ = gout.shape
        K = buf.shape[0] // N
        if t >= N * K:
            return
        n = t // K
        k = t - n * K
        for i in range(k * Ho // K, (k + 1) * Ho // K):
            for j in range(Wo):
                dx, dy = backprop(src, gout, n, i, j, np.float64(grid[n, i, j, 0]),
                                  np.float64(grid[n, i, j, 1]), np.float32(grid[n, i, j, 0]),
                                  np.float32(grid[n, i, j, 1]), fill, buf, t, mode, padding,
                                  align_corners, False, f32)
                ggrid[n, i, j, 0] = dx
                ggrid[n, i, j, 1] = dy

    @cuda.jit
    def warp_backward_chunks(gout, src, theta, fill, buf, duvw, mode, padding, align_corners):
        """Deterministic twin of warp_backward (see grid_sample_backward_chunks): duvw[n, i, j]
        = (dL/du, dL/dv) for affine, (dL/du, dL/dv, dL/dw) for projective thetas, reduced
        in order by :func:`_theta_rows` and :func:`_theta_grad`."""
        t = cuda.grid(1)
        N, Ho, Wo, _ = gout.shape
        K = buf.shape[0] // N
        if t >= N * K:
            return
        n = t // K
        k = t - n * K
        for i in range(k * Ho // K, (k + 1) * Ho // K):
            for j in range(Wo):
                du, dv, dw = warp_grad(src, gout, theta, fill, n, i, j, Ho, Wo, buf, t, mode, padding,
                                       align_corners, False)
                duvw[n, i, j, 0] = du
                duvw[n, i, j, 1] = dv
                if duvw.shape[3] == 3:
                    duvw[n, i, j, 2] = dw

    return SimpleNamespace(
        grid_sample_backward=grid_sample_backward, warp_backward=warp_backward,
        grid_sample_backward_chunks=grid_sample_backward_chunks, warp_backward_chunks=warp_backward_chunks,
        backprop=backprop, scatter=scatter)


def reduce_kernels() -> SimpleNamespace:
    """dtype-generic helpers of the backward: zero fill, casts, chunk sums, theta reductions."""
    if "reduce" not in _built:
        _built["reduce"] = SimpleNamespace(
            fill_zero=cuda.jit(_fill_zero), cast=cuda.jit(_cast), sum_chunks=cuda.jit(_sum_chunks),
            theta_from_partials=cuda.jit(_theta_from_partials),
            theta_rows=cuda.jit(_theta_rows), theta_grad=cuda.jit(_theta_grad),
            sum_batch=cuda.jit(_sum_batch))
    return _built["reduce"]


def _fill_zero(flat):
    """flat[k] = 0 (flat: a contiguous 1-D view of the buffer)."""
    k = cuda.grid(1)
    if k < flat.shape[0]:
        flat[k] = 0


def _cast(src, out):
    """out[k] = src[k] in out's dtype (contiguous 1-D views; float32 -> float16 rounds to nearest)."""
    k = cuda.grid(1)
    if k < out.shape[0]:
        out[k] = src[k]


def _sum_chunks(buf, out):
    """out[n, y, x] = buf[n K] + buf[n K + 1] + ... + buf[n K + K - 1], in that order."""
    x, y, nz = cuda.grid(3)
    N, H, W, C = out.shape
    K = buf.shape[0] // N
    if y >= H or x >= W:
        return
    for n in range(nz, N, cuda.gridDim.z):
        for c in range(C):
            s = buf[n * K, y, x, c]
            for k in range(1, K):
                s += buf[n * K + k, y, x, c]
            out[n, y, x, c] = s


def _theta_rows(duvw, rows, align_corners):
    """rows[n, i] = (sum_j d, sum_j d x_j) for d = dL/du, dL/dv, dL/dw, j in order."""
    r = cuda.grid(1)
    N, Ho, Wo, D = duvw.shape
    if r >= N * Ho:
        return
    n = r // Ho
    i = r - n * Ho
    for d in range(D):
        s = 0.0
        sx = 0.0
        for j in range(Wo):
            v = duvw[n, i, j, d]
            s += v
            sx += v * base_coord(j, Wo, align_corners)
        rows[n, i, 2 * d] = s
        rows[n, i, 2 * d + 1] = sx


def _theta_grad(rows, gtheta, align_corners):
    """gtheta[n, r] = (sum_i S_r x, sum_i y_i S_r, sum_i S_r) from the row sums, i in order."""
    n = cuda.grid(1)
    N, Ho, _ = rows.shape
    if n >= N:
        return
    for r in range(gtheta.shape[1]):
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        for i in range(Ho):
            a0 += rows[n, i, 2 * r + 1]
            a1 += rows[n, i, 2 * r] * base_coord(i, Ho, align_corners)
            a2 += rows[n, i, 2 * r]
        gtheta[n, r, 0] = a0
        gtheta[n, r, 1] = a1
        gtheta[n, r, 2] = a2


def _theta_from_partials(partial, gtheta):
    """gtheta[n].flat[k] = sum of partial[n, :, :, k] in block order (row-major)."""
    t = cuda.grid(1)
    N, BY, BX, K = partial.shape
    if t >= N * K:
        return
    n = t // K
    k = t - K * n
    s = 0.0
    for by in range(BY):
        for bx in range(BX):
            s += partial[n, by, bx, k]
    gtheta[n, k // 3, k - 3 * (k // 3)] = s


def _sum_batch(gtheta, out):
    """out[0] = gtheta[0] + gtheta[1] + ... (the gradient of a theta shared by the batch)."""
    k = cuda.grid(1)
    R = gtheta.shape[1]
    if k >= 3 * R:
        return
    r = k // 3
    c = k - 3 * r
    s = 0.0
    for n in range(gtheta.shape[0]):
        s += gtheta[n, r, c]
    out[0, r, c] = s
