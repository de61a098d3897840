"""Antialiased sampling where a warp shrinks (``antialias=True``): CPU kernels.

The filter
----------
Let ``p(o)`` be the input pixel point that output pixel ``o`` reads (pixel
units, :func:`pixel_homographies`) and ``J = dp/do`` its 2 x 2 Jacobian:
constant for an affine warp, per pixel for a projective one.  The singular
values of ``J`` are how many input pixels one output pixel spans along the
principal directions of its footprint.  With ``C = J J^T`` and
``C'`` = ``C`` with its eigenvalues clamped into ``[1, CAP**2]``, the filter
matrix is ``M = C'^(-1/2)`` (symmetric) and the output is

    v(o) = sum_q k((M d)_x) k((M d)_y) I[q] / sum_q k((M d)_x) k((M d)_y),   d = q - p,

over the integer taps ``q`` where the weight is non-zero: the interpolation
kernel ``k`` (the tent of bilinear, or PyTorch's cubic convolution for
bicubic) stretched along the footprint, so its support covers the input
pixels the output pixel spans (``M = I``: exactly the 2 x 2 bilinear or
4 x 4 bicubic taps).  Anisotropic and rotated footprints come out right,
because ``M`` stretches along the footprint's own axes; directions that do
not shrink keep the unstretched kernel.  Taps outside the image follow the
padding mode per tap index (zeros and constant read the fill, border
clamps, reflection mirrors, wrap takes the index modulo the size).

Where the largest singular value is at most 1 (up to ``SHRINK_TOL``), the
pixel is left as the plain warp wrote it, bit for bit.  Footprints wider
than ``CAP`` input pixels are clamped to ``CAP`` (bounding the cost near a
perspective horizon); points the plain warp reads as no image (non-finite,
huge, behind the viewer) are left as it wrote them too.

Cost per shrinking output pixel: about ``(2 R s1 + 1) (2 R s2 + 1)`` taps
for singular values s1, s2 (R = 1 bilinear, 2 bicubic), each a few
multiply-adds per channel; the output has ``1 / (s1 s2)`` as many pixels as
the input covers, so the total is about ``4 R**2`` tap reads per covered
input pixel.

Gradients: the output is a normalized weighted sum, so
``dv/dI[q] = w_q / W`` and ``dv/dw_q = (I[q] - v) / W``.  The weights
depend on ``p`` (through ``d``) and on ``M``; ``dM/dJ`` and ``dJ/dH`` of the
closed-form 2 x 2 functions are taken by complex-step differentiation
(:func:`footprint` and :func:`pixel_map` run on complex numbers), which is
exact to rounding (no subtraction), and chained by hand.
"""

from __future__ import annotations

import cmath
import math

import numpy as np
from numba import njit

from ..core.coords import BORDER, CONSTANT, CUBIC_A, HUGE, REFLECTION, TF_WRAP, WRAP, ZEROS, pad_pixel
from ..core.runtime import numba_only as jit  # (only Numba code calls these)
from ..core.runtime import shared  # (Python or the GPU kernels call these too)
from .backward import touch
from .bilinear import bound_index, wrap_index
from .sched import CHUNKS, chunk_rows, claim, next_chunk
from .store import to_output

__all__ = ["CAP", "SHRINK_TOL", "pixel_homographies", "largest_stretch"]

# widest footprint, in input pixels per output pixel, along either axis
CAP = 16.0
# a largest singular value within this of 1 counts as no shrink
SHRINK_TOL = 1e-9
_LIMIT = (1.0 + SHRINK_TOL) ** 2
# complex-step size: the derivative is Im f(x + i h) / h, exact to rounding for any tiny h
_STEP = 1e-30
_MAX_TAPS = int(2 * 2 * CAP * math.sqrt(2.0)) + 4
# |m01| below this fraction of the diagonal counts as 0 (the separable path)
DIAGONAL = 1e-12

# per-pixel helpers take many arrays (each passed as a dozen scalars): inline them at the call
inline = njit(cache=True, nogil=True, fastmath=False, inline="always")


# ---------------------------------------------------------------------------
# Geometry (host side)
# ---------------------------------------------------------------------------

