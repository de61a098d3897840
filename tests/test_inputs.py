"""Bad input gets a clear error; unusual but valid layouts work."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import random_images, random_theta

import fastwarp as fw
from fastwarp import reference as ref

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@pytest.fixture
def img(rng):
    return random_images(rng, (2, 6, 7, 3), np.float32)


@pytest.mark.parametrize("bad,exc,words", [
    (np.zeros((2, 6, 7), np.int16), TypeError, ["affine_warp", "float32, float64, float16, uint8, uint16",
                                                "int16"]),
    (np.zeros((6, 7), np.float32), ValueError, ["affine_warp", "(N, H, W, C)", "(6, 7)"]),
    (np.zeros((1, 2, 6, 7, 3), np.float32), ValueError, ["affine_warp", "(1, 2, 6, 7, 3)"]),
    (np.zeros((2, 0, 7, 3), np.float32), ValueError, ["affine_warp", "at least 1"]),
    (np.zeros((2, 6, 7, 0), np.float32), ValueError, ["affine_warp", "at least 1"]),
    (np.zeros((2, 6, 7, 3), np.complex64), TypeError, ["complex64"]),
    (np.zeros((2, 6, 7, 3), bool), TypeError, ["bool"]),
])
def test_bad_images(bad, exc, words):
    with pytest.raises(exc) as e:
        fw.affine_warp(bad, IDENTITY)
    for w in words:
        assert w in str(e.value)
    assert str(e.value).startswith("affine_warp:")


@pytest.mark.parametrize("theta,exc,words", [
    (np.zeros((3, 2, 3)), ValueError, ["3 matrices", "batch of 2", "(3, 2, 3)"]),
    (np.zeros((2, 3, 3)), ValueError, ["(N, 2, 3) or (2, 3)", "(2, 3, 3)"]),
    (np.zeros(6), ValueError, ["(6,)"]),
    (np.full((2, 3), np.nan), ValueError, ["finite"]),
    (np.array([[1, 0, np.inf], [0, 1, 0]]), ValueError, ["finite"]),
    (np.zeros((2, 3), complex), TypeError, ["complex128"]),
    ("identity", TypeError, ["theta"]),
])
def test_bad_theta(img, theta, exc, words):
    with pytest.raises(exc) as e:
        fw.affine_warp(img, theta)
    assert str(e.value).startswith("affine_warp:")
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize("n", [1, 2, 11, 40])  # 6 to 240 entries: both sides of all_finite's small path
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_non_finite_theta_anywhere_in_the_batch(rng, n, bad, dtype):
    images = random_images(rng, (n, 5, 4, 3), np.float32)
    theta = random_theta(rng, n).astype(dtype)
    fw.affine_warp(images, theta)  # finite: fine
    flat = theta.reshape(-1)
    flat[rng.integers(flat.size)] = bad
    with pytest.raises(ValueError, match="^affine_warp: theta must be finite"):
        fw.affine_warp(images, theta)


@pytest.mark.parametrize("size,exc", [
    ((0, 5), ValueError), ((5, -1), ValueError), ((5,), ValueError), ((1, 2, 3), ValueError),
    ((5.0, 5), TypeError), ("55", TypeError), (5, TypeError), ((True, 5), TypeError),
])
def test_bad_size(img, size, exc):
    with pytest.raises(exc, match="^affine_warp: size"):
        fw.affine_warp(img, IDENTITY, size)
    with pytest.raises(exc, match="^affine_grid: size"):
        fw.affine_grid(IDENTITY, size)


def test_affine_grid_needs_a_size():
    with pytest.raises(TypeError, match="^affine_grid: size"):
        fw.affine_grid(IDENTITY, None)


def test_bad_flags(img):
    with pytest.raises(ValueError, match="^affine_warp: mode must be one of .*'bicubic'.*got 'lanczos'"):
        fw.affine_warp(img, IDENTITY, mode="lanczos")
    with pytest.raises(ValueError, match="^grid_sample: padding_mode must be one of .*'wrap'.*got 'mirror'"):
        fw.grid_sample(img, np.zeros((2, 3, 3, 2)), padding_mode="mirror")
    with pytest.raises(TypeError, match="^affine_warp: align_corners must be a bool"):
        fw.affine_warp(img, IDENTITY, align_corners="yes")
    with pytest.raises(ValueError, match="^affine_warp: device must be"):
        fw.affine_warp(img, IDENTITY, device="tpu")


@pytest.mark.parametrize("grid,exc,words", [
    (np.zeros((3, 4, 4, 2)), ValueError, ["batch size 3", "have 2"]),
    (np.zeros((2, 4, 4, 3)), ValueError, ["(N, Ho, Wo, 2)", "(2, 4, 4, 3)"]),
    (np.zeros((2, 4, 4, 2), np.int32), TypeError, ["float32, float64", "int32"]),
    (np.zeros((2, 0, 4, 2)), ValueError, ["at least 1"]),
    (np.zeros((4, 4, 2)), ValueError, ["(N, Ho, Wo, 2)", "(4, 4, 2)"]),
])
def test_bad_grid(img, grid, exc, words):
    with pytest.raises(exc) as e:
        fw.grid_sample(img, grid)
    assert str(e.value).startswith("grid_sample:")
    for w in words:
        assert w in str(e.value)


def test_bad_out(img):
    good = np.empty((2, 6, 7, 3), np.float32)
    cases = [
        (np.empty((2, 6, 7, 2), np.float32), ValueError, "shape"),
        (np.empty((2, 6, 7, 3), np.float64), TypeError, "dtype"),
        ([[0.0]], TypeError, "numpy.ndarray"),
        (np.empty((2, 6, 14, 3), np.float32)[:, :, ::2], ValueError, "C-contiguous"),
        (img, ValueError, "overlaps"),
    ]
    ro = good.copy()
    ro.flags.writeable = False
    cases.append((ro, ValueError, "writable"))
    for out, exc, word in cases:
        with pytest.raises(exc, match=f"^affine_warp: out .*{word}"):
            fw.affine_warp(img, IDENTITY, out=out)
    res = fw.affine_warp(img, IDENTITY, out=good)
    assert res is good


def test_out_for_a_single_image_and_for_grids(rng):
    img = random_images(rng, (6, 7, 3), np.uint8)
    theta = random_theta(rng, 1)[0]
    out = np.empty((4, 5, 3), np.uint8)
    assert fw.affine_warp(img, theta, (4, 5), out=out) is out
    np.testing.assert_array_equal(out, fw.affine_warp(img, theta, (4, 5)))
    g = np.empty((4, 5, 2))
    assert fw.affine_grid(theta, (4, 5), out=g) is g
    s = np.empty((4, 5, 3), np.uint8)
    assert fw.grid_sample(img, g, out=s) is s
    np.testing.assert_array_equal(s, out)


def test_single_image_round_trip(rng):
    img = random_images(rng, (6, 7, 3), np.float64)
    theta = random_theta(rng, 1)
    out = fw.affine_warp(img, theta[0], (5, 4))
    assert out.shape == (5, 4, 3)
    np.testing.assert_allclose(out, ref.affine_warp(img[None], theta, (5, 4))[0], atol=1e-12)
    assert fw.affine_warp(img, theta, (5, 4)).shape == (5, 4, 3)  # (1, 2, 3) theta also fine
    grid = fw.affine_grid(theta[0], (5, 4))
    assert grid.shape == (5, 4, 2)
    assert fw.grid_sample(img, grid).shape == (5, 4, 3)


def test_theta_broadcasts_over_the_batch(rng):
    img = random_images(rng, (3, 6, 7, 2), np.float32)
    theta = random_theta(rng, 1)[0]
    out = fw.affine_warp(img, theta)
    np.testing.assert_array_equal(out, fw.affine_warp(img, np.stack([theta] * 3)))


def test_empty_batch():
    img = np.zeros((0, 5, 6, 3), np.float32)
    out = fw.affine_warp(img, IDENTITY, (3, 4))
    assert out.shape == (0, 3, 4, 3) and out.dtype == np.float32
    assert fw.affine_warp(img, np.zeros((0, 2, 3))).shape == (0, 5, 6, 3)
    assert fw.grid_sample(img, np.zeros((0, 2, 2, 2))).shape == (0, 2, 2, 3)
    assert fw.affine_grid(np.zeros((0, 2, 3)), (2, 2)).shape == (0, 2, 2, 2)


def test_layouts_read_only_big_endian_strided(rng):
    base = random_images(rng, (3, 9, 11, 3), np.float64)
    theta = random_theta(rng, 3)
    want = ref.affine_warp(base, theta, (7, 8))
    strided = np.zeros((3, 9, 22, 3))
    strided[:, :, ::2] = base
    variants = {
        "fortran": np.asfortranarray(base),
        "negative strides": base[:, ::-1, ::-1][:, ::-1, ::-1],
        "big-endian": base.astype(">f8"),
        "non-contiguous": strided[:, :, ::2],
    }
    ro = base.copy()
    ro.flags.writeable = False
    variants["read-only"] = ro
    for name, v in variants.items():
        np.testing.assert_array_equal(v, base)
        got = fw.affine_warp(v, theta, (7, 8))
        np.testing.assert_allclose(got, want, atol=1e-12, err_msg=name)
        assert got.dtype == np.float64 and got.dtype.isnative
    # reversed views really are read through their negative strides
    flipped = base[:, ::-1]
    np.testing.assert_allclose(fw.affine_warp(flipped, theta, (7, 8)),
                               ref.affine_warp(np.ascontiguousarray(flipped), theta, (7, 8)), atol=1e-12)
    # theta and grid in other layouts and precisions
    np.testing.assert_allclose(fw.affine_warp(base, theta.astype(">f4"), (7, 8)),
                               ref.affine_warp(base, theta.astype(np.float32), (7, 8)), atol=1e-12)
    grid = fw.affine_grid(theta, (7, 8))
    np.testing.assert_allclose(fw.grid_sample(base, np.asfortranarray(grid)), want, atol=1e-12)


def test_lists_are_accepted_as_theta():
    img = np.ones((4, 4, 1), np.float32)
    out = fw.affine_warp(img, [[1, 0, 0], [0, 1, 0]], align_corners=True)
    np.testing.assert_array_equal(out, img)


def test_import_compiles_nothing():
    import subprocess
    import sys

    code = ("import fastwarp, fastwarp.cpu.generic as g, fastwarp.cpu.backward as b; "
            "print(sum(len(d.overloads) for d in (g.grid_kernel, b.sum_chunks_kernel)), "
            "g.forward_kernel.cache_info().currsize, g.backward_kernel.cache_info().currsize, "
            "b.backward_kernel.cache_info().currsize)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "0", "0", "0"], out.stdout
