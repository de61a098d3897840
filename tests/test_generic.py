"""The per-combination kernels (bicubic, constant and wrap padding, projective warps, uint16 and
float16) against the NumPy reference, PyTorch and OpenCV, forward and backward.

Compile cost is kept down on purpose: the full mode x padding product runs on float64 images with
three channels (one kernel per combination, shared by grid_sample, affine_warp and
perspective_warp); dtypes and channel counts are covered on a few combinations.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import random_images

import fastwarp as fw
from fastwarp import reference as ref
from fastwarp.transforms import theta_from_homography

MODES = ("nearest", "bilinear", "bicubic")
PADDINGS = ("zeros", "border", "reflection", "constant", "wrap")
COMBOS = list(itertools.product(MODES, PADDINGS))


def random_perspective(rng, n, strength=0.3):
    """Projective matrices near the identity, some of whose points fall behind the viewer (w <= 0)."""
    t = np.tile(np.eye(3), (n, 1, 1)) + rng.normal(scale=strength, size=(n, 3, 3)) * [[0.5, 0.5, 1.0]] * 2
    t[:, 2, :2] = rng.normal(scale=strength, size=(n, 2))
    t[:, 2, 2] = 1.0
    return t


def random_affine(rng, n):
    t = np.tile(np.eye(3)[:2], (n, 1, 1))
    return t + rng.normal(scale=0.9, size=(n, 2, 3)) * np.array([[0.5, 0.5, 1.0]])


def random_grid(rng, n, ho, wo):
    g = rng.uniform(-1.7, 1.7, size=(n, ho, wo, 2))
    special = np.array([[-1, -1], [1, 1], [np.nan, 0], [0, np.inf], [1e13, 0]])  # corners, no-image points
    k = min(5, g[0].size // 2)
    g.reshape(-1, 2)[:k] = special[:k]
    return g


def _atol(grid, h, w):
    """1e-12, widened for sample points far outside the image: a point hundreds of pixels
    away is folded back (reflection, wrap) with an error of a few ulps of its coordinate,
    which the kernels and the reference make in different orders.  Non-finite points and
    points beyond 2**40 read as no image (exact fill) and widen nothing; the widening stops
    at 1e-9."""
    g = np.abs(np.asarray(grid, np.float64))
    g = g[np.isfinite(g) & (g < 2.0**40)]
    far = (g.max(initial=0.0) + 1.0) * max(h, w) / 2
    return min(1e-12 * max(1.0, far / 10), 1e-9)


def _persp_atol(theta, size, align, h, w):
    """Per output pixel (N, Ho, Wo, 1): :func:`_atol` of the pixel's own projective point,
    times the conditioning of its denominator.  Where w = t20 x + t21 y + t22 cancels, the
    kernels' and the reference's w (products summed in different orders) differ by ulps
    of its terms, not of w, and so do their u / w relative to the point."""
    ho, wo = size
    xb = (np.linspace(-1, 1, wo) if wo > 1 else np.zeros(1)) if align else (2 * np.arange(wo) + 1) / wo - 1
    yb = (np.linspace(-1, 1, ho) if ho > 1 else np.zeros(1)) if align else (2 * np.arange(ho) + 1) / ho - 1
    t = np.asarray(theta, np.float64)[:, 2, :, None, None]
    x, y = xb[None, None, :], yb[None, :, None]
    terms = np.abs(t[:, 0] * x) + np.abs(t[:, 1] * y) + np.abs(t[:, 2])
    den = t[:, 0] * x + t[:, 1] * y + t[:, 2]
    g = np.abs(ref.perspective_grid(theta, size, align)).max(-1)
    seen = (den > 0) & (g < 2.0**40)  # other points read as no image: the exact fill
    base = np.where(seen, np.minimum(1e-12 * np.maximum(1.0, (g + 1.0) * max(h, w) / 20), 1e-9), 1e-12)
    return (base * np.where(seen, terms / np.where(seen, den, 1.0), 1.0))[..., None]


@pytest.mark.parametrize("mode,padding", COMBOS)
def test_forward_matches_reference(rng, mode, padding):
    n, h, w = 3, int(rng.integers(4, 12)), int(rng.integers(4, 12))
    size = (int(rng.integers(3, 13)), int(rng.integers(3, 13)))
    img = random_images(rng, (n, h, w, 3), np.float64)
    fill = rng.uniform(-2, 2, 3)
    kw = dict(mode=mode, padding_mode=padding, fill_value=fill)
    for align in (False, True):
        theta = random_perspective(rng, n)
        got = fw.perspective_warp(img, theta, size, align_corners=align, **kw)
        want = ref.perspective_warp(img, theta, size, mode, padding, align, fill)
        err = np.abs(got - want) / _persp_atol(theta, size, align, h, w)
        assert err.max() <= 1, f"perspective {align}: error {err.max():.3g} times the tolerance"
        theta = random_affine(rng, n)
        got = fw.affine_warp(img, theta, size, align_corners=align, **kw)
        want = ref.affine_warp(img, theta, size, mode, padding, align, fill)
        atol = _atol(ref.affine_grid(theta, size, align), h, w)
        np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=f"affine {align}")
        grid = random_grid(rng, n, *size)
        got = fw.grid_sample(img, grid, align_corners=align, **kw)
        want = ref.grid_sample(img, grid, mode, padding, align, fill)
        np.testing.assert_allclose(got, want, rtol=0, atol=_atol(grid, h, w), err_msg=f"grid {align}")
    # 1-pixel images and a 1-pixel output
    for shape in ((2, 1, 1, 3), (2, 1, 6, 3), (2, 5, 1, 3)):
        one = random_images(rng, shape, np.float64)
        theta = random_perspective(rng, 2)
        for sz in ((1, 1), (4, 3)):
            for align in (False, True):
                got = fw.perspective_warp(one, theta, sz, align_corners=align, **kw)
                want = ref.perspective_warp(one, theta, sz, mode, padding, align, fill)
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=f"{shape}->{sz}")


@pytest.mark.parametrize("dtype", [np.float64, np.uint8])
def test_far_affine_points_follow_the_reference(rng, dtype):
    """Rows whose points lie beyond 2**30 pixels (1e9-1e12 here, where float64 resolves 1e-7 to
    1e-4 px) take the reference's formula, unnormalize(theta @ (x, y, 1)), so every padding folds
    the same point as the reference.  (The row points are computed by the same code for every
    image dtype; uint8 and float64 cover both span arithmetics, fixed point and float64.  uint8
    takes every padding with the modes other tests compile for it, float64 every combination.)"""
    img = random_images(rng, (2, 7, 9, 3), dtype)
    combos = COMBOS if dtype == np.float64 else [("bilinear", p) for p in PADDINGS] + [
        ("nearest", "border"), ("bicubic", "reflection")]
    for mode, padding in combos:
        for scale in (1e9, 3e11):
            theta = rng.normal(size=(2, 2, 3))
            theta[:, :, 2] = rng.choice([-1.0, 1.0], (2, 2)) * rng.uniform(1.0, 2.0, (2, 2)) * scale
            theta[:, 0, 0] *= scale / 1e3
            got = fw.affine_warp(img, theta, mode=mode, padding_mode=padding, fill_value=7.0)
            want = ref.affine_warp(img, theta, None, mode, padding, False, 7.0)
            tol = 1 if dtype == np.uint8 else 1e-12
            np.testing.assert_allclose(got.astype(float), want.astype(float), rtol=0, atol=tol,
                                       err_msg=f"{mode} {padding} {scale:g}")


@pytest.mark.parametrize("mode,padding", COMBOS)
def test_backward_matches_reference(rng, mode, padding):
    n, h, w = 2, int(rng.integers(3, 10)), int(rng.integers(3, 10))
    size = (int(rng.integers(2, 9)), int(rng.integers(2, 9)))
    img = random_images(rng, (n, h, w, 3), np.float64)
    fill = rng.uniform(-2, 2, 3)
    kw = dict(mode=mode, padding_mode=padding, fill_value=fill)
    go = rng.normal(size=(n,) + size + (3,))
    for align in (False, True):
        theta = random_perspective(rng, n)
        gi, gt = fw.perspective_warp_backward(go, img, theta, size, align_corners=align, **kw)
        ri, rt = ref.perspective_warp_backward(go, img, theta, size, mode, padding, align, fill)
        np.testing.assert_allclose(gi, ri, rtol=0, atol=1e-11)
        np.testing.assert_allclose(gt, rt, rtol=1e-9, atol=1e-9)
        assert gt.shape == (n, 3, 3)
        grid = random_grid(rng, n, *size)
        gi, gg = fw.grid_sample_backward(go, img, grid, align_corners=align, **kw)
        ri, rg = ref.grid_sample_backward(go, img, grid, mode, padding, align, fill)
        np.testing.assert_allclose(gi, ri, rtol=0, atol=1e-11)
        np.testing.assert_allclose(gg, rg, rtol=0, atol=1e-10)
        if padding in ("constant", "wrap") or mode == "bicubic":  # the generic affine backward
            theta = random_affine(rng, n)
            gi, gt = fw.affine_warp_backward(go, img, theta, size, align_corners=align, **kw)
            ri, rt = ref.affine_warp_backward(go, img, theta, size, mode, padding, align, fill)
            np.testing.assert_allclose(gi, ri, rtol=0, atol=1e-11)
            np.testing.assert_allclose(gt, rt, rtol=1e-9, atol=1e-9)


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
def test_bicubic_matches_torch(rng, padding):
    torch = _torch()
    img = random_images(rng, (2, 7, 9, 3), np.float64)
    grid = rng.uniform(-1.4, 1.4, size=(2, 5, 6, 2))
    go = rng.normal(size=(2, 5, 6, 3))
    for align in (False, True):
        ti = torch.from_numpy(img.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
        tg = torch.from_numpy(grid.copy()).requires_grad_(True)
        o = torch.nn.functional.grid_sample(ti, tg, mode="bicubic", padding_mode=padding, align_corners=align)
        o.backward(torch.from_numpy(go.transpose(0, 3, 1, 2).copy()))
        kw = dict(mode="bicubic", padding_mode=padding, align_corners=align)
        got = fw.grid_sample(img, grid, **kw)
        gi, gg = fw.grid_sample_backward(go, img, grid, **kw)
        np.testing.assert_allclose(got, o.detach().numpy().transpose(0, 2, 3, 1), rtol=0, atol=1e-12)
        np.testing.assert_allclose(gi, ti.grad.numpy().transpose(0, 2, 3, 1), rtol=0, atol=1e-12)
        np.testing.assert_allclose(gg, tg.grad.numpy(), rtol=0, atol=1e-11)


@pytest.mark.parametrize("padding", ["zeros", "reflection"])
def test_nearest_float32_grid_rounds_like_torch(rng, padding):
    """The conformance detail: a float32 grid is unnormalized in float32, so near-ties match."""
    torch = _torch()
    for align in (False, True):
        w = int(rng.integers(3, 300))
        k = rng.integers(-2, w + 2, 4000) + 0.5  # pixel-coordinate ties
        g = k / (w - 1) * 2 - 1 if align else (2 * k + 1) / w - 1
        g = (g + rng.normal(0, 1e-7, g.shape)).astype(np.float32)
        grid = np.stack([g, np.zeros_like(g)], -1).reshape(1, 1, -1, 2)
        img = (np.arange(w, dtype=np.float32) + 1).reshape(1, 1, w, 1)
        want = torch.nn.functional.grid_sample(torch.from_numpy(img.transpose(0, 3, 1, 2).copy()),
                                               torch.from_numpy(grid), mode="nearest", padding_mode=padding,
                                               align_corners=align).numpy().ravel()
        got = fw.grid_sample(img, grid, mode="nearest", padding_mode=padding, align_corners=align)
        np.testing.assert_array_equal(got.ravel(), want)
        # the example: width 5, align_corners=False, x = -0.2 lands on 1.5 and reads column 2
        if padding == "zeros" and not align:
            five = np.arange(5, dtype=np.float32).reshape(1, 1, 5, 1)
            pt = np.array([[[[-0.2, 0.0]]]], np.float32)
            assert fw.grid_sample(five, pt, mode="nearest")[0, 0, 0, 0] == 2
        np.testing.assert_array_equal(got, ref.grid_sample(img, grid, "nearest", padding, align))
        # its gradient lands on the same pixels
        gi, _ = fw.grid_sample_backward(np.ones_like(got), img, grid, mode="nearest", padding_mode=padding,
                                        align_corners=align)
        ri, _ = ref.grid_sample_backward(np.ones_like(got), img, grid, "nearest", padding, align)
        np.testing.assert_array_equal(gi, ri)


def _smooth(rng, h, w, c, dtype=np.float32):
    """A smooth random image (finite differences of a warp need slow variation)."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    chans = [0.5 + 0.25 * np.sin(2 * np.pi * (rng.uniform(0.5, 1.5) * x + rng.uniform(0.5, 1.5) * y)
                                 + rng.uniform(0, 6)) for _ in range(c)]
    return np.stack(chans, -1).astype(dtype)


