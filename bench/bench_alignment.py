"""How the addresses of the input and output buffers (modulo 4 KiB) change one warp's time.

    python bench/bench_alignment.py                 # uint8 and float32, 256x256x3, 15 degrees
    python bench/bench_alignment.py --side 512 --step 256

One image, one kernel thread (and one OpenCV thread), rotation 15 degrees and
scale 0.9.  The input and the output are views into larger buffers, placed at
every ``--step`` bytes past a 4 KiB boundary: first the input moves with the
output fixed, then the output with the input fixed.  Each cell is the median
of ``--calls`` back-to-back calls into the same buffers (``out=`` for fastwarp,
``dst=`` for OpenCV), in ms.  The spread of a row is what the placement alone
costs; the data and the transform never change.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _timed(fn, calls: int) -> float:
    fn()
    ts = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e3


def scan(dtype, side: int, step: int, calls: int, library: str) -> tuple[list[float], list[float]]:
    import fastwarp as fw

    rng = np.random.default_rng(0)
    dt = np.dtype(dtype)
    n = side * side * 3 * dt.itemsize
    bin_, bout = np.empty(n + 8192, np.uint8), np.empty(n + 8192, np.uint8)
    src = (rng.random((side, side, 3)) * 255).astype(dt)
    a, s = np.deg2rad(15.0), 1 / 0.9
    theta = np.array([[s * np.cos(a), -s * np.sin(a), 0.0], [s * np.sin(a), s * np.cos(a), 0.0]])
    if library == "opencv":
        import cv2

        cv2.setNumThreads(1)
        m = cv2.getRotationMatrix2D(((side - 1) / 2, (side - 1) / 2), 15.0, 0.9)

    def cell(off_in: int, off_out: int) -> float:
        ai = (-bin_.ctypes.data) % 4096 + off_in
        ao = (-bout.ctypes.data) % 4096 + off_out
        img = bin_[ai:ai + n].view(dt).reshape(side, side, 3)
        img[...] = src
        out = bout[ao:ao + n].view(dt).reshape(side, side, 3)
        if library == "opencv":
            return _timed(lambda: cv2.warpAffine(img, m, (side, side), dst=out), calls)
        return _timed(lambda: fw.affine_warp(img, theta, out=out), calls)

    offsets = range(0, 4096, step)
    return [cell(o, 0) for o in offsets], [cell(0, o) for o in offsets]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", type=int, default=256)
    p.add_argument("--step", type=int, default=256, help="bytes between placements (default 256)")
    p.add_argument("--calls", type=int, default=60)
    p.add_argument("--dtypes", nargs="+", default=["uint8", "float32"])
    args = p.parse_args(argv)
    from fastwarp.core.threads import set_kernel_threads
    from fastwarp.experiments.benchmark import cpu_model

    set_kernel_threads(1)
    print(f"{cpu_model()}; {args.side}x{args.side}x3, one thread; ms per call")
    try:
        import cv2  # noqa: F401

        libraries = ("fastwarp", "opencv")
    except ImportError:
        libraries = ("fastwarp",)
    for dtype in args.dtypes:
        for lib in libraries:
            moving_in, moving_out = scan(dtype, args.side, args.step, args.calls, lib)
            for what, row in (("input moves", moving_in), ("output moves", moving_out)):
                print(f"{dtype:8s} {lib:9s} {what:12s} min {min(row):.3f} median {np.median(row):.3f} "
                      f"max {max(row):.3f} | " + " ".join(f"{t:.2f}" for t in row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
