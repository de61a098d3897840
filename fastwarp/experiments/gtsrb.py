"""Loader for the German Traffic Sign Recognition Benchmark (GTSRB), official training layout.

The training archive (``GTSRB_Final_Training_Images.zip``) unpacks to
``GTSRB/Final_Training/Images/`` with one folder per class, ``00000/`` to
``00042/``.  Each holds the class's ``.ppm`` images, named
``TTTTT_FFFFF.ppm`` (track, frame), and ``GT-00000.csv``: semicolon-separated
with the header ``Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId``.
The ROI bounds the sign inside a margin; its corners are taken as inclusive
pixel coordinates (the sign spans columns X1..X2 and rows Y1..Y2) and
clipped to the image.

:func:`load_gtsrb` crops every image to its ROI and resizes it (Pillow,
bilinear with area filtering when shrinking) to a fixed size.  The dataset
cannot be downloaded by fastwarp; get it from the benchmark's site.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["GTSRB", "load_gtsrb", "find_class_dirs", "split_by_track"]

HEADER = ["Filename", "Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId"]
NUM_CLASSES = 43


@dataclass
class GTSRB:
    """Loaded signs: images uint8 (N, H, W, 3), labels int64 (N,), tracks int64 (N,), file paths.

    A track id is unique across classes (``class * 100000 + track``).
    """

    images: np.ndarray
    labels: np.ndarray
    tracks: np.ndarray
    files: list


def find_class_dirs(root) -> list[Path]:
    """The class folders (5-digit names) under ``root``, ``root/Images`` or ``root/Final_Training/Images``.

    Raises
    ------
    FileNotFoundError
        When none of those holds a class folder.
    """
    root = Path(root)
    training = Path("Final_Training") / "Images"
    for base in (root, root / "Images", root / training, root / "GTSRB" / training):
        if base.is_dir():
            dirs = sorted(p for p in base.iterdir() if p.is_dir() and p.name.isdigit() and len(p.name) == 5)
            if dirs:
                return dirs
    raise FileNotFoundError(
        f"load_gtsrb: no class folders (00000/, 00001/, ...) under {root} "
        "(expected the official training layout, e.g. GTSRB/Final_Training/Images)")


def _read_annotations(csv_path: Path) -> list[dict]:
    with open(csv_path, newline="") as f:
        reader = csv.reader(f, delimiter=";")
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:len(HEADER)]] != HEADER:
            raise ValueError(
                f"load_gtsrb: {csv_path} must start with the header {';'.join(HEADER)}; got {header}")
        rows = []
        for line_no, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            if len(row) < len(HEADER):
                raise ValueError(
                    f"load_gtsrb: {csv_path} line {line_no}: expected {len(HEADER)} fields; got {row}")
            try:
                rows.append({"Filename": row[0].strip(), **{k: int(v) for k, v in zip(HEADER[1:], row[1:])}})
            except ValueError:
                raise ValueError(
                    f"load_gtsrb: {csv_path} line {line_no}: non-integer field in {row}") from None
    return rows


def _track(filename: str) -> int:
    stem = Path(filename).stem
    head = stem.split("_")[0]
    return int(head) if head.isdigit() else -1


def load_gtsrb(root, size=(32, 32), *, classes=None, max_per_class: int | None = None) -> GTSRB:
    """Load GTSRB training images: crop each to its ROI, resize to ``size``.

    Parameters
    ----------
    root : path
        The class folders' parent (``.../Final_Training/Images``) or a folder
        above it (see :func:`find_class_dirs`).
    size : (int, int)
        Output (H, W).
    classes : iterable of int, optional
        Load only these class ids (default: every class folder present).
    max_per_class : int, optional
        Keep at most this many images per class (the first in CSV order).

    Returns
    -------
    GTSRB
        ``images`` uint8 (N, H, W, 3), ``labels`` int64 (the CSV's ClassId),
        ``tracks`` int64 (``class * 100000 + track``, the track from the file
        name ``TTTTT_FFFFF.ppm``), ``files`` (paths).

    Raises
    ------
    FileNotFoundError
        No class folder, or a class folder without its ``GT-xxxxx.csv``, or a
        listed image missing.
    ValueError
        Malformed CSV, or a ClassId that disagrees with its folder.
    """
    from PIL import Image

    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ValueError(f"load_gtsrb: size must be positive; got {size!r}")
    wanted = None if classes is None else {int(c) for c in classes}
    images, labels, tracks, files = [], [], [], []
    for d in find_class_dirs(root):
        cls = int(d.name)
        if wanted is not None and cls not in wanted:
            continue
        csv_path = d / f"GT-{d.name}.csv"
        if not csv_path.is_file():
            raise FileNotFoundError(f"load_gtsrb: missing annotation file {csv_path}")
        rows = _read_annotations(csv_path)
        if max_per_class is not None:
            rows = rows[:max_per_class]
        for r in rows:
            if r["ClassId"] != cls:
                raise ValueError(f"load_gtsrb: {csv_path}: {r['Filename']} has ClassId {r['ClassId']} "
                                 f"in folder {d.name}")
            path = d / r["Filename"]
            with Image.open(path) as im:
                im = im.convert("RGB")
                x1, y1 = max(r["Roi.X1"], 0), max(r["Roi.Y1"], 0)
                x2, y2 = min(r["Roi.X2"], im.width - 1), min(r["Roi.Y2"], im.height - 1)
                if x2 < x1 or y2 < y1:
                    raise ValueError(f"load_gtsrb: {path}: empty ROI {x1},{y1},{x2},{y2}")
                crop = im.crop((x1, y1, x2 + 1, y2 + 1)).resize((w, h), Image.Resampling.BILINEAR)
                images.append(np.asarray(crop, dtype=np.uint8))
            labels.append(cls)
            tracks.append(cls * 100000 + _track(r["Filename"]))
            files.append(str(path))
    if not images:
        raise FileNotFoundError(f"load_gtsrb: no images found under {root}")
    return GTSRB(np.stack(images), np.asarray(labels, np.int64), np.asarray(tracks, np.int64), files)


def split_by_track(tracks: np.ndarray, test_fraction: float = 0.2,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) holding out whole tracks (the ~30 frames of one sign), so no sign is in both."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"split_by_track: test_fraction must be in (0, 1); got {test_fraction}")
    tracks = np.asarray(tracks)
    uniq = np.unique(tracks)
    rng = np.random.default_rng(seed)
    n_test = max(1, int(round(test_fraction * len(uniq))))
    test_tracks = rng.permutation(uniq)[:n_test]
    is_test = np.isin(tracks, test_tracks)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)
