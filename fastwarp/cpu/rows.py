"""Where an output row's sample points come from: a grid, an affine or a projective matrix.

:func:`row_pixels` writes the input pixel coordinates of one output row's points;
affine rows come from the pixel-space matrix (:func:`pixel_affine`), exact for the
identity and integer shifts, and are marked linear (their points are affine in the
column, which the span loop and the fill runs rely on).
"""

from __future__ import annotations

import math

from ..core.coords import HUGE, base_coord, unnormalize, unnormalize_scale
from ..core.runtime import numba_only as jit  # (only Numba code calls these)
from ..core.runtime import shared  # (Python or the GPU kernels call these too)
from .span import row_in_range

# where the sample points come from
GRID = 0
AFFINE = 1
PERSPECTIVE = 2


@shared
def project_point(t00, t01, t02, t10, t11, t12, t20, t21, t22, xb, yb, projective):
    """(x, y, w) of output point (xb, yb): (t00 xb + t01 yb + t02, ...), summed left to
    right, divided by w = t20 xb + t21 yb + t22 when projective (w = 1 otherwise).

    w <= 0 (behind the viewer) gives NaN, which reads as no image.  On scalars, so that
    the CUDA kernels call it too."""
    x = t00 * xb + t01 * yb + t02
    y = t10 * xb + t11 * yb + t12
    w = 1.0
    if projective:
        w = t20 * xb + t21 * yb + t22
        if w > 0.0:
            x = x / w
            y = y / w
        else:
            x = math.nan
            y = math.nan
    return x, y, w


@jit
def project(theta, n, xb, yb, projective):
    """:func:`project_point` of matrix theta[n] ((N, 2, 3), or (N, 3, 3) when projective)."""
    if projective:
        return project_point(theta[n, 0, 0], theta[n, 0, 1], theta[n, 0, 2], theta[n, 1, 0], theta[n, 1, 1],
                             theta[n, 1, 2], theta[n, 2, 0], theta[n, 2, 1], theta[n, 2, 2], xb, yb, True)
    return project_point(theta[n, 0, 0], theta[n, 0, 1], theta[n, 0, 2], theta[n, 1, 0], theta[n, 1, 1],
                         theta[n, 1, 2], 0.0, 0.0, 1.0, xb, yb, False)


@jit
def base_coords(Wo, align_corners, xbs):
    """xbs[j] = the normalized x of output column j (``coords.base_coord``), j < Wo: computed
    once per call rather than once per row (it costs a division per point)."""
    for j in range(Wo):
        xbs[j] = base_coord(j, Wo, align_corners)


@jit
def row_points(grid, theta, n, i, Ho, Wo, source, align_corners, xbs, gxs, gys):
    """Normalized sample points of output row i into gxs, gys (NaN: no image).

    grid: read; affine / projective: (u, v, w) = theta[n] @ (x_j, y_i, 1) as
    :func:`project` computes it, (u / w, v / w), NaN where w <= 0; xbs: the
    columns' x_j (:func:`base_coords`).  A branch-free loop that LLVM vectorizes.
    """
    if source == GRID:
        for j in range(Wo):
            gxs[j] = grid[n, i, j, 0]
            gys[j] = grid[n, i, j, 1]
        return
    yb = base_coord(i, Ho, align_corners)
    t00 = theta[n, 0, 0]
    t10 = theta[n, 1, 0]
    cu = theta[n, 0, 1] * yb
    cv = theta[n, 1, 1] * yb
    u2 = theta[n, 0, 2]
    v2 = theta[n, 1, 2]
    if source == PERSPECTIVE:
        t20 = theta[n, 2, 0]
        cw = theta[n, 2, 1] * yb
        w2 = theta[n, 2, 2]
        for j in range(Wo):
            xb = xbs[j]
            w = t20 * xb + cw + w2
            ok = w > 0.0
            gxs[j] = (t00 * xb + cu + u2) / w if ok else math.nan
            gys[j] = (t10 * xb + cv + v2) / w if ok else math.nan
    else:
        for j in range(Wo):
            xb = xbs[j]
            gxs[j] = t00 * xb + cu + u2
            gys[j] = t10 * xb + cv + v2


