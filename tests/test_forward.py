"""The Numba forward kernels against the NumPy reference, for every flag combination."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import DTYPES, MODES, PADDINGS, assert_matches, channels_for, random_images, random_theta

import fastwarp as fw
from fastwarp import reference as ref

FLAGS = list(itertools.product(MODES, PADDINGS, (False, True), DTYPES))


def _id(p):
    return "-".join(str(getattr(v, "__name__", v)) for v in p)


@pytest.mark.parametrize("mode,padding,align,dtype", FLAGS, ids=[_id(p) for p in FLAGS])
def test_affine_warp_matches_reference(rng, mode, padding, align, dtype):
    # odd, non-square input and a different odd, non-square output
    n, h, w = 3, int(rng.integers(5, 12)), int(rng.integers(5, 12))
    c = channels_for(rng, mode, padding, dtype)
    size = (int(rng.integers(3, 14)), int(rng.integers(3, 14)))
    img = random_images(rng, (n, h, w, c), dtype)
    theta = random_theta(rng, n)
    got = fw.affine_warp(img, theta, size, mode=mode, padding_mode=padding, align_corners=align)
    want = ref.affine_warp(img, theta, size, mode, padding, align)
    assert_matches(got, want, dtype, f"{img.shape}->{size}")


@pytest.mark.parametrize("mode,padding,align,dtype", FLAGS, ids=[_id(p) for p in FLAGS])
def test_grid_sample_matches_reference(rng, mode, padding, align, dtype):
    n, h, w, c = 2, 7, 10, 3
    img = random_images(rng, (n, h, w, c), dtype)
    # points inside, outside, and far outside the [-1, 1] square
    grid = rng.uniform(-1.6, 1.6, size=(n, 5, 9, 2))
    grid[0, 0, :4] = [[-1, -1], [1, 1], [3.5, 0], [-7, 2]]
    for gdt in (np.float32, np.float64):
        g = grid.astype(gdt)
        got = fw.grid_sample(img, g, mode=mode, padding_mode=padding, align_corners=align)
        want = ref.grid_sample(img, g, mode, padding, align)
        assert_matches(got, want, dtype, f"grid {np.dtype(gdt)}")


@pytest.mark.parametrize("mode,padding,align", list(itertools.product(MODES, PADDINGS, (False, True))))
def test_points_on_pixel_centres_and_edges(mode, padding, align):
    """Grids landing exactly on pixel centres (integers) and pixel edges (half-integers)."""
    h, w = 4, 6
    img = np.arange(h * w * 2, dtype=np.float64).reshape(1, h, w, 2) + 1.0
    xs = np.arange(-2.0, w + 1.5, 0.5)  # pixel coordinates, centres and edges, inside and outside
    ys = np.arange(-2.0, h + 1.5, 0.5)
    px, py = np.meshgrid(xs, ys)
    if align:
        gx, gy = px / (w - 1) * 2 - 1, py / (h - 1) * 2 - 1
    else:
        gx, gy = (2 * px + 1) / w - 1, (2 * py + 1) / h - 1
    grid = np.stack([gx, gy], -1)[None]
    got = fw.grid_sample(img, grid, mode=mode, padding_mode=padding, align_corners=align)
    want = ref.grid_sample(img, grid, mode, padding, align)
    np.testing.assert_allclose(got, want, atol=1e-12)
    # on the centres inside the image every mode returns the pixel itself
    inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1) & (px % 1 == 0) & (py % 1 == 0)
    iy, ix = py[inside].astype(int), px[inside].astype(int)
    np.testing.assert_allclose(got[0][inside], img[0, iy, ix], rtol=1e-12)


def test_fused_equals_grid_then_sample(rng):
    img = random_images(rng, (4, 9, 13, 3), np.float64)
    theta = random_theta(rng, 4)
    for mode, padding, align in itertools.product(MODES, PADDINGS, (False, True)):
        grid = fw.affine_grid(theta, (11, 7), align_corners=align)
        a = fw.grid_sample(img, grid, mode=mode, padding_mode=padding, align_corners=align)
        b = fw.affine_warp(img, theta, (11, 7), mode=mode, padding_mode=padding, align_corners=align)
        np.testing.assert_allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("align", [False, True])
def test_affine_grid_matches_reference(rng, align):
    theta = rng.normal(size=(3, 2, 3))
    for size in [(1, 1), (1, 5), (4, 1), (6, 9)]:
        np.testing.assert_allclose(fw.affine_grid(theta, size, align_corners=align),
                                   ref.affine_grid(theta, size, align), atol=1e-14)


@pytest.mark.parametrize("mode,padding,align,dtype", FLAGS, ids=[_id(p) for p in FLAGS])
def test_one_pixel_images(rng, mode, padding, align, dtype):
    for h, w in [(1, 1), (1, 6), (5, 1)]:
        img = random_images(rng, (2, h, w, 3), dtype)
        theta = random_theta(rng, 2)
        got = fw.affine_warp(img, theta, (3, 4), mode=mode, padding_mode=padding, align_corners=align)
        want = ref.affine_warp(img, theta, (3, 4), mode, padding, align)
        assert_matches(got, want, dtype, f"{h}x{w}")


def test_many_channels_and_single_channel(rng):
    for c in (1, 2, 4, 5, 17):
        img = random_images(rng, (2, 8, 9, c), np.float32)
        theta = random_theta(rng, 2)
        got = fw.affine_warp(img, theta, padding_mode="border")
        assert_matches(got, ref.affine_warp(img, theta, None, "bilinear", "border", False), np.float32)


def test_same_results_with_one_and_two_threads(rng):
    import numba

    img = random_images(rng, (5, 31, 29, 3), np.float32)
    theta = random_theta(rng, 5)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = fw.affine_warp(img, theta, padding_mode="reflection")
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = fw.affine_warp(img, theta, padding_mode="reflection")
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(one, two)


def test_concurrent_calls_from_threads(rng):
    """Several threads in the parallel kernel at once (as tf.data does) neither crash nor mix results."""
    from concurrent.futures import ThreadPoolExecutor

    imgs = [random_images(rng, (3, 40, 37, 3), np.float32) for _ in range(8)]
    thetas = [random_theta(rng, 3) for _ in range(8)]
    expected = [fw.affine_warp(i, t) for i, t in zip(imgs, thetas)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            results = list(pool.map(lambda it: fw.affine_warp(*it), zip(imgs, thetas)))
            for r, e in zip(results, expected):
                np.testing.assert_array_equal(r, e)
    assert fw._runtime.threading_layer() in ("omp", "tbb")


def test_uint8_rounds_to_nearest_and_saturates():
    img = np.array([[[0], [255], [100], [101]]], dtype=np.uint8)  # 1x4x1
    # sample at pixel 0.5 (between 0 and 255) and 2.5 (between 100 and 101): 127.5 -> 128, 100.5 -> 101
    x = np.array([0.5, 2.5])
    grid = np.stack([(2 * x + 1) / 4 - 1, np.zeros(2)], -1).reshape(1, 2, 2)
    out = fw.grid_sample(img, grid)
    np.testing.assert_array_equal(out[:, :, 0], [[128, 101]])
    assert out.dtype == np.uint8


@pytest.mark.parametrize("dtype", DTYPES)
def test_images_large_enough_to_prefetch_match_the_reference(rng, dtype):
    """Images of 64 KiB and more take the span loop's prefetching branch (bilinear.prefetch_offset):
    a hint only, so the same result, on every padding, up to the last rows of the batch's
    last image (whose hints are clamped into the array)."""
    h, w = int(rng.integers(130, 160)), int(rng.integers(180, 220))  # 64 KiB and more in uint8 too
    img = random_images(rng, (2, h, w, 3), dtype)
    theta = random_theta(rng, 2, spread=0.4)
    theta[1] = [[0.3, -0.95, 0.0], [0.95, 0.3, 0.8]]  # rotated, its rows run down to the last image row
    for padding in PADDINGS:
        got = fw.affine_warp(img, theta, (h + 7, w - 9), padding_mode=padding)
        want = ref.affine_warp(img, theta, (h + 7, w - 9), "bilinear", padding, False)
        assert_matches(got, want, dtype, f"{padding} {img.shape}")