@pytest.mark.parametrize("padding,border,modes", [
    ("wrap", "BORDER_WRAP", ("bilinear",)),
    ("constant", "BORDER_CONSTANT", ("bilinear", "nearest")),
    ("border", "BORDER_REPLICATE", ("bicubic",)),
])
def test_perspective_matches_opencv(rng, padding, border, modes):
    """cv2.warpPerspective with OpenCV's border modes, on float32 images (OpenCV 5's float64 path
    with INTER_CUBIC differs from its own float32 and remap results by up to 1.1)."""
    cv2 = pytest.importorskip("cv2")
    img = random_images(rng, (23, 31, 3), np.float32)
    fill = rng.uniform(0, 1, 3)
    ang = rng.uniform(-0.6, 0.6)
    m = np.array([[np.cos(ang), -np.sin(ang), rng.uniform(-25, 25)],
                  [np.sin(ang), np.cos(ang), rng.uniform(-25, 25)], [0, 0, 1.0]])
    m[2, :2] = rng.uniform(-2e-3, 2e-3, 2)  # a mild homography, w > 0 over the output
    theta = theta_from_homography(m, (23, 31), (19, 29))
    for mode in modes:
        interp = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST,
                  "bicubic": cv2.INTER_CUBIC}[mode]
        kw = dict(flags=interp, borderMode=getattr(cv2, border), borderValue=tuple(fill) + (0.0,))
        want = cv2.warpPerspective(img, m, (29, 19), **kw)
        got = fw.perspective_warp(img, theta, (19, 29), mode=mode, padding_mode=padding, fill_value=fill)
        bad = np.abs(got - want) > 1e-4
        # nearest may pick the other neighbour at a near-tie (OpenCV rounds in float32)
        assert bad.mean() < (0.01 if mode == "nearest" else 1e-9), (mode, np.abs(got - want).max())


