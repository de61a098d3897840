"""Spatial transformer experiment: a CNN with and without a :class:`~fastwarp.tf.SpatialTransformer`.

"Distorted digits" is a small stand-in for the rotated, translated and scaled
(RTS) MNIST of Jaderberg et al. (2015), built from scikit-learn's bundled
8x8 digits (1797 images, no download): each digit is upscaled to 28x28 with
fastwarp, then warped onto a larger canvas (42x42 by default) with a random
rotation (+-45 degrees), scale (0.7-1.2) and a translation that keeps the
digit's square on the canvas, again with fastwarp.  Originals are split into
train and test before distorting, so no test digit is ever seen in training.

:func:`run_experiment` trains the same small CNN twice for the same budget and
seed, once on the raw canvas and once behind a spatial transformer, and
reports the test error of both.  Needs the ``tf`` extra (TensorFlow, Keras 3,
scikit-learn); TensorFlow is imported inside the functions that need it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..api import affine_warp
from ..transforms import affine_theta

__all__ = [
    "load_digits_28",
    "distort",
    "make_distorted_digits",
    "localization_net",
    "build_classifier",
    "train_and_evaluate",
    "run_experiment",
    "transformer_outputs",
    "save_figure",
]

DIGIT_SIZE = (28, 28)


def load_digits_28(size=DIGIT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits in [0, 1], upscaled with fastwarp (bilinear).

    Each digit gets a one-pixel black frame first (10x10), so the upscaled
    digit fades to black inside its square, as MNIST's do, and the square's
    edge leaves no trace once it is rotated onto a canvas.

    Returns
    -------
    images : ndarray, float32, shape (1797, H, W, 1)
    labels : ndarray, int64, shape (1797,)
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    small = np.pad((d.images / 16.0).astype(np.float32), ((0, 0), (1, 1), (1, 1)))[..., None]
    big = affine_warp(small, np.eye(2, 3), tuple(size), padding_mode="border")
    return big, d.target.astype(np.int64)


def distort(images: np.ndarray, canvas: int, rng: np.random.Generator, *, rotation: float = 45.0,
            scale=(0.7, 1.2)) -> tuple[np.ndarray, np.ndarray]:
    """Place images on a canvas x canvas field with random rotation, scale and translation (RTS).

    Rotation is uniform in [-rotation, rotation] degrees and scale uniform in
    ``scale``; the translation is uniform in each axis within the room left on
    the canvas by the scaled digit square, so the square's centre can reach
    every position that keeps the (unrotated) square on the canvas.

    Returns
    -------
    warped : ndarray, float32, shape (N, canvas, canvas, 1)
    theta : ndarray, float64, shape (N, 2, 3)
        The matrices used (output -> input), e.g. to undo the distortion.
    """
    n, h, w = images.shape[:3]
    rot = rng.uniform(-rotation, rotation, n)
    sc = rng.uniform(scale[0], scale[1], n)
    room = np.maximum((canvas - sc[:, None] * np.array([w, h])) / 2.0, 0.0)
    shift = rng.uniform(-1.0, 1.0, (n, 2)) * room
    theta = affine_theta((h, w), (canvas, canvas), rotation=rot, scale=sc, translation=shift)
    return affine_warp(images, theta, (canvas, canvas)), theta


@dataclass
class Dataset:
    """A train/test split: images float32 (N, H, W, C) in [0, 1], int labels.

    For the distorted digits, ``train_source``/``test_source`` give the index
    of each image's original in scikit-learn's digits.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int = 10
    name: str = "distorted digits"
    train_source: np.ndarray | None = None
    test_source: np.ndarray | None = None


def make_distorted_digits(seed: int = 0, *, canvas: int = 42, train_copies: int = 2, test_copies: int = 1,
                          test_fraction: float = 0.25, rotation: float = 45.0, scale=(0.7, 1.2)) -> Dataset:
    """Seeded RTS-distorted digits: originals split first, then each copy gets its own distortion.

    Parameters
    ----------
    seed : int
        Seeds the split and every distortion (same seed, same arrays).
    canvas : int
        Side of the square output images.
    train_copies, test_copies : int
        Distorted copies per original digit in each split.
    test_fraction : float
        Share of the 1797 originals held out for testing.
    rotation, scale
        As in :func:`distort`.
    """
    if canvas < 1 or train_copies < 1 or test_copies < 1 or not 0 < test_fraction < 1:
        raise ValueError("make_distorted_digits: need canvas, copies >= 1 and 0 < test_fraction < 1")
    rng = np.random.default_rng(seed)
    images, labels = load_digits_28()
    order = rng.permutation(len(images))
    n_test = int(round(test_fraction * len(images)))
    test_idx, train_idx = order[:n_test], order[n_test:]

    def split(idx, copies):
        idx = np.repeat(idx, copies)
        x, _ = distort(images[idx], canvas, rng, rotation=rotation, scale=scale)
        return x, labels[idx], idx

    x_train, y_train, train_source = split(train_idx, train_copies)
    x_test, y_test, test_source = split(test_idx, test_copies)
    return Dataset(x_train, y_train, x_test, y_test, train_source=train_source, test_source=test_source)


