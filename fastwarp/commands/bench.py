"""``fastwarp bench``: time fastwarp against OpenCV, PyTorch, TensorFlow and NumPy."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Benchmark affine warps against OpenCV, PyTorch, TensorFlow and NumPy; writes a table, JSON and PNG."

EXTRAS = ("backward", "floor", "scaling", "cold-start", "patterns", "breadth")


def _shape(text: str) -> tuple[int, int, int, int]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N,H,W,C; got {text!r}") from None
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected four positive ints N,H,W,C; got {text!r}")
    return shape  # type: ignore[return-value]


def configure(parser: argparse.ArgumentParser) -> None:
    from ..experiments.benchmark import BASELINES, WORKLOADS

    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats and scaling points, NumPy only on small inputs (about a minute)")
    parser.add_argument("--workload", action="append", choices=sorted(WORKLOADS), metavar="NAME",
                        help=f"workload to time (repeatable): {', '.join(WORKLOADS)}; default all")
    parser.add_argument("--shape", type=_shape, action="append", metavar="N,H,W,C",
                        help="a custom workload of this batch shape (repeatable)")
    parser.add_argument("--dtype", choices=("float32", "float64", "uint8"),
                        help="time only this dtype (default: each workload's own dtypes)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="threads for every library (default: each library's default, all cores)")
    parser.add_argument("--libraries", metavar="A,B", type=lambda s: [v.strip() for v in s.split(",") if v],
                        help=f"baselines to time, comma separated, from: {', '.join(BASELINES)}")
    parser.add_argument("--skip", action="append", choices=EXTRAS, default=[],
                        help="leave out a part of the report (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("fastwarp-bench"), metavar="DIR",
                        help="directory for bench.json, bench.png and bench.txt (default ./fastwarp-bench)")


def make_config(args: argparse.Namespace):
    """The benchmark configuration the command-line arguments ask for."""
    from ..experiments.benchmark import BASELINES, WORKLOADS, Config, Workload

    cfg = Config()
    workloads = [WORKLOADS[name] for name in dict.fromkeys(args.workload or [])]
    workloads += [Workload("custom-" + "x".join(map(str, s)), s) for s in args.shape or []]
    if workloads:
        cfg.workloads = workloads
    if args.dtype:
        cfg.dtypes = [args.dtype]
    if args.libraries:
        unknown = [lib for lib in args.libraries if lib not in BASELINES]
        if unknown:
            raise ValueError(f"unknown libraries {unknown}; choose from {', '.join(BASELINES)}")
        cfg.libraries = ["fastwarp"] + [lib for lib in args.libraries if lib != "fastwarp"]
    cfg.threads = args.threads
    if args.quick:
        cfg.repeat, cfg.budget_s, cfg.min_repeat_s = 5, 0.3, 0.02
        cfg.numpy_max_elements = 2_000_000
        cfg.backward_workloads = ("seed", "gtsrb")
        cfg.scaling_batches = (1, 8, 32)
        cfg.scaling_sides = (64, 256, 1024)
        cfg.scaling_libraries = ("fastwarp", "opencv", "torch")
        cfg.cold_start_uncached = False
    skip = set(args.skip)
    if "backward" in skip:
        cfg.ops = ("forward",)
    cfg.memory_floor = "floor" not in skip
    cfg.scaling = "scaling" not in skip
    cfg.cold_start = "cold-start" not in skip
    cfg.patterns = "patterns" not in skip
    cfg.breadth = "breadth" not in skip
    if args.quick:
        cfg.pattern_calls = 60
        cfg.breadth_batch = 8
    return cfg


def run(args: argparse.Namespace) -> int:
    import sys

    from ..core.optional import MissingDependency
    from ..experiments.benchmark import run as run_benchmark
    from ..experiments.report import format_table, plot, write_json

    if args.threads is not None and args.threads < 1:
        print("fastwarp bench: --threads must be at least 1", file=sys.stderr)
        return 2
    try:
        cfg = make_config(args)
    except ValueError as e:
        print(f"fastwarp bench: {e}", file=sys.stderr)
        return 2
    report = run_benchmark(cfg, log=lambda s: print(s, flush=True))
    table = format_table(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.txt").write_text(table + "\n")
    write_json(report, args.out / "bench.json")
    written = [args.out / "bench.txt", args.out / "bench.json"]
    try:
        plot(report, args.out / "bench.png")
        written.append(args.out / "bench.png")
    except MissingDependency as e:
        print(f"fastwarp bench: no plot: {e}", file=sys.stderr)
    print()
    print(table)
    print("\nwrote " + ", ".join(str(p) for p in written))
    return 0
