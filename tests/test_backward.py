"""Gradients (fastwarp.grad): Numba kernels vs the NumPy reference, finite differences,
the adjoint identity, PyTorch autograd, determinism across thread counts, and input checks."""

from __future__ import annotations

import itertools

import numba
import numpy as np
import pytest
import torch
from helpers import MODES, PADDINGS, channels_for, random_images, random_theta

import fastwarp as fw
from fastwarp import reference as ref

FLOATS = (np.float32, np.float64)
FLAGS = list(itertools.product(MODES, PADDINGS, (False, True)))
FLAGS_DT = [f + (dt,) for f in FLAGS for dt in FLOATS]


def _id(p):
    return "-".join(str(getattr(v, "__name__", v)) for v in p)


def close(actual, expected, dtype, what):
    """float64: equal up to rounding; float32: up to float32 rounding of the sums, relative to their size."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    tol = 2e-4 if np.dtype(dtype) == np.float32 else 1e-10
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64),
                               rtol=0, atol=tol * scale, err_msg=what)


def random_grid(rng, n, ho, wo):
    """Normalized points inside, on the edge of and outside [-1, 1], a few far outside."""
    grid = rng.uniform(-1.5, 1.5, size=(n, ho, wo, 2))
    grid[0, 0, : min(wo, 4)] = [[-1, -1], [1, 1], [3.5, 0], [-7, 2]][: min(wo, 4)]
    return grid


# --- kernels vs reference -------------------------------------------------------------------------

@pytest.mark.parametrize("mode,padding,align,dtype", FLAGS_DT, ids=[_id(p) for p in FLAGS_DT])
def test_matches_reference(rng, mode, padding, align, dtype):
    flags = dict(mode=mode, padding_mode=padding, align_corners=align)
    n, h, w = 3, int(rng.integers(4, 12)), int(rng.integers(4, 12))
    c = channels_for(rng, mode, dtype)  # the tuned backward compiles per mode, not per padding
    ho, wo = int(rng.integers(3, 12)), int(rng.integers(3, 12))
    img = random_images(rng, (n, h, w, c), dtype)
    go = rng.normal(size=(n, ho, wo, c)).astype(dtype)
    # fused affine warp
    theta = random_theta(rng, n)
    gi, gt = fw.affine_warp_backward(go, img, theta, (ho, wo), **flags)
    ri, rt = ref.affine_warp_backward(go, img, theta, (ho, wo), mode, padding, align)
    assert gi.dtype == np.dtype(dtype) and gt.dtype == np.float64
    close(gi, ri, dtype, f"affine grad_images {img.shape}->{(ho, wo)}")
    close(gt, rt, dtype, f"affine grad_theta {img.shape}->{(ho, wo)}")
    # grid sample, both grid dtypes
    for gdt in FLOATS:
        grid = random_grid(rng, n, ho, wo).astype(gdt)
        gi, gg = fw.grid_sample_backward(go, img, grid, **flags)
        ri, rg = ref.grid_sample_backward(go, img, grid, mode, padding, align)
        assert gi.dtype == np.dtype(dtype) and gg.dtype == np.dtype(gdt)
        close(gi, ri, dtype, f"grid grad_images grid {np.dtype(gdt)}")
        close(gg, rg, np.float32 if np.float32 in (dtype, gdt) else np.float64,
              f"grid grad_grid grid {np.dtype(gdt)}")
        if mode == "nearest":
            assert not gg.any()


@pytest.mark.parametrize("mode,padding,align", FLAGS, ids=[_id(p) for p in FLAGS])
def test_one_pixel_and_single_image(rng, mode, padding, align):
    """1x1, 1xW and Hx1 images, one image without the batch axis, one (2, 3) theta."""
    flags = dict(mode=mode, padding_mode=padding, align_corners=align)
    for h, w in ((1, 1), (1, 5), (4, 1)):
        img = rng.random((h, w, 2))
        theta = random_theta(rng, 1)[0]
        go = rng.normal(size=(3, 4, 2))
        gi, gt = fw.affine_warp_backward(go, img, theta, (3, 4), **flags)
        ri, rt = ref.affine_warp_backward(go[None], img[None], theta, (3, 4), mode, padding, align)
        assert gi.shape == img.shape and gt.shape == (2, 3)
        close(gi, ri[0], np.float64, f"{h}x{w} grad_images")
        close(gt, rt, np.float64, f"{h}x{w} grad_theta")
        grid = random_grid(rng, 1, 3, 4)[0]
        gi, gg = fw.grid_sample_backward(go, img, grid, **flags)
        ri, rg = ref.grid_sample_backward(go[None], img[None], grid[None], mode, padding, align)
        assert gi.shape == img.shape and gg.shape == grid.shape
        close(gi, ri[0], np.float64, f"{h}x{w} grid grad_images")
        close(gg, rg[0], np.float64, f"{h}x{w} grid grad_grid")
        ti, tg = _torch_grads(go[None], img[None], grid[None], None, mode, padding, align, affine=False)
        close(gi, ti[0], np.float64, f"{h}x{w} grid grad_images vs torch")
        close(gg, tg[0], np.float64, f"{h}x{w} grid grad_grid vs torch")


def test_broadcast_theta_gradient_is_the_batch_sum(rng):
    img = rng.random((4, 6, 7, 3))
    go = rng.normal(size=(4, 5, 8, 3))
    theta = random_theta(rng, 1)[0]
    gi, gt = fw.affine_warp_backward(go, img, theta, (5, 8))
    gi_n, gt_n = fw.affine_warp_backward(go, img, np.broadcast_to(theta, (4, 2, 3)), (5, 8))
    assert gt.shape == (2, 3) and gt_n.shape == (4, 2, 3)
    np.testing.assert_allclose(gt, gt_n.sum(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(gi, gi_n)
    # a (1, 2, 3) theta for one image keeps its shape
    _, gt1 = fw.affine_warp_backward(go[0], img[0], theta[None], (5, 8))
    assert gt1.shape == (1, 2, 3)


def test_non_finite_and_huge_points_have_zero_gradient(rng):
    img = rng.random((1, 5, 6, 2))
    grid = random_grid(rng, 1, 2, 6)
    grid[0, 0, :5] = [[np.nan, 0.1], [0.2, np.inf], [-np.inf, 0.0], [1e300, 0.3], [0.1, -2.0**41]]
    go = rng.normal(size=(1, 2, 6, 2))
    for mode, padding, align in FLAGS:
        gi, gg = fw.grid_sample_backward(go, img, grid, mode=mode, padding_mode=padding,
                                         align_corners=align)
        assert np.isfinite(gi).all() and np.isfinite(gg).all()
        assert not gg[0, 0, :5].any()
        ri, rg = ref.grid_sample_backward(go, img, grid, mode, padding, align)
        close(gi, ri, np.float64, "grad_images")
        close(gg, rg, np.float64, "grad_grid")


def test_small_batch_chunking_matches_large_batch(rng):
    """N = 1 splits the rows of an image into several scratch buffers; N = 16 does not."""
    img = rng.random((16, 9, 11, 3))
    go = rng.normal(size=(16, 13, 10, 3))
    theta = random_theta(rng, 16)
    theta[1] = [[0.1, 0.02, 0.3], [0.0, 0.1, -0.2]]  # zoom in: most rows of the image get nothing
    theta[2] = [[1.0, 0.0, 5.0], [0.0, 1.0, 0.0]]  # every point outside the image
    for padding in ("zeros", "reflection"):
        gi, gt = fw.affine_warp_backward(go, img, theta, (13, 10), padding_mode=padding)
        for n in (0, 1, 2, 7):
            gi1, gt1 = fw.affine_warp_backward(go[n], img[n], theta[n], (13, 10), padding_mode=padding)
            np.testing.assert_allclose(gi1, gi[n], rtol=0, atol=1e-12)
            np.testing.assert_allclose(gt1, gt[n], rtol=0, atol=1e-12)
            ri, rt = ref.affine_warp_backward(go[n:n + 1], img[n:n + 1], theta[n:n + 1], (13, 10),
                                              "bilinear", padding, False)
            close(gi1, ri[0], np.float64, f"image {n} {padding}")
            close(gt1, rt[0], np.float64, f"theta {n} {padding}")
        if padding == "zeros":  # all points of image 2 outside: nothing to scatter
            assert not gi[2].any()
            assert not fw.affine_warp_backward(go[2], img[2], theta[2], (13, 10))[0].any()


def test_row_chunks_depend_on_shapes_only():
    from fastwarp.cpu.backward import SCRATCH_BYTES, TARGET_TASKS, row_chunks

    assert row_chunks(TARGET_TASKS, 50, 1000) == 1
    assert row_chunks(1, 50, 1000) == TARGET_TASKS
    assert row_chunks(1, 3, 1000) == 3  # at most one chunk per output row
    assert row_chunks(3, 50, 1000) * 3 >= TARGET_TASKS
    assert row_chunks(1, 50, SCRATCH_BYTES // 4) == 4  # scratch capped
    assert row_chunks(1, 50, 2 * SCRATCH_BYTES) == 1


# --- finite differences, adjoint ------------------------------------------------------------------

def _pixel(c, n, align):
    return (c + 1) / 2 * (n - 1) if align else ((c + 1) * n - 1) / 2


def _away_from_kinks(grid, h, w, align, margin=1e-3):
    """No point within margin (pixels) of an integer or half-integer pixel coordinate:
    where the taps change, the clamps and the reflections' folds are."""
    px = _pixel(grid[..., 0], w, align) * 2
    py = _pixel(grid[..., 1], h, align) * 2
    return (np.abs(px - np.round(px)).min() > 2 * margin) and (np.abs(py - np.round(py)).min() > 2 * margin)


