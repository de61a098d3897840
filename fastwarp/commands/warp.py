"""``fastwarp warp``: warp image files, folders and globs into an output folder.

See docs/cli.md for examples.  Exit codes: 0 all written, 1 refused to start
(bad arguments, output colliding with an input), 2 some files failed (each is
reported with its reason; the others are still written), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys

HELP = "warp image files (files, folders, globs) into an output folder"

EPILOG = """\
transforms are about the image centre, in pixels: scale, then shear, then a
counter-clockwise rotation, then a translation, then the perspective's corner
moves (fastwarp.augment.AugmentSpec, the vocabulary of every fastwarp front end).
--random-* draw a value per image and copy, uniformly in [LO, HI] (translation:
in [-DX, DX] x [-DY, DY]), from --seed, the file's path relative to its input
folder and the copy index: the same command writes the same files however it is
batched or distributed.  --rotate, --shift, --random-rotate and --random-shift
are the old spellings of --rotation, --translation, --random-rotation and
--random-translation.

examples:
  fastwarp warp photos -o out --rotation 15 --scale 1.2
  fastwarp warp 'data/**/*.png' -o aug --random-rotation -20 20 --random-scale 0.9 1.1 --copies 5
  fastwarp warp scans -o aug --perspective 0.2 --random-rotation -5 5 --copies 3 --padding border
  fastwarp warp img.jpg -o out --matrix 1 0 10 0 1 -5 --padding border
  fastwarp warp scans -o flat --matrix 1 0.1 0 0 1 0 0.0005 0 1 --mode bicubic --padding constant --fill 255
  fastwarp warp photos -o small --size 128 128 --format png --skip-existing
  fastwarp warp photos -o thumbs --scale 0.25 --antialias
  fastwarp warp photos -o out --random-rotate -30 30 --scheduler tcp://10.0.0.1:8786