def _to_pixel(n: int, align_corners: bool) -> tuple[float, float]:
    """(scale, offset) of normalized -> pixel coordinates along an axis of n pixels."""
    if align_corners:
        return (n - 1) / 2.0, (n - 1) / 2.0
    return n / 2.0, (n - 1) / 2.0


def _from_pixel(n: int, align_corners: bool) -> tuple[float, float]:
    """(scale, offset) of output pixel index -> normalized coordinate (0 for one pixel, aligned)."""
    if align_corners:
        return (2.0 / (n - 1), -1.0) if n > 1 else (0.0, 0.0)
    return 2.0 / n, 1.0 / n - 1.0


def normalizers(in_size, out_size, align_corners: bool) -> tuple[np.ndarray, np.ndarray]:
    """(N_in, P_out): 3 x 3 maps normalized input -> input pixels and output pixels -> normalized."""
    (hi, wi), (ho, wo) = in_size, out_size
    (sx, ox), (sy, oy) = _to_pixel(wi, align_corners), _to_pixel(hi, align_corners)
    (tx, px), (ty, py) = _from_pixel(wo, align_corners), _from_pixel(ho, align_corners)
    n_in = np.array([[sx, 0.0, ox], [0.0, sy, oy], [0.0, 0.0, 1.0]])
    p_out = np.array([[tx, 0.0, px], [0.0, ty, py], [0.0, 0.0, 1.0]])
    return n_in, p_out


def pixel_homographies(theta: np.ndarray, in_size, out_size, align_corners: bool) -> np.ndarray:
    """(N, 3, 3) float64 ``H = N_in T P_out``: output pixel (j, i, 1) -> input pixel point, for
    (N, 2, 3) affine or (N, 3, 3) projective normalized thetas T."""
    t = np.asarray(theta, np.float64)
    if t.shape[1] == 2:
        t = np.concatenate([t, np.broadcast_to([[[0.0, 0.0, 1.0]]], (t.shape[0], 1, 3))], axis=1)
    n_in, p_out = normalizers(in_size, out_size, align_corners)
    return np.ascontiguousarray(n_in @ t @ p_out)


def largest_stretch(hpx: np.ndarray) -> np.ndarray:
    """Largest squared singular value of each affine H's 2 x 2 linear part (one per image)."""
    j = hpx[:, :2, :2]
    return np.linalg.svd(j, compute_uv=False)[:, 0] ** 2


# ---------------------------------------------------------------------------
# Scalar math (real, or complex for the complex-step derivatives)
# ---------------------------------------------------------------------------

@shared
def map_point(h00, h01, h02, h10, h11, h12, h20, h21, h22, j, i):
    """(w, px, py, J00, J01, J10, J11) at output pixel (j, i): the point p = (u / w, v / w) of
    (u, v, w) = H @ (j, i, 1) and J = dp/d(j, i) = (H[:2, :2] - p H[2, :2]) / w.  On the nine
    entries of H, so that the CUDA kernels call it with scalars."""
    u = h00 * j + h01 * i + h02
    v = h10 * j + h11 * i + h12
    w = h20 * j + h21 * i + h22
    px = u / w
    py = v / w
    return (w, px, py, (h00 - px * h20) / w, (h01 - px * h21) / w, (h10 - py * h20) / w,
            (h11 - py * h21) / w)


@jit
def pixel_map(h, n, j, i):
    """:func:`map_point` of image n's map h[n]."""
    return map_point(h[n, 0, 0], h[n, 0, 1], h[n, 0, 2], h[n, 1, 0], h[n, 1, 1], h[n, 1, 2], h[n, 2, 0],
                     h[n, 2, 1], h[n, 2, 2], j, i)


@shared
def stretch(j00, j01, j10, j11):
    """Largest eigenvalue of C = J J^T (the squared largest singular value of J)."""
    a = j00 * j00 + j01 * j01
    b = j00 * j10 + j01 * j11
    c = j10 * j10 + j11 * j11
    return 0.5 * (a + c) + math.sqrt(0.25 * (a - c) * (a - c) + b * b)


