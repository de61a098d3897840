"""The ``fastwarp`` console script: one subcommand per module in ``fastwarp.commands``.

Each command module defines ``HELP`` (one line), ``configure(parser)`` and
``run(args) -> int`` (the exit code), and keeps heavy imports inside ``run`` so
``fastwarp --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command name -> module under fastwarp.commands
COMMANDS = {
    "demo": "demo",
    "bench": "bench",
    "warp": "warp",
    "train-stn": "train_stn",
    "precompile": "precompile",
}


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="fastwarp", description="Fast affine warps of image batches (Numba).")
    parser.add_argument("--version", action="version", version=f"fastwarp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        mod = importlib.import_module(f"fastwarp.commands.{module}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.configure(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .core.optional import MissingDependency

    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except MissingDependency as e:
        print(f"fastwarp {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
