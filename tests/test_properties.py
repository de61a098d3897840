"""Property-based tests (hypothesis): any shape, flag and matrix, kernel == reference."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import fastwarp as fw
from fastwarp import reference as ref

dims = st.integers(1, 9)
flags = st.tuples(st.sampled_from(["bilinear", "nearest"]),
                  st.sampled_from(["zeros", "border", "reflection"]), st.booleans())
dtypes = st.sampled_from([np.float32, np.float64, np.uint8])
thetas = arrays(np.float64, (2, 3), elements=st.floats(-3, 3, allow_nan=False, width=32))


@st.composite
def cases(draw):
    n, h, w, c = draw(st.integers(1, 3)), draw(dims), draw(dims), draw(st.integers(1, 5))
    dtype = draw(dtypes)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    img = (rng.integers(0, 256, (n, h, w, c)).astype(np.uint8) if dtype == np.uint8
           else rng.standard_normal((n, h, w, c)).astype(dtype))
    theta = np.stack([draw(thetas) for _ in range(n)])
    size = (draw(dims), draw(dims))
    return img, theta, size, draw(flags)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_affine_warp_equals_reference(case):
    img, theta, size, (mode, padding, align) = case
    got = fw.affine_warp(img, theta, size, mode=mode, padding_mode=padding, align_corners=align)
    want = ref.affine_warp(img, theta, size, mode, padding, align)
    keep = np.ones(got.shape, bool)
    if mode == "nearest":
        # a sample point within rounding of a pixel boundary may round either way
        grid = ref.affine_grid(theta, size, align)
        h, w = img.shape[1:3]
        px = ref._unnormalize(grid[..., 0], w, align)
        py = ref._unnormalize(grid[..., 1], h, align)
        tie = (np.abs(px - np.floor(px) - 0.5) < 1e-9) | (np.abs(py - np.floor(py) - 0.5) < 1e-9)
        keep &= ~tie[..., None]
    elif img.dtype == np.uint8:
        # where the unrounded value sits on a .5 tie, float32 and float64 may round apart
        exact = ref.affine_warp(img.astype(np.float64), theta, size, mode, padding, align)
        keep &= ~(np.abs(np.abs(exact - np.floor(exact)) - 0.5) < 1e-3)
    got, want = got[keep], want[keep]
    if img.dtype == np.uint8:
        np.testing.assert_array_equal(got, want)
    else:
        scale = max(1.0, float(np.abs(img).max(initial=0)))
        np.testing.assert_allclose(got, want, atol=(1e-4 if img.dtype == np.float32 else 1e-11) * scale)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), dims, dims, st.booleans(), st.integers(0, 2**32 - 1))
def test_affine_grid_is_theta_times_mesh(n, ho, wo, align, seed):
    theta = np.random.default_rng(seed).normal(size=(n, 2, 3))
    np.testing.assert_allclose(fw.affine_grid(theta, (ho, wo), align_corners=align),
                               ref.affine_grid(theta, (ho, wo), align), atol=1e-13)
