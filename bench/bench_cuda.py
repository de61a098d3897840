"""Time fastwarp's GPU path against PyTorch CUDA and CuPy on the bench workloads.

Usage (on a machine with an NVIDIA GPU and ``pip install 'fastwarp[cuda]'``)::

    python bench/bench_cuda.py                       # all workloads, forward
    python bench/bench_cuda.py --backward            # also forward+backward, float32
    python bench/bench_cuda.py --workload augment --repeat 50 --json cuda.json
    python bench/bench_cuda.py --peak-gbs 3350       # if the driver does not report the memory clock

Same workloads, images and transform as ``fastwarp bench`` (seed 2x400x400x3,
gtsrb 256x32x32x3, augment 32x224x224x3 float32 and uint8, large
4x1024x1024x3; rotation 30 degrees, scale 0.9, shift (5, -3) px, bilinear,
border padding), from :mod:`fastwarp.experiments.baselines`.  Inputs are copied to
the GPU before timing; each timed call runs and is waited for (synchronize),
after 3 untimed warm-up calls (JIT compilation).  Reported: the median time of
``--repeat`` calls and the fraction of the GPU's peak memory bandwidth that
the minimal traffic represents (forward: input read once + output written
once; forward+backward: 5x the images' bytes).

What is timed:

* ``fastwarp.cuda``: ``fastwarp.cuda.affine_warp(images, theta, padding_mode="border")``,
  output allocated by the call; ``fastwarp.cuda out=``: into a preallocated buffer.
* ``torch``: ``F.affine_grid`` + ``F.grid_sample`` (``align_corners=False``,
  border) on an NCHW CUDA tensor made before timing; for uint8 the timed call
  converts to float32 and rounds back (``grid_sample`` has no uint8 kernel).
* ``cupy``: ``cupyx.scipy.ndimage.affine_transform`` on the NHWC array with a
  4-D matrix that leaves N and C alone, ``order=1, mode="nearest"`` (border);
  pixel-centre conventions differ slightly from fastwarp's, the work is the same.

Without a GPU the script exits with status 2 and says so.  ``--allow-simulator
--tiny`` runs it in Numba's CUDA simulator on tiny shapes, only to check the
script itself (the numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", action="append", help="seed, gtsrb, augment, large (default: all)")
    p.add_argument("--repeat", type=int, default=20, help="timed calls per measurement")
    p.add_argument("--backward", action="store_true", help="also time forward+backward (float32)")
    p.add_argument("--peak-gbs", type=float, default=None, help="peak memory bandwidth in GB/s")
    p.add_argument("--json", default=None, help="write the results to this file")
    p.add_argument("--allow-simulator", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _peak_bandwidth(device) -> float | None:
    """Bytes/s from the memory clock (kHz, double data rate) and the bus width (bits)."""
    try:
        return 2.0 * device.MEMORY_CLOCK_RATE * 1e3 * device.GLOBAL_MEMORY_BUS_WIDTH / 8
    except Exception:  # noqa: BLE001 - not every driver/binding reports these
        return None


def _median_seconds(fn, sync, repeat: int) -> float:
    for _ in range(3):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _fastwarp_cases(fc, cuda, inp, backward: bool):
    """{name: (call, sync)} for fastwarp.cuda; inputs copied to the GPU once, before timing."""
    import numpy as np

    d_img = cuda.to_device(inp.images)
    d_theta = cuda.to_device(inp.theta.astype(np.float64))
    out = cuda.device_array(inp.images.shape, inp.images.dtype)
    kw = dict(mode="bilinear", padding_mode="border", align_corners=False)
    cases = {
        "fastwarp.cuda": (lambda: fc.affine_warp(d_img, d_theta, **kw), cuda.synchronize),
        "fastwarp.cuda out=": (lambda: fc.affine_warp(d_img, d_theta, out=out, **kw),
                               cuda.synchronize),
    }
    if backward and inp.images.dtype == np.float32:
        d_gout = cuda.to_device(inp.grad_out)
        for det in (False, True):
            def fwd_bwd(det=det):
                fc.affine_warp(d_img, d_theta, out=out, **kw)
                fc.affine_warp_backward(d_gout, d_img, d_theta, deterministic=det, **kw)

            cases["fastwarp.cuda fwd+bwd" + (" det" if det else "")] = (fwd_bwd, cuda.synchronize)
    return cases


def _torch_cases(inp, backward: bool):
    """{name: (call, sync)} for PyTorch CUDA, or {} when torch has no GPU here."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return {}
    if not torch.cuda.is_available():
        return {}
    uint8 = inp.images.dtype == "uint8"
    x = torch.as_tensor(inp.images).cuda().permute(0, 3, 1, 2).contiguous()
    theta = torch.as_tensor(inp.theta).cuda()
    size = list(x.shape)

    def forward():
        src = x.float() if uint8 else x
        out = F.grid_sample(src, F.affine_grid(theta, size, align_corners=False), mode="bilinear",
                            padding_mode="border", align_corners=False)
        return out.add_(0.5).floor_().clamp_(0, 255).to(torch.uint8) if uint8 else out

    cases = {"torch": (forward, torch.cuda.synchronize)}
    if backward and not uint8:
        xg = x.clone().requires_grad_(True)
        tg = theta.clone().requires_grad_(True)
        gout = torch.as_tensor(inp.grad_out).cuda().permute(0, 3, 1, 2).contiguous()

        def fwd_bwd():
            out = F.grid_sample(xg, F.affine_grid(tg, size, align_corners=False), mode="bilinear",
                                padding_mode="border", align_corners=False)
            xg.grad = tg.grad = None
            out.backward(gout)

        cases["torch fwd+bwd"] = (fwd_bwd, torch.cuda.synchronize)
    return cases


