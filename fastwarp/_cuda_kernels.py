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
from numba import cuda

from ._coords import BILINEAR, base_coord, linear_taps, nearest_tap, source_coord

_built: dict = {}


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