exit status: 0 all written, 1 refused to start, 2 some files failed, 130 interrupted.
"""


def configure(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files, folders (searched recursively) or glob patterns ('**' allowed)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="output folder; outputs mirror the inputs' relative paths")

    g = p.add_argument_group("transform (fixed)")
    g.add_argument("--rotation", "--rotate", dest="rotate", type=float, metavar="DEG",
                   help="rotation, counter-clockwise, degrees (--rotate: the old spelling)")
    g.add_argument("--scale", type=float, metavar="S", help="zoom factor (>1 enlarges)")
    g.add_argument("--shear", type=float, metavar="DEG", help="horizontal shear angle, degrees")
    g.add_argument("--translation", "--shift", dest="shift", type=float, nargs=2, metavar=("DX", "DY"),
                   help="translation in output pixels (x right, y down; --shift: the old spelling)")
    g.add_argument("--matrix", type=float, nargs="+", metavar="M",
                   help="6 numbers: OpenCV warpAffine matrix [[A B C] [D E F]]; 9 numbers: a "
                        "warpPerspective homography (row by row); source to destination pixels "
                        "(instead of the parameters above)")
    g.add_argument("--inverse-map", action="store_true",
                   help="--matrix maps destination to source pixels (cv2.WARP_INVERSE_MAP)")

    r = p.add_argument_group("transform (random, per image and copy)")
    r.add_argument("--random-rotation", "--random-rotate", dest="random_rotate", type=float, nargs=2,
                   metavar=("LO", "HI"), help="rotation drawn in [LO, HI] degrees")
    r.add_argument("--random-scale", type=float, nargs=2, metavar=("LO", "HI"))
    r.add_argument("--random-shear", type=float, nargs=2, metavar=("LO", "HI"))
    r.add_argument("--random-translation", "--random-shift", dest="random_shift", type=float, nargs=2,
                   metavar=("DX", "DY"), help="uniform translation in [-DX, DX] x [-DY, DY] output pixels")
    r.add_argument("--perspective", "--random-perspective", dest="perspective", type=float, metavar="S",
                   help="random perspective: each output corner p moves to p + p * f, f's coordinates "
                        "uniform in [-S/2, S/2] (keras.layers.RandomPerspective's scale; 0..1)")
    r.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the random transforms (default 0)")
    r.add_argument("--copies", type=int, default=1, metavar="K",
                   help="outputs per input (NAME_0.ext ... NAME_{K-1}.ext when K > 1)")

    s = p.add_argument_group("sampling and output")
    s.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="output size (default: the input's); the input is resized onto it")
    s.add_argument("--no-resize", action="store_true",
                   help="with --size, take an H x W window about the centre instead of resizing")
    s.add_argument("--mode", choices=("bilinear", "nearest", "bicubic"), default="bilinear")
    s.add_argument("--antialias", action="store_true",
                   help="filter each output pixel's footprint where the warp shrinks (no aliasing on "
                        "zoom-outs and small --size); needs --mode bilinear or bicubic")
    s.add_argument("--padding", choices=("zeros", "border", "reflection", "constant", "wrap"),
                   default="zeros",
                   help="what is read outside the input (default zeros; constant reads --fill)")
    s.add_argument("--fill", type=float, nargs="+", metavar="V",
                   help="with --padding constant: the value outside the input, one number or one "
                        "per channel, in the image's units (e.g. 255 255 255 for white 8-bit RGB)")
    s.add_argument("--align-corners", action="store_true",
                   help="PyTorch's align_corners=True convention for --size resizes and theta")
    s.add_argument("--format", metavar="FMT",
                   help="output format (png, jpeg, ppm, tiff, webp...; default: the input's)")
    s.add_argument("--quality", type=int, default=95, metavar="Q", help="JPEG/WebP quality (default 95)")
    s.add_argument("--png-level", type=int, default=1, metavar="L",
                   help="PNG deflate level 0 (none) .. 9 (smallest, slowest); default 1, for speed")

    e = p.add_argument_group("execution")
    e.add_argument("--batch-size", type=int, default=32, metavar="N",
                   help="outputs per Dask task with --scheduler (default 32); local runs go file by file")
    e.add_argument("--workers", type=int, default=None, metavar="N",
                   help="files processed at a time, each thread decoding, warping and writing "
                        "(default: number of CPUs; with --scheduler: per task, default 2)")
    e.add_argument("--memory-budget", default="512MiB", metavar="SIZE",
                   help="bytes of compressed, decoded and warped pixels in flight, e.g. 256MB, 2GiB "
                        "(default 512MiB; per task with --scheduler); a larger image runs alone")
    e.add_argument("--skip-existing", action="store_true", help="leave existing outputs alone (resume)")
    e.add_argument("--overwrite-inputs", action="store_true",
                   help="allow an output path to be one of the inputs")
    e.add_argument("--fsync", action="store_true", help="fsync every output before renaming it")
    e.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the batches on an existing Dask cluster (workers read and write the files)")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _error(msg: str) -> int:
    print(f"fastwarp warp: error: {msg}", file=sys.stderr)
    return 1


def build_spec(args):
    """TransformSpec and OutputOptions from parsed arguments; ValueError on conflicts."""
    from ..folder import OutputOptions, TransformSpec
    from ..io import check_format

    fixed = {"rotation": args.rotate, "scale": args.scale, "shear": args.shear, "translation": args.shift}
    rand = {"rotation": args.random_rotate, "scale": args.random_scale, "shear": args.random_shear,
            "translation": args.random_shift}
    for name in fixed:
        if fixed[name] is not None and rand[name] is not None:
            raise ValueError(f"--{name} and --random-{name} are exclusive")
    if args.matrix is not None and (any(v is not None for v in (*fixed.values(), *rand.values()))
                                    or args.perspective is not None):
        raise ValueError("--matrix replaces --rotation/--scale/--shear/--translation/--perspective and "
                         "their --random- forms")
    if args.perspective is not None and not 0 <= args.perspective <= 1:
        raise ValueError(f"--perspective must be in 0..1; got {args.perspective}")
    if args.inverse_map and args.matrix is None:
        raise ValueError("--inverse-map needs --matrix")
    if args.matrix is not None and len(args.matrix) not in (6, 9):
        raise ValueError(f"--matrix takes 6 numbers (affine) or 9 (homography); got {len(args.matrix)}")
    if args.antialias and args.mode == "nearest":
        raise ValueError("--antialias needs --mode bilinear or bicubic; got --mode nearest")
    if args.fill is not None and args.padding != "constant":
        raise ValueError("--fill needs --padding constant")
    if args.no_resize and args.size is None:
        raise ValueError("--no-resize needs --size")
    if args.copies < 1:
        raise ValueError(f"--copies must be at least 1; got {args.copies}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0; got {args.seed}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1; got {args.batch_size}")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1; got {args.workers}")
    if args.size is not None and min(args.size) < 1:
        raise ValueError(f"--size must be positive; got {args.size}")
    if not 1 <= args.quality <= 100:
        raise ValueError(f"--quality must be in 1..100; got {args.quality}")
    if not 0 <= args.png_level <= 9:
        raise ValueError(f"--png-level must be in 0..9; got {args.png_level}")

    def rng(name, default):
        if rand[name] is not None:
            lo, hi = rand[name]
            if lo > hi:
                raise ValueError(f"--random-{name} needs LO <= HI; got {lo} {hi}")
            return lo, hi
        v = default if fixed[name] is None else fixed[name]
        return v, v

    scale = rng("scale", 1.0)
    if scale[0] <= 0:
        raise ValueError(f"scale must be positive; got {scale[0]}")
    if args.random_shift is not None:
        dx, dy = (abs(v) for v in args.random_shift)
        translation = ((-dx, dx), (-dy, dy))
    else:
        dx, dy = args.shift or (0.0, 0.0)
        translation = ((dx, dx), (dy, dy))
    shear = rng("shear", 0.0)
    if not -90 < shear[0] <= shear[1] < 90:
        raise ValueError(f"shear must lie inside (-90, 90) degrees; got {shear[0]} {shear[1]}")
    spec = TransformSpec(
        rotation=rng("rotation", 0.0), scale=scale, shear=shear, translation=translation,
        perspective=args.perspective or 0.0,
        matrix=None if args.matrix is None else tuple(args.matrix), inverse_map=args.inverse_map,
        size=None if args.size is None else tuple(args.size), resize=not args.no_resize,
        mode=args.mode, padding_mode=args.padding, align_corners=args.align_corners, seed=args.seed,
        antialias=args.antialias,
        fill_value=0.0 if args.fill is None else (args.fill[0] if len(args.fill) == 1 else tuple(args.fill)))
    opts = OutputOptions(format=None if args.format is None else check_format(args.format),
                         quality=args.quality, png_level=args.png_level, fsync=args.fsync)
    return spec, opts


def run(args) -> int:
    import signal
    import threading
    import time

    from tqdm import tqdm

    from ..batch.budget import parse_bytes
    from ..core.runtime import start_numba_without_blas
    from ..folder import plan_jobs, run_local

    try:
        spec, opts = build_spec(args)
        budget = parse_bytes(args.memory_budget)
        jobs, pre = plan_jobs(args.inputs, args.output, copies=args.copies, format=opts.format,
                              skip_existing=args.skip_existing, overwrite_inputs=args.overwrite_inputs)
    except ValueError as e:
        return _error(str(e))
    for path, reason in pre.failures:
        print(f"fastwarp warp: failed: {path}: {reason}", file=sys.stderr)
    # NumPy, Numba and llvmlite leave a million objects that every full garbage
    # collection would walk again (7% of a run over small files): exempt them.
    import gc

    gc.freeze()
    total = sum(len(j.outputs) for j in jobs)
    if not jobs and not pre.failures and not pre.skipped:
        return _error("no image files found in the inputs")

    bar = tqdm(total=total, unit="img", desc="warp", disable=True if args.quiet else None,
               dynamic_ncols=True, smoothing=0.1)

    def failed(path, reason):
        bar.write(f"fastwarp warp: failed: {path}: {reason}", file=sys.stderr)

    # SIGTERM unwinds like Ctrl-C, so in-flight writes finish or are removed.
    old_term = None
    if threading.current_thread() is threading.main_thread():
        def on_term(signum, frame):
            raise SystemExit(128 + signum)
        old_term = signal.signal(signal.SIGTERM, on_term)
    t0 = time.perf_counter()
    try:
        if args.scheduler:
            from ..dask import run_distributed

            report = run_distributed(jobs, spec, opts, args.scheduler, batch_size=args.batch_size,
                                     io_threads=args.workers or 2, memory_budget=budget,
                                     on_failure=failed, progress=bar.update)
        else:
            def start():
                # a short-lived process: Numba's context starts without its scipy.linalg
                # import (while the I/O threads decode the first files), and the objects it
                # leaves are exempted from garbage collection like the ones above
                start_numba_without_blas()
                gc.freeze()

            report = run_local(jobs, spec, opts, workers=args.workers, memory_budget=budget,
                               on_failure=failed, progress=bar.update, start=start)
    finally:
        bar.close()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    seconds = time.perf_counter() - t0
    report.merge(pre)
    rate = report.written / seconds if seconds > 0 else 0.0
    print(f"fastwarp warp: {report.written} written, {report.skipped} skipped (existing), "
          f"{len(report.failures)} failed in {seconds:.1f} s ({rate:.1f} images/s)")
    return 2 if report.failures else 0