def _cupy_cases(inp):
    try:
        import cupy
        from cupyx.scipy import ndimage
    except ImportError:
        return {}
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            return {}
    except Exception:  # noqa: BLE001 - no driver
        return {}
    import numpy as np

    n, h, w, c = inp.images.shape
    m = np.vstack([inp.matrix, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(m)  # destination pixel (x, y) -> source pixel (x, y)
    # ndimage indexes (n, y, x, c): input = A @ output + b
    a = np.eye(5)
    a[1, 1], a[1, 2], a[1, 4] = inv[1, 1], inv[1, 0], inv[1, 2]
    a[2, 1], a[2, 2], a[2, 4] = inv[0, 1], inv[0, 0], inv[0, 2]
    x = cupy.asarray(inp.images)
    mat = cupy.asarray(a)

    def forward():
        return ndimage.affine_transform(x, mat, order=1, mode="nearest")

    return {"cupy": (forward, cupy.cuda.Device().synchronize)}


def main(argv=None) -> int:
    args = _parse(argv)

    try:
        from numba import cuda

        import fastwarp.cuda as fc
    except ImportError as e:
        print(f"bench_cuda: the GPU path needs numba-cuda (pip install 'fastwarp[cuda]'): {e}",
              file=sys.stderr)
        return 2
    if fc.SIMULATOR and not args.allow_simulator:
        print("bench_cuda: NUMBA_ENABLE_CUDASIM=1 selects Numba's CUDA simulator; timings there "
              "mean nothing. Unset it on a machine with a GPU.", file=sys.stderr)
        return 2
    if not fc.is_available():
        print("bench_cuda: no CUDA GPU found (numba.cuda.is_available() is False); nothing to time. "
              "Run this on a machine with an NVIDIA GPU and driver after pip install 'fastwarp[cuda]'.",
              file=sys.stderr)
        return 2

    from fastwarp.experiments.baselines import WORKLOADS, Workload, make_inputs

    names = args.workload or list(WORKLOADS)
    unknown = set(names) - set(WORKLOADS)
    if unknown:
        print(f"bench_cuda: unknown workload(s) {sorted(unknown)}; choose from {', '.join(WORKLOADS)}",
              file=sys.stderr)
        return 2
    device = cuda.get_current_device()
    peak = args.peak_gbs * 1e9 if args.peak_gbs else (None if fc.SIMULATOR else _peak_bandwidth(device))
    name = getattr(device, "name", b"?")
    name = name.decode() if isinstance(name, bytes) else str(name)
    print(f"device: {name}; peak memory bandwidth: "
          f"{f'{peak / 1e9:.0f} GB/s' if peak else 'unknown (pass --peak-gbs)'}")
    print(f"{'workload':9} {'dtype':8} {'library':26} {'median ms':>10} {'GB/s':>8} {'% peak':>7}")
    results = []
    for wname in names:
        wl = WORKLOADS[wname]
        if args.tiny:
            n, _, _, c = wl.shape
            wl = Workload(wl.name, (min(n, 2), 9, 11, c), wl.dtypes, wl.note)
        for dtype in wl.dtypes:
            inp = make_inputs(wl, dtype, backward=args.backward)
            cases = _fastwarp_cases(fc, cuda, inp, args.backward)
            cases.update(_torch_cases(inp, args.backward))
            cases.update(_cupy_cases(inp))
            for lib, (fn, sync) in cases.items():
                sec = _median_seconds(fn, sync, args.repeat)
                # forward: images read + output written; fwd+bwd adds grad_out and the
                # images read again and the image gradient written: 5x the images
                moved = inp.nbytes_moved if "bwd" not in lib else 5 * inp.images.nbytes
                gbs = moved / sec / 1e9
                frac = moved / sec / peak if peak else None
                pct = f"{100 * frac:6.1f}%" if frac is not None else "      ?"
                print(f"{wname:9} {dtype:8} {lib:26} {sec * 1e3:10.3f} {gbs:8.1f} {pct}")
                results.append(dict(workload=wname, shape=list(wl.shape), dtype=dtype, library=lib,
                                    median_s=sec, bytes_moved=moved, gbs=gbs, peak_fraction=frac))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=name, peak_bytes_per_s=peak, simulator=fc.SIMULATOR,
                           repeat=args.repeat, results=results), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
