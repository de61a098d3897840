"""Keras 3 augmentation layers that take Keras's own arguments and warp with fastwarp.

``RandomRotation``, ``RandomZoom``, ``RandomTranslation``, ``RandomShear`` and
``RandomPerspective`` are Keras's layers of the same names with one change:
the warp.  Keras draws the parameters (same constructor arguments, same
seeds, same random streams, same matrices) and hands each layer's matrix to
``backend.image.affine_transform`` (or ``perspective_transform``); here that
call is fastwarp's :func:`fastwarp.perspective_warp` (the affine kernels when
the matrix is affine), so a model swaps one import and keeps its
hyperparameters and its numbers.  What changes:

* integer images stay integer: uint8 in, uint8 out (Keras returns float32),
  interpolated in floating point, rounded to nearest and saturated;
* the warp runs through ``tf.numpy_function`` on the host CPU (like every
  fastwarp TF op: no XLA, no gradient; these are input-pipeline layers);
* Keras's conventions are kept: pixel centres at integer coordinates
  (fastwarp's ``align_corners=False``), fill modes ``reflect`` (fastwarp's
  ``reflection``), ``nearest`` (``border``), ``constant`` with
  ``fill_value``, and ``wrap`` with TensorFlow's definition (the coordinate is
  wrapped and then clamped, fastwarp's ``tf_wrap`` padding; fastwarp's own
  ``wrap`` wraps the taps, as OpenCV's BORDER_WRAP).

The outputs equal Keras's up to float32 rounding: TensorFlow evaluates the
matrix in float32, fastwarp in float64, so a nearest-neighbour read at an
exact half-pixel tie may pick the other neighbour.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from .. import api as _api
from .._coords import BILINEAR, BORDER, CONSTANT, NEAREST, REFLECTION, TF_WRAP
from ..transforms import theta_from_homography
from . import _numpy_op

__all__ = ["RandomRotation", "RandomZoom", "RandomTranslation", "RandomShear", "RandomPerspective",
           "RandomAffine"]

# Keras fill mode -> fastwarp padding mode
FILL_MODES = {"reflect": REFLECTION, "nearest": BORDER, "constant": CONSTANT, "wrap": TF_WRAP}


def keras_transform_to_theta(transform: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, 3, 3) fastwarp theta of Keras's (N, 8) transforms [a0 a1 a2 b0 b1 b2 c0 c1].

    Keras maps output pixel (x, y) to the input point
    ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k), k = c0 x + c1 y + 1, with
    pixel centres at integers: a destination -> source homography.
    """
    t = np.asarray(transform, np.float64).reshape(-1, 8)
    m = np.concatenate([t, np.ones((t.shape[0], 1))], axis=1).reshape(-1, 3, 3)
    return theta_from_homography(m, size, size, inverse_map=True)


def _warp_numpy(images, transform, interpolation, padding, fill_value):
    batched = images.ndim == 4
    x = images if batched else images[None]
    theta = keras_transform_to_theta(transform, x.shape[1:3])
    if theta.shape[0] == 1 and x.shape[0] != 1:
        theta = np.repeat(theta, x.shape[0], axis=0)
    codes = {"bilinear": BILINEAR, "nearest": NEAREST}
    out = _api._perspective("fastwarp.tf.layers", x, theta, None, codes[interpolation], padding, False,
                            float(fill_value))
    return out if batched else out[0]


class _Image:
    """Keras's backend.image namespace with the two warps replaced by fastwarp's."""

    def __init__(self, backend):
        self._backend = backend

    def __getattr__(self, name):
        return getattr(self._backend.image, name)

    def affine_transform(self, images, transform, interpolation="bilinear", fill_mode="constant",
                         fill_value=0, data_format=None):
        if data_format not in (None, "channels_last"):
            raise ValueError(f"fastwarp.tf.layers: data_format must be 'channels_last'; got {data_format!r}")
        images = tf.convert_to_tensor(images)
        transform = tf.convert_to_tensor(transform)
        padding = FILL_MODES[fill_mode]

        def warp(im, tr):
            return _warp_numpy(im, tr, interpolation, padding, fill_value)

        return _numpy_op(warp, [images, transform], images.dtype, [images.shape], "keras_affine")

    def perspective_transform(self, images, start_points, end_points, interpolation="bilinear",
                              fill_value=0, data_format=None):
        start = tf.convert_to_tensor(start_points, tf.float32)
        end = tf.convert_to_tensor(end_points, tf.float32)
        if start.shape.rank == 2:
            start = start[None]
            end = end[None]
        transform = self._backend.image.compute_homography_matrix(start, end)
        return self.affine_transform(images, transform, interpolation, "constant", fill_value, data_format)