@pytest.mark.parametrize("mode,padding,align", FLAGS, ids=[_id(p) for p in FLAGS])
def test_finite_differences(rng, mode, padding, align):
    """Directional derivatives of L = <grad_out, forward> by central differences (float64)."""
    n, h, w, c, ho, wo = 2, 5, 7, 2, 4, 6
    img = rng.random((n, h, w, c))
    go = rng.normal(size=(n, ho, wo, c))
    flags = dict(mode=mode, padding_mode=padding, align_corners=align)

    def loss_affine(im, th):
        return float((go * ref.affine_warp(im, th, (ho, wo), mode, padding, align)).sum())

    def loss_grid(im, gr):
        return float((go * ref.grid_sample(im, gr, mode, padding, align)).sum())

    for _ in range(200):
        theta = random_theta(rng, n, spread=0.6)
        if _away_from_kinks(ref.affine_grid(theta, (ho, wo), align), h, w, align):
            break
    else:
        pytest.fail("no theta away from the kinks in 200 draws")
    for _ in range(200):
        grid = rng.uniform(-1.4, 1.4, size=(n, ho, wo, 2))
        if _away_from_kinks(grid, h, w, align):
            break
    else:
        pytest.fail("no grid away from the kinks in 200 draws")

    eps = 1e-6
    v_img = rng.normal(size=img.shape)
    v_theta = rng.normal(size=theta.shape)
    v_grid = rng.normal(size=grid.shape)
    fd_img = (loss_affine(img + eps * v_img, theta) - loss_affine(img - eps * v_img, theta)) / (2 * eps)
    fd_theta = (loss_affine(img, theta + eps * v_theta) - loss_affine(img, theta - eps * v_theta)) / (2 * eps)
    fd_img_g = (loss_grid(img + eps * v_img, grid) - loss_grid(img - eps * v_img, grid)) / (2 * eps)
    fd_grid = (loss_grid(img, grid + eps * v_grid) - loss_grid(img, grid - eps * v_grid)) / (2 * eps)
    for name, (gi, gt) in {
        "kernel": fw.affine_warp_backward(go, img, theta, (ho, wo), **flags),
        "reference": ref.affine_warp_backward(go, img, theta, (ho, wo), mode, padding, align),
    }.items():
        np.testing.assert_allclose((gi * v_img).sum(), fd_img, rtol=1e-6, atol=1e-6, err_msg=name)
        np.testing.assert_allclose((gt * v_theta).sum(), fd_theta, rtol=1e-6, atol=1e-6, err_msg=name)
    for name, (gi, gg) in {
        "kernel": fw.grid_sample_backward(go, img, grid, **flags),
        "reference": ref.grid_sample_backward(go, img, grid, mode, padding, align),
    }.items():
        np.testing.assert_allclose((gi * v_img).sum(), fd_img_g, rtol=1e-6, atol=1e-6, err_msg=name)
        np.testing.assert_allclose((gg * v_grid).sum(), fd_grid, rtol=1e-6, atol=1e-6, err_msg=name)
    if mode == "bilinear":  # the check above is not vacuous
        assert abs(fd_theta) > 1e-3 or abs(fd_grid) > 1e-3