def _footprint_with(sqrt, doc: str):
    """The closed form of M = C'^(-1/2) (:func:`footprint`) with the square root ``sqrt``:
    one body for the CPU's ``np.sqrt`` (real or complex J) and the CUDA kernels' ``math.sqrt``
    and ``cmath.sqrt`` (numba-cuda has no ``np.sqrt`` on scalars)."""

    def footprint(j00, j01, j10, j11):
        a = j00 * j00 + j01 * j01
        b = j00 * j10 + j01 * j11
        c = j10 * j10 + j11 * j11
        ar, br, cr = a.real, b.real, c.real
        disc = math.sqrt(0.25 * (ar - cr) * (ar - cr) + br * br)
        l1r = 0.5 * (ar + cr) + disc
        l2r = 0.5 * (ar + cr) - disc
        cap2 = CAP * CAP
        zero = 0.0 * a
        if l2r >= cap2:
            return zero + 1.0 / CAP, zero, zero + 1.0 / CAP
        if l2r >= 1.0 and l1r <= cap2:
            det = a * c - b * b
            ia = c / det
            ib = -b / det
            ic = a / det
            s = sqrt(ia * ic - ib * ib)
            t = sqrt(ia + ic + 2.0 * s)
            return (ia + s) / t, ib / t, (ic + s) / t
        root = sqrt(0.25 * (a - c) * (a - c) + b * b)
        l1 = 0.5 * (a + c) + root
        l2 = 0.5 * (a + c) - root
        f1 = zero + 1.0 / CAP if l1r >= cap2 else 1.0 / sqrt(l1)
        f2 = zero + 1.0 if l2r <= 1.0 else 1.0 / sqrt(l2)
        q = (f1 - f2) / (l1 - l2)
        return f2 + q * (a - l2), q * b, f2 + q * (c - l2)

    footprint.__doc__ = doc
    return shared(footprint)


footprint = _footprint_with(np.sqrt, """(m00, m01, m11) of M = C'^(-1/2), C' = J J^T with eigenvalues
    clamped into [1, CAP^2].

    The branch is chosen on the real parts, so a complex J (complex step) follows
    the same closed form.  No clamp active: M = sqrtm(C^-1), with
    sqrtm(A) = (A + sqrt(det A) I) / sqrt(tr A + 2 sqrt(det A)) for a 2 x 2 SPD A.
    A clamp active: M = f2 I + (f1 - f2) / (l1 - l2) (C - l2 I), f = clamp(l)^(-1/2),
    the spectral form through the projector (C - l2 I) / (l1 - l2).
    """)
footprint_real = _footprint_with(math.sqrt, """:func:`footprint` for a real J with ``math.sqrt``, for the
    CUDA kernels; a test pins the two equal bit for bit.""")
footprint_step = _footprint_with(cmath.sqrt, """:func:`footprint` for a complex J (the complex step of the
    gradient) with ``cmath.sqrt``, for the CUDA kernels; a test pins the two equal.""")


@shared
def footprint_slope(h00, h01, h02, h10, h11, h12, h20, h21, h22, j, i, k):
    """d(m00, m01, m11) / dH_k (k = 3 row + column) at output pixel (j, i), by complex step
    on the nine scalars of H (:func:`map_point`, :func:`footprint_step`): the CUDA twin of
    the CPU's per-array derivative."""
    e = 1j * _STEP
    w, px, py, j00, j01, j10, j11 = map_point(
        h00 + (e if k == 0 else 0.0), h01 + (e if k == 1 else 0.0), h02 + (e if k == 2 else 0.0),
        h10 + (e if k == 3 else 0.0), h11 + (e if k == 4 else 0.0), h12 + (e if k == 5 else 0.0),
        h20 + (e if k == 6 else 0.0), h21 + (e if k == 7 else 0.0), h22 + (e if k == 8 else 0.0),
        j, i)
    m00, m01, m11 = footprint_step(j00, j01, j10, j11)
    return m00.imag / _STEP, m01.imag / _STEP, m11.imag / _STEP