@jit
def pixel_ratio(n_in, n_out, align_corners):
    """Input pixels per output pixel for a unit normalized scale: s_in / s_out (0 if s_out is 0)."""
    s_out = unnormalize_scale(n_out, align_corners)
    if s_out == 0.0:
        return 0.0
    return unnormalize_scale(n_in, align_corners) / s_out


@jit
def pixel_affine(theta, n, W, H, Wo, Ho, align_corners):
    """theta[n] as a map of pixel coordinates, output -> input: x = a00 (j - cx) + a01 (i - cy) + a02,
    y = a10 (j - cx) + a11 (i - cy) + a12, with (cx, cy) the output's centre.

    Equal to unnormalize(theta[n] @ (x_j, y_i, 1)); written this way the identity and
    same-size integer shifts give exact integer coordinates.  Returns (a00, a01, a02,
    a10, a11, a12, x_0, x_{Wo-1}), the last two the normalized ends of a row."""
    a00 = theta[n, 0, 0] * pixel_ratio(W, Wo, align_corners)
    a01 = theta[n, 0, 1] * pixel_ratio(W, Ho, align_corners)
    a10 = theta[n, 1, 0] * pixel_ratio(H, Wo, align_corners)
    a11 = theta[n, 1, 1] * pixel_ratio(H, Ho, align_corners)
    a02 = unnormalize_scale(W, align_corners) * theta[n, 0, 2] + 0.5 * (W - 1)
    a12 = unnormalize_scale(H, align_corners) * theta[n, 1, 2] + 0.5 * (H - 1)
    return (a00, a01, a02, a10, a11, a12, base_coord(Wo - Wo, Wo, align_corners),
            base_coord(Wo - 1, Wo, align_corners))


@jit
def row_pixels(grid, theta, n, i, H, W, Ho, Wo, source, align_corners, pa, xbs, xs, ys, every):
    """Input pixel coordinates of output row i's sample points into xs, ys; NaN where
    the point is NaN, infinite or beyond ``HUGE`` (normalized), which reads as no image.
    Returns whether the row took the affine loop; there, unless ``every``, only the first
    column's point is written (the caller reads the row from it and the steps).

    affine: the pixel-space matrix ``pa`` of image n (:func:`pixel_affine`), a
    branch-free loop when both ends of the row are within HUGE (the normalized
    point is affine in j, so then every point is) and within
    ``span.PIXEL_LIMIT`` pixels; grid, projective and farther affine rows:
    unnormalize the normalized points of :func:`row_points` (beyond 2**30 px a
    float64 coordinate resolves 1e-7 px or worse, so the two formulas differ
    there by more than rounding, and the reference's is the definition).  xbs: the
    columns' normalized x (:func:`base_coords`).
    """
    if source == AFFINE:
        yb = base_coord(i, Ho, align_corners)
        xb0 = pa[6]
        xb1 = pa[7]
        cu = theta[n, 0, 1] * yb + theta[n, 0, 2]
        cv = theta[n, 1, 1] * yb + theta[n, 1, 2]
        a00, a01, a02, a10, a11, a12, _, _ = pa
        cx = 0.5 * (Wo - 1)
        ux = a01 * (i - 0.5 * (Ho - 1)) + a02
        uy = a11 * (i - 0.5 * (Ho - 1)) + a12
        if (abs(theta[n, 0, 0] * xb0 + cu) < HUGE and abs(theta[n, 0, 0] * xb1 + cu) < HUGE
                and abs(theta[n, 1, 0] * xb0 + cv) < HUGE and abs(theta[n, 1, 0] * xb1 + cv) < HUGE
                and row_in_range(ux - a00 * cx, a00, uy - a10 * cx, a10, Wo)):
            for j in range(Wo if every else 1):
                xs[j] = a00 * (j - cx) + ux
                ys[j] = a10 * (j - cx) + uy
            return True
    row_points(grid, theta, n, i, Ho, Wo, source, align_corners, xbs, xs, ys)
    for j in range(Wo):
        ok = abs(xs[j]) < HUGE and abs(ys[j]) < HUGE
        xs[j] = unnormalize(xs[j], W, align_corners) if ok else math.nan
        ys[j] = unnormalize(ys[j], H, align_corners) if ok else math.nan
    return False
