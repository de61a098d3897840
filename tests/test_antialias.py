"""antialias=True: the footprint filter against its NumPy reference, exactness where nothing
shrinks, gradients (reference, finite differences, adjoint), determinism, quality and errors."""

from __future__ import annotations

import numpy as np
import pytest

import fastwarp as fw
from fastwarp import reference as ref
from fastwarp.transforms import affine_theta

ALL_DTYPES = (np.uint8, np.uint16, np.float16, np.float32, np.float64)
ALL_PADDINGS = ("zeros", "border", "reflection", "constant", "wrap")


def _images(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        return rng.integers(0, np.iinfo(dtype).max + 1, size=shape).astype(dtype)
    return rng.random(shape).astype(dtype)


def _shrinking_affine(rng, n, in_size, out_size):
    """Random rotations, zooms out (isotropic and not) and shifts: every image shrinks."""
    thetas = []
    for _ in range(n):
        t = affine_theta(in_size, out_size, rotation=rng.uniform(-180, 180), scale=rng.uniform(0.12, 0.6),
                         shear=rng.uniform(-20, 20))
        t[:, :2] = t[:, :2] @ np.diag(rng.uniform(0.7, 1.4, 2))
        t[:, 2] += rng.uniform(-0.4, 0.4, 2)
        thetas.append(t)
    return np.stack(thetas)


def _growing_perspective(rng, n, in_size, out_size, zoom=1.0):
    """Projective thetas whose shrink grows across the output: a rotation spanning ``zoom`` input
    pixels per output pixel where w = 1, tilted so that w runs over about [0.4, 1.6]: with
    zoom 1, the pixels where w < 1 shrink and the others magnify."""
    thetas = []
    for _ in range(n):
        t = np.vstack([affine_theta(in_size, out_size, rotation=rng.uniform(-180, 180), scale=1.0 / zoom),
                       [0.0, 0.0, 1.0]])
        tilt = rng.uniform(0.4, 0.6) * np.array([1.0, rng.uniform(-1, 1)])
        t[2, :2] = rng.permutation(tilt) / np.abs(tilt).sum() * 0.6 * rng.choice([-1, 1], 2)
        thetas.append(t)
    return np.stack(thetas)


def _tol(dtype):
    return {np.dtype(np.uint8): 1, np.dtype(np.uint16): 1, np.dtype(np.float16): 2e-3,
            np.dtype(np.float32): 2e-5}.get(np.dtype(dtype), 1e-12)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("padding", ("zeros", "reflection", "constant", "wrap"))
def test_no_shrink_is_the_plain_warp_bit_for_bit(rng, dtype, padding):
    """Zooms in, pure rotations (singular values exactly 1) and the identity keep the plain result."""
    img = _images(rng, (3, 13, 17, 3), dtype)
    thetas = np.stack([affine_theta((13, 17), (13, 17), rotation=rng.uniform(-180, 180), scale=1.0),
                       affine_theta((13, 17), (13, 17), rotation=rng.uniform(-180, 180),
                                    scale=rng.uniform(1.0, 3.0)),
                       np.eye(3)[:2]])
    top = np.iinfo(dtype).max if np.dtype(dtype).kind == "u" else 1
    kw = dict(padding_mode=padding, fill_value=0.25 * top)
    plain = fw.affine_warp(img, thetas, **kw)
    assert np.array_equal(fw.affine_warp(img, thetas, antialias=True, **kw), plain)
    p3 = np.concatenate([thetas, np.tile([[[0.0, 0.0, 1.0]]], (3, 1, 1))], axis=1)
    assert np.array_equal(fw.perspective_warp(img, p3, antialias=True, **kw), plain)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("padding", ("zeros", "wrap"))
def test_perspective_filters_only_where_it_shrinks(rng, dtype, padding):
    """A perspective whose shrink grows across the image: pixels that do not shrink are the plain
    warp bit for bit; the others are the reference filter."""
    h, w, ho, wo = 29, 33, 21, 19
    img = _images(rng, (2, h, w, 3), dtype)
    theta = _growing_perspective(rng, 2, (h, w), (ho, wo))
    mask = ref.antialias_mask(img, theta, (ho, wo))
    assert 0.05 < mask.mean() < 0.95, "the test perspective should shrink in part of the image only"
    got = fw.perspective_warp(img, theta, (ho, wo), padding_mode=padding, antialias=True)
    plain = fw.perspective_warp(img, theta, (ho, wo), padding_mode=padding)
    assert np.array_equal(got[~mask], plain[~mask])
    want = ref.perspective_warp(img, theta, (ho, wo), padding_mode=padding, antialias=True)
    np.testing.assert_allclose(got[mask].astype(float), want[mask].astype(float), rtol=0, atol=_tol(dtype))


@pytest.mark.parametrize("mode", ("bilinear", "bicubic"))
@pytest.mark.parametrize("padding", ALL_PADDINGS)
@pytest.mark.parametrize("align", (False, True))
def test_matches_reference(rng, mode, padding, align):
    h, w = rng.integers(9, 40, 2)
    ho, wo = rng.integers(1, 9, 2)
    img = rng.random((3, h, w, 2))
    kw = dict(mode=mode, padding_mode=padding, align_corners=align, fill_value=[0.3, -0.2], antialias=True)
    theta = _shrinking_affine(rng, 3, (h, w), (ho, wo))
    np.testing.assert_allclose(fw.affine_warp(img, theta, (ho, wo), **kw),
                               ref.affine_warp(img, theta, (ho, wo), **kw), rtol=0, atol=1e-12)
    p = _growing_perspective(rng, 3, (h, w), (ho, wo), zoom=rng.uniform(1.0, 4.0))
    np.testing.assert_allclose(fw.perspective_warp(img, p, (ho, wo), **kw),
                               ref.perspective_warp(img, p, (ho, wo), **kw), rtol=0, atol=1e-12)


def test_one_pixel_images_and_outputs(rng):
    for (h, w), (ho, wo) in (((1, 1), (1, 1)), ((1, 9), (1, 2)), ((7, 1), (2, 1)), ((12, 15), (1, 1))):
        img = rng.random((2, h, w, 3))
        theta = _shrinking_affine(rng, 2, (h, w), (ho, wo))
        for align in (False, True):
            got = fw.affine_warp(img, theta, (ho, wo), align_corners=align, antialias=True)
            want = ref.affine_warp(img, theta, (ho, wo), align_corners=align, antialias=True)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_anisotropic_shrink_filters_one_axis_only(rng):
    """4x along x and none along y: columns are filtered, a pattern varying only along y is kept."""
    y = rng.random((1, 24, 1, 1))
    img = np.broadcast_to(y, (1, 24, 64, 1)).copy()
    theta = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # the whole image onto 24 x 16: 4x in x only
    got = fw.affine_warp(img, theta, (24, 16), padding_mode="border", antialias=True)
    np.testing.assert_allclose(got[0, :, :, 0], np.broadcast_to(y[0, :, 0], (24, 16)), atol=1e-12)


def _zone_plate(n):
    yy, xx = np.mgrid[0:n, 0:n] + 0.5 - n / 2
    return (0.5 + 0.5 * np.cos(np.pi * (xx * xx + yy * yy) / n))[None, :, :, None]


def _psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((a - b) ** 2))


