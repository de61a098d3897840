"""Scalar coordinate math shared by every kernel (CPU forward, backward, CUDA).

One source of truth for the convention (see ``fastwarp.api``):

* output pixel ``j`` of ``n`` has the normalized coordinate ``base_coord(j, n)``;
* a normalized coordinate ``c`` lands on the pixel coordinate ``unnormalize(c, n)``
  of the input, where pixel ``k``'s centre is the integer ``k``;
* the padding mode folds that pixel coordinate back into the image (border,
  reflection) or leaves it outside (zeros);
* bilinear reads the two taps ``floor(x)`` and ``floor(x) + 1`` with weights
  ``1 - frac`` and ``frac``; a tap outside the image gets weight 0;
* nearest reads ``round_half_even(x)`` (PyTorch's ``nearbyint``).

Every function here is a plain ``@njit`` scalar function without closures, so
the CPU kernels inline it and ``numba.cuda`` can compile the same source as a
device function.  Integer flags instead of strings keep one specialization per
dtype.
"""

from __future__ import annotations

import math

from numba import njit

# Flag values shared by the Python layer and the kernels.
BILINEAR = 0
NEAREST = 1
BICUBIC = 2
# bicubic's cubic-convolution constant a (PyTorch's; exact in binary, as are 5a, 8a, 4a)
CUBIC_A = -0.75
ZEROS = 0
BORDER = 1
REFLECTION = 2
CONSTANT = 3
WRAP = 4
# TensorFlow's (and so Keras's) "wrap" fill mode, for fastwarp.tf.layers: the
# coordinate is shifted by multiples of the size toward the image, then clamped
TF_WRAP = 5

# A pixel coordinate that every tap function rejects; non-finite inputs map to it.
OUTSIDE = -2.0
# Normalized coordinates at least this large (about 1e12 image widths) are
# treated like non-finite ones: beyond it float64 cannot place a point inside an
# image, and the bound keeps every float -> int conversion in range.
HUGE = 2.0**40

jit = njit(cache=True, nogil=True, fastmath=False)  # explicit: never inherit a caller's fastmath


@jit
def base_coord(j, n, align_corners):
    """Normalized coordinate of output pixel ``j`` out of ``n``.

    align_corners=True:  -1 + 2 j / (n - 1)  (the corner pixels' centres are -1 and 1;
                          a single pixel sits at 0, as in PyTorch)
    align_corners=False: (2 j + 1) / n - 1    (the image's outer edges are -1 and 1)
    """
    if align_corners:
        if n <= 1:
            return 0.0
        return -1.0 + (2.0 * j) / (n - 1)
    return (2.0 * j + 1.0) / n - 1.0


@jit
def base_step(n, align_corners):
    """base_coord(j + 1, n) - base_coord(j, n): the normalized distance between output pixels."""
    if align_corners:
        if n <= 1:
            return 0.0
        return 2.0 / (n - 1)
    return 2.0 / n


@jit
def unnormalize(c, n, align_corners):
    """Pixel coordinate of the normalized coordinate ``c`` along an axis of ``n`` pixels.

    align_corners=True:  x = (c + 1) / 2 * (n - 1)
    align_corners=False: x = ((c + 1) * n - 1) / 2
    """
    if align_corners:
        return (c + 1.0) * 0.5 * (n - 1)
    return ((c + 1.0) * n - 1.0) * 0.5


@jit
def unnormalize_scale(n, align_corners):
    """d x / d c of :func:`unnormalize` (used by the gradients)."""
    if align_corners:
        return 0.5 * (n - 1)
    return 0.5 * n


@jit
def clip(x, n):
    """Clamp a pixel coordinate into [0, n - 1]."""
    if x < 0.0:
        return 0.0
    if x > n - 1:
        return float(n - 1)
    return x


@jit
def _mod(d, period):
    """d mod period for 0 <= d < 2**61 * period (fmod without math.fmod, which Numba's CPU target lacks)."""
    return d - period * math.floor(d / period)


@jit
def reflect(x, twice_low, twice_high):
    """Mirror ``x`` into [low, high] at both ends (a triangle wave of period 2 span).

    With d = |x - low| and p = d mod (2 span): p + low on the way out (an even
    number of mirrorings), 2 span - p + low on the way back (odd).
    """
    if twice_low == twice_high:
        return 0.0
    low = twice_low * 0.5
    span = (twice_high - twice_low) * 0.5
    p = _mod(abs(x - low), 2.0 * span)
    if p < span:
        return p + low
    return 2.0 * span - p + low


@jit
def reflect_bounds(n, align_corners):
    """(2 low, 2 high) of the reflection mirrors: the corner centres 0 and n - 1
    (align_corners=True) or the image edges -0.5 and n - 0.5 (False)."""
    if align_corners:
        return 0.0, 2.0 * (n - 1)
    return -1.0, 2.0 * n - 1.0


@jit
def tf_wrap(x, n):
    """TensorFlow's wrap of a pixel coordinate (ImageProjectiveTransformV3's FILL_WRAP):
    x + n (floor(-x / (n - 1)) + 1) left of the image, x - n floor(x / (n - 1)) right of
    it, then clamped into [0, n - 1] (so the band between the last and first
    pixel reads an edge pixel, not a blend of the two).  The jump at 0 and n - 1 makes
    the result depend on rounding there: points within 1e-6 px outside an edge
    count as on it (TensorFlow's float32 arithmetic does not resolve them either)."""
    if n <= 1:
        return 0.0
    sz = n - 1.0
    if x > -1e-6 and x < sz + 1e-6:
        return clip(x, n)
    if x < 0.0:
        x += n * (math.floor(-x / sz) + 1.0)
    elif x > sz:
        x -= n * math.floor(x / sz)
    return clip(x, n)


