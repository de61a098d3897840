"""``fastwarp train-stn``: train a CNN with and without a spatial transformer, report both test errors.

Default data: RTS-distorted scikit-learn digits (see :mod:`fastwarp.experiments.stn`);
``--gtsrb DIR`` trains on GTSRB's official training images instead (see
:mod:`fastwarp.experiments.gtsrb`), holding out 20% of the tracks for testing.  Writes a
figure of distorted inputs beside the transformer's outputs and a
``results.json`` into ``--out``.  Needs the ``tf`` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HELP = "train a CNN with and without a spatial transformer (distorted digits or GTSRB), report test errors"

# name -> data and training budget; "smoke" (hidden) is for the test suite
PRESETS = {
    "full": {"train_copies": 6, "test_copies": 2, "epochs": 20},
    "quick": {"train_copies": 4, "test_copies": 2, "epochs": 10},
    "smoke": {"train_copies": 1, "test_copies": 1, "epochs": 1, "steps_per_epoch": 2},
}
GTSRB_EPOCHS = {"full": 15, "quick": 4, "smoke": 1}


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="smaller data and budget: a few minutes on two cores")
    p.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)  # tiny run for the tests
    p.add_argument("--gtsrb", type=Path, metavar="DIR",
                   help="train on GTSRB: the official training layout (GTSRB/Final_Training/Images "
                        "with 00000/ ... and GT-xxxxx.csv), which must already be on disk")
    p.add_argument("--epochs", type=int, metavar="N", help="epochs for each model (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed for data, weights and shuffling")
    p.add_argument("--learning-rate", type=float, default=1e-3, metavar="LR", help="Adam step size")
    p.add_argument("--out", type=Path, default=Path("stn-results"), metavar="DIR",
                   help="folder for the figure and results.json (default ./stn-results)")


def _gtsrb_data(root: Path, seed: int, smoke: bool):
    import numpy as np

    from ..experiments.gtsrb import NUM_CLASSES, load_gtsrb, split_by_track
    from ..experiments.stn import Dataset

    print(f"loading GTSRB from {root} ...", flush=True)
    g = load_gtsrb(root, (32, 32), max_per_class=60 if smoke else None)
    train, test = split_by_track(g.tracks, 0.2, seed)
    x = g.images.astype(np.float32) / 255.0
    return Dataset(x[train], g.labels[train], x[test], g.labels[test], num_classes=NUM_CLASSES, name="GTSRB")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from ..experiments import stn as stn

    preset = "smoke" if args.smoke else "quick" if args.quick else "full"
    cfg = dict(PRESETS[preset])
    if args.epochs is not None:
        if args.epochs < 1:
            print("train-stn: --epochs must be at least 1", file=sys.stderr)
            return 1
        cfg["epochs"] = args.epochs
    elif args.gtsrb is not None:
        cfg["epochs"] = GTSRB_EPOCHS[preset]

    t0 = time.perf_counter()
    if args.gtsrb is not None:
        try:
            data = _gtsrb_data(args.gtsrb, args.seed, args.smoke)
        except (FileNotFoundError, ValueError) as e:
            print(f"train-stn: {e}", file=sys.stderr)
            return 1
        tag = "gtsrb"
    else:
        data = stn.make_distorted_digits(args.seed, train_copies=cfg["train_copies"],
                                         test_copies=cfg["test_copies"])
        tag = "digits"
    print(f"{data.name}: {len(data.x_train)} training and {len(data.x_test)} test images of shape "
          f"{data.x_train.shape[1:]}, {cfg['epochs']} epochs per model, seed {args.seed}", flush=True)

    verbose = 1 if sys.stdout.isatty() else 2
    results = {}
    for key, transformer, label in (("cnn", False, "CNN"), ("st_cnn", True, "ST-CNN")):
        print(f"training {label} ...", flush=True)
        results[key] = stn.train_and_evaluate(
            data, transformer=transformer, epochs=cfg["epochs"], seed=args.seed,
            learning_rate=args.learning_rate, steps_per_epoch=cfg.get("steps_per_epoch"), verbose=verbose)

    args.out.mkdir(parents=True, exist_ok=True)
    figure = args.out / f"stn_{tag}.png"
    stn.save_figure(results["st_cnn"].model, data.x_test, figure, labels=data.y_test,
                    title=f"{data.name}: inputs (top) and spatial transformer outputs (bottom)")
    total = time.perf_counter() - t0
    summary = {
        "dataset": data.name, "preset": preset, "seed": args.seed, "epochs": cfg["epochs"],
        "train_images": int(len(data.x_train)), "test_images": int(len(data.x_test)),
        "cnn_test_error": results["cnn"].test_error, "st_cnn_test_error": results["st_cnn"].test_error,
        "cnn_train_seconds": results["cnn"].seconds, "st_cnn_train_seconds": results["st_cnn"].seconds,
        "total_seconds": total, "figure": str(figure),
    }
    (args.out / f"results_{tag}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"test error  CNN: {100 * summary['cnn_test_error']:.2f}%   "
          f"ST-CNN: {100 * summary['st_cnn_test_error']:.2f}%   ({len(data.x_test)} test images)")
    print(f"training time  CNN: {summary['cnn_train_seconds']:.0f} s   "
          f"ST-CNN: {summary['st_cnn_train_seconds']:.0f} s   total {total:.0f} s")
    print(f"figure: {figure}")
    print(f"results: {args.out / f'results_{tag}.json'}")
    return 0