def test_wrap_is_sampling_the_tiled_image(rng):
    """wrap padding = sampling the image tiled 5 x 5 with zeros padding, for points up to two
    periods away (bicubic: OpenCV 5's warpPerspective with INTER_CUBIC and BORDER_WRAP disagrees
    with the tiling on some pixels, so the tiling is the reference here)."""
    h, w = int(rng.integers(5, 20)), int(rng.integers(5, 20))
    img = random_images(rng, (2, h, w, 3), np.float64)
    theta = random_perspective(rng, 2, strength=0.05)
    theta[:, :2, 2] += rng.uniform(-2.5, 2.5, (2, 2))  # shifts of more than a period
    tiled = np.tile(img, (1, 5, 5, 1))
    g = fw.perspective_grid(theta, (h + 3, w + 2))
    px = ((g[..., 0] + 1) * w - 1) / 2 + 2 * w  # the same points in the tiled image's pixels
    py = ((g[..., 1] + 1) * h - 1) / 2 + 2 * h
    gt = np.stack([(2 * px + 1) / (5 * w) - 1, (2 * py + 1) / (5 * h) - 1], -1)
    inside = (px > 2) & (px < 5 * w - 3) & (py > 2) & (py < 5 * h - 3)
    assert inside.mean() > 0.5
    for mode in ("bicubic", "bilinear", "nearest"):
        got = fw.perspective_warp(img, theta, (h + 3, w + 2), mode=mode, padding_mode="wrap")
        want = fw.grid_sample(tiled, gt, mode=mode)
        close = np.isclose(got, want, atol=1e-9).all(-1)
        # nearest may round a point on a tie differently in the two coordinate systems
        assert close[inside].mean() > (0.99 if mode == "nearest" else 1 - 1e-12), mode