class _Backend:
    """Keras's DynamicBackend, with ``image`` warping through fastwarp."""

    def __init__(self, inner):
        self._inner = inner
        self.image = _Image(inner)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _fastwarp_layer(base):
    """A subclass of the Keras layer ``base`` whose warps run on fastwarp and keep integer dtypes."""

    class Layer(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.backend = _Backend(self.backend)

        def __call__(self, inputs, **kwargs):
            # Keras's DataLayer casts every input to the compute dtype inside tf.data;
            # Layer.__call__ leaves integer images integer.
            return keras.layers.Layer.__call__(self, inputs, **kwargs)

        def transform_images(self, images, transformation, training=True):
            images = tf.convert_to_tensor(images)
            if not training:
                return images
            if not images.dtype.is_integer:
                images = tf.cast(images, self.compute_dtype)
            return self._transform_images(images, transformation, self.interpolation)

    Layer.__name__ = Layer.__qualname__ = base.__name__
    Layer.__doc__ = (f"Keras's ``{base.__name__}`` (same arguments, same random parameters) warped by "
                     "fastwarp; integer images keep their dtype.  See :mod:`fastwarp.tf.layers`.")
    Layer.__module__ = __name__
    return keras.saving.register_keras_serializable(package="fastwarp")(Layer)


RandomRotation = _fastwarp_layer(keras.layers.RandomRotation)
RandomZoom = _fastwarp_layer(keras.layers.RandomZoom)
RandomTranslation = _fastwarp_layer(keras.layers.RandomTranslation)
RandomShear = _fastwarp_layer(keras.layers.RandomShear)
RandomPerspective = _fastwarp_layer(keras.layers.RandomPerspective)


def _pair(name: str, value) -> tuple:
    """A number a -> (a, a); a pair -> itself (Keras's per-axis factors)."""
    if _number(value):
        return value, value
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"RandomAffine: {name} must be a number or a pair; got {value!r}") from None
    return a, b


def _number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _zoom_factors(zoom):
    """(height_factor, width_factor) of RandomAffine's ``zoom``: a number or a (lo, hi) pair of
    numbers is RandomZoom's height_factor (the width follows, width_factor None); a pair with a
    pair in it is (height_factor, width_factor)."""
    if _number(zoom):
        return zoom, None
    try:
        a, b = zoom
    except (TypeError, ValueError):
        raise ValueError(f"RandomAffine: zoom must be a number, (lo, hi) or (height_factor, width_factor); "
                         f"got {zoom!r}") from None
    if _number(a) and _number(b):
        return (a, b), None
    return a, b


def _to_3x3(t: tf.Tensor) -> tf.Tensor:
    """(N, 8) Keras transforms -> (N, 3, 3) matrices (the last entry 1)."""
    t = tf.cast(t, tf.float64)
    return tf.reshape(tf.concat([t, tf.ones_like(t[:, :1])], axis=1), (-1, 3, 3))


def chain_matrix(angle, zooms, translations, shear, start, end, h: int, w: int,
                 perspective: bool) -> np.ndarray:
    """The 8 transform entries of Keras's chain RandomRotation, RandomZoom, RandomTranslation,
    RandomShear (and RandomPerspective) for one image, in float64.

    Each layer maps output pixels to input pixels (centres at integers):
    rotation by ``angle`` degrees about the centre c = ((w - 1) / 2, (h - 1) / 2),
    [[cos, -sin, .], [sin, cos, .]] with c fixed; zoom (zx, zy) about c; translation
    x - tx, y - ty; shear [[1, sx], [sy, 1]]; perspective the homography taking the moved
    corners ``end`` back to ``start``.  Applied in that order to the image, the chain's
    output -> input map is the product R Z T S P, normalized to m22 = 1.
    """
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    a = float(angle) * math.pi / 180.0
    c, s = math.cos(a), math.sin(a)
    zx, zy = (float(v) for v in zooms)
    tx, ty = (float(v) for v in translations)
    sx, sy = (float(v) for v in shear)
    # R Z = [[c zx, -s zy, r02 + c cx (1 - zx) - s cy (1 - zy)], [s zx, c zy, ...]], with R's
    # offsets r02 = cx - cx c + cy s, r12 = cy - cx s - cy c; then times T, then S (plain floats:
    # this runs once per image)
    r02 = cx - cx * c + cy * s
    r12 = cy - cx * s - cy * c
    ox, oy = cx * (1.0 - zx), cy * (1.0 - zy)
    m00, m01, m02 = c * zx, -s * zy, c * ox - s * oy + r02
    m10, m11, m12 = s * zx, c * zy, s * ox + c * oy + r12
    m02, m12 = m02 - m00 * tx - m01 * ty, m12 - m10 * tx - m11 * ty  # @ T
    m00, m01 = m00 + m01 * sy, m00 * sx + m01  # @ S (left columns)
    m10, m11 = m10 + m11 * sy, m10 * sx + m11
    m = np.array([[m00, m01, m02], [m10, m11, m12], [0.0, 0.0, 1.0]])
    if perspective:
        # solve for the 8 entries mapping each end corner (output) to its start corner (input)
        rows, rhs = [], []
        for (xs, ys), (xe, ye) in zip(np.asarray(start, np.float64), np.asarray(end, np.float64)):
            rows.append([xe, ye, 1.0, 0.0, 0.0, 0.0, -xs * xe, -xs * ye])
            rows.append([0.0, 0.0, 0.0, xe, ye, 1.0, -ys * xe, -ys * ye])
            rhs += [xs, ys]
        hom = np.append(np.linalg.solve(np.array(rows), np.array(rhs)), 1.0).reshape(3, 3)
        m = m @ hom
    return (m / m[2, 2]).reshape(-1)[:8]