@shared
def kernel_weight(t, cubic):
    """k(t) and k'(t): the tent 1 - |t| (bilinear) or cubic convolution with a = -0.75."""
    s = 1.0 if t >= 0.0 else -1.0
    d = abs(t)
    if not cubic:
        if d >= 1.0:
            return 0.0, 0.0
        return 1.0 - d, -s
    a = CUBIC_A
    if d <= 1.0:
        return ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0, s * (3.0 * (a + 2.0) * d - 2.0 * (a + 3.0)) * d
    if d < 2.0:
        return ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a, s * ((3.0 * a * d - 10.0 * a) * d + 8.0 * a)
    return 0.0, 0.0


@shared
def aa_tap(k, n, padding, align_corners):
    """Index read by integer tap coordinate k, -1 where it reads the fill."""
    if padding == WRAP:
        return wrap_index(k, n)
    if padding == BORDER or padding == REFLECTION or padding == TF_WRAP:
        return bound_index(pad_pixel(k, n, padding, align_corners), n)
    return bound_index(k, n)


@shared
def shrinks(w, px, py, j00, j01, j10, j11):
    """Whether the filter replaces the plain sample at a pixel of :func:`map_point`'s values: a
    finite point in front of the viewer whose footprint exceeds one pixel."""
    ok = w > 0.0 and abs(px) < HUGE and abs(py) < HUGE
    ok = ok and math.isfinite(j00) and math.isfinite(j01) and math.isfinite(j10) and math.isfinite(j11)
    return ok and stretch(j00, j01, j10, j11) > _LIMIT


@shared
def shrinking(h, n, j, i):
    """(shrinks, px, py, J...) of output pixel (j, i) (:func:`shrinks`)."""
    w, px, py, j00, j01, j10, j11 = pixel_map(h, n, float(j), float(i))
    return shrinks(w, px, py, j00, j01, j10, j11), px, py, j00, j01, j10, j11


@shared
def tap_range(p, e):
    return int(math.ceil(p - e)), int(math.floor(p + e))


@shared
def support(m00, m01, m11, cubic):
    """Half-widths (ex, ey) of the box holding the stretched kernel: R * row sums of |M^-1|."""
    r = 2.0 if cubic else 1.0
    det = m00 * m11 - m01 * m01
    return r * (abs(m11) + abs(m01)) / det, r * (abs(m00) + abs(m01)) / det


@jit
def weights_row(m00, m01, m11, px, dy, x0, nx, cubic, wrow):
    """wrow[t] = k((M d)_x) k((M d)_y) for the taps (x0 + t, qy) of one row, d = (x0 + t - px, dy);
    returns their sum.  The tent is branch-free, so the loop vectorizes."""
    total = 0.0
    a0 = m01 * dy + m00 * (x0 - px)
    b0 = m11 * dy + m01 * (x0 - px)
    if cubic:
        for t in range(nx):
            wt = kernel_weight(a0 + m00 * t, True)[0] * kernel_weight(b0 + m01 * t, True)[0]
            wrow[t] = wt
            total += wt
    else:
        for t in range(nx):
            wt = max(0.0, 1.0 - abs(a0 + m00 * t)) * max(0.0, 1.0 - abs(b0 + m01 * t))
            wrow[t] = wt
            total += wt
    return total


@inline
def axis_weights(m, p, q0, nq, cubic, wq):
    """wq[t] = k(m (q0 + t - p)) for t < nq; returns their sum."""
    total = 0.0
    for t in range(nq):
        d = m * (q0 + t - p)
        wt = kernel_weight(d, True)[0] if cubic else max(0.0, 1.0 - abs(d))
        wq[t] = wt
        total += wt
    return total