@pytest.mark.parametrize("dtype", [np.float64, np.uint8])
def test_wrapped_bilinear_points_on_seams_and_periods_away(rng, dtype):
    """Bilinear wrap blends the 2 x 2 taps floor(x) + {0, 1} mod W directly unless they straddle
    the seam: points on pixel centres, on the seam (between the last and the first column or
    row), several periods away on both sides, on 1- and 2-pixel axes, against the reference."""
    for h, w in ((int(rng.integers(3, 9)), int(rng.integers(3, 9))), (1, 5), (2, 1), (1, 1)):
        img = random_images(rng, (2, h, w, 3), dtype)
        def points(n):  # pixel coordinates: random, centres and edges, and seam crossings
            return np.concatenate([rng.uniform(-4 * n, 5 * n, 200), np.arange(-3 * n, 4 * n, 0.5)]
                                  + [k * n - 1 + rng.uniform(0, 1, 8) for k in range(-3, 4)])

        px = points(w)
        py = rng.permutation(np.resize(points(h), px.size))
        grid = np.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], -1).reshape(1, 1, -1, 2)
        grid = np.repeat(grid, 2, 0)
        got = fw.grid_sample(img, grid, padding_mode="wrap")
        want = ref.grid_sample(img, grid, "bilinear", "wrap", False)
        tol = 1 if dtype == np.uint8 else 1e-12
        np.testing.assert_allclose(got.astype(float), want.astype(float), rtol=0, atol=tol,
                                   err_msg=f"{h}x{w}")


def test_perspective_with_affine_last_row_is_affine_warp(rng):
    img = random_images(rng, (3, 9, 8, 3), np.float32)
    a = random_affine(rng, 3)
    t = np.concatenate([a, np.tile([[[0.0, 0.0, 1.0]]], (3, 1, 1))], 1)
    for mode, padding in (("bilinear", "zeros"), ("nearest", "reflection"), ("bicubic", "wrap")):
        kw = dict(mode=mode, padding_mode=padding)
        np.testing.assert_array_equal(fw.perspective_warp(img, t, (7, 10), **kw),
                                      fw.affine_warp(img, a, (7, 10), **kw))
    # the backward of a projective theta also has the last row's gradient
    go = rng.normal(size=(3, 7, 10, 3))
    gi, gt = fw.perspective_warp_backward(go, img.astype(np.float64), t, (7, 10))
    ai, at = fw.affine_warp_backward(go, img.astype(np.float64), a, (7, 10))
    np.testing.assert_allclose(gi, ai, atol=1e-12)
    np.testing.assert_allclose(gt[:, :2], at, rtol=1e-9, atol=1e-9)
    ri, rt = ref.perspective_warp_backward(go, img.astype(np.float64), t, (7, 10))
    np.testing.assert_allclose(gt, rt, rtol=1e-9, atol=1e-9)


