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

DTYPES = ("float32", "uint8", "float64")  # the default set
ALL_DTYPES = DTYPES + ("uint16", "float16")
PARTS = ("forward", "backward")
MODES = ("bilinear", "nearest", "bicubic")
PADDINGS = ("zeros", "border", "reflection", "constant", "wrap")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dtype", action="append", choices=ALL_DTYPES, metavar="DTYPE",
                        help=f"image dtype to compile (repeatable): {', '.join(ALL_DTYPES)}; "
                             f"default {', '.join(DTYPES)}")
    parser.add_argument("--part", action="append", choices=PARTS, metavar="PART",
                        help="forward (affine_grid, grid_sample, affine_warp, perspective_warp) or "
                             "backward (their gradients; float dtypes only); repeatable, default both")
    parser.add_argument("--mode", action="append", choices=MODES, metavar="MODE",
                        help=f"interpolation (repeatable): {', '.join(MODES)}; default bilinear")
    parser.add_argument("--padding", action="append", choices=PADDINGS, metavar="PADDING",
                        help=f"padding mode (repeatable): {', '.join(PADDINGS)}; default zeros")
    parser.add_argument("--channels", action="append", type=_channels, metavar="C",
                        help="channel count of the images (repeatable; 1, 3 and 4 are compiled in as "
                             "constants, any other count shares one kernel); default 3")


def _channels(text: str) -> int:
    try:
        c = int(text)
    except ValueError:
        c = 0
    if c < 1:
        raise argparse.ArgumentTypeError(f"expected a positive channel count, got {text!r}")
    return c


def _tasks(dtypes, parts, modes=("bilinear",), paddings=("zeros",), channels=(3,)):
    """(label, zero-argument call) for every kernel specialization asked for: each combination
    of dtype, mode, padding and channel count, and the antialias filter once per dtype.  The
    labels name the flags that differ from the defaults."""
    import numpy as np

    import fastwarp as fw

    theta = np.array([[0.9, 0.1, 0.05], [-0.1, 0.9, 0.0]])
    shrink = np.array([[1.0, 0.2, 0.0], [-0.2, 1.0, 0.0]])  # onto a 2 x 3 output: every pixel shrinks
    tasks = [("affine_grid", lambda: fw.affine_grid(theta, (3, 4)))] if "forward" in parts else []
    for name in dtypes:
        dt = np.dtype(name)
        grid = fw.affine_grid(np.broadcast_to(theta, (2, 2, 3)), (4, 5))
        for mode, padding, c in ((m, p, c) for m in modes for p in paddings for c in channels):
            flags = "" if (mode, padding, c) == ("bilinear", "zeros", 3) else f" {mode}/{padding}/C={c}"
            kw = dict(mode=mode, padding_mode=padding)
            x = (np.arange(2 * 5 * 6 * c) % 7).astype(dt).reshape(2, 5, 6, c)
            if "forward" in parts:
                tasks.append((f"affine_warp {name}{flags}",
                              lambda x=x, kw=kw: fw.affine_warp(x, theta, **kw)))
                tasks.append((f"grid_sample {name}{flags}",
                              lambda x=x, g=grid, kw=kw: fw.grid_sample(x, g, **kw)))
            if "backward" in parts and dt.kind == "f":
                gout = np.ones((2, 5, 6, c), dt)
                gg = np.ones((2, 4, 5, c), dt)
                tasks.append((f"affine_warp_backward {name}{flags}",
                              lambda g=gout, x=x, kw=kw: fw.affine_warp_backward(g, x, theta, **kw)))
                tasks.append((f"grid_sample_backward {name}{flags}",
                              lambda g=gg, x=x, gr=grid, kw=kw: fw.grid_sample_backward(g, x, gr, **kw)))
        x = (np.arange(2 * 5 * 6 * 3) % 7).astype(dt).reshape(2, 5, 6, 3)
        if "forward" in parts:
            tasks.append((f"affine_warp antialias {name}",
                          lambda x=x: fw.affine_warp(x, shrink, (2, 3), antialias=True)))
        if "backward" in parts and dt.kind == "f":
            ga = np.ones((2, 2, 3, 3), dt)
            tasks.append((f"affine_warp_backward antialias {name}",
                          lambda g=ga, x=x: fw.affine_warp_backward(g, x, shrink, (2, 3), antialias=True)))
    return tasks


def run(args: argparse.Namespace) -> int:
    import os

    from numba.core.config import CACHE_DIR

    dtypes = list(dict.fromkeys(args.dtype or DTYPES))
    parts = list(dict.fromkeys(args.part or PARTS))
    modes = list(dict.fromkeys(args.mode or ["bilinear"]))
    paddings = list(dict.fromkeys(args.padding or ["zeros"]))
    channels = list(dict.fromkeys(args.channels or [3]))
    where = CACHE_DIR or "__pycache__ next to the fastwarp package"
    flags = "" if (modes, paddings, channels) == (["bilinear"], ["zeros"], [3]) else (
        f" (modes {', '.join(modes)}; padding {', '.join(paddings)}; channels "
        f"{', '.join(map(str, channels))})")
    print(f"fastwarp precompile: {', '.join(parts)} for {', '.join(dtypes)}{flags} into {where}"
          + (" (NUMBA_CACHE_DIR)" if os.environ.get("NUMBA_CACHE_DIR") else ""), flush=True)
    start = time.perf_counter()
    for label, fn in _tasks(dtypes, parts, modes, paddings, channels):
        t0 = time.perf_counter()
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report which kernel failed, then fail the command
            print(f"  {label}: failed: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        print(f"  {label}: {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"done in {time.perf_counter() - start:.0f} s; later processes load these kernels from the cache")
    return 0