@inline
def separable_direct(src, sflat, n, px, py, m00, m11, x0, x1, y0, y1, cubic, acc, wrow, wcol):
    """acc += sum_q w_q I[q] for a diagonal M (axis-aligned or isotropic footprints), where
    w = kx(m00 dx) ky(m11 dy), over the part of the tap box inside the image (``sflat``: the
    C-contiguous images flat): each tap row's horizontal sum (in registers for 3
    channels), weighted by the row's vertical weight.
    Returns (the weight of the whole box, the weight of its part inside the image); the caller
    gives the part outside the fill (zeros and constant padding)."""
    C = src.shape[3]
    H = src.shape[1]
    W = src.shape[2]
    nx = x1 - x0 + 1
    ny = y1 - y0 + 1
    sx = axis_weights(m00, px, x0, nx, cubic, wrow)
    sy = axis_weights(m11, py, y0, ny, cubic, wcol)
    t0 = max(0, -x0)
    t1 = min(nx, W - x0)
    u0 = max(0, -y0)
    u1 = min(ny, H - y0)
    ix = 0.0
    for t in range(t0, t1):
        ix += wrow[t]
    iy = 0.0
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    for u in range(u0, u1):
        wy = wcol[u]
        iy += wy
        if wy == 0.0:
            continue
        q = y0 + u
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        # the taps as flat unsigned offsets (no negative-index wraparound per tap, which
        # cost the rotated footprints 10-15%)
        k = np.uint64(((n * H + q) * W + x0 + t0) * C)
        if C == 3:
            for t in range(t0, t1):
                wx = wrow[t]
                s0 += wx * sflat[k]
                s1 += wx * sflat[k + np.uint64(1)]
                s2 += wx * sflat[k + np.uint64(2)]
                k += np.uint64(3)
        else:
            for t in range(t0, t1):
                wq = wy * wrow[t]
                for c in range(C):
                    acc[c] += wq * sflat[k + np.uint64(c)]
                k += np.uint64(C)
        a0 += wy * s0
        a1 += wy * s1
        a2 += wy * s2
    if C == 3:
        acc[0] += a0
        acc[1] += a1
        acc[2] += a2
    inside = ix * iy if (t1 > t0 and u1 > u0) else 0.0
    return sx * sy, inside


@jit
def row_filter(flat, n, i, hpx, out, m00, m11, y0, y1, cubic, wrow, wcol, vrow, acc, C, handled):
    """One output row of an affine map whose input row does not vary along it (H[1, 0] = 0) and
    whose footprint is diagonal: the vertical pass is shared by the whole row,
    vrow = sum_u ky[u] * input row y0 + u over the columns the row reads, then each pixel sums
    its horizontal taps of vrow.  handled[j] = 1 for the pixels written (those whose taps stay
    inside the image; the caller filters the others)."""
    W = flat.shape[2] // C
    Wo = out.shape[2]
    r = 2.0 if cubic else 1.0
    ex = r / m00
    py = hpx[n, 1, 1] * i + hpx[n, 1, 2]
    sy = axis_weights(m11, py, y0, y1 - y0 + 1, cubic, wcol)
    # the columns this row reads: px is linear in j
    pa = hpx[n, 0, 1] * i + hpx[n, 0, 2]
    pb = hpx[n, 0, 0] * (Wo - 1) + pa
    lo = max(0, int(math.ceil(min(pa, pb) - ex)))
    hi = min(W - 1, int(math.floor(max(pa, pb) + ex)))
    handled[:] = 0
    if lo > hi:
        return
    run = (hi - lo + 1) * C
    v = vrow[:run]
    v[:] = 0.0
    for u in range(y1 - y0 + 1):
        wy = wcol[u]
        if wy != 0.0:
            seg = flat[n, y0 + u, lo * C:lo * C + run]
            for k in range(run):  # a contiguous run: the vectorizer takes it
                v[k] += wy * seg[k]
    for j in range(Wo):
        px = hpx[n, 0, 0] * j + pa
        x0, x1 = tap_range(px, ex)
        if x0 < lo or x1 > hi:
            continue
        sx = axis_weights(m00, px, x0, x1 - x0 + 1, cubic, wrow)
        # (unsigned offsets into vrow: no negative-index wraparound per tap)
        k = np.uint64((x0 - lo) * C)
        if C == 3:  # three sums in registers instead of acc's memory
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            for t in range(x1 - x0 + 1):
                wx = wrow[t]
                a0 += wx * v[k]
                a1 += wx * v[k + np.uint64(1)]
                a2 += wx * v[k + np.uint64(2)]
                k += np.uint64(3)
            acc[0] = a0
            acc[1] = a1
            acc[2] = a2
        else:
            for c in range(C):
                acc[c] = 0.0
            for t in range(x1 - x0 + 1):
                wx = wrow[t]
                for c in range(C):
                    acc[c] += wx * v[k + np.uint64(c)]
                k += np.uint64(C)
        for c in range(C):
            out[n, i, j, c] = to_output(acc[c] / (sx * sy), out)
        handled[j] = 1