# ---------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------

def localization_net(filters=(8, 16), units: int = 32):
    """Small localization network: pool, two conv/pool stages, a dense layer (the ST adds Dense(6))."""
    import keras
    from keras import layers

    return keras.Sequential([
        layers.MaxPooling2D(2),
        layers.Conv2D(filters[0], 5, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(filters[1], 3, activation="relu"),
        layers.Flatten(),
        layers.Dense(units, activation="relu"),
    ], name="localization")


def build_classifier(input_shape, num_classes: int, *, transformer: bool, st_output_size=None,
                     filters=(16, 32), units: int = 64):
    """The small CNN, optionally behind a spatial transformer.

    CNN: conv 5x5 (``filters[0]``) - max-pool - conv 3x3 (``filters[1]``) -
    max-pool - dense (``units``) - dense (``num_classes``, logits).  With
    ``transformer=True`` a :class:`fastwarp.tf.SpatialTransformer` (layer
    name ``"st"``, localization :func:`localization_net`, identity-initialised
    head) warps the input first, to ``st_output_size`` (default: the input's
    size).
    """
    import keras
    from keras import layers

    inp = keras.Input(tuple(input_shape), name="image")
    x = inp
    if transformer:
        from ..tf import SpatialTransformer

        x = SpatialTransformer(localization_net(), output_size=st_output_size, name="st")(x)
    x = layers.Conv2D(filters[0], 5, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(filters[1], 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(units, activation="relu")(x)
    out = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inp, out, name="st_cnn" if transformer else "cnn")


@dataclass
class Result:
    """Outcome of one training run."""

    name: str
    test_error: float
    seconds: float
    history: dict = field(default_factory=dict)
    model: object = None


def train_and_evaluate(data: Dataset, *, transformer: bool, epochs: int, seed: int = 0, batch_size: int = 64,
                       learning_rate: float = 1e-3, st_output_size=None, steps_per_epoch: int | None = None,
                       verbose: int = 1) -> Result:
    """Train one classifier (Adam, cross-entropy) and return its test error.

    The Keras seed is set from ``seed`` before the model is built, so the
    initial weights and the shuffling are reproducible (up to TensorFlow's
    thread scheduling).  ``steps_per_epoch`` caps the batches per epoch (for
    tiny test runs).
    """
    import keras

    keras.utils.set_random_seed(seed)
    model = build_classifier(data.x_train.shape[1:], data.num_classes, transformer=transformer,
                             st_output_size=st_output_size)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    x, y = data.x_train, data.y_train
    if steps_per_epoch is not None:
        keep = min(len(x), steps_per_epoch * batch_size)
        x, y = x[:keep], y[:keep]
    t0 = time.perf_counter()
    hist = model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=verbose)
    seconds = time.perf_counter() - t0
    logits = model.predict(data.x_test, batch_size=256, verbose=0)
    error = float(np.mean(np.argmax(logits, axis=1) != data.y_test))
    return Result(model.name, error, seconds, dict(hist.history), model)


def run_experiment(data: Dataset, *, epochs: int, seed: int = 0, verbose: int = 1, **kwargs) -> dict:
    """Train the plain CNN and the ST-CNN with the same budget and seed.

    Returns ``{"cnn": Result, "st_cnn": Result}``.
    """
    common = dict(epochs=epochs, seed=seed, verbose=verbose, **kwargs)
    return {"cnn": train_and_evaluate(data, transformer=False, **common),
            "st_cnn": train_and_evaluate(data, transformer=True, **common)}


def transformer_outputs(model, images: np.ndarray) -> np.ndarray:
    """What the model's spatial transformer (layer ``"st"``) makes of ``images``."""
    st = model.get_layer("st")
    return np.asarray(st(np.asarray(images, np.float32)))


def save_figure(model, images: np.ndarray, path, *, labels=None, columns: int = 10, title: str | None = None):
    """PNG: distorted inputs (top row) above the transformer's outputs (bottom row).

    With ``labels``, the columns show the first example of each class.
    """
    from ..core.optional import optional_import

    optional_import("matplotlib", "plot", "the spatial transformer's figure").use("Agg")
    import matplotlib.pyplot as plt

    if labels is not None:  # one example per class first, in class order, when there are enough
        labels = np.asarray(labels)
        firsts = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)][:columns]
        pick = firsts + [i for i in range(len(labels)) if i not in firsts][:columns - len(firsts)]
        images, labels = np.asarray(images)[pick], labels[pick]
    images = np.asarray(images[:columns], np.float32)
    warped = transformer_outputs(model, images)
    cols = len(images)
    fig, axes = plt.subplots(2, cols, figsize=(1.2 * cols, 2.8), squeeze=False)
    for j in range(cols):
        for i, (row, what) in enumerate(((images, "input"), (warped, "ST output"))):
            ax = axes[i, j]
            img = np.clip(row[j], 0.0, 1.0)
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(what, fontsize=8)
            if i == 0 and labels is not None:
                ax.set_title(str(labels[j]), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
