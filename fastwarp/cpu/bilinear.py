"""Bilinear sampling on the CPU: the rows of a forward warp, shared by every padding mode.

A bilinear row runs in three parts, all in the functions of this module, which
are compiled once per image dtype and channel-count class (1, 3, 4, any other;
the count a literal) and shared by every padding mode, the mode being a runtime
argument:

* the points whose four taps are all inside the image: an affine row's
  interior span in one branch-free loop (``span.interior_loop``), any other
  row's interior points eight at a time (``span.point_row``);
* with zeros or constant padding, the runs of an affine row whose points read
  only the fill (found by binary search: an affine row's points are monotone in
  the column), copied from a row of fill values;
* every other point, one at a time (:func:`edge_points`): the coordinate padded
  (border, reflection, TensorFlow's wrap), then the interior blend, the fill, or
  the per-tap path (:func:`bilinear_point`) where taps lie outside.

v = (1 - fy) ((1 - fx) I00 + fx I01) + fy ((1 - fx) I10 + fx I11), each tap
outside the image reading the fill value (0 for zeros) or wrapping around (wrap).
"""

from __future__ import annotations

import math

import numpy as np

from ..core.coords import BORDER, CONSTANT, REFLECTION, TF_WRAP, WRAP, ZEROS, pad_pixel
from ..core.runtime import numba_only as jit  # (only Numba code calls these)
from ..core.runtime import shared  # (Python or the GPU kernels call these too)
from .rows import AFFINE, pixel_affine, row_pixels
from .span import (
    blend_taps,
    helper,
    interior_loop,
    point_row,
    row_interior,
    span,
)
from .store import acc_type, to_output


@jit
def bound_index(k, n):
    """Integer tap coordinate k (a float) as an index, or -1 outside [0, n - 1]."""
    if k < 0.0 or k > n - 1:
        return -1
    return int(k)


@jit
def wrap_index(k, n):
    """k mod n for an integer-valued float k (wrap padding)."""
    return int(k - n * math.floor(k / n))


@shared
def linear_pair(x, n, padding, align_corners):
    """The two bilinear tap indices of a (padded) pixel coordinate x and the fraction.

    The coordinate was padded already, so a tap index is only wrapped (wrap) or
    checked against the image (every other mode): :func:`tap_index` of WRAP or
    CONSTANT, without compiling the other modes' index padding."""
    f = math.floor(x)
    if padding == WRAP:
        return wrap_index(f, n), wrap_index(f + 1.0, n), x - f
    return bound_index(f, n), bound_index(f + 1.0, n), x - f


@jit
def bilinear_point(src, n, x, y, fill, o, ob, padding, align_corners):
    """General bilinear path: o[ob + c] from the two taps per axis of the (padded) pixel
    point (x, y), each tap reading the image or, outside it, the fill.

    A plain call (not inlined), compiled once per dtype for every padding mode:
    it serves the points near and beyond the edges, which keeps each
    combination's kernel small."""
    H = src.shape[1]
    W = src.shape[2]
    x0, x1, fx = linear_pair(x, W, padding, align_corners)
    y0, y1, fy = linear_pair(y, H, padding, align_corners)
    for c in range(src.shape[3]):
        f = fill[c]
        v00 = src[n, y0, x0, c] if y0 >= 0 and x0 >= 0 else f
        v01 = src[n, y0, x1, c] if y0 >= 0 and x1 >= 0 else f
        v10 = src[n, y1, x0, c] if y1 >= 0 and x0 >= 0 else f
        v11 = src[n, y1, x1, c] if y1 >= 0 and x1 >= 0 else f
        top = (1.0 - fx) * v00 + fx * v01
        bot = (1.0 - fx) * v10 + fx * v11
        o[ob + c] = to_output((1.0 - fy) * top + fy * bot, o)


@span
def copy_run(dst, d0, src, s0, n):
    """dst[d0:d0 + n] = src[s0:s0 + n] (flat arrays), as one straight loop (unsigned
    indices: no negative-index wraparound, so LLVM vectorizes it)."""
    ud = np.uint64(d0)
    us = np.uint64(s0)
    for k in range(np.uint64(n)):
        dst[ud + k] = src[us + k]


@helper
def _first_beyond(v, s, bound, ka, kb):
    """The first j in [ka, kb) with s v[j] > s bound (kb if none), for s v monotone
    rising in j (s = +1 or -1: negation is exact).  A binary search."""
    lo = ka
    hi = kb
    while lo < hi:
        mid = (lo + hi) // 2
        if s * v[mid] > s * bound:
            hi = mid
        else:
            lo = mid + 1
    return lo


@helper
def _first_reaching(v, s, bound, ka, kb):
    """As :func:`_first_beyond` with s v[j] >= s bound."""
    lo = ka
    hi = kb
    while lo < hi:
        mid = (lo + hi) // 2
        if s * v[mid] >= s * bound:
            hi = mid
        else:
            lo = mid + 1
    return lo


