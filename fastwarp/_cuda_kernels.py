"""numba.cuda forward kernels: one thread per output pixel, channels looped inside.

The coordinate math is not restated here: the kernels call the ``@njit`` scalar
functions of :mod:`fastwarp._coords` (``base_coord``, ``source_coord``,
``linear_taps``, ``nearest_tap``) directly.  numba-cuda compiles a CPU
``@njit`` function called from a kernel as a CUDA device function from the same
Python source (Numba's target extension retargets the dispatcher), and Numba's
CUDA simulator simply calls the CPU-compiled function, so the same kernel
source runs on a GPU and in the simulator.  (Wrapping ``f.py_func`` with
``cuda.jit(device=True)`` would not help: its own calls, e.g. ``source_coord``
-> ``reflect``, still reach the ``@njit`` globals.)

What *is* written here is the per-pixel blend and the store, because the CPU
kernels do those with ``@overload`` helpers (``fastwarp._store``) that have no
Python implementation the simulator could run.  They follow the same rules:

* accumulation type: float64 for float64 images, float32 for float32 and uint8
  images (weights and pixels are cast to it, then
  ``v = wy0 (wx0 I00 + wx1 I01) + wy1 (wx0 I10 + wx1 I11)``);
* store: floats are cast, uint8 is ``floor(v + 0.5)`` saturated to [0, 255];
* coordinates in float64, whatever the dtype of theta or grid.

One set of kernels is built per (accumulation type, integer output) pair by
:func:`kernels`, lazily, so importing this module compiles nothing.  Launch
layout: ``cuda.grid(3)`` gives (column j, row i, image); the z dimension strides
over the batch so any N fits in the 65535 blocks CUDA allows there.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
from numba import cuda, float64

from ._coords import (
    BILINEAR,
    base_coord,
    linear_taps,
    linear_taps_grad,
    nearest_tap,
    source_coord,
    source_coord_grad,
)

_built: dict = {}

#: Most threads per block the fused theta reduction's shared memory is sized for.
MAX_BLOCK_THREADS = 256


def kernels(dtype) -> SimpleNamespace:
    """Forward kernels for images of ``dtype`` (float32, float64 or uint8), built once."""
    dtype = np.dtype(dtype)
    key = dtype.name
    if key not in _built:
        acc = np.float64 if dtype == np.float64 else np.float32
        integer = dtype.kind in "iu"
        lo = float(np.iinfo(dtype).min) if integer else 0.0
        hi = float(np.iinfo(dtype).max) if integer else 0.0
        _built[key] = _build(acc, integer, lo, hi)
    return _built[key]


def affine_grid_kernels() -> SimpleNamespace:
    """The affine_grid kernel (dtype-independent: the grid is float64)."""
    if "grid" not in _built:
        _built["grid"] = SimpleNamespace(affine_grid=cuda.jit(_affine_grid_kernel))
    return _built["grid"]


def _affine_grid_kernel(theta, out, align_corners):
    """out[n, i, j] = theta[n] @ (x_j, y_i, 1); a single theta row serves every image."""
    j, i, nz = cuda.grid(3)
    N, Ho, Wo, _ = out.shape
    if i >= Ho or j >= Wo:
        return
    xb = base_coord(j, Wo, align_corners)
    yb = base_coord(i, Ho, align_corners)
    for n in range(nz, N, cuda.gridDim.z):
        t = n if theta.shape[0] > 1 else 0
        out[n, i, j, 0] = (np.float64(theta[t, 0, 0]) * xb + np.float64(theta[t, 0, 1]) * yb
                           + np.float64(theta[t, 0, 2]))
        out[n, i, j, 1] = (np.float64(theta[t, 1, 0]) * xb + np.float64(theta[t, 1, 1]) * yb
                           + np.float64(theta[t, 1, 2]))


def _build(acc, integer, lo, hi) -> SimpleNamespace:
    """Compile-on-first-launch kernels for one accumulation type and store rule."""

    @cuda.jit(device=True)
    def store(out, n, i, j, c, v):
        """out[n, i, j, c] = v converted like fastwarp._store.to_output."""
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
    def sample(src, n, x, y, out, i, j, mode, padding, align_corners):
        """out[n, i, j, :] = src[n] sampled at the normalized point (x, y)."""
        H = src.shape[1]
        W = src.shape[2]
        C = src.shape[3]
        ix = source_coord(x, W, padding, align_corners)
        iy = source_coord(y, H, padding, align_corners)
        if mode == BILINEAR:
            x0, x1, wx0, wx1 = linear_taps(ix, W)
            y0, y1, wy0, wy1 = linear_taps(iy, H)
            ax0 = acc(wx0)
            ax1 = acc(wx1)
            ay0 = acc(wy0)
            ay1 = acc(wy1)
            for c in range(C):
                # v = wy0 (wx0 I[y0,x0] + wx1 I[y0,x1]) + wy1 (wx0 I[y1,x0] + wx1 I[y1,x1])
                top = ax0 * acc(src[n, y0, x0, c]) + ax1 * acc(src[n, y0, x1, c])
                bot = ax0 * acc(src[n, y1, x0, c]) + ax1 * acc(src[n, y1, x1, c])
                store(out, n, i, j, c, ay0 * top + ay1 * bot)
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

    @cuda.jit
    def grid_sample(src, grid, out, mode, padding, align_corners):
        """out[n, i, j] = src[n] sampled at grid[n, i, j] = (x, y)."""
        j, i, nz = cuda.grid(3)
        N, Ho, Wo, _ = out.shape
        if i >= Ho or j >= Wo:
            return
        for n in range(nz, N, cuda.gridDim.z):
            sample(src, n, np.float64(grid[n, i, j, 0]), np.float64(grid[n, i, j, 1]), out, i, j,
                   mode, padding, align_corners)

    @cuda.jit
    def affine_warp(src, theta, out, mode, padding, align_corners):
        """Fused affine_grid + grid_sample: (x, y) = theta[n] @ (x_j, y_i, 1), then sampled."""
        j, i, nz = cuda.grid(3)
        N, Ho, Wo, _ = out.shape
        if i >= Ho or j >= Wo:
            return
        xb = base_coord(j, Wo, align_corners)
        yb = base_coord(i, Ho, align_corners)
        for n in range(nz, N, cuda.gridDim.z):
            t = n if theta.shape[0] > 1 else 0
            # same association as the CPU kernel: t00 xb + (t01 yb + t02)
            x = np.float64(theta[t, 0, 0]) * xb + (np.float64(theta[t, 0, 1]) * yb
                                                    + np.float64(theta[t, 0, 2]))
            y = np.float64(theta[t, 1, 0]) * xb + (np.float64(theta[t, 1, 1]) * yb
                                                    + np.float64(theta[t, 1, 2]))
            sample(src, n, x, y, out, i, j, mode, padding, align_corners)

    return SimpleNamespace(grid_sample=grid_sample, affine_warp=affine_warp, sample=sample,
                           store=store)


# ------------------------------------------------------------------- backward

def backward_kernels(dtype) -> SimpleNamespace:
    """Backward kernels for float32 or float64 images, built once."""
    dtype = np.dtype(dtype)
    key = "backward-" + dtype.name
    if key not in _built:
        _built[key] = _build_backward(np.float64 if dtype == np.float64 else np.float32)
    return _built[key]


def _build_backward(acc) -> SimpleNamespace:
    """Backward kernels accumulating in ``acc`` (the images' float type)."""

    @cuda.jit(device=True)
    def backprop(src, gout, n, i, j, x, y, gimg, gn, mode, padding, align_corners, atomic):
        """Scatter gout[n, i, j, :] into gimg[gn] and return (dL/dx, dL/dy) at normalized (x, y)."""
        H = src.shape[1]
        W = src.shape[2]
        C = src.shape[3]
        ix = source_coord(x, W, padding, align_corners)
        iy = source_coord(y, H, padding, align_corners)
        if mode != BILINEAR:
            # nearest: dL/dI[round(iy), round(ix)] += g; piecewise constant in (x, y)
            xn = nearest_tap(ix, W)
            yn = nearest_tap(iy, H)
            if xn >= 0 and yn >= 0:
                for c in range(C):
                    g = acc(gout[n, i, j, c])
                    if atomic:
                        cuda.atomic.add(gimg, (gn, yn, xn, c), g)
                    else:
                        gimg[gn, yn, xn, c] += g
            return 0.0, 0.0
        x0, x1, wx0, wx1, mx0, mx1 = linear_taps_grad(ix, W)
        y0, y1, wy0, wy1, my0, my1 = linear_taps_grad(iy, H)
        ax0 = acc(wx0)
        ax1 = acc(wx1)
        ay0 = acc(wy0)
        ay1 = acc(wy1)
        bx0 = acc(mx0)
        bx1 = acc(mx1)
        by0 = acc(my0)
        by1 = acc(my1)
        a00 = ay0 * ax0
        a01 = ay0 * ax1
        a10 = ay1 * ax0
        a11 = ay1 * ax1
        gx = acc(0.0)
        gy = acc(0.0)
        for c in range(C):
            g = acc(gout[n, i, j, c])
            v00 = acc(src[n, y0, x0, c])
            v01 = acc(src[n, y0, x1, c])
            v10 = acc(src[n, y1, x0, c])
            v11 = acc(src[n, y1, x1, c])
            # dv/dix = wy0 (m1 I[y0,x1] - m0 I[y0,x0]) + wy1 (m1 I[y1,x1] - m0 I[y1,x0]), same along y
            gx += g * (ay0 * (bx1 * v01 - bx0 * v00) + ay1 * (bx1 * v11 - bx0 * v10))
            gy += g * (by1 * (ax0 * v10 + ax1 * v11) - by0 * (ax0 * v00 + ax1 * v01))
            # dL/dI[tap] += weight g
            if atomic:
                cuda.atomic.add(gimg, (gn, y0, x0, c), a00 * g)
                cuda.atomic.add(gimg, (gn, y0, x1, c), a01 * g)
                cuda.atomic.add(gimg, (gn, y1, x0, c), a10 * g)
                cuda.atomic.add(gimg, (gn, y1, x1, c), a11 * g)
            else:
                gimg[gn, y0, x0, c] += a00 * g
                gimg[gn, y0, x1, c] += a01 * g
                gimg[gn, y1, x0, c] += a10 * g
                gimg[gn, y1, x1, c] += a11 * g
        # chain rule through unnormalize and the padding mode
        return (np.float64(gx) * source_coord_grad(x, W, padding, align_corners),
                np.float64(gy) * source_coord_grad(y, H, padding, align_corners))

    @cuda.jit(device=True)
    def warp_point(theta, n, i, j, Ho, Wo, align_corners):
        """(x, y) = theta[n] @ (x_j, y_i, 1), associated as in the forward kernels."""
        t = n if theta.shape[0] > 1 else 0
        xb = base_coord(j, Wo, align_corners)
        yb = base_coord(i, Ho, align_corners)
        x = np.float64(theta[t, 0, 0]) * xb + (np.float64(theta[t, 0, 1]) * yb
                                                + np.float64(theta[t, 0, 2]))
        y = np.float64(theta[t, 1, 0]) * xb + (np.float64(theta[t, 1, 1]) * yb
                                                + np.float64(theta[t, 1, 2]))
        return x, y

    @cuda.jit
    def grid_sample_backward(gout, src, grid, gimg, ggrid, mode, padding, align_corners):
        """One thread per output pixel: atomics into gimg, ggrid[n, i, j] = dL/d grid[n, i, j]."""
        j, i, nz = cuda.grid(3)
        N, Ho, Wo, _ = gout.shape
        if i >= Ho or j >= Wo:
            return
        for n in range(nz, N, cuda.gridDim.z):
            dx, dy = backprop(src, gout, n, i, j, np.float64(grid[n, i, j, 0]),
                              np.float64(grid[n, i, j, 1]), gimg, n, mode, padding, align_corners,
                              True)
            ggrid[n, i, j, 0] = dx
            ggrid[n, i, j, 1] = dy

    @cuda.jit
    def affine_warp_backward(gout, src, theta, gimg, partial, mode, padding, align_corners):
        """One thread per output pixel: atomics into gimg; dL/dtheta reduced per block.

        Each thread's contribution (dx x_j, dx y_i, dx, dy x_j, dy y_i, dy) is summed over
        the block by a fixed-order tree in shared memory into partial[n, block y, block x],
        which :func:`_theta_from_partials` sums in block order: deterministic, and no
        per-pixel scratch buffer.  Threads outside the output contribute 0 (and stay for
        the barriers).
        """
        sh = cuda.shared.array((6, MAX_BLOCK_THREADS), float64)
        tid = cuda.threadIdx.y * cuda.blockDim.x + cuda.threadIdx.x
        nthreads = cuda.blockDim.x * cuda.blockDim.y
        j = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        i = cuda.blockIdx.y * cuda.blockDim.y + cuda.threadIdx.y
        N, Ho, Wo, _ = gout.shape
        inside = i < Ho and j < Wo
        half = 1  # largest power of two below nthreads: the tree's first stride
        while half * 2 < nthreads:
            half *= 2
        for n in range(cuda.blockIdx.z, N, cuda.gridDim.z):
            dx = 0.0
            dy = 0.0
            xb = 0.0
            yb = 0.0
            if inside:
                x, y = warp_point(theta, n, i, j, Ho, Wo, align_corners)
                dx, dy = backprop(src, gout, n, i, j, x, y, gimg, n, mode, padding, align_corners,
                                  True)
                xb = base_coord(j, Wo, align_corners)
                yb = base_coord(i, Ho, align_corners)
            # d theta = outer(dL/d(x, y), (x_j, y_i, 1))
            sh[0, tid] = dx * xb
            sh[1, tid] = dx * yb
            sh[2, tid] = dx
            sh[3, tid] = dy * xb
            sh[4, tid] = dy * yb
            sh[5, tid] = dy
            cuda.syncthreads()
            stride = half
            while stride > 0:
                if tid < stride and tid + stride < nthreads:
                    for k in range(6):
                        sh[k, tid] += sh[k, tid + stride]
                cuda.syncthreads()
                stride //= 2
            if tid < 6:
                partial[n, cuda.blockIdx.y, cuda.blockIdx.x, tid] = sh[tid, 0]
            cuda.syncthreads()  # sh is reused by the next image

    @cuda.jit
    def grid_sample_backward_chunks(gout, src, grid, buf, ggrid, mode, padding, align_corners):
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
                                  np.float64(grid[n, i, j, 1]), buf, t, mode, padding,
                                  align_corners, False)
                ggrid[n, i, j, 0] = dx
                ggrid[n, i, j, 1] = dy

    @cuda.jit
    def affine_warp_backward_chunks(gout, src, theta, buf, dxy, mode, padding, align_corners):
        """Deterministic twin of affine_warp_backward (see grid_sample_backward_chunks)."""
        t = cuda.grid(1)
        N, Ho, Wo, _ = gout.shape
        K = buf.shape[0] // N
        if t >= N * K:
            return
        n = t // K
        k = t - n * K
        for i in range(k * Ho // K, (k + 1) * Ho // K):
            for j in range(Wo):
                x, y = warp_point(theta, n, i, j, Ho, Wo, align_corners)
                dx, dy = backprop(src, gout, n, i, j, x, y, buf, t, mode, padding, align_corners,
                                  False)
                dxy[n, i, j, 0] = dx
                dxy[n, i, j, 1] = dy

    return SimpleNamespace(
        grid_sample_backward=grid_sample_backward, affine_warp_backward=affine_warp_backward,
        grid_sample_backward_chunks=grid_sample_backward_chunks,
        affine_warp_backward_chunks=affine_warp_backward_chunks,
        backprop=backprop, warp_point=warp_point)


def reduce_kernels() -> SimpleNamespace:
    """dtype-generic helpers of the backward: zero fill, chunk sums, theta reductions."""
    if "reduce" not in _built:
        _built["reduce"] = SimpleNamespace(
            fill_zero=cuda.jit(_fill_zero), sum_chunks=cuda.jit(_sum_chunks),
            theta_from_partials=cuda.jit(_theta_from_partials),
            theta_rows=cuda.jit(_theta_rows), theta_grad=cuda.jit(_theta_grad),
            sum_batch=cuda.jit(_sum_batch))
    return _built["reduce"]


def _fill_zero(flat):
    """flat[k] = 0 (flat: a contiguous 1-D view of the buffer)."""
    k = cuda.grid(1)
    if k < flat.shape[0]:
        flat[k] = 0


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


def _theta_rows(dxy, rows, align_corners):
    """rows[n, i] = (sum_j dx, sum_j dx x_j, sum_j dy, sum_j dy x_j), j in order."""
    r = cuda.grid(1)
    N, Ho, Wo, _ = dxy.shape
    if r >= N * Ho:
        return
    n = r // Ho
    i = r - n * Ho
    sx = 0.0
    sxx = 0.0
    sy = 0.0
    syx = 0.0
    for j in range(Wo):
        xb = base_coord(j, Wo, align_corners)
        dx = dxy[n, i, j, 0]
        dy = dxy[n, i, j, 1]
        sx += dx
        sxx += dx * xb
        sy += dy
        syx += dy * xb
    rows[n, i, 0] = sx
    rows[n, i, 1] = sxx
    rows[n, i, 2] = sy
    rows[n, i, 3] = syx


def _theta_grad(rows, gtheta, align_corners):
    """gtheta[n] = sum_i [[S_dx x, y_i S_dx, S_dx], [S_dy x, y_i S_dy, S_dy]], i in order."""
    n = cuda.grid(1)
    N, Ho, _ = rows.shape
    if n >= N:
        return
    t00 = 0.0
    t01 = 0.0
    t02 = 0.0
    t10 = 0.0
    t11 = 0.0
    t12 = 0.0
    for i in range(Ho):
        yb = base_coord(i, Ho, align_corners)
        t00 += rows[n, i, 1]
        t01 += rows[n, i, 0] * yb
        t02 += rows[n, i, 0]
        t10 += rows[n, i, 3]
        t11 += rows[n, i, 2] * yb
        t12 += rows[n, i, 2]
    gtheta[n, 0, 0] = t00
    gtheta[n, 0, 1] = t01
    gtheta[n, 0, 2] = t02
    gtheta[n, 1, 0] = t10
    gtheta[n, 1, 1] = t11
    gtheta[n, 1, 2] = t12


def _theta_from_partials(partial, gtheta):
    """gtheta[n].flat[k] = sum of partial[n, :, :, k] in block order (row-major)."""
    t = cuda.grid(1)
    N, BY, BX, _ = partial.shape
    if t >= N * 6:
        return
    n = t // 6
    k = t - 6 * n
    s = 0.0
    for by in range(BY):
        for bx in range(BX):
            s += partial[n, by, bx, k]
    gtheta[n, k // 3, k - 3 * (k // 3)] = s


def _sum_batch(gtheta, out):
    """out[0] = gtheta[0] + gtheta[1] + ... (the gradient of a theta shared by the batch)."""
    k = cuda.grid(1)
    if k >= 6:
        return
    r = k // 3
    c = k - 3 * r
    s = 0.0
    for n in range(gtheta.shape[0]):
        s += gtheta[n, r, c]
    out[0, r, c] = s
