"""The branch-free bilinear span loop of the affine warp's CPU kernels.

Along an output row of an affine warp the source point is affine in the column
j: pixel (ux + j dux, uy + j duy).  The columns whose four bilinear taps are all
inside the image form one interval, found once per row (:func:`row_interior`),
and read by :func:`interior_loop` without branches.  With border padding the
loop, which clamps the point into the image, takes every column.
``fastwarp.cpu.generic`` calls the loop from the per-combination forward
kernels; the columns outside the interval go through its general per-point
path.

Arithmetic: float64 and uint16 images compute the coordinates in float64 and
blend in float64.  float32 and uint8 images step them in 32.32 fixed point and
blend in float32 (uint8 then rounds to nearest, ties up).  3- and 4-channel
pixels of float32, uint8 and uint16 blend as SIMD vectors (``fastwarp.cpu.simd``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from ..core.runtime import NUMBA_ONLY
from .simd import blend_pixel, point_taps, prefetch, span_points, span_taps
from .store import acc_type, to_output

# 'contract' lets LLVM fuse a * b + c into one FMA; nnan/ninf stay off because
# the kernels rely on NaN checks.
FASTMATH = {"contract"}
# Numba-IR inlining for the hot loops: it lets a literal channel count reach LLVM
# as a constant and avoids a call (with reference counting) per pixel or span.
always_inline = njit(nogil=True, cache=True, fastmath=FASTMATH, inline="always")
# Small scalar helpers as ordinary functions: LLVM inlines them all the same, and
# Numba-IR inlining (a deep copy and re-analysis of the callee at every call site)
# cost the first call seconds of compilation.
helper = njit(nogil=True, cache=True, fastmath=FASTMATH, **NUMBA_ONLY)

# The span loop takes rows whose pixel coordinates are below this bound (which
# keeps every float -> int conversion in range).
PIXEL_LIMIT = 2.0**30


@always_inline
def lerp_channels(s, o, ob, b00, b01, b10, b11, fx, gx, fy, gy, C):
    """o[ob + c] = bilinear mix of the taps at flat offsets b.. (+ c), for c < C, with
    the fractions fx, fy and their complements gx = 1 - fx, gy = 1 - fy.

    Vertical lerps first, then the horizontal one, as the SIMD blend does:
    left = gy p00 + fy p10, right = gy p01 + fy p11, v = gx left + fx right; a
    weight of 0 or 1 gives the tap exactly (identity, integer shifts, a point
    clamped to the last row or column).  The offsets are made unsigned, which
    spares every load Numba's negative-index wraparound.
    """
    u00 = np.uint64(b00)
    u01 = np.uint64(b01)
    u10 = np.uint64(b10)
    u11 = np.uint64(b11)
    uo = np.uint64(ob)
    for c in range(C):
        k = np.uint64(c)
        left = gy * acc_type(s[u00 + k], s) + fy * acc_type(s[u10 + k], s)
        right = gy * acc_type(s[u01 + k], s) + fy * acc_type(s[u11 + k], s)
        o[uo + k] = to_output(gx * left + fx * right, o)


def blend_taps(s, o, ob, b, row, fx, gx, fy, gy, C, spill, safe):  # pragma: no cover - overloaded below
    """o[ob + c] = the bilinear blend of the 2 x 2 taps at flat offsets b, b + C, b + row,
    b + row + C (channel c), c < C, with the fractions fx, fy and gx = 1 - fx,
    gy = 1 - fy in the accumulation type.  3- and 4-channel float32, uint8 and uint16
    pixels (C a literal) blend as SIMD vectors (``simd.blend_pixel``), every other pixel
    with :func:`lerp_channels`.  ``spill`` (a literal): a 3-channel pixel may write
    o[ob + 3], which the caller writes afterwards.  ``safe`` (a literal): the caller
    knows that 8 values from b + row lie inside s; otherwise a 3-channel pixel
    checks, and reads only its taps near the end of s."""
    raise NotImplementedError


@overload(blend_taps, inline="always", prefer_literal=True,
          jit_options={"cache": True, "fastmath": FASTMATH, **NUMBA_ONLY})
def _blend_taps(s, o, ob, b, row, fx, gx, fy, gy, C, spill, safe):
    vector = (isinstance(C, types.IntegerLiteral) and C.literal_value in (3, 4)
              and s.dtype in (types.float32, types.uint8, types.uint16) and o.dtype == s.dtype)
    if not vector:
        return lambda s, o, ob, b, row, fx, gx, fy, gy, C, spill, safe: lerp_channels(
            s, o, ob, b, b + C, b + row, b + row + C, fx, gx, fy, gy, C)
    nc = C.literal_value
    sp = bool(getattr(spill, "literal_value", False))
    known = nc == 4 or bool(getattr(safe, "literal_value", False))

    def impl(s, o, ob, b, row, fx, gx, fy, gy, C, spill, safe):
        # an 8-lane row load reads 2 C values, and 8 - 2 C past them
        if known or b + row + 8 <= s.size:
            blend_pixel(s, o, b, row, ob, fx, gx, fy, gy, nc, sp, False)
        else:
            blend_pixel(s, o, b, row, ob, fx, gx, fy, gy, nc, sp, True)

    return impl


@helper
def is_interior(x, y, W, H):
    """All four bilinear taps of pixel point (x, y) are inside the image."""
    return x >= 0.0 and x < W - 1 and y >= 0.0 and y < H - 1


# fixed-point pixel coordinates: X = x * 2**FRAC_BITS in an int64
FRAC_BITS = 32
FRAC_ONE = 2.0**FRAC_BITS


@helper
def to_fixed(v):
    """round(v * 2**32) as an int64, for |v| < 2**30."""
    return np.int64(math.floor(v * FRAC_ONE + 0.5))


@always_inline
def prefetch_ahead(s, offs, m, ahead):
    """Ask for s[offs[t] + ahead] (clamped into s), every other t < m: the taps of a row
    further down (``bilinear.prefetch_offset``); nothing when ``ahead`` is 0."""
    if ahead != 0:
        top = s.size - 1
        for t in range(0, m, 2):
            prefetch(s, min(max(offs[t] + ahead, 0), top))


@always_inline
def _blend_span(s, o, ot, row, offs, w, m, last, safe, C, ahead):
    """Pass 2 of the span loops: pixels t < m at o[ot + t C], their taps at offs[t], the
    fractions and complements in w's rows (fx, fy, 1 - fx, 1 - fy).  A 3-channel pixel
    t < last may spill its store into pixel t + 1, written next; ``safe``: every
    pixel's 8-value row loads stay inside s.  ``ahead`` (unless 0): first ask for the
    lines at offs[t] + ahead, every other pixel (the taps of a row further down)."""
    prefetch_ahead(s, offs, m, ahead)
    fx = w[0]
    fy = w[1]
    gx = w[2]
    gy = w[3]
    if safe:
        for t in range(last):
            blend_taps(s, o, ot + t * C, offs[t], row, fx[t], gx[t], fy[t], gy[t], C, True, True)
    else:
        for t in range(last):
            blend_taps(s, o, ot + t * C, offs[t], row, fx[t], gx[t], fy[t], gy[t], C, True, False)
    for t in range(last, m):
        blend_taps(s, o, ot + t * C, offs[t], row, fx[t], gx[t], fy[t], gy[t], C, False, False)


@always_inline
def _interior_fixed(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, C, scr, wscr, ahead):
    # X_j = round(x_ja 2**32) + (j - ja) round(dux 2**32), likewise Y (see interior_loop)
    row = W * C
    xmax = np.int64(W - 1) << FRAC_BITS
    ymax = np.int64(H - 1) << FRAC_BITS
    # |dux| < 2**30 whenever the span has two or more columns; the clamp only
    # keeps a one-column span's unused step in range
    X0 = to_fixed(ux + ja * dux)
    Y0 = to_fixed(uy + ja * duy)
    DX = to_fixed(min(max(dux, -2.0**30), 2.0**30))
    DY = to_fixed(min(max(duy, -2.0**30), 2.0**30))
    # a pixel's 8-value loads stay inside s unless its taps touch the last row and
    # column of the batch's last image: x0, y0 are monotone along the span, so its
    # ends bound them
    n = jb - ja
    last_x0 = max(min(max(X0, 0), xmax) >> FRAC_BITS, min(max(X0 + (n - 1) * DX, 0), xmax) >> FRAC_BITS)
    last_y0 = max(min(max(Y0, 0), ymax) >> FRAC_BITS, min(max(Y0 + (n - 1) * DY, 0), ymax) >> FRAC_BITS)
    safe = (img + H) * row < s.size or last_x0 < W - 2 or last_y0 < H - 2
    offs = scr[0]
    for t0 in range(0, n, offs.size):
        m = min(offs.size, n - t0)
        # pass 1, eight pixels per step as SIMD vectors: clamp into the image,
        # x0 = floor(x) (at most W-2), the tap offset, the fractions and their complements
        for t in range(0, m, 8):
            span_taps(offs, wscr, t, X0 + (t0 + t) * DX, DX, Y0 + (t0 + t) * DY, DY, xmax, ymax,
                      W - 2, H - 2, img * row, row, C)
        # pass 2: read the taps and interpolate (the span's last pixel may not spill)
        _blend_span(s, o, ob + (ja + t0) * C, row, offs, wscr, m, m if t0 + m < n else m - 1, safe, C, ahead)


@always_inline
def _interior_exact(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, C, scr, wacc, ahead):
    # float64 points, eight per step (simd.span_points)
    row = W * C
    n = jb - ja
    # as in _interior_fixed, with one pixel of margin: the vector's floor may differ
    # from this scalar one where a multiply-add is fused in one and not the other
    last_x0 = int(max(min(max(ux + ja * dux, 0.0), W - 1.0), min(max(ux + (jb - 1) * dux, 0.0), W - 1.0)))
    last_y0 = int(max(min(max(uy + ja * duy, 0.0), H - 1.0), min(max(uy + (jb - 1) * duy, 0.0), H - 1.0)))
    safe = (img + H) * row < s.size or last_x0 < W - 3 or last_y0 < H - 3
    offs = scr[0]
    for t0 in range(0, n, offs.size):
        m = min(offs.size, n - t0)
        for t in range(0, m, 8):
            span_points(offs, wacc, t, ja + t0 + t, ux, dux, uy, duy, W - 2, H - 2, img * row, row, C)
        _blend_span(s, o, ob + (ja + t0) * C, row, offs, wacc, m, m if t0 + m < n else m - 1, safe, C, ahead)


def interior_loop(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, C, scr, wscr, wacc,
                  ahead):  # pragma: no cover
    """Columns ja <= j < jb of a row, bilinear, W >= 2 and H >= 2: pixel
    (ux + j dux, uy + j duy) clamped into [0, W-1] x [0, H-1], read from the 2x2
    block at (min(floor(y), H-2), min(floor(x), W-2)).

    For interior columns the clamp does nothing (it only guards the taps should
    a product round differently, by FMA contraction, from the one that chose
    the interval); for any column it is exactly border padding, which is how
    border spans use this loop for all their columns.  Floor is truncation
    after the clamp.

    Both loops run in two passes over the span: eight pixels at a time as SIMD
    vectors, every pixel's tap offset (into ``scr[0]``) and fractions with their
    complements, then the reads and blends (:func:`blend_taps`).  float64 and
    uint16 images compute the points in float64, x_j = ux + j dux
    (``simd.span_points``, fractions into the float64 ``wacc``), and
    blend in float64, as the reference does.  float32 and uint8 images step them
    in 32.32 fixed point (``simd.span_taps``): X_j = round(x_ja 2**32) + (j - ja)
    round(dux 2**32), integer adds instead of a float multiply-add and two
    float -> int conversions per pixel; x_j is then off by at most
    (j - ja + 1) 2**-33 px (below 1e-8 px for a 32-column span), far below what
    float32 accumulation resolves, and the clamp keeps that drift inside the
    image; their fractions are rounded to 2**-24 (into the float32 ``wscr``).
    """
    raise NotImplementedError


# An ordinary (not inlined) function per image dtype and channel count (a literal for 1, 3
# and 4 channels, which reaches the SIMD blend): an inlined overload is compiled on its own
# and then once more inside each caller.
@overload(interior_loop, prefer_literal=True, jit_options={"cache": True, "fastmath": FASTMATH, **NUMBA_ONLY})
def _interior_loop(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, C, scr, wscr, wacc, ahead):
    """One loop body per image dtype, chosen when typing (see :func:`interior_loop`)."""
    if s.dtype in (types.float64, types.uint16):
        def exact(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, C, scr, wscr, wacc, ahead):
            _interior_exact(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, C, scr, wacc, ahead)
        return exact

    def fixed(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, C, scr, wscr, wacc, ahead):
        _interior_fixed(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, C, scr, wscr, ahead)
    return fixed


span = njit(nogil=True, cache=True, fastmath=FASTMATH, **NUMBA_ONLY)


@span
def _point_row(s, o, ob, base, W, H, Wo, ka, kb, C, xs, ys, scr, w, inside, rest, ahead):
    offs = scr[0]
    nr = 0
    row = W * C
    # a pixel's 8-value row loads stay inside s unless n is the batch's last image
    safe = base + H * row + 8 <= s.size
    for t0 in range(ka, kb, offs.size):
        m = min(offs.size, kb - t0)
        for t in range(0, m, 8):
            point_taps(xs, ys, t0 + t, W, H, base, row, C, offs, w, inside, t)
        if not safe:
            # the points whose loads would pass the end go to the per-point path (the same blend)
            for t in range(m):
                if offs[t] + row + 8 > s.size:
                    inside[t] = 0
        # ask for the taps' lines before blending them (measured: a projective warp of
        # 32 x 224 x 224 x 3 float32 images 8.6-9.8 -> 6.4 ms; the affine span loop gained nothing)
        for t in range(m):
            if inside[t]:
                prefetch(s, offs[t])
                prefetch(s, offs[t] + row)
        prefetch_ahead(s, offs, m, ahead)  # and the taps of a row further down
        # a pixel may spill into the next column, except the row's last one (the caller's
        # per-point path and fill runs write the columns left to them afterwards)
        last = m if t0 + m < Wo else m - 1
        for t in range(m):
            if not inside[t]:
                rest[nr] = t0 + t  # left to the caller's per-point path
                nr += 1
            elif t < last:
                blend_taps(s, o, ob + (t0 + t) * C, offs[t], row, w[0, t], w[2, t], w[1, t], w[3, t], C,
                           True, True)
            else:
                blend_taps(s, o, ob + (t0 + t) * C, offs[t], row, w[0, t], w[2, t], w[1, t], w[3, t], C,
                           False, True)
    return nr


def point_row(s, o, ob, base, W, H, Wo, ka, kb, C, xs, ys, scr, wscr, wacc, inside, rest,
              ahead):  # pragma: no cover
    """The bilinear points among columns [ka, kb) of a row of Wo (pixel coordinates
    xs[j], ys[j]) whose four taps are all inside the image, eight at a time
    (``simd.point_taps``), blended like the span loop's pixels
    (:func:`span.blend_taps`) with weights in the accumulation type (``wscr``:
    float32, ``wacc``: float64).  Returns the number nr of the other columns, listed
    in rising order in rest[:nr] for the caller's per-point path.  A 3-channel pixel
    may spill into the next column, which is written after it (here or by the
    caller).  ``ahead`` (unless 0): the offset from a point's taps to where a row
    further down reads, asked for ahead of time."""
    raise NotImplementedError


@overload(point_row, prefer_literal=True, jit_options={"cache": True, "fastmath": FASTMATH, **NUMBA_ONLY})
def _point_row_overload(s, o, ob, base, W, H, Wo, ka, kb, C, xs, ys, scr, wscr, wacc, inside, rest, ahead):
    if s.dtype in (types.float32, types.uint8):
        def narrow(s, o, ob, base, W, H, Wo, ka, kb, C, xs, ys, scr, wscr, wacc, inside, rest, ahead):
            return _point_row(s, o, ob, base, W, H, Wo, ka, kb, C, xs, ys, scr, wscr, inside, rest, ahead)
        return narrow

    def wide(s, o, ob, base, W, H, Wo, ka, kb, C, xs, ys, scr, wscr, wacc, inside, rest, ahead):
        return _point_row(s, o, ob, base, W, H, Wo, ka, kb, C, xs, ys, scr, wacc, inside, rest, ahead)
    return wide


@helper
def interior_range(u, d, hi, j0, j1):
    """Estimate of the columns j in [j0, j1) with 0 <= u + j d < hi, as [ja, jb).

    The caller verifies the ends (rounding may be off by one either way); the
    estimate only decides which columns take the branch-free loop.
    """
    if d == 0.0:
        if u >= 0.0 and u < hi:
            return j0, j1
        return j0, j0
    a = (0.0 - u) / d
    b = (hi - u) / d
    if d < 0.0:
        a, b = b, a
    # clamp before converting so a tiny step cannot overflow the integer
    a = min(max(a, j0 - 1.0), j1 + 1.0)
    b = min(max(b, j0 - 1.0), j1 + 1.0)
    ja = max(int(math.floor(a)) + 1, j0)
    jb = min(int(math.ceil(b)), j1)
    return ja, jb


@helper
def row_in_range(ux, dux, uy, duy, Wo):
    """Both ends of the row x_j = ux + j dux, y_j = uy + j duy are within PIXEL_LIMIT."""
    return (abs(ux) < PIXEL_LIMIT and abs(ux + (Wo - 1) * dux) < PIXEL_LIMIT
            and abs(uy) < PIXEL_LIMIT and abs(uy + (Wo - 1) * duy) < PIXEL_LIMIT)


@span
def row_interior(ux, dux, uy, duy, W, H, Wo):
    """The columns [ja, jb) of a whole output row whose four bilinear taps are all inside.

    Along a row the pixel point (ux + j dux, uy + j duy) is affine in j, so
    these columns form one interval: estimated from the two axes' intervals,
    then its ends are checked with the very expressions the loops evaluate.
    Empty when an end of the row is beyond PIXEL_LIMIT (its columns then go
    through the caller's per-point path).
    """
    if not row_in_range(ux, dux, uy, duy, Wo):
        return 0, 0
    xa, xb = interior_range(ux, dux, W - 1.0, 0, Wo)
    ya, yb = interior_range(uy, duy, H - 1.0, 0, Wo)
    ja = max(xa, ya)
    jb = min(xb, yb)
    while ja < jb and not is_interior(ux + ja * dux, uy + ja * duy, W, H):
        ja += 1
    while jb > ja and not is_interior(ux + (jb - 1) * dux, uy + (jb - 1) * duy, W, H):
        jb -= 1
    if jb <= ja:
        return 0, 0
    return ja, jb