@keras.saving.register_keras_serializable(package="fastwarp")
class RandomAffine(keras.layers.Layer):
    """Rotation, zoom, translation, shear and perspective drawn per image, applied as one warp.

    Parameters
    ----------
    rotation : float or (float, float), default 0
        As ``keras.layers.RandomRotation``'s ``factor`` (fractions of a full turn).
    zoom : float, (float, float) or ((lo, hi), (lo, hi)), default 0
        As ``RandomZoom``'s ``height_factor`` (the width zooms with it), or a pair
        (height_factor, width_factor).
    translation : (height_factor, width_factor) or a number for both, default 0
        As ``RandomTranslation``'s factors (fractions of the image size).
    shear : (x_factor, y_factor) or a number for both, default 0
        As ``RandomShear``'s factors.
    perspective : float, default 0
        As ``RandomPerspective``'s ``scale`` (always applied; 0 is none).
    fill_mode, interpolation, fill_value
        As in Keras's layers: ``"reflect"``, ``"wrap"``, ``"nearest"``,
        ``"constant"``; ``"bilinear"`` or ``"nearest"``.
    seed : int, optional
        Base seed.  Each image's parameters are drawn from a counter-based
        generator keyed by the seed and a fingerprint of the image's bytes, so
        the same dataset and seed give the same augmentations whatever the
        order or parallelism of the pipeline (equal images get equal draws).

    The geometry is that of the chain RandomRotation, RandomZoom,
    RandomTranslation, RandomShear, RandomPerspective (in that order) with the
    same parameters, as a single warp (one interpolation instead of five).
    Integer images keep their dtype; ``training=False`` returns the input.
    """

    def __init__(self, rotation=0.0, zoom=0.0, translation=0.0, shear=0.0, perspective=0.0,
                 fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        super().__init__(**kwargs)
        if fill_mode not in FILL_MODES:
            raise ValueError(f"RandomAffine: fill_mode must be one of {sorted(FILL_MODES)}; "
                             f"got {fill_mode!r}")
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"RandomAffine: interpolation must be 'bilinear' or 'nearest'; "
                             f"got {interpolation!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"RandomAffine: seed must be an int or None; got {seed!r}")
        self.rotation, self.zoom, self.translation = rotation, zoom, translation
        self.shear, self.perspective = shear, perspective
        self.fill_mode, self.interpolation, self.fill_value = fill_mode, interpolation, fill_value
        self.seed = None if seed is None else int(seed)
        fresh = int(np.random.SeedSequence().entropy % 2**31)
        self._base_seed = self.seed if self.seed is not None else fresh
        # Keras's layers parse the factors (with Keras's errors) and supply the matrix formulas
        zh, zw = _zoom_factors(zoom)
        th, tw = _pair("translation", translation)
        sx, sy = _pair("shear", shear)
        self._rot = keras.layers.RandomRotation(rotation)
        self._zoom = keras.layers.RandomZoom(zh, zw)
        self._trans = keras.layers.RandomTranslation(th, tw)
        self._shear = keras.layers.RandomShear(x_factor=sx, y_factor=sy)
        if not (_number(perspective) and 0 <= perspective <= 1):
            raise ValueError(f"RandomAffine: perspective must be a number in [0, 1]; got {perspective!r}")

    def _uniforms(self, images: tf.Tensor, count: int) -> tf.Tensor:
        """(N, count) uniforms in [0, 1), a pure function of the seed and each image's bytes.

        A counter-based generator (SplitMix64's finalizer) over key = seed ^ fingerprint and
        the counter k, vectorized over the batch: no per-image op, no state.
        """
        n = tf.shape(images)[0]
        fp = tf.bitcast(tf.fingerprint(tf.reshape(images, (n, -1))), tf.uint64)  # (N,)
        key = tf.bitwise.bitwise_xor(fp, tf.constant(self._base_seed, tf.uint64))
        k = tf.cast(tf.range(1, count + 1, dtype=tf.int64), tf.uint64)
        z = key[:, None] + k[None, :] * tf.constant(0x9E3779B97F4A7C15, tf.uint64)
        z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(30, tf.uint64)))
        z = z * tf.constant(0xBF58476D1CE4E5B9, tf.uint64)
        z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(27, tf.uint64)))
        z = z * tf.constant(0x94D049BB133111EB, tf.uint64)
        z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(31, tf.uint64)))
        top = tf.bitwise.right_shift(z, tf.constant(40, tf.uint64))  # 24 bits: exact in float32
        return tf.cast(top, tf.float32) * (1.0 / 2**24)

    def draw(self, images) -> dict:
        """The parameters drawn for a batch (N, H, W, C), in the form Keras's layers take them:
        ``angle`` (N,) degrees, ``zooms`` (N, 2) (width, height), ``translations`` (N, 2) pixels
        (x, y), ``shear_factor`` (N, 2) (x, y), and ``start_points``/``end_points`` (N, 4, 2)."""
        images = tf.convert_to_tensor(images)
        h, w = images.shape[1], images.shape[2]
        n = tf.shape(images)[0]
        u = self._uniforms(images, 16)

        def draw(k, lo, hi):
            return lo + (hi - lo) * u[:, k:k + 1]

        rl, rh = self._rot.factor
        z, t, s = self._zoom, self._trans, self._shear
        hz = draw(1, 1.0 + z.height_lower, 1.0 + z.height_upper)
        wz = draw(2, 1.0 + z.width_lower, 1.0 + z.width_upper) if z.width_factor is not None else hz
        invert = tf.where(u[:, 5:6] > 0.5, -1.0, 1.0)
        corners = tf.constant([[0.0, 0.0], [w - 1.0, 0.0], [0.0, h - 1.0], [w - 1.0, h - 1.0]])
        start = tf.repeat(corners[None], n, axis=0)
        factor = tf.reshape(-0.5 * self.perspective + self.perspective * u[:, 8:16], (-1, 4, 2))
        return {
            "angle": draw(0, rl * 360.0, rh * 360.0)[:, 0],
            "zooms": tf.concat([wz, hz], axis=1),
            "translations": tf.concat([draw(4, t.width_lower, t.width_upper) * w,
                                       draw(3, t.height_lower, t.height_upper) * h], axis=1),
            "shear_factor": tf.concat([draw(7, s.x_factor[0], s.x_factor[1]),
                                       draw(6, s.y_factor[0], s.y_factor[1])], axis=1) * invert,
            "start_points": start,
            "end_points": start + start * factor,
        }

    def transforms(self, images, params: dict | None = None) -> tf.Tensor:
        """(N, 8) Keras-style transform (output -> input pixels) of the whole chain, for the
        parameters :meth:`draw` gives (drawn here when ``params`` is None).

        Each image's matrix is computed on its own in float64 (:func:`chain_matrix`), so it
        does not depend on the other images of the batch (TensorFlow's vectorized cos and
        sin round differently from their scalar tails)."""
        images = tf.convert_to_tensor(images)
        h, w = int(images.shape[1]), int(images.shape[2])
        p = self.draw(images) if params is None else params
        keys = ("angle", "zooms", "translations", "shear_factor", "start_points", "end_points")
        perspective = bool(self.perspective)

        def matrices(*arrays):
            n = arrays[0].shape[0]
            out = np.empty((n, 8))
            for i in range(n):
                out[i] = chain_matrix(*(a[i] for a in arrays), h, w, perspective)
            return out

        t = tf.numpy_function(matrices, [tf.convert_to_tensor(p[k]) for k in keys], tf.float64,
                              stateful=False)
        t.set_shape((None, 8))
        return t

    def build(self, input_shape):
        for layer in (self._rot, self._zoom, self._trans, self._shear):  # parameter holders, no weights
            layer.build(input_shape)
        self.built = True

    def call(self, inputs, training=True):
        images = tf.convert_to_tensor(inputs)
        if not training:
            return images
        batched = images.shape.rank == 4
        x = images if batched else images[None]
        if not x.dtype.is_integer:
            x = tf.cast(x, self.compute_dtype)
        out = _Image(None).affine_transform(x, self.transforms(x), self.interpolation, self.fill_mode,
                                            self.fill_value)
        return out if batched else out[0]

    def __call__(self, inputs, **kwargs):
        # keep integer images integer (no cast to the compute dtype on the way in)
        return super().__call__(inputs, **kwargs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rotation": self.rotation, "zoom": self.zoom, "translation": self.translation,
                       "shear": self.shear, "perspective": self.perspective, "fill_mode": self.fill_mode,
                       "interpolation": self.interpolation, "seed": self.seed, "fill_value": self.fill_value})
        return config
