"""The breadth cells of ``fastwarp bench``: projective warps, bicubic, wrap padding and 16-bit images
against what a user would run instead (OpenCV's per-image calls, PyTorch's bicubic grid_sample,
TensorFlow's projective op), each library timed in its own blocks of calls
(:func:`fastwarp.experiments.benchmark.time_calls`).

Every cell warps a batch of N x 224 x 224 x 3 images (N = 32, or 8 with ``--quick``) by the
benchmark's rotation and scale (plus a mild perspective for the projective cells); the numbers
are median milliseconds per batch and ``ratio`` is the other library's time over fastwarp's.
"""

from __future__ import annotations

import numpy as np

__all__ = ["measure", "format_breadth", "TARGETS"]

# (cell, library) -> the ratio issue 11 asks for; "fastwarp affine" is the reverse ratio:
# perspective_warp within 1.3x of affine_warp's time
TARGETS = {("perspective", "opencv"): 1.5, ("perspective", "tf_ipt"): 1.5,
           ("perspective", "fastwarp affine"): 1 / 1.3,
           ("bicubic", "opencv"): 1.5, ("bicubic", "torch"): 3.0,
           ("uint16", "opencv"): 1.2, ("wrap", "opencv"): 1.5}


def _matrices(n: int, h: int, w: int):
    """OpenCV source -> destination matrices (affine 2 x 3 and a 3 x 3 homography) and fastwarp's thetas."""
    import cv2

    from ..transforms import theta_from_cv2, theta_from_homography

    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 15.0, 0.9)
    hm = np.vstack([m, [4e-4, -3e-4, 1.0]])
    ta = np.repeat(theta_from_cv2(m, (h, w))[None], n, 0)
    tp = np.repeat(theta_from_homography(hm, (h, w))[None], n, 0)
    return m, hm, ta, tp


def _cells(n: int, seed: int) -> dict[str, dict]:
    """cell -> {library: callable} (the first library is fastwarp's)."""
    import cv2

    import fastwarp as fw

    rng = np.random.default_rng(seed)
    h = w = 224
    x = rng.random((n, h, w, 3), dtype=np.float32)
    x16 = rng.integers(0, 65536, (n, h, w, 3)).astype(np.uint16)
    m, hm, ta, tp = _matrices(n, h, w)
    cells = {
        "perspective": {
            "fastwarp": lambda: fw.perspective_warp(x, tp),
            "fastwarp affine": lambda: fw.affine_warp(x, ta),
            "opencv": lambda: [cv2.warpPerspective(x[i], hm, (w, h), flags=cv2.INTER_LINEAR)
                               for i in range(n)],
        },
        "bicubic": {
            "fastwarp": lambda: fw.affine_warp(x, ta, mode="bicubic"),
            "opencv": lambda: [cv2.warpAffine(x[i], m, (w, h), flags=cv2.INTER_CUBIC) for i in range(n)],
        },
        "uint16": {
            "fastwarp": lambda: fw.affine_warp(x16, ta),
            "opencv": lambda: [cv2.warpAffine(x16[i], m, (w, h), flags=cv2.INTER_LINEAR) for i in range(n)],
        },
        "wrap": {
            "fastwarp": lambda: fw.affine_warp(x, ta, padding_mode="wrap"),
            "opencv": lambda: [cv2.warpAffine(x[i], m, (w, h), flags=cv2.INTER_LINEAR,
                                              borderMode=cv2.BORDER_WRAP) for i in range(n)],
        },
    }
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        pass
    else:
        xt = torch.from_numpy(x).permute(0, 3, 1, 2)  # channels-last memory, as the NHWC data is
        tt = torch.from_numpy(ta.astype(np.float32))

        def torch_bicubic():
            with torch.no_grad():
                grid = F.affine_grid(tt, (n, 3, h, w), align_corners=False)
                return F.grid_sample(xt, grid, mode="bicubic", align_corners=False)

        cells["bicubic"]["torch"] = torch_bicubic
    try:
        import tensorflow as tf
    except ImportError:
        pass
    else:
        # TF's projective op maps output to input pixels: the inverse homography, normalized to h22 = 1
        inv = np.linalg.inv(hm)
        inv = inv / inv[2, 2]
        tr = tf.constant(np.repeat(inv.reshape(-1)[None, :8], n, 0).astype(np.float32))
        xtf = tf.constant(x)
        shape = tf.constant([h, w], tf.int32)

        def tf_ipt():
            return tf.raw_ops.ImageProjectiveTransformV3(
                images=xtf, transforms=tr, output_shape=shape, fill_value=0.0, interpolation="BILINEAR",
                fill_mode="CONSTANT").numpy()

        cells["perspective"]["tf_ipt"] = tf_ipt
    return cells


def measure(*, batch: int = 32, seed: int = 0, repeat: int = 7, budget_s: float = 2.0,
            min_repeat_s: float = 0.05) -> dict:
    """Time every cell; returns {cell: {library: {"median_ms", "ratio", "target", "meets_target"}}}."""
    from .benchmark import time_calls

    out: dict = {"batch": [batch, 224, 224, 3], "cells": {}}
    for cell, fns in _cells(batch, seed).items():
        timings = time_calls(fns, repeat=repeat, budget_s=budget_s, min_repeat_s=min_repeat_s)
        own = timings["fastwarp"].median
        row = {}
        for lib, t in timings.items():
            ratio = t.median / own
            target = TARGETS.get((cell, lib))
            row[lib] = {"median_ms": t.median * 1e3, "ratio": None if lib == "fastwarp" else ratio,
                        "target": target, "meets_target": None if target is None else ratio >= target}
        out["cells"][cell] = row
    return out


def format_breadth(breadth: dict) -> str:
    """The breadth cells as a text table (median ms; ratio = other / fastwarp, * = below target)."""
    lines = [f"breadth ({'x'.join(map(str, breadth['batch']))} float32, uint16 for the uint16 cell; "
             "ratio = library / fastwarp, * misses the target)"]
    for cell, row in breadth["cells"].items():
        parts = [f"fastwarp {row['fastwarp']['median_ms']:.2f} ms"]
        for lib, r in row.items():
            if lib == "fastwarp":
                continue
            mark = "*" if r["meets_target"] is False else ""
            target = f" (target {r['target']:.2f}x)" if r["target"] is not None else ""
            parts.append(f"{lib} {r['median_ms']:.2f} ms = {r['ratio']:.2f}x{mark}{target}")
        lines.append(f"  {cell:12s} " + "; ".join(parts))
    return "\n".join(lines)