@jit
def padded_sum(src, n, px, py, m00, m01, m11, x0, x1, y0, y1, cubic, acc, cols, fill, padding,
               align_corners):
    """acc += sum_q w_q value_q for any footprint and any padding: each tap reads its padded index
    (``cols`` for the columns, computed by the caller) or the fill; returns sum_q w_q."""
    C = src.shape[3]
    H = src.shape[1]
    wsum = 0.0
    for qy in range(y0, y1 + 1):
        dy = qy - py
        row = aa_tap(float(qy), H, padding, align_corners)
        for qx in range(x0, x1 + 1):
            dx = qx - px
            # w = k((M d)_x) k((M d)_y)
            ka = kernel_weight(m00 * dx + m01 * dy, cubic)[0]
            if ka == 0.0:
                continue
            wq = ka * kernel_weight(m01 * dx + m11 * dy, cubic)[0]
            if wq == 0.0:
                continue
            wsum += wq
            col = cols[qx - x0]
            if row >= 0 and col >= 0:
                for c in range(C):
                    acc[c] += wq * src[n, row, col, c]
            else:
                for c in range(C):
                    acc[c] += wq * fill[c]
    return wsum


# ---------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------

@shared
def mask_kernel(hpx, mask, sched):
    """mask[n, i, j] = 1 where the filter replaces the plain sample."""
    Ho = mask.shape[1]
    Wo = mask.shape[2]
    chunk = claim(sched)
    while chunk < sched[CHUNKS]:
        r0, r1 = chunk_rows(sched, chunk)
        for r in range(r0, r1):
            n = r // Ho
            i = r - n * Ho
            for j in range(Wo):
                mask[n, i, j] = shrinking(hpx, n, j, i)[0]
        chunk = next_chunk(sched)


@inline
def filter_pixel(src, sflat, n, i, j, px, py, m00, m01, m11, ex, ey, fill, out, cubic, padding,
                 align_corners, acc, cols, wrow, wcol):
    """out[n, i, j] = sum_q w_q I[q] / sum_q w_q for the footprint (M, box half-widths ex, ey) at p."""
    H = src.shape[1]
    W = src.shape[2]
    C = src.shape[3]
    x0, x1 = tap_range(px, ex)
    y0, y1 = tap_range(py, ey)
    for c in range(C):
        acc[c] = 0.0
    inside = x0 >= 0 and x1 < W and y0 >= 0 and y1 < H
    # a rotation of an isotropic footprint leaves m01 at rounding level: treat it as 0
    diagonal = abs(m01) <= DIAGONAL * (m00 + m11)
    fills = padding == ZEROS or padding == CONSTANT
    if diagonal and (inside or fills):
        wsum, win = separable_direct(src, sflat, n, px, py, m00, m11, x0, x1, y0, y1, cubic, acc, wrow,
                                     wcol)
        if wsum != win:  # the taps outside the image read the fill
            for c in range(C):
                acc[c] += (wsum - win) * fill[c]
    else:
        for q in range(x0, x1 + 1):
            cols[q - x0] = aa_tap(float(q), W, padding, align_corners)
        wsum = padded_sum(src, n, px, py, m00, m01, m11, x0, x1, y0, y1, cubic, acc, cols, fill,
                          padding, align_corners)
    for c in range(C):
        out[n, i, j, c] = to_output(acc[c] / wsum, out)


@jit
def affine_rows(hpx, n):
    """Whether image n's map is affine (H's last row is (0, 0, 1)): J is then H[:2, :2] everywhere."""
    return hpx[n, 2, 0] == 0.0 and hpx[n, 2, 1] == 0.0 and hpx[n, 2, 2] == 1.0


