"""``fastwarp precompile``: compile the CPU kernels into Numba's on-disk cache ahead of time.

Each kernel compiles on its first call (for every image dtype once) and is
cached on disk, so only the first process pays.  Run this in an image build, on
a new cluster node, or before a benchmark, so that no user-facing call pays
the compilation.  Numba writes its cache next to the package (``__pycache__``)
or, when set, under ``NUMBA_CACHE_DIR``; a cache is only reused on a CPU of the
same model and features (docs/precompile.md).
"""

from __future__ import annotations

import argparse
import sys
import time

HELP = "Compile fastwarp's CPU kernels into Numba's cache ahead of time (image builds, clusters)."

DTYPES = ("float32", "uint8", "float64")
PARTS = ("forward", "backward")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dtype", action="append", choices=DTYPES, metavar="DTYPE",
                        help=f"image dtype to compile (repeatable): {', '.join(DTYPES)}; default all")
    parser.add_argument("--part", action="append", choices=PARTS, metavar="PART",
                        help="forward (affine_grid, grid_sample, affine_warp) or backward (their "
                             "gradients; float dtypes only); repeatable, default both")


def _tasks(dtypes, parts):
    """(label, zero-argument call) for every kernel specialization asked for."""
    import numpy as np

    import fastwarp as fw

    theta = np.array([[0.9, 0.1, 0.05], [-0.1, 0.9, 0.0]])
    shrink = np.array([[1.0, 0.2, 0.0], [-0.2, 1.0, 0.0]])  # onto a 2 x 3 output: every pixel shrinks
    tasks = [("affine_grid", lambda: fw.affine_grid(theta, (3, 4)))] if "forward" in parts else []
    for name in dtypes:
        dt = np.dtype(name)
        x = (np.arange(2 * 5 * 6 * 3) % 7).astype(dt).reshape(2, 5, 6, 3)
        grid = fw.affine_grid(np.broadcast_to(theta, (2, 2, 3)), (4, 5))
        if "forward" in parts:
            tasks.append((f"affine_warp {name}", lambda x=x: fw.affine_warp(x, theta)))
            tasks.append((f"grid_sample {name}", lambda x=x, g=grid: fw.grid_sample(x, g)))
            tasks.append((f"affine_warp antialias {name}",
                          lambda x=x: fw.affine_warp(x, shrink, (2, 3), antialias=True)))
        if "backward" in parts and dt.kind == "f":
            gout = np.ones((2, 5, 6, 3), dt)
            gg = np.ones((2, 4, 5, 3), dt)
            tasks.append((f"affine_warp_backward {name}",
                          lambda g=gout, x=x: fw.affine_warp_backward(g, x, theta)))
            tasks.append((f"grid_sample_backward {name}",
                          lambda g=gg, x=x, gr=grid: fw.grid_sample_backward(g, x, gr)))
            ga = np.ones((2, 2, 3, 3), dt)
            tasks.append((f"affine_warp_backward antialias {name}",
                          lambda g=ga, x=x: fw.affine_warp_backward(g, x, shrink, (2, 3), antialias=True)))
    return tasks


def run(args: argparse.Namespace) -> int:
    import os

    from numba.core.config import CACHE_DIR

    dtypes = list(dict.fromkeys(args.dtype or DTYPES))
    parts = list(dict.fromkeys(args.part or PARTS))
    where = CACHE_DIR or "__pycache__ next to the fastwarp package"
    print(f"fastwarp precompile: {', '.join(parts)} for {', '.join(dtypes)} into {where}"
          + (" (NUMBA_CACHE_DIR)" if os.environ.get("NUMBA_CACHE_DIR") else ""), flush=True)
    start = time.perf_counter()
    for label, fn in _tasks(dtypes, parts):
        t0 = time.perf_counter()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report which kernel failed, then fail the command
            print(f"  {label}: failed: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        print(f"  {label}: {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"done in {time.perf_counter() - start:.0f} s; later processes load these kernels from the cache")
    return 0