@pytest.mark.parametrize("mode,padding,align", FLAGS, ids=[_id(p) for p in FLAGS])
def test_adjoint_identity(rng, mode, padding, align):
    """The image gradient is the adjoint of the (linear in the image) sampling operator."""
    x = rng.normal(size=(2, 6, 9, 3))
    g = rng.normal(size=(2, 7, 5, 3))
    grid = random_grid(rng, 2, 7, 5)
    flags = dict(mode=mode, padding_mode=padding, align_corners=align)
    lhs = (fw.grid_sample(x, grid, **flags) * g).sum()
    rhs = (x * fw.grid_sample_backward(g, x, grid, **flags)[0]).sum()
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


# --- PyTorch autograd ------------------------------------------------------------------------------

def _torch_grads(go, img, theta_or_grid, size, mode, padding, align, affine):
    ti = torch.tensor(np.moveaxis(img, -1, 1), requires_grad=True)
    tv = torch.tensor(theta_or_grid, requires_grad=True)
    n, c = img.shape[0], img.shape[-1]
    grid = torch.nn.functional.affine_grid(tv, (n, c) + tuple(size), align_corners=align) if affine else tv
    out = torch.nn.functional.grid_sample(ti, grid, mode=mode, padding_mode=padding, align_corners=align)
    out.backward(torch.tensor(np.moveaxis(go, -1, 1)))
    return np.moveaxis(ti.grad.numpy(), 1, -1), tv.grad.numpy()