@shared
def forward_kernel(src, hpx, fill, out, cubic, padding, align_corners, sched):
    """Overwrite the shrinking pixels of out (rows r0..r1 of the flattened (N, Ho)) with the filter."""
    _, H, W, C = src.shape
    Ho = out.shape[1]
    Wo = out.shape[2]
    acc = np.empty(C)
    cols = np.empty(_MAX_TAPS, np.int64)
    wrow = np.empty(_MAX_TAPS)
    wcol = np.empty(_MAX_TAPS)
    vrow = np.empty(W * C)
    handled = np.zeros(Wo, np.uint8)
    flat = src.reshape(src.shape[0], H, W * C)
    sflat = src.reshape(-1)
    r = 2.0 if cubic else 1.0
    chunk = claim(sched)
    while chunk < sched[CHUNKS]:
        r0, r1 = chunk_rows(sched, chunk)
        for row in range(r0, r1):
            n = row // Ho
            i = row - n * Ho
            affine = affine_rows(hpx, n)
            shared = False
            if affine:
                # one footprint for the whole image: J = H[:2, :2]
                j00, j01, j10, j11 = hpx[n, 0, 0], hpx[n, 0, 1], hpx[n, 1, 0], hpx[n, 1, 1]
                if not stretch(j00, j01, j10, j11) > _LIMIT:
                    continue
                am00, am01, am11 = footprint(j00, j01, j10, j11)
                aex, aey = support(am00, am01, am11, cubic)
                if j10 == 0.0 and am01 == 0.0:
                    # no rotation: the row reads the same input rows at every pixel; share the vertical pass
                    py = hpx[n, 1, 1] * i + hpx[n, 1, 2]
                    y0, y1 = tap_range(py, r / am11)
                    shared = abs(py) < HUGE and y0 >= 0 and y1 < H
                    if shared:
                        row_filter(flat, n, i, hpx, out, am00, am11, y0, y1, cubic, wrow, wcol, vrow, acc, C,
                                   handled)
            for j in range(Wo):
                if shared and handled[j]:
                    continue  # row_filter wrote it
                if affine:
                    # p = H (j, i, 1), as pixel_map computes it with w = 1
                    px = hpx[n, 0, 0] * j + hpx[n, 0, 1] * i + hpx[n, 0, 2]
                    py = hpx[n, 1, 0] * j + hpx[n, 1, 1] * i + hpx[n, 1, 2]
                    if not (abs(px) < HUGE and abs(py) < HUGE):
                        continue
                    m00, m01, m11, ex, ey = am00, am01, am11, aex, aey
                else:
                    # projective: the footprint changes from pixel to pixel
                    ok, px, py, j00, j01, j10, j11 = shrinking(hpx, n, j, i)
                    if not ok:
                        continue
                    m00, m01, m11 = footprint(j00, j01, j10, j11)
                    ex, ey = support(m00, m01, m11, cubic)
                filter_pixel(src, sflat, n, i, j, px, py, m00, m01, m11, ex, ey, fill, out, cubic, padding,
                             align_corners, acc, cols, wrow, wcol)
        chunk = next_chunk(sched)


