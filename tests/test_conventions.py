"""Each part of the coordinate convention, pinned by a named test, and the exact properties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import MODES, PADDINGS, random_images, random_theta

import fastwarp as fw
from fastwarp import reference as ref

ROW = np.array([10.0, 20.0, 30.0]).reshape(1, 3, 1)  # one 1x3 single-channel image
IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def test_worked_example_from_the_docs():
    """The module docstring's example: 1x3 image, x-translation 0.5, align_corners=True."""
    theta = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]])
    zeros = fw.affine_warp(ROW, theta, align_corners=True)
    border = fw.affine_warp(ROW, theta, align_corners=True, padding_mode="border")
    np.testing.assert_allclose(zeros[0, :, 0], [15, 25, 15])
    np.testing.assert_allclose(border[0, :, 0], [15, 25, 30])


def test_align_corners_true_puts_minus_one_and_one_on_corner_pixel_centres():
    grid = fw.affine_grid(IDENTITY, (1, 3), align_corners=True)
    np.testing.assert_allclose(grid[0, :, 0], [-1, 0, 1])


def test_align_corners_false_puts_minus_one_and_one_on_image_edges():
    grid = fw.affine_grid(IDENTITY, (1, 4), align_corners=False)
    np.testing.assert_allclose(grid[0, :, 0], [-0.75, -0.25, 0.25, 0.75])
    # x = -1 is the left edge of pixel 0: bilinear there reads half of pixel 0 (zeros padding)
    out = fw.grid_sample(ROW, np.array([[[-1.0, 0.0]]]), align_corners=False)
    np.testing.assert_allclose(out[0, 0, 0], 5.0)


def test_single_pixel_axis_sits_at_zero_with_align_corners():
    np.testing.assert_allclose(fw.affine_grid(IDENTITY, (1, 1), align_corners=True)[0, 0], [0, 0])


def test_x_is_the_column_and_y_the_row():
    img = np.arange(12, dtype=np.float64).reshape(3, 4, 1)
    # a grid point at x = 1 (right edge column), y = -1 (top row), align_corners=True
    out = fw.grid_sample(img, np.array([[[1.0, -1.0]]]), align_corners=True)
    assert out[0, 0, 0] == img[0, 3, 0]


def test_theta_maps_output_to_input():
    """Translating theta by +2/(W-1) (one pixel right) moves the picture one pixel left."""
    img = np.arange(5, dtype=np.float64).reshape(1, 5, 1)
    theta = np.array([[1.0, 0.0, 2.0 / 4], [0.0, 1.0, 0.0]])
    out = fw.affine_warp(img, theta, align_corners=True, padding_mode="border")
    np.testing.assert_allclose(out[0, :, 0], [1, 2, 3, 4, 4])


def test_identity_returns_the_image_with_align_corners(rng):
    """Exact for uint8, float32 and nearest; float64 bilinear is within 1 ulp (the sample
    points are j +- 1e-16 after the normalize/unnormalize round trip, as in PyTorch)."""
    for dtype in (np.float32, np.float64, np.uint8):
        img = random_images(rng, (2, 7, 11, 3), dtype)
        for mode, padding in itertools.product(MODES, PADDINGS):
            out = fw.affine_warp(img, IDENTITY, mode=mode, padding_mode=padding, align_corners=True)
            if dtype == np.float64 and mode == "bilinear":
                np.testing.assert_allclose(out, img, rtol=0, atol=1e-15)
            else:
                np.testing.assert_array_equal(out, img)


def test_identity_returns_the_image_without_align_corners_too(rng):
    img = random_images(rng, (2, 6, 9, 2), np.float64)
    out = fw.affine_warp(img, IDENTITY, align_corners=False)
    np.testing.assert_allclose(out, img, atol=1e-12)