@jit
def pad_pixel(x, n, padding, align_corners):
    """Apply the padding mode to a pixel coordinate ``x`` along an axis of ``n`` pixels.

    zeros: unchanged (taps outside the image read 0); border: clamped to
    [0, n - 1]; reflection: mirrored at the corner centres (align_corners=True)
    or at the image edges (align_corners=False), then clamped.
    """
    if padding == BORDER:
        return clip(x, n)
    if padding == REFLECTION:
        lo2, hi2 = reflect_bounds(n, align_corners)
        return clip(reflect(x, lo2, hi2), n)
    if padding == TF_WRAP:
        return tf_wrap(x, n)
    return x


@jit
def source_coord(c, n, padding, align_corners):
    """Normalized coordinate -> pixel coordinate after the padding mode (:func:`pad_pixel`).

    A NaN, infinite or huge (|c| >= HUGE) ``c`` maps to OUTSIDE, so it reads 0
    in every mode.
    """
    if not abs(c) < HUGE:
        return OUTSIDE
    return pad_pixel(unnormalize(c, n, align_corners), n, padding, align_corners)


@jit
def clip_grad(x, n):
    """d clip / d x as PyTorch defines it: 0 on and outside the clamp bounds, else 1."""
    if x <= 0.0 or x >= n - 1:
        return 0.0
    return 1.0


@jit
def reflect_grad(x, twice_low, twice_high):
    """d reflect / d x: -1 left of low, and flipped again on the way back (0 for an empty span)."""
    if twice_low == twice_high:
        return 0.0
    low = twice_low * 0.5
    span = (twice_high - twice_low) * 0.5
    d = x - low
    sign = 1.0
    if d < 0.0:
        sign = -1.0
        d = -d
    if _mod(d, 2.0 * span) >= span:
        sign = -sign
    return sign


@jit
def source_coord_grad(c, n, padding, align_corners):
    """d source_coord / d c, with PyTorch's conventions at the kinks."""
    if not abs(c) < HUGE:
        return 0.0
    x = unnormalize(c, n, align_corners)
    g = unnormalize_scale(n, align_corners)
    if padding == BORDER:
        return g * clip_grad(x, n)
    if padding == REFLECTION:
        lo2, hi2 = reflect_bounds(n, align_corners)
        return g * reflect_grad(x, lo2, hi2) * clip_grad(reflect(x, lo2, hi2), n)
    return g


@jit
def linear_taps(x, n):
    """Bilinear taps along one axis: (i0, i1, w0, w1).

    i0 = floor(x), i1 = i0 + 1, w1 = x - i0, w0 = 1 - w1.  A tap outside
    [0, n - 1] gets weight 0 and an index clamped into the image, so the
    kernels read without branching and never out of bounds.
    """
    if not (x > -1.0 and x < n):  # also false for NaN
        return 0, 0, 0.0, 0.0
    f = math.floor(x)
    i0 = int(f)
    w1 = x - f
    w0 = 1.0 - w1
    i1 = i0 + 1
    if i0 < 0:
        i0 = 0
        w0 = 0.0
    if i1 > n - 1:
        i1 = n - 1
        w1 = 0.0
    return i0, i1, w0, w1


@jit
def round_half_even(x):
    """Round to the nearest integer, ties to even (C's nearbyint, NumPy's rint)."""
    r = math.floor(x + 0.5)
    if r - x == 0.5 and r % 2 != 0:
        r -= 1.0
    return r


@jit
def nearest_tap(x, n):
    """Nearest-neighbour index along one axis, or -1 when it falls outside [0, n - 1]."""
    if not (x > -1.0 and x < n + 0.5):  # also false for NaN
        return -1
    i = int(round_half_even(x))
    if i < 0 or i > n - 1:
        return -1
    return i


@jit
def linear_taps_grad(x, n):
    """Bilinear taps along one axis for the backward pass: (i0, i1, w0, w1, m0, m1).

    As :func:`linear_taps`, plus each tap's in-image mask ``m`` (1.0 inside
    [0, n - 1], else 0.0).  The slope of the interpolant along the axis is
    ``m1 I[i1] - m0 I[i0]``, which needs the masks even where a tap's weight is
    0 (x on a pixel centre).  Unlike the forward, x = -1 keeps its right tap
    (pixel 0, weight 0, slope I[0]), as PyTorch's backward does.  The weights
    are already masked; a masked tap's index is clamped into the image.
    """
    if not (x >= -1.0 and x < n):  # also false for NaN
        return 0, 0, 0.0, 0.0, 0.0, 0.0
    f = math.floor(x)
    i0 = int(f)
    w1 = x - f
    w0 = 1.0 - w1
    i1 = i0 + 1
    m0 = 1.0
    m1 = 1.0
    if i0 < 0:
        i0 = 0
        w0 = 0.0
        m0 = 0.0
    if i1 > n - 1:
        i1 = n - 1
        w1 = 0.0
        m1 = 0.0
    return i0, i1, w0, w1, m0, m1


@jit
def source_coord_and_grad(c, n, padding, align_corners):
    """(source_coord(c, ...), source_coord_grad(c, ...)) together, for the backward kernels.

    Built from the same helpers as the two functions, so the same bits.
    """
    if not abs(c) < HUGE:
        return OUTSIDE, 0.0
    x = unnormalize(c, n, align_corners)
    g = unnormalize_scale(n, align_corners)
    if padding == BORDER:
        return clip(x, n), g * clip_grad(x, n)
    if padding == REFLECTION:
        lo2, hi2 = reflect_bounds(n, align_corners)
        r = reflect(x, lo2, hi2)
        return clip(r, n), g * reflect_grad(x, lo2, hi2) * clip_grad(r, n)
    return x, g
