"""``fastwarp demo``: writes its figure and the identity check holds."""

from __future__ import annotations

import numpy as np

from fastwarp.cli import main
from fastwarp.commands.demo import DIMS, load_cats, warp_examples
from fastwarp.reference import blog_affine_warp


def test_demo_writes_png_and_identity_holds(tmp_path, capsys):
    out = tmp_path / "sub" / "demo.png"
    assert main(["demo", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Input Img Shape: (2, 400, 400, 3)" in text
    assert "identity: output equals the input (max |difference| = 0)" in text
    assert str(out.resolve()) in text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_demo_transforms():
    images = load_cats()
    assert images.shape == (2,) + DIMS + (3,) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.std() > 0.05
    assert not np.array_equal(images[0], images[1])  # two different pictures in the batch
    outs = warp_examples(images)
    assert np.array_equal(outs["identity"], images)
    for title, warped in outs.items():
        assert warped.shape == images.shape
        if title != "identity":  # every other transform really moves the picture
            assert np.abs(warped - images).mean() > 0.01, title
    # the blog post's version of the identity is not the identity: stretched by W / (W - 1)
    blog = blog_affine_warp(images, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    assert np.array_equal(blog[:, 0, 0], images[:, 0, 0])  # the first pixel maps onto itself
    assert np.abs(blog - images).mean() > 1e-3
