"""antialias=True: quality against supersampled references, speed against the usual workaround,
and the first call's compile time.

Quality (PSNR in dB, peak 1, a 3-pixel output border left out): a zone plate 512x512 (frequencies
up to Nyquist) and the photo ``data/cat1.png`` (451x300), warped by zooms out of 2x, 4x and 8x
(rotated 0 and 20 degrees), an anisotropic 4x-by-1x shrink (axis-aligned and rotated 30 degrees)
and a perspective whose shrink grows across the image.  Methods: plain bilinear, fastwarp's
antialias, and the workaround (``cv2.GaussianBlur`` with sigma 0.5 sqrt(s^2 - 1), s the largest
shrink of the warp, then the plain warp).  References (``fastwarp.reference.supersampled_warp``):
"box", 8 x 8 samples per output pixel, equal weights (area averaging); "gauss", 16 x 16 samples over
3 x 3 pixels with Gaussian weights of sigma 0.5 output pixels.  Both sample the bilinear
interpolation of the input, so they blur the input where the warp does not shrink.  The zone
plate is also scored under a camera model: the input is the zone
plate's analytic scene averaged over each input pixel (8 x 8 samples), and the "scene box" and
"scene gauss" references average the warped scene itself, with the same weights, so an
identity warp of the input is exactly the scene-box reference.

Speed (median ms of --repeats calls, each library in its own block of calls): 8 float32 images
1024x1024x3 zoomed out 2x, 4x and 8x, rotated 0 and 20 degrees: plain ``fastwarp.affine_warp``,
``antialias=True``, and the workaround per image (``cv2.GaussianBlur`` + ``cv2.warpAffine``).

First call: a fresh process with an empty NUMBA_CACHE_DIR times the first antialiased forward
and backward after the plain ones (so it is the antialias kernels' own compile).

Usage: python bench/bench_antialias.py [--repeats 7] [--skip-speed] [--json out.json] [--figure out.png]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def zone_plate(n: int = 512) -> np.ndarray:
    yy, xx = np.mgrid[0:n, 0:n] + 0.5 - n / 2
    z = 0.5 + 0.5 * np.cos(np.pi * (xx * xx + yy * yy) / n)
    return np.repeat(z[None, :, :, None], 3, axis=-1)


def photo() -> np.ndarray:
    from importlib.resources import files

    from PIL import Image

    with Image.open(files("fastwarp.data") / "cat1.png") as im:
        return (np.asarray(im.convert("RGB"), np.float64) / 255.0)[None]


def zone_scene(u, v, n: int = 512):
    """The zone plate as a function of continuous input coordinates (pixel j covers [j, j + 1]);
    black outside the image, as zeros padding reads it."""
    z = 0.5 + 0.5 * np.cos(np.pi * ((u - n / 2) ** 2 + (v - n / 2) ** 2) / n)
    return np.where((u >= 0) & (u <= n) & (v >= 0) & (v <= n), z, 0.0)


def zone_camera(n: int = 512, k: int = 8) -> np.ndarray:
    """The input a camera with square pixels records of :func:`zone_scene`: each pixel the
    mean of k x k samples over its area."""
    offs = (np.arange(k) + 0.5) / k
    jj, ii = np.meshgrid(np.arange(n, dtype=np.float64), np.arange(n, dtype=np.float64))
    z = sum(zone_scene(jj + ox, ii + oy, n) for oy in offs for ox in offs) / (k * k)
    return np.repeat(z[None, :, :, None], 3, axis=-1)


def scene_reference(theta, in_size, size, weights: str, n: int = 512) -> np.ndarray:
    """The warped scene averaged over each output pixel ("box": 8 x 8 samples over the pixel)
    or under a Gaussian of sigma 0.5 output pixels ("gauss": 16 x 16 samples over 3 x 3
    pixels), the weights of ``reference.supersampled_warp`` applied to the scene itself."""
    from fastwarp import reference as ref

    samples, span = (8, 1.0) if weights == "box" else (16, 3.0)
    h, _, _ = ref._pixel_homography(np.asarray(theta, np.float64), in_size, size, False)
    offs = ((np.arange(samples) + 0.5) / samples - 0.5) * span
    jj, ii = np.meshgrid(np.arange(size[1], dtype=np.float64), np.arange(size[0], dtype=np.float64))
    acc = total = 0.0
    for oy in offs:
        for ox in offs:
            w = 1.0 if weights == "box" else np.exp(-(ox * ox + oy * oy) / (2 * 0.25))
            uvw = np.einsum("kl,hwl->hwk", h[0], np.stack([jj + ox, ii + oy, np.ones_like(jj)], -1))
            acc = acc + w * zone_scene(uvw[..., 0] / uvw[..., 2] + 0.5, uvw[..., 1] / uvw[..., 2] + 0.5, n)
            total += w
    return np.repeat((acc / total)[None, :, :, None], 3, axis=-1)


def cases(in_size):
    """(name, theta (1, 2|3, 3), out size, largest shrink) for an input of (H, W) in_size."""
    from fastwarp.transforms import affine_theta

    h, w = in_size
    # no warp: what each reference's own averaging costs a result that is exactly right
    out = [("1x (identity)", np.eye(3)[None, :2], (h, w), 1.0)]
    for s in (2, 4, 8):
        for rot in (0.0, 20.0):
            size = (h // s, w // s)
            out.append((f"{s}x rot {rot:g}", affine_theta(in_size, size, rotation=rot, scale=1.0 / s)[None],
                        size, float(s)))
    for rot in (0.0, 30.0):
        size = (h, w // 4)  # 4x along the footprint's first axis, none along the other
        out.append((f"4x1 aniso rot {rot:g}", _aniso(in_size, rot), size, 4.0))
    size = (h // 2, w // 2)
    p = np.eye(3)
    p[2, 1] = 0.55  # w = 1 + 0.55 y: the top rows shrink about 4.9x, the bottom ones about 1.3x
    out.append(("perspective", p[None], size, 4.9))
    return out


def _aniso(in_size, rot_deg):
    """theta for an (H, W // 4) output whose pixel map is J = R(rot) diag(4, 1) in pixels:
    theta's linear part is diag(2 / W, 2 / H) R diag(W / 2, H / 2)."""
    h, w = in_size
    c, s = np.cos(np.radians(rot_deg)), np.sin(np.radians(rot_deg))
    lin = np.diag([2.0 / w, 2.0 / h]) @ np.array([[c, -s], [s, c]]) @ np.diag([w / 2.0, h / 2.0])
    return np.concatenate([lin, np.zeros((2, 1))], axis=1)[None]


def psnr(a, b, border=3):
    a = a[:, border:-border, border:-border]
    b = b[:, border:-border, border:-border]
    with np.errstate(divide="ignore"):  # identical: inf
        return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def workaround(img, theta, size, shrink):
    """A global Gaussian prefilter, then the plain warp (what users do today)."""
    import cv2

    import fastwarp as fw

    sigma = 0.5 * np.sqrt(max(shrink * shrink - 1.0, 0.0))
    blurred = np.stack([cv2.GaussianBlur(im, (0, 0), sigma) for im in img]) if sigma > 0 else img
    if theta.shape[1] == 3:
        return fw.perspective_warp(blurred, theta, size)
    return fw.affine_warp(blurred, theta, size)


def quality(figure: str | None) -> list[dict]:
    import fastwarp as fw
    from fastwarp import reference as ref

    rows = []
    shown = {}
    for label, img in (("zone plate", zone_plate()), ("photo", photo())):
        for name, theta, size, shrink in cases(img.shape[1:3]):
            warp = fw.perspective_warp if theta.shape[1] == 3 else fw.affine_warp
            plain = warp(img, theta, size)
            aa = warp(img, theta, size, antialias=True)
            blur = workaround(img, theta, size, shrink)
            box = ref.supersampled_warp(img, theta, size, samples=8, weights="box")
            gauss = ref.supersampled_warp(img, theta, size, samples=16, weights="gauss")
            row = {"image": label, "case": name}
            for method, v in (("bilinear", plain), ("antialias", aa), ("blur+warp", blur)):
                row[f"{method} box"] = psnr(v, box)
                row[f"{method} gauss"] = psnr(v, gauss)
            rows.append(row)
            print(f"{label:10s} {name:18s} " + "  ".join(
                f"{m}: {row[m + ' box']:5.1f}/{row[m + ' gauss']:5.1f}" for m in ("bilinear", "antialias",
                                                                                   "blur+warp")), flush=True)
            if name in ("4x rot 20", "perspective"):
                shown[(label, name)] = (plain[0], aa[0], box[0])
    img = zone_camera()
    for name, theta, size, shrink in cases(img.shape[1:3]):
        warp = fw.perspective_warp if theta.shape[1] == 3 else fw.affine_warp
        refs = {w: scene_reference(theta, img.shape[1:3], size, w) for w in ("box", "gauss")}
        row = {"image": "zone plate, camera model", "case": name}
        for method, v in (("bilinear", warp(img, theta, size)), ("antialias", warp(img, theta, size,
                                                                                 antialias=True)),
                          ("blur+warp", workaround(img, theta, size, shrink))):
            for w, r in refs.items():
                row[f"{method} scene {w}"] = psnr(v, r)
        rows.append(row)
        print(f"{'scene':10s} {name:18s} " + "  ".join(
            f"{m}: {row[m + ' scene box']:5.1f}/{row[m + ' scene gauss']:5.1f}"
            for m in ("bilinear", "antialias", "blur+warp")), flush=True)
    if figure:
        _figure(shown, figure)
    return rows


def _figure(shown, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(shown), 3, figsize=(9, 3 * len(shown)))
    for r, ((label, name), images) in enumerate(shown.items()):
        for c, (title, im) in enumerate(zip(("bilinear", "antialias=True", "8x8 supersampled"), images)):
            ax = axes[r, c]
            ax.imshow(np.clip(im, 0, 1), interpolation="nearest")
            ax.set_title(f"{label}, {name}: {title}", fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print("figure:", path)


def speed(repeats: int) -> list[dict]:
    import cv2

    import fastwarp as fw
    from fastwarp.transforms import affine_theta, cv2_from_theta

    rng = np.random.default_rng(0)
    imgs = rng.random((8, 1024, 1024, 3), dtype=np.float32)

    def median_ms(fn):
        fn()
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts) * 1e3

    rows = []
    for rot in (0.0, 20.0):
        for s in (2, 4, 8):
            size = (1024 // s, 1024 // s)
            theta = affine_theta((1024, 1024), size, rotation=rot, scale=1.0 / s)
            m = cv2_from_theta(theta, (1024, 1024), size)
            sigma = 0.5 * np.sqrt(s * s - 1.0)

            def cv(m=m, sigma=sigma, size=size):
                for im in imgs:
                    cv2.warpAffine(cv2.GaussianBlur(im, (0, 0), sigma), m, size[::-1], flags=cv2.INTER_LINEAR)

            plain = median_ms(lambda t=theta, z=size: fw.affine_warp(imgs, t, z))
            aa = median_ms(lambda t=theta, z=size: fw.affine_warp(imgs, t, z, antialias=True))
            work = median_ms(cv)
            rows.append({"shrink": s, "rotation": rot, "plain ms": plain, "antialias ms": aa,
                         "blur+warpAffine ms": work})
            print(f"{s}x rot {rot:g}: plain {plain:.1f} ms, antialias {aa:.1f} ms ({aa / plain:.1f}x plain), "
                  f"GaussianBlur+warpAffine {work:.1f} ms (antialias {work / aa:.2f}x as fast)", flush=True)
    return rows


_FIRST_CALL = r"""
import time, numpy as np, fastwarp as fw
from fastwarp.transforms import affine_theta
img = np.random.default_rng(0).random((2, 64, 64, 3)).astype(np.float32)
t = affine_theta((64, 64), (16, 16), rotation=20, scale=0.25)
g = np.ones((2, 16, 16, 3), np.float32)
fw.affine_warp(img, t, (16, 16)); fw.affine_warp_backward(g, img, t, (16, 16))
t0 = time.perf_counter(); fw.affine_warp(img, t, (16, 16), antialias=True); t1 = time.perf_counter()
fw.affine_warp_backward(g, img, t, (16, 16), antialias=True); t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def first_call() -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True,
                             check=True).stdout.split()
        warm = subprocess.run([sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True,
                              check=True).stdout.split()
    res = {"forward s": float(out[0]), "backward s": float(out[1]),
           "forward warm s": float(warm[0]), "backward warm s": float(warm[1])}
    print(f"first antialiased call, empty cache: forward {res['forward s']:.1f} s, backward "
          f"{res['backward s']:.1f} s; warm cache: {res['forward warm s']:.2f} s, "
          f"{res['backward warm s']:.2f} s")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-first-call", action="store_true")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--figure", metavar="PATH")
    args = ap.parse_args()
    from fastwarp.experiments.benchmark import cpu_family, cpu_model

    report = {"cpu": cpu_model(), "cpu family": cpu_family(), "quality": quality(args.figure)}
    if not args.skip_speed:
        report["speed"] = speed(args.repeats)
    if not args.skip_first_call:
        report["first call"] = first_call()
    print("machine:", report["cpu"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