def test_coordinates_do_not_depend_on_which_kernel_compiled_them_first():
    """Numba lets a callee compiled for a fastmath caller inherit its flags: the coordinate
    helpers (row_points, pad_pixel, ...) say fastmath=False, so a fresh process that first
    compiles them under the bilinear rows (which contract multiply-adds) still computes
    the same points as perspective_grid, bit for bit."""
    import subprocess
    import sys

    code = (
        "import numpy as np, fastwarp as fw\n"
        "rng = np.random.default_rng(5)\n"
        "img = rng.random((3, 9, 11, 3))\n"
        "theta = np.eye(3)[None] + rng.normal(scale=0.2, size=(3, 3, 3))\n"
        "fw.perspective_warp(img, theta, (6, 9))  # compiles the rows' helpers under the bilinear rows\n"
        "for mode in ('bilinear', 'bicubic'):\n"
        "    for pad in ('zeros', 'wrap', 'reflection'):\n"
        "        kw = dict(mode=mode, padding_mode=pad, align_corners=True)\n"
        "        grid = fw.perspective_grid(theta, (6, 9), align_corners=True)\n"
        "        fused = fw.perspective_warp(img, theta, (6, 9), **kw)\n"
        "        assert np.array_equal(fw.grid_sample(img, grid, **kw), fused), (mode, pad)\n"
        "print('same')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "same", out.stdout + out.stderr


def test_perspective_grid_and_behind_the_viewer(rng):
    theta = random_perspective(rng, 4, strength=0.8)
    theta[0, 2] = [1.5, rng.uniform(-0.3, 0.3), 0.2]  # w = 1.5 x + ... + 0.2: the left part is behind
    for align in (False, True):
        got = fw.perspective_grid(theta, (6, 9), align_corners=align)
        want = ref.perspective_grid(theta, (6, 9), align)
        # u / w is ill-conditioned where w is near 0: compare relatively
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-13)
    assert np.isnan(got).any() and np.isfinite(got).any()  # some points behind, some in front
    # the grid holds the very points the fused warp samples
    img = random_images(rng, (4, 7, 8, 3), np.float64)
    kw = dict(mode="bicubic", padding_mode="wrap", align_corners=align)
    np.testing.assert_array_equal(fw.grid_sample(img, got, **kw),
                                  fw.perspective_warp(img, theta, (6, 9), **kw))
    # a plane seen edge-on: w = x, so the left half of the output is behind the viewer
    t = np.array([[0.0, 0.0, 0.5], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    img = random_images(rng, (5, 6, 2), np.float64)
    g = fw.perspective_grid(t, (5, 6))
    assert np.isnan(g[:, :3]).all() and np.isfinite(g[:, 3:]).all()
    out = fw.perspective_warp(img, t, padding_mode="constant", fill_value=[7.0, -3.0])
    assert (out[:, :3] == [7.0, -3.0]).all()
    assert (fw.perspective_warp(img, t, padding_mode="border")[:, :3] == 0).all()
    np.testing.assert_allclose(fw.grid_sample(img, g, padding_mode="constant", fill_value=[7.0, -3.0]), out)


def _fd_check(f, x, direction, analytic, eps=1e-6):
    num = (f(x + eps * direction) - f(x - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(analytic, num, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode,padding", [("bilinear", "constant"), ("bicubic", "wrap"),
                                          ("bicubic", "reflection")])
def test_theta_gradient_finite_differences(rng, mode, padding):
    img = _smooth(rng, 12, 15, 3, np.float64)[None].repeat(2, 0)
    theta = random_perspective(rng, 2, strength=0.1)
    go = rng.normal(size=(2, 10, 11, 3))
    kw = dict(mode=mode, padding_mode=padding, fill_value=0.3)
    _, gt = fw.perspective_warp_backward(go, img, theta, (10, 11), **kw)
    d = rng.normal(size=theta.shape)
    _fd_check(lambda t: (fw.perspective_warp(img, t, (10, 11), **kw) * go).sum(), theta, d, (gt * d).sum())


@pytest.mark.parametrize("mode,padding", [("bicubic", "border"), ("bilinear", "wrap"),
                                          ("nearest", "constant")])
def test_image_gradient_is_the_adjoint(rng, mode, padding):
    """<warp(x), y> = <x, warp^T(y)>: the image gradient is the transpose of the (linear) warp;
    the fill is 0, so with constant padding too the warp is linear in x."""
    x = rng.normal(size=(2, 8, 11, 3))
    y = rng.normal(size=(2, 9, 7, 3))
    theta = random_perspective(rng, 2)
    kw = dict(mode=mode, padding_mode=padding, fill_value=0.0)
    ax = fw.perspective_warp(x, theta, (9, 7), **kw)
    aty, _ = fw.perspective_warp_backward(y, x, theta, (9, 7), **kw)
    assert abs((ax * y).sum() - (x * aty).sum()) < 1e-10 * max(1.0, abs((ax * y).sum()))


def test_other_dtypes(rng):
    """uint16 (rounded, saturated), uint8, float32 and float16 (computed in float32) against the reference."""
    theta = random_perspective(rng, 2)
    combos = {np.uint16: (("bicubic", "reflection"), ("bilinear", "constant"), ("nearest", "wrap")),
              np.uint8: (("bicubic", "reflection"),)}
    for dtype, hi in ((np.uint16, 65535), (np.uint8, 255)):
        img = rng.integers(0, hi + 1, size=(2, 9, 10, 3)).astype(dtype)
        img[0, :3] = hi  # bicubic overshoots next to a plateau: saturates
        for mode, padding in combos[dtype]:
            got = fw.perspective_warp(img, theta, (8, 7), mode=mode, padding_mode=padding,
                                      fill_value=hi * 1.5)
            want = ref.perspective_warp(img, theta, (8, 7), mode, padding, False, hi * 1.5)
            assert got.dtype == dtype
            diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
            assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (dtype, mode, padding)
        # the tuned modes on uint16 run the per-combination kernels
        got = fw.affine_warp(img, random_affine(rng, 2), mode="bilinear", padding_mode="border")
        assert got.dtype == dtype
    img = rng.random((2, 9, 10, 3))
    for dtype, tol in ((np.float32, 2e-5), (np.float16, 2e-3)):
        x = img.astype(dtype)
        for mode, padding in (("bicubic", "wrap"), ("bilinear", "zeros")):
            got = fw.perspective_warp(x, theta, (8, 7), mode=mode, padding_mode=padding)
            want = ref.perspective_warp(x, theta, (8, 7), mode, padding)
            assert got.dtype == dtype
            np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol)
        out = np.empty((2, 8, 7, 3), dtype)
        assert fw.perspective_warp(x, theta, (8, 7), out=out) is out
        np.testing.assert_array_equal(out, fw.perspective_warp(x, theta, (8, 7)))
    # float16 images have gradients (computed in float32, returned as float16)
    x16 = img.astype(np.float16)
    go = rng.normal(size=(2, 8, 7, 3))
    gi, gt = fw.perspective_warp_backward(go, x16, theta, (8, 7), mode="bicubic")
    ri, rt = ref.perspective_warp_backward(go, x16.astype(np.float64), theta, (8, 7), "bicubic")
    assert gi.dtype == np.float16 and gt.dtype == np.float64
    np.testing.assert_allclose(gi.astype(np.float64), ri, rtol=5e-3, atol=5e-3)
    np.testing.assert_allclose(gt, rt, rtol=1e-3, atol=1e-3 * np.abs(rt).max())


@pytest.mark.parametrize("c", [1, 5])  # a constant channel count (1, 3, 4) and any other count
def test_channel_counts(rng, c):
    img = random_images(rng, (2, 7, 8, c), np.float64)
    theta = random_perspective(rng, 2)
    fill = rng.uniform(size=c)
    got = fw.perspective_warp(img, theta, (6, 9), mode="bicubic", padding_mode="constant", fill_value=fill)
    want = ref.perspective_warp(img, theta, (6, 9), "bicubic", "constant", False, fill)
    np.testing.assert_allclose(got, want, atol=1e-12)
    go = rng.normal(size=got.shape)
    gi, gt = fw.perspective_warp_backward(go, img, theta, (6, 9), mode="bicubic", padding_mode="constant",
                                          fill_value=fill)
    ri, rt = ref.perspective_warp_backward(go, img, theta, (6, 9), "bicubic", "constant", False, fill)
    np.testing.assert_allclose(gi, ri, atol=1e-11)
    np.testing.assert_allclose(gt, rt, rtol=1e-9, atol=1e-9)


def test_backward_is_deterministic(rng):
    import numba

    img = random_images(rng, (3, 30, 40, 3), np.float64)
    theta = random_perspective(rng, 3)
    go = rng.normal(size=(3, 50, 60, 3))
    kw = dict(mode="bicubic", padding_mode="wrap")
    results = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(threads)
        try:
            results.append(fw.perspective_warp_backward(go, img, theta, (50, 60), **kw))
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for a, b in zip(results[0], results[1]):
        np.testing.assert_array_equal(a, b)


def test_a_call_compiles_only_its_combination():
    """In a fresh process one bicubic call builds one per-combination kernel, for one signature,
    and touches no backward kernel."""
    import subprocess
    import sys

    code = (
        "import numpy as np, fastwarp as fw\n"
        "from fastwarp.cpu import generic as G, backward as B\n"
        "img = np.random.default_rng(0).random((1, 5, 6, 3))\n"
        "fw.perspective_warp(img, np.eye(3) + 0.01, mode='bicubic', padding_mode='wrap')\n"
        "fw.perspective_warp(img, np.eye(3), mode='bicubic', padding_mode='wrap')\n"
        "kernels = [G.forward_kernel(*k) for k in [(2, 4, 3, False)]]\n"
        "print(G.forward_kernel.cache_info().currsize, len(kernels[0].signatures),\n"
        "      G.backward_kernel.cache_info().currsize, B.backward_kernel.cache_info().currsize)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1", "0", "0"], out.stdout + out.stderr


def test_bad_new_arguments(rng):
    img = random_images(rng, (2, 5, 6, 3), np.float64)
    t3 = random_perspective(rng, 2)
    cases = [
        (ValueError, r"^perspective_warp: theta must have shape \(N, 3, 3\) or \(3, 3\); got \(2, 2, 3\)",
         lambda: fw.perspective_warp(img, random_affine(rng, 2))),
        (ValueError, r"^perspective_warp: theta has 3 matrices for a batch of 2 images",
         lambda: fw.perspective_warp(img, random_perspective(rng, 3))),
        (ValueError, "^perspective_warp: theta must be finite",
         lambda: fw.perspective_warp(img, np.full((3, 3), np.nan))),
        (ValueError, r"^perspective_grid: theta must have shape \(N, 3, 3\)",
         lambda: fw.perspective_grid(np.eye(2, 3), (3, 3))),
        (ValueError, r"^affine_warp: fill_value must be a scalar or 3 values .* got shape \(2,\)",
         lambda: fw.affine_warp(img, random_affine(rng, 2), padding_mode="constant", fill_value=[1, 2])),
        (TypeError, "^grid_sample: fill_value must be a real number",
         lambda: fw.grid_sample(img, np.zeros((2, 3, 3, 2)), fill_value="white")),
        (ValueError, "^perspective_warp: fill_value must be finite",
         lambda: fw.perspective_warp(img, t3, padding_mode="constant", fill_value=np.nan)),
        (TypeError, "^perspective_warp_backward: images must have dtype float32, float64, float16",
         lambda: fw.perspective_warp_backward(np.zeros((2, 5, 6, 3)), img.astype(np.uint16), t3)),
        (TypeError, "^affine_warp: images must have dtype float32, float64, float16, uint8, uint16; "
                    "got int16",
         lambda: fw.affine_warp(img.astype(np.int16), random_affine(rng, 2))),
        (ValueError, r"^theta_from_homography: matrix must have shape \(3, 3\)",
         lambda: theta_from_homography(np.eye(2, 3), (4, 4))),
    ]
    for exc, pattern, call in cases:
        with pytest.raises(exc, match=pattern):
            call()


@pytest.mark.parametrize("channels", [3, 4])
def test_uint16_vector_pixels_match_the_reference(rng, channels):
    """3- and 4-channel uint16 bilinear pixels blend as float64 vectors: within one level of
    the reference (float64, rounded half up) and rarely off, on every padding, on 1- and
    2-pixel axes and on pixels whose taps end the array (the masked loads)."""
    sizes = [(1, 1), (1, 5), (2, 2), (7, 1)] + [tuple(rng.integers(2, 40, 2)) for _ in range(3)]
    for (h, w), padding in itertools.product(sizes, ("zeros", "border", "reflection", "wrap", "constant")):
        img = rng.integers(0, 65536, (2, h, w, channels)).astype(np.uint16)
        theta = random_affine(rng, 2)
        for warp, want in ((fw.affine_warp(img, theta, padding_mode=padding, fill_value=30000.3),
                            ref.affine_warp(img, theta, None, "bilinear", padding, False, 30000.3)),
                           (fw.affine_warp(img, np.eye(2, 3), padding_mode=padding), img)):
            assert warp.dtype == np.uint16
            diff = np.abs(warp.astype(np.int64) - want.astype(np.int64))
            assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (h, w, padding, diff.max())


@pytest.mark.parametrize("channels", [3, 4])
def test_uint8_bicubic_vector_pixels_match_the_reference(rng, channels):
    """3- and 4-channel uint8 bicubic pixels blend as 16-lane vectors: within one level of the
    reference and rarely off (overshoot saturates), on every padding and on images whose
    last pixels' tap rows end the array (the masked loads)."""
    sizes = [(4, 4), (5, 9)] + [tuple(rng.integers(4, 40, 2)) for _ in range(3)]
    for (h, w), padding in itertools.product(sizes, ("zeros", "border", "reflection", "wrap", "constant")):
        img = rng.integers(0, 256, (2, h, w, channels)).astype(np.uint8)
        img[0, : h // 2] = 255  # a plateau: bicubic overshoots next to it
        theta = random_affine(rng, 2)
        got = fw.affine_warp(img, theta, mode="bicubic", padding_mode=padding, fill_value=100.3)
        want = ref.affine_warp(img, theta, None, "bicubic", padding, False, 100.3)
        diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (h, w, padding, diff.max())


@pytest.mark.parametrize("padding", ["zeros", "constant"])
def test_fill_runs_at_both_ends_of_grid_and_projective_rows(rng, padding):
    """Grid and projective rows write the points at either end that read only the fill as
    runs, the right one after the row's vector pixels (a 3-channel pixel's store spills into
    the next column): every column equals the reference, the first fill column after the
    image included."""
    h, w = int(rng.integers(3, 12)), int(rng.integers(3, 12))
    img = random_images(rng, (2, h, w, 3), np.float32)
    # outside, across the image (every tap inside), then at once outside again: the last
    # image pixel's neighbour is a fill column
    px = np.concatenate([[-5.0, -2.5], np.linspace(0.2, w - 1.3, 2 * w), [w + 0.5, w + 3.0]])
    wo = px.size
    py = rng.uniform(0.2, h - 1.2, (2, 4, 1)) + np.zeros((1, 1, wo))
    grid = np.stack([np.broadcast_to((2 * px + 1) / w - 1, py.shape), (2 * py + 1) / h - 1], -1)
    fill = (7.0, -8.5, 9.25)
    got = fw.grid_sample(img, grid, padding_mode=padding, fill_value=fill if padding == "constant" else 0.0)
    want = ref.grid_sample(img, grid, "bilinear", padding, False, fill if padding == "constant" else 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    theta = random_perspective(rng, 2, strength=0.1)
    theta[:, 0, 0] *= 3.0  # rows that run out of the image on both sides
    got = fw.perspective_warp(img, theta, (5, 3 * w), padding_mode=padding, fill_value=fill)
    want = ref.perspective_warp(img, theta, (5, 3 * w), "bilinear", padding, False, fill)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.float64])
def test_grid_rows_with_edge_points_between_interior_ones(rng, dtype):
    """Along a grid row the vector pass blends the points whose taps are all inside and
    leaves the others (edge, NaN, far outside), wherever they fall between the fill runs,
    to the per-point path: every column equals the reference, for every padding."""
    h, w = int(rng.integers(4, 15)), int(rng.integers(4, 15))
    img = random_images(rng, (2, h, w, 3), dtype)
    wo = 3 * w + int(rng.integers(0, 9))
    px = rng.uniform(0.1, w - 1.1, (2, 5, wo))
    py = rng.uniform(0.1, h - 1.1, (2, 5, wo))
    kinds = rng.integers(0, 5, (2, 5, wo))  # 0, 1: inside; 2: an edge point; 3: NaN; 4: far outside
    px[kinds == 2] = rng.choice([-0.6, w - 0.4, 0.3])
    py[kinds == 2] = rng.choice([0.4, -0.7, h - 0.3])
    px[kinds == 3] = np.nan
    px[kinds == 4] = rng.choice([-40.0, w + 25.0])
    px[:, :, 0] = -9.0  # a fill run at the left end
    grid = np.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], -1)
    fill = (7.0, 8.5, 9.25)
    for padding in PADDINGS:
        fv = fill if padding == "constant" else 0.0
        got = fw.grid_sample(img, grid, padding_mode=padding, fill_value=fv)
        want = ref.grid_sample(img, grid, "bilinear", padding, False, fv)
        if dtype == np.uint8:
            # the float32 blend may round a value within its rounding error of a .5 tie the
            # other way (a kind-2 point repeats, and with it any tie it lands on)
            diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
            exact = ref.grid_sample(img.astype(np.float64), grid, "bilinear", padding, False, fv)
            near_tie = np.abs(exact - np.floor(exact) - 0.5) < 1e-4
            assert diff.max() <= 1 and near_tie[diff > 0].all(), (padding, diff.max())
        else:
            tol = 1e-5 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=padding)


