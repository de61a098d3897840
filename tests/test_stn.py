"""Spatial transformer experiment: distorted digits, a tiny training run, the train-stn command."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

import fastwarp  # noqa: E402
from fastwarp import transforms  # noqa: E402
from fastwarp.cli import main  # noqa: E402
from fastwarp.experiments import stn as stn


@pytest.fixture(scope="module")
def digits():
    return stn.make_distorted_digits(5, canvas=36, train_copies=1, test_copies=2, test_fraction=0.2)


def test_upscaled_digits():
    images, labels = stn.load_digits_28()
    assert images.shape == (1797, 28, 28, 1) and images.dtype == np.float32
    assert labels.shape == (1797,) and set(labels.tolist()) == set(range(10))
    assert 0.0 <= images.min() and images.max() <= 1.0
    # the black frame: the outermost rows and columns are (near) black, the middle is not
    assert images[:, [0, -1]].max() < 0.05 and images[:, :, [0, -1]].max() < 0.05
    assert images[:, 10:18, 10:18].mean() > 0.1


def test_distort_without_rotation_or_scale_only_shifts(rng):
    images = rng.random((40, 6, 8, 1)).astype(np.float32)
    square = images[:, :, 1:7]
    same, _ = stn.distort(square, 6, rng, rotation=0.0, scale=(1.0, 1.0))  # no room: an exact copy
    np.testing.assert_allclose(same, square, atol=1e-6)
    out, theta = stn.distort(images, 10, rng, rotation=0.0, scale=(1.0, 1.0))
    assert out.shape == (40, 10, 10, 1)
    m = transforms.cv2_from_theta(theta, (6, 8), (10, 10))
    np.testing.assert_allclose(m[:, :, :2], np.broadcast_to(np.eye(2), (40, 2, 2)), atol=1e-12)
    # room left on a 10x10 canvas: 1 pixel each way horizontally, 2 vertically
    shift = m[:, :, 2] - [1.0, 2.0]
    assert np.abs(shift[:, 0]).max() <= 1 + 1e-9 and np.abs(shift[:, 1]).max() <= 2 + 1e-9
    assert np.abs(shift[:, 1]).max() > 1


def test_distort_draws_rotation_and_scale_in_range(rng):
    images = rng.random((50, 5, 5, 1)).astype(np.float32)
    _, theta = stn.distort(images, 12, rng, rotation=30.0, scale=(0.8, 1.1))
    m = transforms.cv2_from_theta(theta, (5, 5), (12, 12))
    scale = np.sqrt(np.abs(np.linalg.det(m[:, :, :2])))
    angle = np.degrees(np.arctan2(-m[:, 1, 0], m[:, 0, 0]))
    assert scale.min() >= 0.8 - 1e-9 and scale.max() <= 1.1 + 1e-9
    assert np.abs(angle).max() <= 30 + 1e-9 and np.ptp(angle) > 20


def test_distorted_digits_shapes_and_determinism(digits):
    d = digits
    assert d.x_train.shape == (1438, 36, 36, 1) and d.x_test.shape == (2 * 359, 36, 36, 1)
    assert d.x_train.dtype == np.float32 and d.y_train.shape == (1438,)
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    assert not set(d.train_source) & set(d.test_source)  # test digits are never seen in training
    again = stn.make_distorted_digits(5, canvas=36, train_copies=1, test_copies=2, test_fraction=0.2)
    np.testing.assert_array_equal(again.x_train, d.x_train)
    np.testing.assert_array_equal(again.y_test, d.y_test)
    other = stn.make_distorted_digits(6, canvas=36, train_copies=1, test_copies=2, test_fraction=0.2)
    assert not np.array_equal(other.x_test, d.x_test)
    # the two test copies of one original are distorted differently
    assert not np.array_equal(d.x_test[0], d.x_test[1]) and d.test_source[0] == d.test_source[1]


def test_st_cnn_learns(digits):
    """A short run of the ST-CNN: the loss falls and the transformer moves away from the identity."""
    small = stn.Dataset(digits.x_train[:512], digits.y_train[:512], digits.x_test[:64], digits.y_test[:64])
    result = stn.train_and_evaluate(small, transformer=True, epochs=4, seed=1, batch_size=32,
                                    learning_rate=3e-3, verbose=0)
    losses = result.history["loss"]
    assert losses[-1] < 0.85 * losses[0]
    assert result.test_error < 0.8  # chance is 0.9
    theta = result.model.get_layer("st").theta(small.x_test[:16]).numpy()
    assert theta.shape == (16, 2, 3)
    assert np.abs(theta - np.eye(2, 3)).max() > 1e-3


def test_figure(digits, tmp_path):
    model = stn.build_classifier((36, 36, 1), 10, transformer=True, st_output_size=(20, 20))
    path = stn.save_figure(model, digits.x_test, tmp_path / "fig.png", labels=digits.y_test, columns=4)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 100
    warped = stn.transformer_outputs(model, digits.x_test[:3])
    np.testing.assert_allclose(warped, fastwarp.affine_warp(digits.x_test[:3], np.eye(2, 3), (20, 20)),
                               atol=1e-6)


def test_train_stn_command_smoke(tmp_path, capsys):
    assert main(["train-stn", "--smoke", "--seed", "3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "test error  CNN:" in out and "ST-CNN:" in out
    summary = json.loads((tmp_path / "results_digits.json").read_text())
    assert 0 <= summary["cnn_test_error"] <= 1 and 0 <= summary["st_cnn_test_error"] <= 1
    assert summary["epochs"] == 1 and summary["preset"] == "smoke"
    assert (tmp_path / "stn_digits.png").is_file() and f"figure: {tmp_path / 'stn_digits.png'}" in out


def test_train_stn_command_on_gtsrb_fixture(tmp_path, rng, capsys):
    from test_gtsrb import write_fixture

    write_fixture(tmp_path / "data", rng, classes=(0, 1, 2), tracks=4, frames=3)
    out_dir = tmp_path / "out"
    assert main(["train-stn", "--smoke", "--gtsrb", str(tmp_path / "data"), "--out", str(out_dir)]) == 0
    summary = json.loads((out_dir / "results_gtsrb.json").read_text())
    assert summary["dataset"] == "GTSRB"
    assert summary["train_images"] + summary["test_images"] == 36
    assert (out_dir / "stn_gtsrb.png").is_file()
    assert main(["train-stn", "--smoke", "--gtsrb", str(tmp_path / "missing")]) == 1
    assert "no class folders" in capsys.readouterr().err