@pytest.mark.parametrize("mode,padding,align", FLAGS, ids=[_id(p) for p in FLAGS])
def test_matches_torch_random(rng, mode, padding, align):
    flags = dict(mode=mode, padding_mode=padding, align_corners=align)
    img = rng.random((2, 6, 9, 3))
    go = rng.normal(size=(2, 5, 7, 3))
    theta = random_theta(rng, 2)
    gi, gt = fw.affine_warp_backward(go, img, theta, (5, 7), **flags)
    ti, tt = _torch_grads(go, img, theta, (5, 7), mode, padding, align, affine=True)
    close(gi, ti, np.float64, "affine grad_images")
    np.testing.assert_allclose(gt, tt, rtol=0, atol=1e-9, err_msg="affine grad_theta")
    grid = random_grid(rng, 2, 5, 7)
    gi, gg = fw.grid_sample_backward(go, img, grid, **flags)
    ti, tg = _torch_grads(go, img, grid, None, mode, padding, align, affine=False)
    close(gi, ti, np.float64, "grid grad_images")
    close(gg, tg, np.float64, "grid grad_grid")
    # float32: same up to float32 rounding (PyTorch also computes the coordinates in float32)
    img32, go32, grid32 = img.astype(np.float32), go.astype(np.float32), grid.astype(np.float32)
    gi, gg = fw.grid_sample_backward(go32, img32, grid32, **flags)
    ti, tg = _torch_grads(go32, img32, grid32, None, mode, padding, align, affine=False)
    assert gi.dtype == np.float32 and gg.dtype == np.float32
    close(gi, ti, np.float32, "float32 grid grad_images")
    close(gg, tg, np.float32, "float32 grid grad_grid")


@pytest.mark.parametrize("mode,padding,align", FLAGS, ids=[_id(p) for p in FLAGS])
def test_matches_torch_on_centres_edges_and_kinks(rng, mode, padding, align):
    """Points exactly on pixel centres, pixel edges, the clamp bounds, the reflection folds,
    and -1 / n (just outside): the kinks where the slope convention matters.  Sizes are
    chosen so that every coordinate is exact in binary."""
    h, w = (5, 9) if align else (4, 8)
    img = rng.random((1, h, w, 2))
    xs = np.arange(-3.0, w + 2.5, 0.5)
    ys = np.arange(-3.0, h + 2.5, 0.5)
    px, py = np.meshgrid(xs, ys)
    if align:
        grid = np.stack([px / (w - 1) * 2 - 1, py / (h - 1) * 2 - 1], -1)[None]
    else:
        grid = np.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], -1)[None]
    go = rng.normal(size=grid.shape[:3] + (2,))
    gi, gg = fw.grid_sample_backward(go, img, grid, mode=mode, padding_mode=padding, align_corners=align)
    ti, tg = _torch_grads(go, img, grid, None, mode, padding, align, affine=False)
    close(gi, ti, np.float64, "grad_images")
    close(gg, tg, np.float64, "grad_grid")
    ri, rg = ref.grid_sample_backward(go, img, grid, mode, padding, align)
    close(ri, ti, np.float64, "reference grad_images")
    close(rg, tg, np.float64, "reference grad_grid")


# --- determinism -----------------------------------------------------------------------------------

def test_bit_identical_across_thread_counts(rng):
    before = numba.get_num_threads()
    cases = []
    for n, size in ((1, (40, 37)), (3, (21, 30)), (20, (9, 8))):
        img = rng.random((n, 24, 29, 3)).astype(np.float32)
        go = rng.normal(size=(n,) + size + (3,)).astype(np.float32)
        theta = random_theta(rng, n, spread=0.3)
        grid = random_grid(rng, n, *size)
        cases.append((img, go, theta, grid, size))

    def run():
        res = []
        for img, go, theta, grid, size in cases:
            for padding in PADDINGS:
                res += fw.affine_warp_backward(go, img, theta, size, padding_mode=padding)
                res += fw.grid_sample_backward(go, img, grid, padding_mode=padding)
        return res

    try:
        numba.set_num_threads(1)
        one = run()
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = run()
    finally:
        numba.set_num_threads(before)
    for a, b in zip(one, two, strict=True):
        assert a.tobytes() == b.tobytes()