@shared
def _m_derivative(hpx, n, jf, i_f, k, hc):
    """d(m00, m01, m11) / dH[n, k // 3, k % 3] at output pixel (jf, i_f), by complex step
    (``hc``: a (1, 3, 3) complex scratch)."""
    for a in range(3):
        for b in range(3):
            hc[0, a, b] = hpx[n, a, b]
    hc[0, k // 3, k % 3] += 1j * _STEP
    _, _, _, j00, j01, j10, j11 = pixel_map(hc, 0, jf, i_f)
    m00, m01, m11 = footprint(j00, j01, j10, j11)
    return m00.imag / _STEP, m01.imag / _STEP, m11.imag / _STEP


@shared
def backward_kernel(gout, src, hpx, fill, buf, rows_seen, ghrows, cubic, padding, align_corners,
                    projective, sched):
    """Gradients of the shrinking pixels: image gradient into chunk buffers (as the generic
    backward), dL/dH into ghrows[n, i] (one row of 9 per output row, summed on the host)."""
    N, Ho, Wo, C = gout.shape
    H = src.shape[1]
    W = src.shape[2]
    K = buf.shape[1]
    acc = np.empty(C)
    cols = np.empty(_MAX_TAPS, np.int64)
    hc = np.empty((1, 3, 3), np.complex128)
    nk = 9 if projective else 6
    chunk = claim(sched)
    while chunk < sched[CHUNKS]:
        t0, t1 = chunk_rows(sched, chunk)
        for t in range(t0, t1):
            n = t // K
            k = t - n * K
            gimg = buf[n, k]
            seen = rows_seen[n, k]
            for i in range(k * Ho // K, (k + 1) * Ho // K):
                for j in range(Wo):
                    ok, px, py, j00, j01, j10, j11 = shrinking(hpx, n, j, i)
                    if not ok:
                        continue
                    m00, m01, m11 = footprint(j00, j01, j10, j11)
                    ex, ey = support(m00, m01, m11, cubic)
                    x0, x1 = tap_range(px, ex)
                    y0, y1 = tap_range(py, ey)
                    for q in range(x0, x1 + 1):
                        cols[q - x0] = aa_tap(float(q), W, padding, align_corners)
                    # pass 1: v = sum w I / W
                    for c in range(C):
                        acc[c] = 0.0
                    wsum = padded_sum(src, n, px, py, m00, m01, m11, x0, x1, y0, y1, cubic, acc, cols, fill,
                                      padding, align_corners)
                    for c in range(C):
                        acc[c] /= wsum
                    # pass 2: dL/dI[q] += g w / W; dL/dw_q = g . (I[q] - v) / W, chained to p and M
                    gpx = 0.0
                    gpy = 0.0
                    g00 = 0.0
                    g01 = 0.0
                    g11 = 0.0
                    for qy in range(y0, y1 + 1):
                        dy = qy - py
                        row = aa_tap(float(qy), H, padding, align_corners)
                        if row >= 0:
                            touch(gimg, seen, row)
                        for qx in range(x0, x1 + 1):
                            dx = qx - px
                            ka, da = kernel_weight(m00 * dx + m01 * dy, cubic)
                            kb, db = kernel_weight(m01 * dx + m11 * dy, cubic)
                            if ka * kb == 0.0 and da * kb == 0.0 and ka * db == 0.0:
                                continue  # neither the weight nor its slope (the cubic's zeros have one)
                            col = cols[qx - x0]
                            inside = row >= 0 and col >= 0
                            wq = ka * kb
                            gw = 0.0
                            for c in range(C):
                                g = gout[n, i, j, c]
                                v = src[n, row, col, c] if inside else fill[c]
                                gw += g * (v - acc[c])
                                if inside and wq != 0.0:
                                    gimg[row, col, c] += g * wq / wsum
                            gw /= wsum
                            ga = gw * da * kb  # dL/d(M d)_x
                            gb = gw * ka * db  # dL/d(M d)_y
                            gpx -= ga * m00 + gb * m01
                            gpy -= ga * m01 + gb * m11
                            g00 += ga * dx
                            g01 += ga * dy + gb * dx
                            g11 += gb * dy
                    # dL/dH: p = (u / w, v / w) with (u, v, w) = H (j, i, 1); M = footprint(J(H))
                    w = hpx[n, 2, 0] * j + hpx[n, 2, 1] * i + hpx[n, 2, 2]
                    base = (float(j), float(i), 1.0)
                    for b in range(3):
                        ghrows[n, i, b] += gpx * base[b] / w
                        ghrows[n, i, 3 + b] += gpy * base[b] / w
                        if projective:
                            ghrows[n, i, 6 + b] -= (gpx * px + gpy * py) * base[b] / w
                    for kk in range(nk):
                        if not projective and kk % 3 == 2:
                            continue  # J of an affine map does not depend on the translation
                        d00, d01, d11 = _m_derivative(hpx, n, float(j), float(i), kk, hc)
                        ghrows[n, i, kk] += g00 * d00 + g01 * d01 + g11 * d11
        chunk = next_chunk(sched)