@pytest.mark.parametrize("shrink,rotation", ((4, 0.0), (4, 20.0)))
def test_zone_plate_quality(shrink, rotation):
    """Against an 8 x 8 supersampled (box) rendering of the same warp, the filter scores far above
    the plain bilinear warp, which aliases the zone plate's high frequencies."""
    n = 128
    img = _zone_plate(n)
    out = (n // shrink, n // shrink)
    theta = affine_theta((n, n), out, rotation=rotation, scale=1.0 / shrink)[None]
    truth = ref.supersampled_warp(img, theta, out)
    plain = _psnr(fw.affine_warp(img, theta, out)[:, 2:-2, 2:-2], truth[:, 2:-2, 2:-2])
    aa = _psnr(fw.affine_warp(img, theta, out, antialias=True)[:, 2:-2, 2:-2], truth[:, 2:-2, 2:-2])
    assert plain < 20 and aa > 26 and aa > plain + 6, (plain, aa)


@pytest.mark.parametrize("mode,padding,align", (("bilinear", "zeros", False), ("bicubic", "reflection", True),
                                                ("bilinear", "constant", False), ("bilinear", "wrap", True)))
def test_gradients_match_reference_and_finite_differences(rng, mode, padding, align):
    h, w, ho, wo = 23, 27, 7, 8
    img = rng.random((2, h, w, 3))
    g = rng.standard_normal((2, ho, wo, 3))
    kw = dict(mode=mode, padding_mode=padding, align_corners=align, fill_value=0.4, antialias=True)
    cases = ((fw.affine_warp, fw.affine_warp_backward, ref.affine_warp_backward,
              _shrinking_affine(rng, 2, (h, w), (ho, wo))),
             (fw.perspective_warp, fw.perspective_warp_backward, ref.perspective_warp_backward,
              _growing_perspective(rng, 2, (h, w), (ho, wo), zoom=4.0)))  # shrinks everywhere
    for forward, backward, reference, theta in cases:
        gi, gt = backward(g, img, theta, (ho, wo), **kw)
        ri, rt = reference(g, img, theta, (ho, wo), **kw)
        np.testing.assert_allclose(gi, ri, rtol=0, atol=1e-12)
        np.testing.assert_allclose(gt, rt, rtol=1e-6, atol=1e-7)
        # a directional central difference of the forward; the tent's kinks (and wrap's seams)
        # make a difference that straddles one wrong by O(step), so the step is small, and when
        # it disagrees it is retried at a tenth and a hundredth of it: a kink straddled at every
        # step is improbable, a wrong gradient disagrees at all three (rounding stays far below
        # the tolerance at each)
        d = rng.standard_normal(theta.shape) * 1e-8
        tried = []
        for scale in (1.0, 0.1, 0.01):
            fd = ((forward(img, theta + scale * d, (ho, wo), **kw) * g).sum()
                  - (forward(img, theta - scale * d, (ho, wo), **kw) * g).sum()) / 2
            tried.append((fd, (gt * scale * d).sum()))
            if abs(fd - tried[-1][1]) <= 1e-3 * abs(fd) + 1e-11 * scale:
                break
        else:
            raise AssertionError(f"finite differences disagree at every step: {tried}")


def test_image_gradient_is_the_adjoint(rng):
    h, w, ho, wo = 31, 26, 9, 7
    theta = _shrinking_affine(rng, 2, (h, w), (ho, wo))
    g = rng.standard_normal((2, ho, wo, 3))
    x = rng.standard_normal((2, h, w, 3))
    for padding in ("zeros", "reflection", "wrap"):
        gi, _ = fw.affine_warp_backward(g, x, theta, (ho, wo), padding_mode=padding, antialias=True)
        lhs = (fw.affine_warp(x, theta, (ho, wo), padding_mode=padding, antialias=True) * g).sum()
        assert abs(lhs - (gi * x).sum()) < 1e-10 * (1 + abs(lhs))


def test_backward_is_deterministic_across_thread_counts(rng):
    import numba

    img = rng.random((3, 40, 44, 3))
    theta = _shrinking_affine(rng, 3, (40, 44), (11, 12))
    g = rng.standard_normal((3, 11, 12, 3))
    first = fw.affine_warp_backward(g, img, theta, (11, 12), antialias=True)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        second = fw.affine_warp_backward(g, img, theta, (11, 12), antialias=True)
    finally:
        numba.set_num_threads(before)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_bad_antialias_arguments(rng):
    img = rng.random((1, 5, 5, 1))
    theta = np.eye(3)[:2]
    with pytest.raises(TypeError, match="antialias must be a bool"):
        fw.affine_warp(img, theta, antialias="yes")
    with pytest.raises(ValueError, match="antialias=True needs mode 'bilinear' or 'bicubic'"):
        fw.affine_warp(img, theta, mode="nearest", antialias=True)
    with pytest.raises(ValueError, match="antialias=True needs mode"):
        fw.perspective_warp_backward(np.zeros((1, 5, 5, 1)), img, np.eye(3), mode="nearest", antialias=True)
    with pytest.raises(TypeError, match="antialias must be a bool"):
        fw.affine_warp_backward(np.zeros((1, 5, 5, 1)), img, theta, antialias=1)


def test_real_footprint_twin_is_the_same_closed_form(rng):
    """The CUDA kernels' real-valued footprint (math.sqrt) gives the CPU's footprint bit for bit,
    on every branch: no clamp, the small eigenvalue clamped to 1, the large one to CAP**2, both."""
    from fastwarp.cpu import antialias as AA

    checked = 0
    for scale in (0.6, 1.5, 6.0, 40.0):
        for _ in range(50):
            j = rng.normal(scale=scale, size=4)
            if AA.stretch(*j) > 1.0:  # the filter runs only where the warp shrinks
                np.testing.assert_array_equal(AA.footprint_real(*j), AA.footprint(*j))
                checked += 1
    assert checked > 100
    for j in ((2.0, 0.0, 0.0, 0.5), (20.0, 0.0, 0.0, 30.0), (3.0, 1.0, 1.0, 3.0), (30.0, 0.0, 0.0, 4.0)):
        np.testing.assert_array_equal(AA.footprint_real(*j), AA.footprint(*j))


def test_complex_step_twin_is_the_same_derivative(rng):
    """The CUDA kernels' complex-step footprint (cmath.sqrt, on the nine scalars of H) gives the
    CPU's per-array derivative on every branch, affine and projective maps alike."""
    from fastwarp.cpu import antialias as AA

    hc = np.empty((1, 3, 3), np.complex128)
    checked = 0
    for scale in (1.5, 6.0, 40.0):
        for _ in range(30):
            h = np.eye(3)[None].copy()
            h[0, :2, :2] = rng.normal(scale=scale, size=(2, 2))
            h[0, :2, 2] = rng.normal(size=2)
            h[0, 2, :2] = rng.normal(scale=0.01, size=2) if checked % 2 else 0.0
            j, i = rng.uniform(0, 20, size=2)
            if not AA.shrinking(h, 0, j, i)[0]:
                continue
            for k in range(9):
                want = AA._m_derivative(h, 0, j, i, k, hc)
                got = AA.footprint_slope(*h[0].ravel(), j, i, k)
                np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
            checked += 1
    assert checked > 40
    j = (2.0 + 0.5j, 0.1j, 0.0, 0.5)  # a complex J straight into both closed forms
    np.testing.assert_array_equal(AA.footprint_step(*j), AA.footprint(*j))