@helper
def _clip_axis(v, lo, hi, ka, kb):
    """[ka, kb) narrowed to the columns with lo < v[j] < hi, for v monotone in j."""
    if kb <= ka:
        return ka, ka
    if v[ka] <= v[kb - 1]:
        # rising: from the first v > lo to the first v >= hi
        return _first_beyond(v, 1.0, lo, ka, kb), _first_reaching(v, 1.0, hi, ka, kb)
    # falling: from the first v < hi to the first v <= lo
    return _first_beyond(v, -1.0, hi, ka, kb), _first_reaching(v, -1.0, lo, ka, kb)


@span
def reach_range(xs, ys, W, H, Wo):
    """The columns [ka, kb) of a row whose points have some bilinear tap inside the image
    (-1 < x < W and -1 < y < H), for a row whose points are monotone in j (an affine row):
    every point outside it reads only the fill.  Four binary searches (inlined: one
    compiled function)."""
    # (float bounds and a non-literal 0: one compiled _clip_axis)
    ka, kb = _clip_axis(xs, -1.0, float(W), np.int64(0), Wo)
    ka, kb = _clip_axis(ys, -1.0, float(H), ka, kb)
    return ka, max(ka, kb)


# output rows ahead whose taps the span loop asks for, and the image size from which
# it does (see prefetch_offset)
AHEAD_ROWS = 3
PREFETCH_MIN_BYTES = 1 << 16


@helper
def prefetch_offset(dx, dy, W, C, reach):
    """The flat offset from the first tap of a point of output row i to the bottom tap
    row (``reach`` rows below the first: 1 bilinear, 3 bicubic) of the same column's
    point AHEAD_ROWS rows further down, for points that move by (dx, dy) input pixels
    per output row; 0 (no hint) for a move that is not finite or beyond 1e9 px.

    The row loops ask for those lines while they blend row i: the hardware prefetcher
    does not follow a rotated walk, and the lines a later row reads first (its leading
    edge) then arrive before that row needs them.  Images under PREFETCH_MIN_BYTES skip
    it (they stay in the L2 cache).
    """
    if not (abs(dx) < 1e9 and abs(dy) < 1e9):  # false for NaN
        return 0
    return (round(AHEAD_ROWS * dy + reach) * W + round(AHEAD_ROWS * dx)) * C