# --- input checks ----------------------------------------------------------------------------------

def test_validation_errors():
    img = np.zeros((2, 5, 6, 3), np.float32)
    theta = np.zeros((2, 2, 3))
    grid = np.zeros((2, 4, 7, 2))
    go = np.zeros((2, 5, 6, 3), np.float32)
    abw, gbw = "affine_warp_backward", "grid_sample_backward"
    cases = [
        # wrong grad_out shape: other size, channels, batch, missing or extra batch axis
        (ValueError, abw, lambda: fw.affine_warp_backward(go[:, :4], img, theta)),
        (ValueError, abw, lambda: fw.affine_warp_backward(go, img, theta, (5, 7))),
        (ValueError, abw, lambda: fw.affine_warp_backward(go[..., :2], img, theta)),
        (ValueError, abw, lambda: fw.affine_warp_backward(go[:1], img, theta)),
        (ValueError, abw, lambda: fw.affine_warp_backward(go[0], img, theta)),
        (ValueError, abw, lambda: fw.affine_warp_backward(go, img[0], theta[0])),
        (ValueError, gbw, lambda: fw.grid_sample_backward(go, img, grid)),
        (ValueError, gbw, lambda: fw.grid_sample_backward(np.zeros((2, 4, 7, 1)), img, grid)),
        # dtypes
        (TypeError, abw, lambda: fw.affine_warp_backward(go.astype(np.int32), img, theta)),
        (TypeError, abw, lambda: fw.affine_warp_backward(go, img.astype(np.uint8), theta)),
        (TypeError, gbw, lambda: fw.grid_sample_backward(np.zeros((2, 4, 7, 3)), img.astype(np.uint8),
                                                         grid)),
        (TypeError, gbw, lambda: fw.grid_sample_backward(np.zeros((2, 4, 7, 3)), img, grid.astype(int))),
        # theta / grid mismatches, flags
        (ValueError, abw, lambda: fw.affine_warp_backward(go, img, np.zeros((3, 2, 3)))),
        (ValueError, abw, lambda: fw.affine_warp_backward(go, img, np.zeros((2, 3, 3)))),
        (ValueError, abw, lambda: fw.affine_warp_backward(go, img, np.full((2, 3), np.nan))),
        (ValueError, gbw, lambda: fw.grid_sample_backward(go[:1, :4, :7], img, grid[:1])),
        (ValueError, abw, lambda: fw.affine_warp_backward(go, img, theta, mode="lanczos")),
        (ValueError, abw, lambda: fw.affine_warp_backward(go, img, theta, device="tpu")),
    ]
    for exc, name, call in cases:
        with pytest.raises(exc, match=f"^{name}: "):
            call()
    with pytest.raises(TypeError, match="uint8"):
        fw.affine_warp_backward(go, img.astype(np.uint8), theta)
    with pytest.raises(ValueError, match=r"\(2, 5, 7, 3\).*\(2, 5, 6, 3\)"):
        fw.affine_warp_backward(go, img, theta, (5, 7))


def test_grad_out_dtype_is_converted_and_layouts_accepted(rng):
    img = rng.random((2, 5, 6, 3))
    theta = random_theta(rng, 2)
    go = rng.normal(size=(2, 4, 7, 3))
    want = fw.affine_warp_backward(go, img, theta, (4, 7))
    got = fw.affine_warp_backward(go.astype(np.float32), img, theta, (4, 7))
    np.testing.assert_allclose(got[0], want[0], atol=1e-6)
    # non-contiguous, big-endian inputs give the same result
    img_f = np.asfortranarray(img).astype(">f8")
    go_s = np.ascontiguousarray(go[:, :, ::-1])[:, :, ::-1]
    got = fw.affine_warp_backward(go_s, img_f, theta, (4, 7))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    # an empty batch
    gi, gt = fw.affine_warp_backward(np.zeros((0, 4, 7, 3)), np.zeros((0, 5, 6, 3)), np.zeros((0, 2, 3)),
                                     (4, 7))
    assert gi.shape == (0, 5, 6, 3) and gt.shape == (0, 2, 3)