@pytest.mark.parametrize("dx,dy", [(1, 0), (0, 2), (-3, 1), (2, -2)])
def test_integer_pixel_translation_is_a_shift(rng, dx, dy):
    h, w = 9, 12
    img = random_images(rng, (1, h, w, 3), np.float64)
    # shift the picture by (dx, dy) pixels: the output at (i, j) reads the input at (i - dy, j - dx)
    theta = np.array([[1.0, 0.0, -2.0 * dx / w], [0.0, 1.0, -2.0 * dy / h]])
    out = fw.affine_warp(img, theta, padding_mode="zeros")
    want = np.zeros_like(img)
    ys, xs = slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
    yi, xi = slice(max(-dy, 0), h + min(-dy, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    want[:, ys, xs] = img[:, yi, xi]
    np.testing.assert_allclose(out, want, atol=1e-12)


@pytest.mark.parametrize("align", [False, True])
def test_rotation_by_90_degrees_is_rot90(rng, align):
    img = random_images(rng, (2, 8, 8, 3), np.float32)
    # output (x, y) reads input (-y, x): the picture turns 90 degrees counter-clockwise
    theta = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
    out = fw.affine_warp(img, theta, align_corners=align)
    np.testing.assert_allclose(out, np.rot90(img, 1, axes=(1, 2)), atol=1e-6)
    # and for a non-square image with the output size swapped
    img = random_images(rng, (1, 5, 9, 2), np.float64)
    out = fw.affine_warp(img, theta, (9, 5), align_corners=align)
    np.testing.assert_allclose(out, np.rot90(img, 1, axes=(1, 2)), atol=1e-12)


@pytest.mark.parametrize("mode,padding,align", list(itertools.product(MODES, PADDINGS, (False, True))))
def test_same_numbers_as_pytorch(rng, mode, padding, align):
    img = random_images(rng, (3, 7, 10, 4), np.float64)
    theta = random_theta(rng, 3)
    size = (6, 11)
    got = fw.affine_warp(img, theta, size, mode=mode, padding_mode=padding, align_corners=align)
    t_img = torch.from_numpy(img).permute(0, 3, 1, 2)
    t_grid = F.affine_grid(torch.from_numpy(theta), (3, 4) + size, align_corners=align)
    want = F.grid_sample(t_img, t_grid, mode=mode, padding_mode=padding, align_corners=align)
    np.testing.assert_allclose(got, want.permute(0, 2, 3, 1).numpy(), atol=1e-12)
    np.testing.assert_allclose(fw.affine_grid(theta, size, align_corners=align), t_grid.numpy(), atol=1e-14)


def test_the_blog_bug_is_fixed_and_documented(rng):
    """The blog rescales with W: its identity warp shifts and stretches the image; ours does not."""
    img = random_images(rng, (2, 12, 12, 3), np.float64)
    blog = ref.blog_affine_warp(img, IDENTITY)
    ours = fw.affine_warp(img, IDENTITY, align_corners=True)
    np.testing.assert_allclose(ours, img, rtol=0, atol=1e-15)
    assert np.abs(blog - img).max() > 0.05
    # the blog maps output column j to input column j * W / (W - 1)
    j = 5.0
    x = (j * 2 / 11 - 1 + 1) * 12 / 2
    w1 = x - np.floor(x)
    expected = (1 - w1) * img[:, 0, int(x)] + w1 * img[:, 0, int(x) + 1]
    np.testing.assert_allclose(blog[:, 0, 5], expected)


def test_reference_hand_computed_cases():
    """The oracle itself on cases worked out by hand."""
    img = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
    # centre of the 2x2 image: the mean of the four pixels in every padding mode
    for padding in PADDINGS:
        out = ref.grid_sample(img, np.zeros((1, 1, 1, 2)), "bilinear", padding, False)
        assert out[0, 0, 0, 0] == 2.5
    # a quarter of the way from pixel (0, 0) to (1, 1) with align_corners=True: 1 + 0.25*1 + 0.25*2
    out = ref.grid_sample(img, np.full((1, 1, 1, 2), -0.5), "bilinear", "zeros", True)
    assert out[0, 0, 0, 0] == 1.75
    # outside on the left with zeros padding and align_corners=False: x = -1.5 -> pixel -1.25: nothing
    out = ref.grid_sample(img, np.array([[[[-2.0, 0.0]]]]), "bilinear", "zeros", False)
    assert out[0, 0, 0, 0] == 0.0
    # border clamps to the edge: x = -2 -> column 0, y = 0 -> between rows: (1 + 3) / 2
    out = ref.grid_sample(img, np.array([[[[-2.0, 0.0]]]]), "bilinear", "border", False)
    assert out[0, 0, 0, 0] == 2.0
    # reflection (align_corners=False) mirrors at the image edge x = -0.5: pixel -1.25 -> 0.25
    out = ref.grid_sample(img, np.array([[[[-1.75, -0.5]]]]), "bilinear", "reflection", False)
    # x: -1.75 -> pixel -1.25 -> reflected 0.25; y: -0.5 -> pixel 0 -> 0
    assert out[0, 0, 0, 0] == pytest.approx(0.75 * 1 + 0.25 * 2)
    # nearest rounds half to even: pixel 0.5 -> 0, pixel 1.5 -> 2 (outside a 2-wide image -> 0 with zeros)
    row = np.array([5.0, 7.0]).reshape(1, 1, 2, 1)
    g = np.array([[[[0.0, 0.0], [1.0, 0.0]]]])  # align_corners=False: x=0 -> pixel 0.5, x=1 -> pixel 1.5
    out = ref.grid_sample(row, g, "nearest", "zeros", False)
    np.testing.assert_array_equal(out[0, 0, :, 0], [5.0, 0.0])


def test_nearest_rounds_half_to_even_like_the_reference():
    row = np.array([5.0, 7.0, 9.0]).reshape(1, 3, 1)
    x = np.array([0.5, 1.5, 2.5, -0.5])  # pixel coordinates exactly between pixels
    grid = np.stack([x - 1, np.zeros(4)], -1).reshape(1, 4, 2)  # align_corners=True, W=3: pixel = x + 1
    out = fw.grid_sample(row, grid, mode="nearest", align_corners=True)
    np.testing.assert_array_equal(out[0, :, 0], [5.0, 9.0, 9.0, 5.0])


def test_non_finite_and_huge_grid_points_read_zero_or_follow_padding():
    img = np.full((1, 4, 5, 2), 7.0)
    pts = np.array([[np.nan, 0], [0, np.inf], [-np.inf, 0], [1e300, 0], [-1e30, 1e30], [3e6, 0]])
    grid = pts.reshape(1, 1, 6, 2)
    for mode, padding, align in itertools.product(MODES, PADDINGS, (False, True)):
        out = fw.grid_sample(img, grid, mode=mode, padding_mode=padding, align_corners=align)
        np.testing.assert_array_equal(out[0, 0, :5], 0.0)  # NaN, inf and |c| >= 2**40 read 0
        # 3e6 is finite and below the cut-off: zeros padding reads 0, border and reflection the image
        assert out[0, 0, 5, 0] == (0.0 if padding == "zeros" else 7.0)


@pytest.mark.parametrize("mode,padding", list(itertools.product(MODES, PADDINGS)))
def test_huge_points_read_zero_on_one_pixel_axes_too(mode, padding):
    """With align_corners=True a 1-pixel axis maps every finite point to pixel 0;
    the |c| >= 2**40 cut-off still applies, in the fused warp, grid_sample and the reference."""
    img = np.full((1, 1, 1, 2), 7.0)
    theta = np.array([[1.0, 0.0, 2.0**41], [0.0, 1.0, 0.0]])
    out = fw.affine_warp(img, theta, (1, 3), mode=mode, padding_mode=padding, align_corners=True)
    np.testing.assert_array_equal(out, 0.0)
    np.testing.assert_array_equal(ref.affine_warp(img, theta, (1, 3), mode, padding, True), 0.0)
    col = np.arange(3.0).reshape(1, 3, 1, 1)  # 3 rows, 1 column
    grid = np.array([[[[np.nan, 0.0]], [[np.inf, 0.0]], [[1e13, 0.0]]]])
    got = fw.grid_sample(col, grid, mode=mode, padding_mode=padding, align_corners=True)
    np.testing.assert_array_equal(got, 0.0)
    np.testing.assert_array_equal(ref.grid_sample(col, grid, mode, padding, True), 0.0)