def test_bicubic_tap_pass_weights_are_cubic_weights(rng):
    """The vector tap pass of the bicubic rows (simd.cubic_points) gives each point inside
    (1 <= x < W - 2, 1 <= y < H - 2) the first-tap offset and exactly the weights of
    generic.cubic_weights (float64, and rounded once to float32), and flags the others
    (the bounds themselves, NaN, far points)."""
    from numba import njit

    from fastwarp.cpu.generic import cubic_weights
    from fastwarp.cpu.simd import cubic_points

    @njit
    def tap_pass(xs, ys, W, H, base, row, C, offs, w, inside):
        for t in range(0, xs.size - 8, 8):
            cubic_points(xs, ys, t, W, H, base, row, C, offs, w, inside, t)

    W, H, C = int(rng.integers(4, 40)), int(rng.integers(4, 40)), 3
    n = 64
    xs = np.full(n + 8, np.nan)
    ys = np.full(n + 8, np.nan)
    xs[:n] = rng.uniform(-2.0, W + 1.0, n)
    ys[:n] = rng.uniform(-2.0, H + 1.0, n)
    xs[:6] = [1.0, W - 2.0, np.nextafter(W - 2.0, 0.0), 2.5, np.nan, 1e300]
    ys[:6] = [1.5, 2.0, 1.0, np.nextafter(1.0, 0.0), 2.0, 2.0]
    for wdtype in (np.float64, np.float32):
        offs = np.zeros(n, np.int64)
        w = np.zeros((8, n), wdtype)
        inside = np.zeros(n, np.uint8)
        tap_pass(xs, ys, W, H, 1000, W * C, C, offs, w, inside)
        for t in range(n):
            x, y = xs[t], ys[t]
            ok = 1.0 <= x < W - 2 and 1.0 <= y < H - 2
            assert inside[t] == ok, (t, x, y)
            if ok:
                ix, iy = int(x), int(y)
                assert offs[t] == 1000 + (iy - 1) * W * C + (ix - 1) * C
                want = np.array(cubic_weights.py_func(x - ix) + cubic_weights.py_func(y - iy))
                np.testing.assert_array_equal(w[:, t], want.astype(wdtype))


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_an_image_warps_the_same_wherever_it_sits_in_the_batch(rng, mode):
    """The SIMD blends read whole vectors past a pixel's taps (8 values per bilinear tap row,
    4 per bicubic tap), which only the batch's last image must avoid near its end: there the
    points take exact loads (bicubic) or the per-point path (projective and grid rows).  An
    image's output must not depend on that: warped first of two and alone (so last), it is
    bit for bit the same, and matches the reference."""
    # the dtypes and channel counts whose pixels blend as vectors in this mode
    cases = {"bilinear": [(np.float32, 3), (np.uint8, 3), (np.uint16, 4)],
             "bicubic": [(np.float32, 3), (np.float32, 4), (np.uint8, 4)]}[mode]
    for dtype, c in cases:
        h, w = (int(v) for v in rng.integers(3, 12, size=2))
        if dtype == np.uint16:
            x = rng.integers(0, 65536, size=(2, h, w, c)).astype(np.uint16)
        else:
            x = random_images(rng, (2, h, w, c), dtype)
        # near-identity maps whose taps reach the last row and column, plus a projective one
        ta = np.tile(np.eye(3)[:2], (2, 1, 1)) + rng.normal(scale=0.03, size=(2, 2, 3))
        tp = random_perspective(rng, 2, strength=0.05)
        for warp, theta in ((fw.affine_warp, ta), (fw.perspective_warp, tp)):
            kw = dict(mode=mode, padding_mode=str(rng.choice(["zeros", "border", "reflection"])))
            both = warp(x, theta, **kw)
            alone = warp(x[:1], theta[:1], **kw)
            np.testing.assert_array_equal(both[0], alone[0])
            np.testing.assert_array_equal(both[1], warp(x[1:], theta[1:], **kw)[0])
            want = (ref.affine_warp if warp is fw.affine_warp else ref.perspective_warp)(x, theta, **kw)
            if dtype == np.float32:
                np.testing.assert_allclose(both, want, rtol=0, atol=3e-6)
            else:  # integer outputs: rounded from the blend (near-ties may round either way)
                assert np.abs(both.astype(np.int64) - want.astype(np.int64)).max() <= 1