def _rows_function(cclass):
    """The bilinear rows with ``cclass`` channels compiled in (0: any count, read from the
    output), as one ordinary compiled function (see the note above ``rows_c1``)."""

    def rows(src, grid, theta, fill, out, source, padding, align_corners, r0, r1, xbs, xs, ys, fillrow, scr,
             wscr, wacc, inside, rest):
        C = out.shape[3] if cclass == 0 else cclass
        # One loop body, no per-row helper with many array arguments: every such call costs two
        # atomic reference-count updates per array, which on 32-pixel rows outweighed the rows.
        N, Ho, Wo, _ = out.shape
        H = src.shape[1]
        W = src.shape[2]
        s = src.reshape(-1)
        o = out.reshape(-1)
        one = acc_type(1.0, s)
        fills = padding == ZEROS or padding == CONSTANT
        clamps = padding == BORDER and W >= 2 and H >= 2
        pa = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        ahead = 0
        big = H * W * C * s.itemsize >= PREFETCH_MIN_BYTES
        last = -1
        prev_n = -1
        for r in range(r0, r1):
            n = r // Ho
            i = r - n * Ho
            if source == AFFINE and n != last:
                pa = pixel_affine(theta, n, W, H, Wo, Ho, align_corners)
                # (the point moves by (pa[1], pa[4]) input pixels per output row)
                ahead = prefetch_offset(pa[1], pa[4], W, C, 1) if big else 0
                last = n
            prev_x = xs[Wo // 2]  # the previous row's middle point (projective and grid rows)
            prev_y = ys[Wo // 2]
            same = prev_n == n
            prev_n = n
            # (an affine row with border padding is one span over every column: it needs only
            # the first column's point)
            linear = row_pixels(grid, theta, n, i, H, W, Ho, Wo, source, align_corners, pa, xbs, xs, ys,
                                not clamps)
            ux, dux, uy, duy = xs[0], pa[0], ys[0], pa[3]
            ob = (n * Ho + i) * Wo * C
            ja = 0
            jb = 0
            if linear:
                # an affine row: the columns whose taps are all inside in one branch-free loop;
                # with border padding, whose clamp the loop applies, every column (row_pixels
                # takes a row into its affine loop only within span.row_in_range's bounds)
                if clamps:
                    jb = Wo
                else:
                    ja, jb = row_interior(ux, dux, uy, duy, W, H, Wo)
                if jb > ja:
                    interior_loop(s, o, ob, n * H, W, H, ux, dux, uy, duy, ja, jb, C, scr, wscr, wacc, ahead)
            ka = 0
            kb = Wo
            nr = 0
            if fills and linear:
                # beyond [ka, kb) every tap of the row's points lies outside: the fill
                ka, kb = reach_range(xs, ys, W, H, Wo)
                copy_run(o, ob, fillrow, ka - ka, ka * C)  # (ka - ka: not a literal 0, one specialization)
                copy_run(o, ob + kb * C, fillrow, kb * C, (Wo - kb) * C)
                if jb <= ja:
                    ja = ka
                    jb = ka
            elif fills:
                # grid, projective and far affine rows: the runs at either end whose points read
                # only the fill (NaN, or every tap outside: the per-point path's own test) are
                # written as fill runs; the right run after point_row, whose last pixel may spill
                while ka < kb and not (xs[ka] > -1.0 and ys[ka] > -1.0 and xs[ka] < W and ys[ka] < H):
                    ka += 1
                while kb > ka and not (xs[kb - 1] > -1.0 and ys[kb - 1] > -1.0 and xs[kb - 1] < W
                                       and ys[kb - 1] < H):
                    kb -= 1
                copy_run(o, ob, fillrow, ka - ka, ka * C)
                ja = ka
                jb = ka
            if not linear:
                # grid, projective and far affine rows: the points whose taps are all inside
                # (between the fill runs)
                # rows further down read about where this one does, moved as the middle point moved
                # from the previous row of the image
                pahead = 0
                if same and big:
                    pahead = prefetch_offset(xs[Wo // 2] - prev_x, ys[Wo // 2] - prev_y, W, C, 1)
                nr = point_row(s, o, ob, n * H * W * C, W, H, Wo, ka, kb, C, xs, ys, scr, wscr, wacc, inside,
                               rest, pahead)
                if fills:
                    copy_run(o, ob + kb * C, fillrow, kb * C, (Wo - kb) * C)
            # the columns [ka, ja) and [jb, kb) of an affine row, the columns point_row left of
            # any other row, point by point: padding, then the blend, the fill or the per-tap path
            before = ja - ka
            for k in range(before + (kb - jb) if linear else nr):
                if not linear:
                    j = rest[k]
                else:
                    j = ka + k if k < before else jb + (k - before)
                ob = ((n * Ho + i) * Wo + j) * C
                x = xs[j]
                y = ys[j]
                if x != x or y != y:  # NaN: no image
                    for c in range(C):
                        o[ob + c] = to_output(fill[c], o)
                    continue
                if padding == BORDER or padding == REFLECTION or padding == TF_WRAP:
                    x = pad_pixel(x, W, padding, align_corners)
                    y = pad_pixel(y, H, padding, align_corners)
                if x >= 0.0 and y >= 0.0 and x < W - 1 and y < H - 1:
                    # all four taps inside
                    ix = int(x)
                    iy = int(y)
                    wx = acc_type(x - ix, s)
                    wy = acc_type(y - iy, s)
                    blend_taps(s, o, ob, ((n * H + iy) * W + ix) * C, W * C, wx, one - wx, wy, one - wy, C,
                               False, False)
                    continue
                if fills and not (x > -1.0 and y > -1.0 and x < W and y < H):
                    for c in range(C):  # every tap outside: the fill
                        o[ob + c] = to_output(fill[c], o)
                    continue
                if padding == WRAP:
                    # tap indices modulo the size: the 2 x 2 taps floor(x) + {0, 1} mod W stay
                    # adjacent unless they straddle the seam (same fractions as the per-tap path)
                    x0 = math.floor(x)
                    y0 = math.floor(y)
                    ix = int(x0) % W  # = wrap_index(x0, W), in integers: no call, no division
                    iy = int(y0) % H
                    if ix < W - 1 and iy < H - 1:
                        wx = acc_type(x - x0, s)
                        wy = acc_type(y - y0, s)
                        blend_taps(s, o, ob, ((n * H + iy) * W + ix) * C, W * C, wx, one - wx, wy, one - wy,
                                   C, False, False)
                        continue
                bilinear_point(src, n, x, y, fill, o, ob, padding, align_corners)

    return span(rows)


# The bilinear rows as ordinary (not inlined) functions, one per channel-count class with
# the count a closure constant (a literal, which reaches the SIMD blend): each is compiled
# once per image dtype (and coordinate-source array types) and shared by every bilinear
# kernel, whatever the padding.  (One body, not a helper inlined into four wrappers: Numba's
# IR inlining copies and retypes the callee, which cost the first call about a second.)
#
# rows_cX(src, grid, theta, fill, out, source, padding, align_corners, r0, r1, xbs, xs, ys,
#         fillrow, scr, wscr, wacc, inside, rest):
# output rows r0 .. r1 - 1 (of the flattened (N, Ho)), bilinear.  xbs: the output columns'
# normalized x (``rows.base_coords``); xs, ys: room for a row's pixel points plus 8 NaNs;
# ``fillrow``: the fill value repeated over a row (zeros and constant padding); scratch: scr,
# wscr (float32 weights), wacc (float64 weights), inside, rest (see ``span.point_row``).
rows_c1 = _rows_function(1)
rows_c3 = _rows_function(3)
rows_c4 = _rows_function(4)
rows_cn = _rows_function(0)
