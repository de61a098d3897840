"""``fastwarp demo``: the blog post's NumPy walk-through, run with fastwarp on two cat photos.

As in the post: both images resized to 400x400 (``DIMS``) and concatenated
into one (2, 400, 400, 3) float32 batch in [0, 1]; the identity transform
first (its output must equal the input), then a rotation, a translation and
a zoom, each applied to the whole batch.  One more panel runs the post's own
sampler (:func:`fastwarp.reference.blog_affine_warp`) with the identity: it
rescales normalized coordinates with W instead of W - 1, so its "identity"
stretches the picture by W / (W - 1) and shifts it by up to one pixel.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Reproduce the blog post's affine-warp walk-through on two cat photos; writes a PNG figure."

DIMS = (400, 400)  # (H, W), the blog post's size


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("fastwarp-demo.png"), metavar="PATH",
                        help="where to write the figure (default ./fastwarp-demo.png)")


def load_cats(dims: tuple[int, int] = DIMS):
    """The two sample photos, resized to ``dims`` (H, W), as one (2, H, W, 3) float32 batch in [0, 1]."""
    from importlib.resources import files

    import numpy as np
    from PIL import Image

    batch = []
    for name in ("cat1.png", "cat2.png"):
        with (files("fastwarp.data") / name).open("rb") as f:
            img = Image.open(f).convert("RGB").resize((dims[1], dims[0]), Image.Resampling.BILINEAR)
        batch.append(np.asarray(img, dtype=np.float32) / 255.0)
    return np.stack(batch)


def warp_examples(images):
    """{title: (N, H, W, 3) output} for the identity, a rotation, a translation and a zoom."""
    import numpy as np

    import fastwarp
    from fastwarp.transforms import affine_theta

    n, h, w, _ = images.shape
    steps = {
        "identity": {},
        "rotation 30 deg": {"rotation": 30.0},
        "translation (+80, -50) px": {"translation": (80.0, -50.0)},
        "zoom x1.5": {"scale": 1.5},
    }
    out = {}
    for title, kw in steps.items():
        theta = np.broadcast_to(affine_theta((h, w), align_corners=True, **kw), (n, 2, 3))
        out[title] = fastwarp.affine_warp(images, theta, align_corners=True)
    return out


def _figure(images, outputs, blog, path: Path) -> None:
    import numpy as np

    from ..core.optional import optional_import

    optional_import("matplotlib", "plot", "fastwarp demo's figure").use("Agg")
    import matplotlib.pyplot as plt

    cols = ["input"] + list(outputs)
    fig, axes = plt.subplots(3, len(cols), figsize=(3.2 * len(cols), 10.2))
    for r in range(2):
        for c, title in enumerate(cols):
            ax = axes[r][c]
            ax.imshow(images[r] if title == "input" else outputs[title][r])
            ax.set_title(f"cat {r + 1}: {title}", fontsize=10)
    # the blog post's off-by-one, on cat 1
    diff = np.abs(blog[0] - images[0]).mean(axis=-1)
    for c, (img, title) in enumerate([
            (blog[0], "as in the blog post: rescaled\nwith W, not W-1 (identity)"),
            (np.clip(diff * 5, 0, 1), "|blog identity - input| x5\n(mean over channels)")]):
        axes[2][c].imshow(img, cmap="magma" if img.ndim == 2 else None, vmin=0, vmax=1)
        axes[2][c].set_title(title, fontsize=10)
    # intensity profiles: the blog's pixel j reads the input at j W / (W - 1)
    row, col, start = 150, 115, 350
    for c, (a_in, a_blog, title, label) in enumerate([
            (images[0, row, start:], blog[0, row, start:], f"cat 1, row {row}", "column"),
            (images[0, start:, col], blog[0, start:, col], f"cat 1, column {col}", "row")], start=2):
        ax = axes[2][c]
        pos = np.arange(start, start + len(a_in))
        ax.plot(pos, a_in.mean(-1), "o-", ms=2.5, lw=1, label="input = fastwarp identity")
        ax.plot(pos, a_blog.mean(-1), "s-", ms=2.5, lw=1, label="blog identity")
        ax.set_title(f"{title}: blog's copy is shifted\ntowards the start, edge repeated", fontsize=10)
        ax.set_xlabel(label, fontsize=9)
        ax.legend(fontsize=8, loc="best")
        ax.set_box_aspect(1)
    panels = [None] * 4
    text = axes[2][len(panels)] if len(cols) > len(panels) else None
    if text is not None:
        text.text(0.0, 0.95,
                  "The blog maps x in [-1, 1] to\n(x + 1) W / 2, so the last column\n"
                  "lands on W, outside the image;\nclipping repeats the edge and\nevery pixel j reads "
                  "j W / (W - 1).\n\nfastwarp: (x + 1)(W - 1) / 2 with\nalign_corners=True, so the\n"
                  "identity returns the input\nexactly.", va="top", fontsize=10, family="monospace")
    for ax in list(axes[:2].ravel()) + list(axes[2][:2]):
        ax.set_xticks([])
        ax.set_yticks([])
    if text is not None:
        text.axis("off")
    fig.suptitle("fastwarp demo: the blog post's walk-through on a (2, 400, 400, 3) batch "
                 "(bilinear, zeros padding, align_corners=True)", fontsize=12)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from fastwarp.reference import blog_affine_warp

    from ..core.optional import optional_import

    optional_import("matplotlib", "plot", "fastwarp demo's figure")  # fail before the work, not after

    images = load_cats()
    print(f"Input Img Shape: {images.shape} ({images.dtype})")
    outputs = warp_examples(images)
    ident = outputs["identity"]
    err = float(np.abs(ident - images).max())
    same = bool(np.array_equal(ident, images))
    print(f"identity: output {'equals' if same else 'DIFFERS FROM'} the input (max |difference| = {err:g})")
    blog = blog_affine_warp(images, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    bd = np.abs(blog - images)
    print(f"blog post's sampler, identity: max |difference| = {bd.max():.3f}, mean = {bd.mean():.4f} "
          "(rescaled with W, not W - 1)")
    _figure(images, outputs, blog, args.out)
    print(f"figure written to {args.out.resolve()}")
    return 0 if same else 1
