"""GTSRB loader on a generated fixture in the official training layout (no download)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fastwarp.experiments.gtsrb import HEADER, find_class_dirs, load_gtsrb, split_by_track

MARGIN_COLOUR = (255, 0, 255)


def _colour(cls: int) -> tuple[int, int, int]:
    return (20 + 37 * cls % 200, 200 - 11 * cls, 90 + cls)


def write_fixture(root, rng, classes=(0, 1, 5), tracks=2, frames=3):
    """GTSRB/Final_Training/Images/<class>/ with .ppm files and GT-<class>.csv.

    Each image is a random size, filled with MARGIN_COLOUR outside its ROI and
    random pixels of the class colour +-10 inside; returns {path: (roi pixels, class, track)}.
    """
    base = root / "GTSRB" / "Final_Training" / "Images"
    truth = {}
    for cls in classes:
        d = base / f"{cls:05d}"
        d.mkdir(parents=True)
        lines = [";".join(HEADER)]
        for t in range(tracks):
            for f in range(frames):
                h, w = rng.integers(25, 61, 2)
                x1, y1 = rng.integers(1, 7, 2)
                x2, y2 = w - 1 - rng.integers(0, 6), h - 1 - rng.integers(0, 6)
                img = np.empty((h, w, 3), np.uint8)
                img[...] = MARGIN_COLOUR
                noise = rng.integers(-10, 11, (y2 - y1 + 1, x2 - x1 + 1, 3))
                roi = np.clip(np.array(_colour(cls)) + noise, 0, 255)
                img[y1:y2 + 1, x1:x2 + 1] = roi
                name = f"{t:05d}_{f:05d}.ppm"
                Image.fromarray(img).save(d / name)
                lines.append(f"{name};{w};{h};{x1};{y1};{x2};{y2};{cls}")
                truth[str(d / name)] = (img[y1:y2 + 1, x1:x2 + 1], cls, t)
        (d / f"GT-{cls:05d}.csv").write_text("\n".join(lines) + "\n")
    return base, truth


def test_layout_is_found_from_any_parent(tmp_path, rng):
    base, _ = write_fixture(tmp_path, rng)
    for root in (tmp_path, tmp_path / "GTSRB", tmp_path / "GTSRB" / "Final_Training", base):
        assert [p.name for p in find_class_dirs(root)] == ["00000", "00001", "00005"]


def test_crops_to_roi_and_resizes(tmp_path, rng):
    _, truth = write_fixture(tmp_path, rng)
    data = load_gtsrb(tmp_path, size=(24, 20))
    assert data.images.shape == (len(truth), 24, 20, 3)
    assert data.images.dtype == np.uint8
    assert sorted(set(data.labels.tolist())) == [0, 1, 5]
    for img, label, track, path in zip(data.images, data.labels, data.tracks, data.files):
        roi, cls, t = truth[path]
        assert label == cls
        assert track == cls * 100000 + t
        # no margin colour leaks in: every pixel stays near the class colour
        assert np.abs(img.astype(int) - np.array(_colour(cls))).max() <= 10
        assert abs(img.reshape(-1, 3).mean(0) - roi.reshape(-1, 3).mean(0)).max() < 4


def test_roi_corners_are_inclusive(tmp_path, rng):
    """At the ROI's own size the crop is exactly the ROI's pixels, rows Y1..Y2 and columns X1..X2."""
    _, truth = write_fixture(tmp_path, rng, classes=(3,), tracks=1, frames=4)
    for path, (roi, _, _) in truth.items():
        data = load_gtsrb(tmp_path, size=roi.shape[:2], classes=[3])
        k = data.files.index(path)
        np.testing.assert_array_equal(data.images[k], roi)


def test_class_filter_and_cap(tmp_path, rng):
    write_fixture(tmp_path, rng, classes=(0, 1, 5), tracks=2, frames=3)
    data = load_gtsrb(tmp_path, size=(8, 8), classes=[1, 5], max_per_class=4)
    assert data.labels.tolist() == [1] * 4 + [5] * 4


def test_errors(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="load_gtsrb: no class folders"):
        load_gtsrb(tmp_path)
    base, _ = write_fixture(tmp_path, rng, classes=(0, 2), tracks=1, frames=2)
    csv = base / "00002" / "GT-00002.csv"
    text = csv.read_text()
    csv.write_text(text.replace(";2\n", ";7\n", 1))
    with pytest.raises(ValueError, match="ClassId 7 in folder 00002"):
        load_gtsrb(tmp_path)
    csv.write_text(text.replace("Filename", "File", 1))
    with pytest.raises(ValueError, match="must start with the header"):
        load_gtsrb(tmp_path)
    csv.unlink()
    with pytest.raises(FileNotFoundError, match="GT-00002.csv"):
        load_gtsrb(tmp_path)


def test_split_by_track_keeps_tracks_whole(tmp_path, rng):
    write_fixture(tmp_path, rng, classes=(0, 1), tracks=5, frames=3)
    data = load_gtsrb(tmp_path, size=(8, 8))
    train, test = split_by_track(data.tracks, 0.3, seed=1)
    assert len(train) + len(test) == len(data.labels)
    assert not set(data.tracks[train]) & set(data.tracks[test])
    assert len(set(data.tracks[test])) == 3  # 30% of 10 tracks
    again = split_by_track(data.tracks, 0.3, seed=1)
    np.testing.assert_array_equal(again[1], test)
