"""Every benchmark baseline computes (nearly) the same image as fastwarp.

The benchmark is only meaningful if the libraries do the same work, so each
baseline of fastwarp.experiments.benchmark is run on small random inputs and a random
transform (odd, non-square sizes) and compared with fastwarp.affine_warp
(bilinear, border padding, align_corners=False).  Tolerances, images in [0, 1)
for float32:

* float32 and float64, every baseline: 1e-5 absolute.  The libraries interpolate in float32
  in different orders (fastwarp computes coordinates in float64, PyTorch, TF
  and the classic sampler in float32; a float32 coordinate error of ~1e-7 x 40 px
  moves a value by well under 1e-5; with float64 images TF's projective
  transform still computes coordinates in float32, hence the same bound).
  OpenCV 5's float32 warpAffine is in this class too.
* OpenCV with float64 images: 1/32.  That path still rounds source
  coordinates to 1/32 px (fixed-point remap tables), an error of at most 1/64
  px per axis; on [0, 1) images whose neighbours differ by up to 1 the bilinear
  value moves by at most 2 x 1/64.
* uint8: at most 1 level (a value within float rounding of .5 may round either
  way), and at least 99% of values exactly equal; except TF's
  ImageProjectiveTransformV3, which converts the interpolated value to uint8
  by truncation (C++ cast) where fastwarp rounds to nearest: its output is
  fastwarp's or one less, never more.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastwarp.experiments import benchmark as B
from fastwarp.transforms import affine_matrix, theta_from_cv2

FORWARD = [name for name in B.BASELINES if name != "fastwarp"]


def _inputs(rng, shape, dtype, backward=False):
    """Inputs for the baselines with a random rotation/scale/shift instead of the fixed one."""
    n, h, w, _ = shape
    x = B.make_inputs(B.Workload("test", shape), dtype, int(rng.integers(2**31)), backward=backward)
    x.matrix = affine_matrix((h, w), rotation=rng.uniform(-180, 180), scale=rng.uniform(0.6, 1.5),
                             translation=rng.uniform(-4, 4, size=2))
    theta = theta_from_cv2(x.matrix, (h, w), align_corners=False)
    x.theta = np.ascontiguousarray(np.broadcast_to(theta, (n, 2, 3)), dtype=np.float32)
    return x


def _needs(name):
    missing = B.missing_modules(name)
    if missing:
        pytest.fail(f"benchmark dependency missing in the test environment: {B.install_hint(name)}")


def test_transform_matrices_agree():
    """The fixed benchmark transform: theta and TF's 8 parameters describe OpenCV's matrix."""
    m = B.transform_matrix((40, 60))
    x = B.make_inputs(B.Workload("t", (3, 40, 60, 3)), "float32")
    assert x.theta.shape == (3, 2, 3) and x.theta.dtype == np.float32
    np.testing.assert_allclose(x.theta[1], theta_from_cv2(m, (40, 60)), rtol=1e-6, atol=1e-7)
    t = B.ipt_transforms(m, 3)
    assert t.shape == (3, 8) and (t[:, 6:] == 0).all()
    # destination pixel (x, y) -> source pixel, then back through M gives (x, y)
    x_dst, y_dst = 7.0, 11.0
    xs = t[0, 0] * x_dst + t[0, 1] * y_dst + t[0, 2]
    ys = t[0, 3] * x_dst + t[0, 4] * y_dst + t[0, 5]
    np.testing.assert_allclose(m @ [xs, ys, 1.0], [x_dst, y_dst], atol=1e-4)


@pytest.mark.parametrize("dtype,shape", [("float32", (2, 23, 31, 3)), ("float32", (3, 40, 17, 4)),
                                         ("float64", (2, 15, 22, 3))])
@pytest.mark.parametrize("name", FORWARD)
def test_forward_baseline_float(rng, name, dtype, shape):
    _needs(name)
    x = _inputs(rng, shape, dtype)
    expected = B.build("fastwarp", x)()
    got = B.as_numpy(B.build(name, x)())
    assert got.shape == expected.shape and got.dtype == np.dtype(dtype)
    atol = 1 / 32 if (name, dtype) == ("opencv", "float64") else 1e-5
    np.testing.assert_allclose(got, expected, rtol=0, atol=atol)


@pytest.mark.parametrize("name", FORWARD)
def test_forward_baseline_uint8(rng, name):
    _needs(name)
    x = _inputs(rng, (2, 29, 21, 3), "uint8")
    expected = B.build("fastwarp", x)().astype(np.int16)
    got = B.as_numpy(B.build(name, x)())
    assert got.shape == expected.shape and got.dtype == np.uint8
    diff = got.astype(np.int16) - expected
    if name == "tf_ipt":  # truncates to uint8 where fastwarp rounds
        assert diff.min() >= -1 and diff.max() <= 0, (diff.min(), diff.max())
        assert (diff == -1).mean() > 0.2  # the truncation is real, not a lucky match
    else:
        assert np.abs(diff).max() <= 1
        assert (diff == 0).mean() >= 0.99


def test_build_rejects_unknown_op():
    x = B.make_inputs(B.Workload("t", (1, 4, 5, 3)), "float32")
    with pytest.raises(ValueError, match="backward"):
        B.build("opencv", x, "backward")
    with pytest.raises(ValueError, match="backward=True"):
        B.build("torch", x, "backward")


def _grads(name, x):
    out, gi, gt = B.build(name, x, "backward")()
    out, gi, gt = (np.asarray(v.detach().numpy() if hasattr(v, "detach") else v) for v in (out, gi, gt))
    if name == "torch":  # NCHW
        out, gi = out.transpose(0, 2, 3, 1), gi.transpose(0, 2, 3, 1)
    return out, gi, gt


@pytest.mark.parametrize("name", ["torch", "tf_gather", "tf_xla"])
def test_backward_baseline(rng, name):
    """Forward+backward baselines compute fastwarp's output and both gradients.

    Tolerances: the output as above; grad_images 1e-4 absolute (sums of a few
    float32 products); grad_theta 1e-3 of its largest entry (float32 sums
    over every output pixel).
    """
    _needs(name)
    if not B.backward_available():
        pytest.fail("fastwarp.grad.affine_warp_backward is not available")
    x = _inputs(rng, (2, 19, 26, 3), "float32", backward=True)
    out, gi, gt = _grads("fastwarp", x)
    b_out, b_gi, b_gt = _grads(name, x)
    np.testing.assert_allclose(b_out, out, rtol=0, atol=1e-5)
    np.testing.assert_allclose(b_gi, gi, rtol=0, atol=1e-4)
    np.testing.assert_allclose(b_gt, gt, rtol=0, atol=1e-3 * np.abs(gt).max())
