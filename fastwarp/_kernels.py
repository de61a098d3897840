"""Numba CPU forward kernels: affine grid, grid sampling and the fused affine warp.

All kernels take validated, C-contiguous arrays (the checks live in
``fastwarp._validate``) and integer flags from ``fastwarp._coords``.  They are
compiled lazily on first call and cached on disk (``cache=True``).

Parallelism: ``prange`` over (image, band of output rows); each iteration
writes its own rows, so no two threads ever write the same element, and the
result does not depend on the thread count.  The fused warp walks each band in
TILE_H x TILE_W output tiles, which keeps the source footprint of a rotated
tile in cache.

Two paths compute the same function up to float rounding (the conformance
tests hold both to the NumPy reference for every flag; at an exact nearest-mode
tie the two may round a point to different neighbours):

* the general path, :func:`sample_point`, follows the definition literally:
  normalized point -> padding -> taps with per-tap validity;
* the fast path works on pixel coordinates.  Along an output row the source
  point is affine in the column, so the columns whose four taps are all inside
  the image form one interval (found once per row), read by a branch-free
  loop (:func:`interior_loop`: two horizontal lerps and one vertical).  With
  border padding that loop, which clamps the point into the image, takes every
  column.  Otherwise the other columns go through :func:`sample_pixel`:
  reflection folds the point into the image and reads clamped taps; zeros
  padding writes 0 for points wholly outside and hands the one-pixel band
  around the image to the general path.

The image is read through a flat view.  The channel count reaches the hot
loops as a literal (3 for the whole fused tile, 1, 3 and 4 for the interior
loops), so LLVM unrolls the channel loop and its SLP vectorizer (enabled for
fastwarp, see ``_runtime``) packs it into SIMD lanes.  The hot loops are
inlined at Numba-IR level; the rare paths stay ordinary calls, which keeps the
first-call compilation in the tens of seconds rather than minutes.

Arithmetic: the general path and :func:`sample_pixel` compute coordinates in
float64 and interpolate in the image's float type (float32 for float32 and
uint8 images).  The branch-free loop does the same for float64 images; for
float32 and uint8 images it steps the coordinates in 32.32 fixed point, and
uint8 images are interpolated there in integers with weights rounded to
2**-20 (:func:`lerp_channels_int`), which moves a value by less than 2.4e-4
of a grey level, so only values that close to a rounding tie can come out
one level apart from the float32 definition.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ._coords import (
    BILINEAR,
    BORDER,
    HUGE,
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
# Numba-IR inlining for the hot loops: it lets a literal channel count reach LLVM
# as a constant and avoids a call (with reference counting) per pixel or span.
always_inline = njit(nogil=True, cache=True, fastmath=FASTMATH, inline="always")

# The fast path takes points whose pixel coordinates are below this bound (which
# keeps every float -> int conversion in range) and whose normalized coordinates
# are below _coords.HUGE (on a 1-pixel axis with align_corners=True every
# normalized point lands on pixel 0, so the pixel bound alone does not imply it).
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
def lerp_channels(s, o, ob, b00, b01, b10, b11, ax, ay, C):
    """o[ob + c] = bilinear mix of the taps at flat offsets b.. (+ c), for c < C.

    Two horizontal lerps and one vertical: top = (1 - fx) p00 + fx p01,
    bot = (1 - fx) p10 + fx p11, v = (1 - fy) top + fy bot; a weight of 0 or 1
    gives the tap exactly (identity, integer shifts, a point clamped to the last
    row or column).  The offsets are made unsigned, which spares every load
    Numba's negative-index wraparound.
    """
    u00 = np.uint64(b00)
    u01 = np.uint64(b01)
    u10 = np.uint64(b10)
    u11 = np.uint64(b11)
    uo = np.uint64(ob)
    bx = acc_type(1.0, s) - ax
    by = acc_type(1.0, s) - ay
    for c in range(C):
        k = np.uint64(c)
        p00 = acc_type(s[u00 + k], s)
        p01 = acc_type(s[u01 + k], s)
        p10 = acc_type(s[u10 + k], s)
        p11 = acc_type(s[u11 + k], s)
        top = bx * p00 + ax * p01
        bot = bx * p10 + ax * p11
        o[uo + k] = to_output(by * top + ay * bot, o)


# uint8 interior loops weigh the taps with integer fractions of 2**WEIGHT_BITS
WEIGHT_BITS = 20
WEIGHT_HALF = np.int64(1) << (2 * WEIGHT_BITS - 1)


@always_inline
def lerp_channels_int(s, o, ob, b00, b01, b10, b11, fx, fy, C):
    """:func:`lerp_channels` for uint8 in integers: fx, fy in [0, 2**20] are the
    fractions in units of 2**-20.

    top = p00 2**20 + fx (p01 - p00), bot likewise, v = top 2**20 + fy (bot - top)
    is the bilinear value times 2**40, exact in int64; the result is
    floor(v / 2**40 + 0.5), always within [0, 255] (a convex combination).
    """
    u00 = np.uint64(b00)
    u01 = np.uint64(b01)
    u10 = np.uint64(b10)
    u11 = np.uint64(b11)
    uo = np.uint64(ob)
    for c in range(C):
        k = np.uint64(c)
        p00 = np.int64(s[u00 + k])
        p01 = np.int64(s[u01 + k])
        p10 = np.int64(s[u10 + k])
        p11 = np.int64(s[u11 + k])
        top = (p00 << WEIGHT_BITS) + fx * (p01 - p00)
        bot = (p10 << WEIGHT_BITS) + fx * (p11 - p10)
        v = (top << WEIGHT_BITS) + fy * (bot - top)
        o[uo + k] = np.uint8((v + WEIGHT_HALF) >> (2 * WEIGHT_BITS))


@always_inline
def is_interior(x, y, W, H):
    """All four bilinear taps of pixel point (x, y) are inside the image."""
    return x >= 0.0 and x < W - 1 and y >= 0.0 and y < H - 1


# fixed-point pixel coordinates: X = x * 2**FRAC_BITS in an int64
FRAC_BITS = 32
FRAC_ONE = 2.0**FRAC_BITS
FRAC_INV = 2.0**-FRAC_BITS


@always_inline
def to_fixed(v):
    """round(v * 2**32) as an int64, for |v| < 2**30."""
    return np.int64(math.floor(v * FRAC_ONE + 0.5))


def put_weights(scr, wscr, t, fx, fy, s):  # pragma: no cover - overloaded below
    raise NotImplementedError


def lerp_fixed(s, o, ob, b, row, scr, wscr, t, C):  # pragma: no cover - overloaded below
    raise NotImplementedError


def _put_weights_float(scr, wscr, t, fx, fy, s):
    # fx = x - x0 from its fixed-point fraction (exact in int64), in the accumulation type
    wscr[0, t] = acc_type(fx, s) * acc_type(FRAC_INV, s)
    wscr[1, t] = acc_type(fy, s) * acc_type(FRAC_INV, s)


def _put_weights_int(scr, wscr, t, fx, fy, s):
    # the fractions rounded to 2**-20 (an error below 2.4e-4 of a grey level)
    half = np.int64(1) << (FRAC_BITS - WEIGHT_BITS - 1)
    scr[1, t] = (fx + half) >> (FRAC_BITS - WEIGHT_BITS)
    scr[2, t] = (fy + half) >> (FRAC_BITS - WEIGHT_BITS)


def _lerp_fixed_float(s, o, ob, b, row, scr, wscr, t, C):
    lerp_channels(s, o, ob, b, b + C, b + row, b + row + C, wscr[0, t], wscr[1, t], C)


def _lerp_fixed_int(s, o, ob, b, row, scr, wscr, t, C):
    lerp_channels_int(s, o, ob, b, b + C, b + row, b + row + C, scr[1, t], scr[2, t], C)


@overload(put_weights, inline="always", jit_options={"cache": True, "fastmath": FASTMATH})
def _put_weights(scr, wscr, t, fx, fy, s):
    """Integer weights (in scr) for integer images, float weights (in wscr) otherwise."""
    return _put_weights_int if isinstance(s.dtype, types.Integer) else _put_weights_float


@overload(lerp_fixed, inline="always", jit_options={"cache": True, "fastmath": FASTMATH})
def _lerp_fixed(s, o, ob, b, row, scr, wscr, t, C):
    """Blend with the weights :func:`put_weights` stored (chosen when typing)."""
    return _lerp_fixed_int if isinstance(s.dtype, types.Integer) else _lerp_fixed_float


def _interior_fixed(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, C, scr, wscr):
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
    offs = scr[0]
    for t0 in range(0, jb - ja, scr.shape[1]):
        m = min(scr.shape[1], jb - ja - t0)
        # pass 1, branch-free arithmetic that LLVM vectorizes across pixels: clamp
        # into the image, x0 = floor(x) (at most W-2), the tap offset and weights
        for t in range(m):
            xc = min(max(X0 + (t0 + t) * DX, 0), xmax)
            yc = min(max(Y0 + (t0 + t) * DY, 0), ymax)
            x0 = min(xc >> FRAC_BITS, W - 2)
            y0 = min(yc >> FRAC_BITS, H - 2)
            offs[t] = ((img + y0) * W + x0) * C
            put_weights(scr, wscr, t, xc - (x0 << FRAC_BITS), yc - (y0 << FRAC_BITS), s)
        # pass 2: read the taps and interpolate
        for t in range(m):
            lerp_fixed(s, o, ob + (ja + t0 + t) * C, offs[t], row, scr, wscr, t, C)


def _interior_float(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, C, scr, wscr):
    row = W * C
    for j in range(ja, jb):
        x = min(max(ux + j * dux, 0.0), W - 1.0)
        y = min(max(uy + j * duy, 0.0), H - 1.0)
        x0 = min(int(x), W - 2)
        y0 = min(int(y), H - 2)
        b = ((img + y0) * W + x0) * C
        lerp_channels(s, o, ob + j * C, b, b + C, b + row, b + row + C,
                      acc_type(x - x0, s), acc_type(y - y0, s), C)


def interior_loop(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, C, scr, wscr):  # pragma: no cover
    """Columns ja <= j < jb of a row, bilinear, W >= 2 and H >= 2: pixel
    (ux + j dux, uy + j duy) clamped into [0, W-1] x [0, H-1], read from the 2x2
    block at (min(floor(y), H-2), min(floor(x), W-2)).

    For interior columns the clamp does nothing (it only guards the taps should
    a product round differently, by FMA contraction, from the one that chose
    the interval); for any column it is exactly border padding, which is how
    border spans use this loop for all their columns.  Floor is truncation
    after the clamp.

    float64 images step the coordinates in float64.  float32 and uint8 images
    step them in 32.32 fixed point: X_j = round(x_ja 2**32) + (j - ja)
    round(dux 2**32), integer adds instead of a float multiply-add and two
    float -> int conversions per pixel; x_j is then off by at most
    (j - ja + 1) 2**-33 px (below 1e-8 px for a 32-column span), far below what
    float32 accumulation resolves, and the clamp keeps that drift inside the
    image.  That loop runs in two passes over the span: branch-free integer
    arithmetic for every pixel's tap offset and fractions (which LLVM
    vectorizes across pixels) into the band's scratch ``scr``, then the reads
    and blends.  uint8 images also interpolate in integers
    (:func:`lerp_channels_int`).
    """
    raise NotImplementedError


@overload(interior_loop, inline="always", jit_options={"cache": True, "fastmath": FASTMATH})
def _interior_loop(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, C, scr, wscr):
    """One loop body per image dtype, chosen when typing (see :func:`interior_loop`)."""
    return _interior_float if s.dtype == types.float64 else _interior_fixed


@always_inline
def interior_c1(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, scr, wscr):
    interior_loop(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, 1, scr, wscr)


@always_inline
def interior_c3(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, scr, wscr):
    interior_loop(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, 3, scr, wscr)


@always_inline
def interior_c4(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, scr, wscr):
    interior_loop(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, 4, scr, wscr)


@always_inline
def interior_cn(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, C, scr, wscr):
    interior_loop(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, C, scr, wscr)


@always_inline
def interior(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, C, scr, wscr):
    """:func:`interior_loop` with the channel count as a literal for 1, 3 and 4
    channels, which LLVM unrolls and packs into SIMD lanes."""
    if C == 3:
        interior_c3(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, scr, wscr)
    elif C == 1:
        interior_c1(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, scr, wscr)
    elif C == 4:
        interior_c4(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, scr, wscr)
    else:
        interior_cn(s, o, ob, img, W, H, ux, dux, uy, duy, ja, jb, C, scr, wscr)


@inline
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
        lerp_channels(s, o, ob, ((img + y0) * W + x0) * C, ((img + y0) * W + x1) * C,
                      ((img + y1) * W + x0) * C, ((img + y1) * W + x1) * C,
                      acc_type(x - x0, s), acc_type(y - y0, s), C)
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


# the same function IR-inlined, for the per-pixel edge loop of the fused warp,
# where a call per pixel (with its reference counting) would dominate
sample_pixel_inlined = always_inline(sample_pixel.py_func)


@always_inline
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


@always_inline
def row_interior(ux, dux, uy, duy, W, H, Wo):
    """The columns [ja, jb) of a whole output row whose four bilinear taps are all inside.

    Along a row the pixel point (ux + j dux, uy + j duy) is affine in j, so
    these columns form one interval: estimated from the two axes' intervals,
    then its ends are checked with the very expressions the loops evaluate.
    Empty when an end of the row is beyond PIXEL_LIMIT (its columns then go
    through :func:`sample_pixel` or the general path).
    """
    if not (abs(ux) < PIXEL_LIMIT and abs(ux + (Wo - 1) * dux) < PIXEL_LIMIT
            and abs(uy) < PIXEL_LIMIT and abs(uy + (Wo - 1) * duy) < PIXEL_LIMIT):
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


@always_inline
def warp_span(src, s, o, n, i, j0, j1, ja, jb, ux, dux, uy, duy, gx, dgx, gy, dgy, out, C,
              mode, padding, align_corners, scr, wscr):
    """Output pixels j0 <= j < j1 of row i of image n in the fused warp.

    Along a row the source point is affine in the column j: pixel
    (ux + j dux, uy + j duy), normalized (gx + j dgx, gy + j dgy).  The columns
    ja <= j < jb (bilinear: the row's interior, see :func:`row_interior`,
    clipped to the span) run as a branch-free loop, the columns on either side
    through :func:`sample_pixel`; with border padding the loop takes every
    column (see :func:`interior_loop`).  A span whose ends are beyond PIXEL_LIMIT
    (huge or non-finite points) goes through the general path.
    """
    W = src.shape[2]
    H = src.shape[1]
    xa = ux + j0 * dux
    xe = ux + (j1 - 1) * dux
    ya = uy + j0 * duy
    ye = uy + (j1 - 1) * duy
    if not (abs(xa) < PIXEL_LIMIT and abs(xe) < PIXEL_LIMIT
            and abs(ya) < PIXEL_LIMIT and abs(ye) < PIXEL_LIMIT
            and abs(gx + j0 * dgx) < HUGE and abs(gx + (j1 - 1) * dgx) < HUGE
            and abs(gy + j0 * dgy) < HUGE and abs(gy + (j1 - 1) * dgy) < HUGE):
        for j in range(j0, j1):
            sample_point(src, n, gx + j * dgx, gy + j * dgy, out, i, j, mode, padding, align_corners)
        return
    if mode == BILINEAR and padding == BORDER and W >= 2 and H >= 2:
        # border padding is the clamp of the interior loop: the whole span in one loop
        ja = j0
        jb = j1
    elif jb <= ja:
        ja = j0
        jb = j0
    if jb > ja:
        interior(s, o, ((n * out.shape[1] + i) * out.shape[2]) * C, n * H, W, H, ux, dux, uy, duy,
                 ja, jb, C, scr, wscr)
    # the columns before and after the interior, in one loop (one inlined copy)
    before = ja - j0
    for k in range(before + (j1 - jb)):
        j = j0 + k if k < before else jb + (k - before)
        sample_pixel_inlined(src, s, o, n, i, j, ux + j * dux, uy + j * duy, gx + j * dgx,
                             gy + j * dgy, out, C, mode, padding, align_corners)


@always_inline
def grid_row_loop(src, s, o, grid, n, i, out, C, mode, padding, align_corners):
    """One output row of grid_sample: interior bilinear points inline, the rest
    through :func:`sample_pixel` (or the general path beyond PIXEL_LIMIT)."""
    H = src.shape[1]
    W = src.shape[2]
    ob = ((n * out.shape[1] + i) * out.shape[2]) * C
    row = W * C
    for j in range(out.shape[2]):
        gx = grid[n, i, j, 0]
        gy = grid[n, i, j, 1]
        x = unnormalize(gx, W, align_corners)
        y = unnormalize(gy, H, align_corners)
        if not (abs(gx) < HUGE and abs(gy) < HUGE and abs(x) < PIXEL_LIMIT
                and abs(y) < PIXEL_LIMIT):  # also catches NaN and infinities
            sample_point(src, n, gx, gy, out, i, j, mode, padding, align_corners)
        elif mode == BILINEAR and is_interior(x, y, W, H):
            x0 = min(int(x), W - 2)
            y0 = min(int(y), H - 2)
            b = ((n * H + y0) * W + x0) * C
            lerp_channels(s, o, ob + j * C, b, b + C, b + row, b + row + C,
                          acc_type(x - x0, s), acc_type(y - y0, s), C)
        else:
            sample_pixel(src, s, o, n, i, j, x, y, gx, gy, out, C, mode, padding, align_corners)


@inline
def grid_row_c1(src, s, o, grid, n, i, out, mode, padding, align_corners):
    grid_row_loop(src, s, o, grid, n, i, out, 1, mode, padding, align_corners)


@inline
def grid_row_c3(src, s, o, grid, n, i, out, mode, padding, align_corners):
    grid_row_loop(src, s, o, grid, n, i, out, 3, mode, padding, align_corners)


@inline
def grid_row_c4(src, s, o, grid, n, i, out, mode, padding, align_corners):
    grid_row_loop(src, s, o, grid, n, i, out, 4, mode, padding, align_corners)


@inline
def grid_row_cn(src, s, o, grid, n, i, out, C, mode, padding, align_corners):
    grid_row_loop(src, s, o, grid, n, i, out, C, mode, padding, align_corners)


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
    """out[n, i, j] = src[n] sampled at grid[n, i, j] = (x, y), one row per prange step."""
    N, Ho, Wo, C = out.shape
    s = src.reshape(-1)
    o = out.reshape(-1)
    for r in prange(N * Ho):
        n = r // Ho
        i = r - n * Ho
        # the channel count as a literal for 1, 3 and 4 channels (see :func:`interior`)
        if C == 3:
            grid_row_c3(src, s, o, grid, n, i, out, mode, padding, align_corners)
        elif C == 1:
            grid_row_c1(src, s, o, grid, n, i, out, mode, padding, align_corners)
        elif C == 4:
            grid_row_c4(src, s, o, grid, n, i, out, mode, padding, align_corners)
        else:
            grid_row_cn(src, s, o, grid, n, i, out, C, mode, padding, align_corners)


@always_inline
def pixel_ratio(n_in, n_out, align_corners):
    """Input pixels per output pixel for a unit normalized scale: s_in / s_out (0 if s_out is 0)."""
    s_out = unnormalize_scale(n_out, align_corners)
    if s_out == 0.0:
        return 0.0
    return unnormalize_scale(n_in, align_corners) / s_out


@always_inline
def warp_band(src, s, o, theta, out, n, i0, i1, C, mode, padding, align_corners):
    """Output rows i0 <= i < i1 (at most TILE_H) of image n, walked in TILE_W-column tiles.

    Tiles keep the source footprint of a rotated block in cache: a whole output
    row of a rotated large image walks across hundreds of source rows.  Each
    row's interior interval is found once for the whole row and clipped to
    each tile.
    """
    H = src.shape[1]
    W = src.shape[2]
    Ho = out.shape[1]
    Wo = out.shape[2]
    t00 = theta[n, 0, 0]
    t01 = theta[n, 0, 1]
    t02 = theta[n, 0, 2]
    t10 = theta[n, 1, 0]
    t11 = theta[n, 1, 1]
    t12 = theta[n, 1, 2]
    xb0 = base_coord(0, Wo, align_corners)
    dxb = base_step(Wo, align_corners)
    # pixel-space matrix A = P_in theta P_out^-1 (x = a00 j + a01 i + a02); written
    # this way the identity and same-size theta give exact integer coordinates
    a00 = t00 * pixel_ratio(W, Wo, align_corners)
    a01 = t01 * pixel_ratio(W, Ho, align_corners)
    a10 = t10 * pixel_ratio(H, Wo, align_corners)
    a11 = t11 * pixel_ratio(H, Ho, align_corners)
    cxo = 0.5 * (Wo - 1)  # the output's centre, in output pixels
    cyo = 0.5 * (Ho - 1)
    a02 = unnormalize_scale(W, align_corners) * t02 + 0.5 * (W - 1) - a00 * cxo
    a12 = unnormalize_scale(H, align_corners) * t12 + 0.5 * (H - 1) - a10 * cxo
    # per row: (ux, uy), the pixel point of column 0 (x_j = ux + j a00, y_j = uy + j a10),
    # (gx, gy), its normalized point (theta[n] @ (xb0, yb, 1)), and the interior [ja, jb)
    rows = np.empty((i1 - i0, 4))
    interior_cols = np.zeros((i1 - i0, 2), np.int64)
    # scratch of the fixed-point loop: offsets and fractions of a span's pixels
    scr = np.empty((3, TILE_W), np.int64)
    wscr = np.empty((2, TILE_W), np.float32)
    for r in range(i1 - i0):
        i = i0 + r
        yb = base_coord(i, Ho, align_corners)
        rows[r, 0] = a01 * (i - cyo) + a02
        rows[r, 1] = a11 * (i - cyo) + a12
        rows[r, 2] = t00 * xb0 + t01 * yb + t02
        rows[r, 3] = t10 * xb0 + t11 * yb + t12
        if mode == BILINEAR and padding != BORDER:
            ja, jb = row_interior(rows[r, 0], a00, rows[r, 1], a10, W, H, Wo)
            interior_cols[r, 0] = ja
            interior_cols[r, 1] = jb
    for j0 in range(0, Wo, TILE_W):
        j1 = min(j0 + TILE_W, Wo)
        for r in range(i1 - i0):
            warp_span(src, s, o, n, i0 + r, j0, j1, max(interior_cols[r, 0], j0),
                      min(interior_cols[r, 1], j1), rows[r, 0], a00, rows[r, 1], a10,
                      rows[r, 2], t00 * dxb, rows[r, 3], t10 * dxb, out, C,
                      mode, padding, align_corners, scr, wscr)


# output tile size of the fused warp (rows x columns)
TILE_H = 8
TILE_W = 32


@kernel
def affine_warp_kernel(src, theta, out, mode, padding, align_corners):
    """Fused affine_grid + grid_sample: each pixel's source point is computed, then sampled.

    prange over (image, band of TILE_H output rows); each band is walked in
    TILE_W-column tiles (:func:`warp_band`).
    """
    N = src.shape[0]
    C = src.shape[3]
    Ho = out.shape[1]
    s = src.reshape(-1)
    o = out.reshape(-1)
    bands = (Ho + TILE_H - 1) // TILE_H
    for r in prange(N * bands):
        n = r // bands
        i0 = (r - n * bands) * TILE_H
        i1 = min(i0 + TILE_H, Ho)
        # three channels (the common case) with the count as a literal throughout
        if C == 3:
            warp_band(src, s, o, theta, out, n, i0, i1, 3, mode, padding, align_corners)
        else:
            warp_band(src, s, o, theta, out, n, i0, i1, C, mode, padding, align_corners)
