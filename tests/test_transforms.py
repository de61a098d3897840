"""Pixel-space helpers against OpenCV's own warpAffine and getRotationMatrix2D."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import random_images

import fastwarp as fw
from fastwarp import transforms as T


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("out_size", [None, (23, 41)])
def test_theta_from_cv2_reproduces_warpaffine(rng, align, out_size):
    img = random_images(rng, (31, 37, 3), np.float32)
    m = T.affine_matrix(img.shape[:2], out_size, rotation=rng.uniform(-180, 180),
                        scale=rng.uniform(0.5, 1.5), shear=rng.uniform(-20, 20),
                        translation=rng.uniform(-5, 5, 2))
    theta = T.theta_from_cv2(m, img.shape[:2], out_size, align_corners=align)
    ho, wo = out_size or img.shape[:2]
    got = fw.affine_warp(img, theta, (ho, wo), padding_mode="border", align_corners=align)
    want = cv2.warpAffine(img, m, (wo, ho), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # OpenCV quantizes the interpolation weights to 1/32 of a pixel
    np.testing.assert_allclose(got, want, atol=1.0 / 32)
    # inverse_map=True takes the destination -> source matrix, as cv2.WARP_INVERSE_MAP does
    inv = T.invert_affine(m)
    np.testing.assert_allclose(T.theta_from_cv2(inv, img.shape[:2], out_size, align_corners=align,
                                                inverse_map=True), theta, atol=1e-12)


@pytest.mark.parametrize("align", [False, True])
def test_cv2_from_theta_is_the_inverse(rng, align):
    theta = np.array([[1, 0, 0], [0, 1, 0]]) + rng.normal(scale=0.3, size=(4, 2, 3))
    for inverse_map in (False, True):
        m = T.cv2_from_theta(theta, (13, 17), (9, 21), align_corners=align, inverse_map=inverse_map)
        back = T.theta_from_cv2(m, (13, 17), (9, 21), align_corners=align, inverse_map=inverse_map)
        np.testing.assert_allclose(back, theta, atol=1e-12)


def test_affine_matrix_matches_get_rotation_matrix_2d(rng):
    for _ in range(5):
        angle, scale = rng.uniform(-180, 180), rng.uniform(0.3, 2)
        m = T.affine_matrix((40, 60), rotation=angle, scale=scale)
        want = cv2.getRotationMatrix2D((29.5, 19.5), angle, scale)
        np.testing.assert_allclose(m, want, atol=1e-12)


def test_affine_matrix_parts():
    # translation moves content right/down by (dx, dy) output pixels
    m = T.affine_matrix((10, 10), translation=(3, -2))
    np.testing.assert_allclose(m, [[1, 0, 3], [0, 1, -2]])
    # shear: x' = x + tan(shear) * (y - cy) about the centre
    m = T.affine_matrix((11, 11), shear=45)
    np.testing.assert_allclose(m @ [5, 9, 1], [5 + 4, 9], atol=1e-12)
    # a different output size puts the input centre on the output centre
    m = T.affine_matrix((11, 21), (31, 41))
    np.testing.assert_allclose(m @ [10, 5, 1], [20, 15])


def test_batched_parameters():
    m = T.affine_matrix((8, 8), rotation=[0, 90, 180], scale=2.0, translation=[[0, 0], [1, 1], [2, 2]])
    assert m.shape == (3, 2, 3)
    np.testing.assert_allclose(m[1], T.affine_matrix((8, 8), rotation=90, scale=2.0, translation=(1, 1)))
    th = T.affine_theta((8, 8), rotation=np.linspace(0, 90, 4))
    assert th.shape == (4, 2, 3)
    assert T.affine_theta((8, 8)).shape == (2, 3)
    np.testing.assert_allclose(T.affine_theta((8, 8), align_corners=True), [[1, 0, 0], [0, 1, 0]], atol=1e-15)


def test_one_pixel_axes_do_not_divide_by_zero():
    th = T.theta_from_cv2(np.array([[1.0, 0, 0], [0, 1, 0]]), (1, 5), align_corners=True)
    assert np.isfinite(th).all()
    img = np.arange(5, dtype=np.float64).reshape(1, 5, 1)
    np.testing.assert_allclose(fw.affine_warp(img, th, align_corners=True), img)


def test_helper_errors():
    with pytest.raises(ValueError, match="in_size"):
        T.affine_matrix((0, 5))
    with pytest.raises(ValueError, match="singular"):
        T.invert_affine(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        T.theta_from_cv2(np.eye(3), (5, 5))
    with pytest.raises(ValueError, match="translation"):
        T.affine_matrix((5, 5), translation=(1, 2, 3))
