"""Check fastwarp's GPU path against its CPU kernels on a real GPU, at realistic sizes.

The CUDA simulator tests (``tests/cuda_sim_cases.py``) run tiny images; this
script runs the real GPU on images of a few hundred pixels with the default
32x8 thread blocks, for every mode x padding x align_corners x dtype and for
1, 3 and 4 channels, and compares each result with the CPU kernels:

* forward: ``affine_warp``, ``perspective_warp``, ``grid_sample``,
  ``affine_grid``, ``perspective_grid`` (tolerances of the engine tests:
  float32 2e-5, float16 2e-3, float64 1e-12, uint8 and uint16 off by at most 1
  on <1% of the values, where float rounding of a .5 differs), constant
  padding with a per-channel fill value;
* backward (float32, float64): ``affine_warp_backward``,
  ``perspective_warp_backward`` and ``grid_sample_backward`` with atomic adds
  and with ``deterministic=True`` (relative to the largest gradient: float32
  1e-4, float64 1e-10), and the deterministic run repeated must be
  bit-identical;
* CuPy arrays and PyTorch CUDA tensors as inputs (``__cuda_array_interface__``)
  and as ``out=``, when those libraries are installed;

and prints how long the first call per image dtype takes (kernel compilation).

Usage (on a machine with an NVIDIA GPU)::

    python bench/cuda_check.py [--seed N]

Exits 1 when a comparison fails, 2 when there is no GPU.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

import numpy as np

MODES = ("bilinear", "nearest", "bicubic")
PADDINGS = ("zeros", "border", "reflection", "constant", "wrap")
DTYPES = (np.float32, np.float64, np.float16, np.uint8, np.uint16)


def _images(rng, shape, dtype):
    if np.dtype(dtype).kind == "u":
        return rng.integers(0, np.iinfo(dtype).max + 1, size=shape).astype(dtype)
    return rng.random(shape).astype(dtype)


def _perspective(rng, n):
    t = np.tile(np.eye(3), (n, 1, 1)) + rng.normal(scale=0.2, size=(n, 3, 3)) * [[0.5, 0.5, 1.0]]
    t[:, 2] = (*rng.normal(scale=0.3, size=2), 1.0)
    return t


def _theta(rng, n):
    theta = np.tile(np.eye(2, 3), (n, 1, 1))
    return theta + rng.normal(scale=0.6, size=(n, 2, 3)) * np.array([[0.5, 0.5, 1.0]])


def _forward_ok(got, want, dtype) -> tuple[bool, str]:
    a, e = got.astype(np.float64), want.astype(np.float64)
    diff = np.abs(a - e)
    worst = diff.max(initial=0.0)
    if np.dtype(dtype).kind == "u":
        frac = (diff > 0).mean() if diff.size else 0.0
        return worst <= 1 and frac < 0.01, f"max {worst:g}, {100 * frac:.3f}% off by one"
    tol = {np.dtype(np.float32): 2e-5, np.dtype(np.float16): 2e-3}.get(np.dtype(dtype), 1e-12)
    return worst <= tol, f"max {worst:.3g}"


def _grad_ok(got, want, dtype) -> tuple[bool, str]:
    scale = max(np.abs(want).max(initial=0.0), 1e-30)
    rel = np.abs(got.astype(np.float64) - want).max(initial=0.0) / scale
    tol = 1e-4 if dtype == np.float32 else 1e-10
    return rel <= tol, f"rel {rel:.3g}"


def _interop(rng, fw, fc, report) -> None:
    """CuPy arrays and PyTorch CUDA tensors (``__cuda_array_interface__``) as inputs and ``out=``."""
    img = _images(rng, (2, 40, 50, 3), np.float32)
    theta = _theta(rng, 2)
    want = fw.affine_warp(img, theta)
    try:
        import cupy as cp
    except ImportError:
        print("skip CuPy interop: cupy not installed")
    else:
        got = cp.asarray(fw.affine_warp(cp.asarray(img), theta)).get()
        report("CuPy input", *_forward_ok(got, want, np.float32))
        out = cp.empty_like(cp.asarray(img))
        fw.affine_warp(cp.asarray(img), cp.asarray(theta), out=out)
        report("CuPy input, theta and out=", *_forward_ok(out.get(), want, np.float32))
    try:
        import torch
    except ImportError:
        print("skip PyTorch interop: torch not installed")
    else:
        t_img = torch.from_numpy(img).cuda()
        got = torch.as_tensor(fw.affine_warp(t_img, theta), device="cuda").cpu().numpy()
        report("PyTorch CUDA tensor input", *_forward_ok(got, want, np.float32))
        view = torch.from_numpy(img).cuda().permute(0, 2, 1, 3).contiguous().permute(0, 2, 1, 3)
        got = torch.as_tensor(fw.affine_warp(view, theta), device="cuda").cpu().numpy()
        report("PyTorch strided CUDA tensor input", *_forward_ok(got, want, np.float32))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)

    import fastwarp as fw
    import fastwarp.cuda as fc
    import fastwarp.grad as fg

    if not fc.is_available() or fc.SIMULATOR:
        print("no GPU: this check needs a real NVIDIA GPU", file=sys.stderr)
        return 2
    from numba import cuda

    seed = int(np.random.SeedSequence().entropy % 2**32) if args.seed is None else args.seed
    rng = np.random.default_rng(seed)
    print(f"seed {seed}; GPU {cuda.get_current_device().name}")
    failures = 0

    def report(name, ok, detail):
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")

    n, h, w = 3, 131, 97
    size = (117, 143)  # output larger than a block multiple along both axes
    theta = _theta(rng, n)
    for dtype in DTYPES:  # first call per dtype: compile time
        d_img = cuda.to_device(_images(rng, (n, h, w, 3), dtype))
        t0 = time.perf_counter()
        fc.affine_warp(d_img, theta, size)
        cuda.synchronize()
        print(f"first call (compiles) affine_warp {np.dtype(dtype).name}: {time.perf_counter() - t0:.2f} s")
    _interop(rng, fw, fc, report)
    for dtype, c in itertools.product(DTYPES, (1, 3, 4)):
        img = _images(rng, (n, h, w, c), dtype)
        theta = _theta(rng, n)
        homography = _perspective(rng, n)
        d_img = cuda.to_device(img)
        for mode, pad, ac in itertools.product(MODES, PADDINGS, (False, True)):
            kw = dict(mode=mode, padding_mode=pad, align_corners=ac, fill_value=rng.uniform(0, 2, c))
            name = f"{np.dtype(dtype).name} C={c} {mode}/{pad}/ac={ac}"
            got = fc.affine_warp(d_img, theta, size, **kw).copy_to_host()
            report(f"affine_warp {name}", *_forward_ok(got, fw.affine_warp(img, theta, size, **kw), dtype))
            got = fc.perspective_warp(d_img, homography, size, **kw).copy_to_host()
            want = fw.perspective_warp(img, homography, size, **kw)
            report(f"perspective_warp {name}", *_forward_ok(got, want, dtype))
            grid = fw.affine_grid(theta, size, align_corners=ac)
            grid += rng.normal(scale=0.05, size=grid.shape)  # not an affine grid
            got = fc.grid_sample(d_img, grid, **kw).copy_to_host()
            want = fw.grid_sample(img, grid, **kw)
            report(f"grid_sample {name}", *_forward_ok(got, want, dtype))
    for ac in (False, True):
        theta = _theta(rng, n)
        got = fc.affine_grid(theta, size, align_corners=ac).copy_to_host()
        want = fw.affine_grid(theta, size, align_corners=ac)
        err = np.abs(got - want).max()
        report(f"affine_grid ac={ac}", err <= 1e-12, f"max {err:.3g}")
        homography = _perspective(rng, n)
        got = fc.perspective_grid(homography, size, align_corners=ac).copy_to_host()
        want = fw.perspective_grid(homography, size, align_corners=ac)
        same_nan = np.array_equal(np.isnan(got), np.isnan(want))
        err = np.nanmax(np.abs(got - want)) if not np.isnan(want).all() else 0.0
        report(f"perspective_grid ac={ac}", same_nan and err <= 1e-12, f"max {err:.3g}")

    for dtype, c in itertools.product((np.float32, np.float64), (1, 3)):
        img = _images(rng, (n, h, w, c), dtype)
        theta = _theta(rng, n)
        gout = rng.normal(size=(n, *size, c)).astype(dtype)
        grid = fw.affine_grid(theta, size) + rng.normal(scale=0.05, size=(n, *size, 2))
        d_img, d_gout = cuda.to_device(img), cuda.to_device(gout)
        homography = _perspective(rng, n)
        for mode, pad, ac in itertools.product(MODES, PADDINGS, (False, True)):
            kw = dict(mode=mode, padding_mode=pad, align_corners=ac, fill_value=0.5)
            name = f"{np.dtype(dtype).name} C={c} {mode}/{pad}/ac={ac}"
            wi, wt = fg.perspective_warp_backward(gout, img, homography, size, **kw)
            for det in (False, True):
                gi, gt = fc.perspective_warp_backward(d_gout, d_img, homography, size, deterministic=det,
                                                      **kw)
                oki, di = _grad_ok(gi.copy_to_host(), wi, dtype)
                okt, dt = _grad_ok(gt.copy_to_host(), wt, dtype)
                report(f"perspective_warp_backward det={det} {name}", oki and okt,
                       f"images {di}, theta {dt}")
            wi, wt = fg.affine_warp_backward(gout, img, theta, size, **kw)
            for det in (False, True):
                gi, gt = fc.affine_warp_backward(d_gout, d_img, theta, size, deterministic=det, **kw)
                gi, gt = gi.copy_to_host(), gt.copy_to_host()
                oki, di = _grad_ok(gi, wi, dtype)
                okt, dt = _grad_ok(gt, wt, dtype)
                report(f"affine_warp_backward det={det} {name}", oki and okt, f"images {di}, theta {dt}")
                if det:
                    gi2, gt2 = fc.affine_warp_backward(d_gout, d_img, theta, size, deterministic=True, **kw)
                    same = np.array_equal(gi, gi2.copy_to_host()) and np.array_equal(gt, gt2.copy_to_host())
                    report(f"affine_warp_backward repeat {name}", same, "identical" if same else "differs")
            wi, wg = fg.grid_sample_backward(gout, img, grid, **kw)
            for det in (False, True):
                gi, gg = fc.grid_sample_backward(d_gout, d_img, grid, deterministic=det, **kw)
                oki, di = _grad_ok(gi.copy_to_host(), wi, dtype)
                okg, dg = _grad_ok(gg.copy_to_host(), wg, dtype)
                report(f"grid_sample_backward det={det} {name}", oki and okg, f"images {di}, grid {dg}")

    # antialias: forward and gradient of a zoom out (affine) and a perspective, both modes
    from fastwarp.transforms import affine_theta

    small = (37, 29)
    for dtype, mode in itertools.product((np.float32, np.float64), ("bilinear", "bicubic")):
        img = _images(rng, (n, h, w, 3), dtype)
        theta = np.stack([affine_theta((h, w), small, rotation=rng.uniform(-180, 180),
                                       scale=rng.uniform(0.25, 0.5)) for _ in range(n)])
        gout = rng.normal(size=(n, *small, 3)).astype(dtype)
        kw = dict(mode=mode, padding_mode="reflection", antialias=True)
        name = f"{np.dtype(dtype).name} {mode}"
        got = fc.affine_warp(cuda.to_device(img), theta, small, **kw).copy_to_host()
        want = fw.affine_warp(img, theta, small, **kw)
        report(f"affine_warp antialias {name}", *_forward_ok(got, want, dtype))
        wi, wt = fg.affine_warp_backward(gout, img, theta, small, **kw)
        for det in (False, True):
            gi, gt = fc.affine_warp_backward(gout, cuda.to_device(img), theta, small, deterministic=det, **kw)
            oki, di = _grad_ok(gi.copy_to_host(), wi, dtype)
            okt, dt = _grad_ok(gt.copy_to_host(), wt, dtype)
            report(f"affine_warp_backward antialias det={det} {name}", oki and okt,
                   f"images {di}, theta {dt}")
        homography = _perspective(rng, n)
        wi, wt = fg.perspective_warp_backward(gout, img, homography, small, **kw)
        gi, gt = fc.perspective_warp_backward(gout, cuda.to_device(img), homography, small, **kw)
        oki, di = _grad_ok(gi.copy_to_host(), wi, dtype)
        okt, dt = _grad_ok(gt.copy_to_host(), wt, dtype)
        report(f"perspective_warp_backward antialias {name}", oki and okt, f"images {di}, theta {dt}")

    print(f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
