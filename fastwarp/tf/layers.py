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
* ``antialias=True`` (a keyword of every layer here, kept in ``get_config``;
  ``interpolation="bilinear"`` only) filters each output pixel's footprint
  where the warp shrinks (a zoom out), as :func:`fastwarp.perspective_warp`'s
  ``antialias`` does; Keras has no such option;
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

import keras
import numpy as np
import tensorflow as tf

from .. import api as _api
from ..augment import AugmentSpec, keras_chain_matrix
from ..core.coords import BILINEAR, BORDER, CONSTANT, NEAREST, REFLECTION, TF_WRAP
from ..core.validate import check_antialias
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


def _warp_numpy(images, transform, interpolation, padding, fill_value, antialias=False):
    batched = images.ndim == 4
    x = images if batched else images[None]
    theta = keras_transform_to_theta(transform, x.shape[1:3])
    if theta.shape[0] == 1 and x.shape[0] != 1:
        theta = np.repeat(theta, x.shape[0], axis=0)
    out = _warp_theta(x, theta, interpolation, padding, fill_value, antialias)
    return out if batched else out[0]


def _warp_theta(x, theta, interpolation, padding, fill_value, antialias=False):
    """The projective warp of (N, H, W, C) images by (N, 3, 3) thetas with Keras's flags."""
    fn = "fastwarp.tf.layers"
    mode = {"bilinear": BILINEAR, "nearest": NEAREST}[interpolation]
    return _api._perspective(fn, x, theta, None, mode, padding, False, float(fill_value),
                             antialias=check_antialias(fn, antialias, mode))


def _check_antialias(layer: str, antialias, interpolation) -> bool:
    """A layer's ``antialias``, refused at construction where the warp could not take it."""
    if not isinstance(antialias, (bool, np.bool_)):
        raise TypeError(f"{layer}: antialias must be a bool; got {antialias!r}")
    if antialias and interpolation != "bilinear":
        raise ValueError(f"{layer}: antialias=True needs interpolation='bilinear'; "
                         f"got interpolation={interpolation!r}")
    return bool(antialias)


class _Image:
    """Keras's backend.image namespace with the two warps replaced by fastwarp's."""

    def __init__(self, backend, antialias=False):
        self._backend = backend
        self._antialias = antialias

    def __getattr__(self, name):
        return getattr(self._backend.image, name)

    def affine_transform(self, images, transform, interpolation="bilinear", fill_mode="constant",
                         fill_value=0, data_format=None):
        if data_format not in (None, "channels_last"):
            raise ValueError(f"fastwarp.tf.layers: data_format must be 'channels_last'; got {data_format!r}")
        images = tf.convert_to_tensor(images)
        transform = tf.convert_to_tensor(transform)
        padding, antialias = FILL_MODES[fill_mode], self._antialias

        def warp(im, tr):
            return _warp_numpy(im, tr, interpolation, padding, fill_value, antialias)

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

    def __init__(self, inner, antialias=False):
        self._inner = inner
        self.image = _Image(inner, antialias)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _fastwarp_layer(base):
    """A subclass of the Keras layer ``base`` whose warps run on fastwarp and keep integer dtypes."""

    class Layer(base):
        def __init__(self, *args, antialias=False, **kwargs):
            super().__init__(*args, **kwargs)
            self.antialias = _check_antialias(base.__name__, antialias, self.interpolation)
            self.backend = _Backend(self.backend, self.antialias)

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

        def get_config(self):
            return dict(super().get_config(), antialias=self.antialias)

    Layer.__name__ = Layer.__qualname__ = base.__name__
    Layer.__doc__ = (f"Keras's ``{base.__name__}`` (same arguments, same random parameters) warped by "
                     "fastwarp; integer images keep their dtype.  One more keyword, ``antialias=False``: "
                     "True filters the footprint where the warp shrinks (interpolation 'bilinear' only).  "
                     "See :mod:`fastwarp.tf.layers`.")
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


#: Keras's chain as one matrix (:func:`fastwarp.augment.keras_chain_matrix`, the composition of
#: ``AugmentSpec(convention="keras")``); the old name, kept as an alias.
chain_matrix = keras_chain_matrix


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
    antialias : bool, default False
        Where the drawn warp shrinks (a zoom out), read each output pixel's
        whole footprint (:func:`fastwarp.perspective_warp`'s ``antialias``);
        needs ``interpolation="bilinear"`` (ValueError otherwise).
    seed : int, optional
        Base seed.  Each image's parameters are drawn from a counter-based
        generator keyed by the seed and a fingerprint of the image's bytes, so
        the same dataset and seed give the same augmentations whatever the
        order or parallelism of the pipeline (equal images get equal draws).

    Attributes
    ----------
    spec : fastwarp.augment.AugmentSpec
        The factors in the shared spec's ``convention="keras"``: the layer
        draws, composes and seeds through it, as the other front ends do
        (``fastwarp.tf.random_affine(spec=layer.spec, padding_mode="constant")``
        warps like the layer with ``fill_mode="constant"``).

    The geometry is that of the chain RandomRotation, RandomZoom,
    RandomTranslation, RandomShear, RandomPerspective (in that order) with the
    same parameters, as a single warp (one interpolation instead of five).
    Integer images keep their dtype; ``training=False`` returns the input.
    """

    def __init__(self, rotation=0.0, zoom=0.0, translation=0.0, shear=0.0, perspective=0.0,
                 fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, *,
                 antialias=False, **kwargs):
        super().__init__(**kwargs)
        if fill_mode not in FILL_MODES:
            raise ValueError(f"RandomAffine: fill_mode must be one of {sorted(FILL_MODES)}; "
                             f"got {fill_mode!r}")
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"RandomAffine: interpolation must be 'bilinear' or 'nearest'; "
                             f"got {interpolation!r}")
        self.antialias = _check_antialias("RandomAffine", antialias, interpolation)
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
        z, t, s = self._zoom, self._trans, self._shear
        rl, rh = self._rot.factor
        # the factors in the shared spec's Keras convention: one code path draws, composes and seeds
        self.spec = AugmentSpec(
            convention="keras", rotation=(rl * 360.0, rh * 360.0),
            scale=(1.0 + z.height_lower, 1.0 + z.height_upper),
            scale_x=None if z.width_factor is None else (1.0 + z.width_lower, 1.0 + z.width_upper),
            translation=((t.width_lower, t.width_upper), (t.height_lower, t.height_upper)),
            shear=tuple(s.x_factor), shear_y=tuple(s.y_factor), perspective=perspective, seed=self._base_seed)

    @staticmethod
    def element_keys(images) -> tf.Tensor:
        """int64 (N,) element keys of a batch: the bits of each image's 64-bit ``tf.fingerprint``
        (the content key of :func:`fastwarp.tf.random_affine` too)."""
        images = tf.convert_to_tensor(images)
        n = tf.shape(images)[0]
        fp = tf.bitcast(tf.fingerprint(tf.reshape(images, (n, -1))), tf.uint64)
        return tf.bitcast(fp, tf.int64)

    def draw(self, images) -> dict:
        """The parameters drawn for a batch (N, H, W, C), in the form Keras's layers take them
        (float32): ``angle`` (N,) degrees, ``zooms`` (N, 2) (width, height), ``translations``
        (N, 2) pixels (x, y), ``shear_factor`` (N, 2) (x, y), and ``start_points``/``end_points``
        (N, 4, 2).  Drawn by :meth:`fastwarp.augment.AugmentSpec.draw` for the images' keys
        (:meth:`element_keys`); the layer itself warps by the float64 values."""
        images = tf.convert_to_tensor(images)
        h, w = int(images.shape[1]), int(images.shape[2])
        names = ("rotation", "scale", "translation", "shear", "start", "end")
        keras_names = ("angle", "zooms", "translations", "shear_factor", "start_points", "end_points")

        def draw(keys):
            p = self.spec.draw(keys, (h, w))
            return [p[k].astype(np.float32) for k in names]

        shapes = [(None,), (None, 2), (None, 2), (None, 2), (None, 4, 2), (None, 4, 2)]
        out = _numpy_op(draw, [self.element_keys(images)], [tf.float32] * 6, shapes, "augment_draw")
        return dict(zip(keras_names, out))

    def transforms(self, images, params: dict | None = None) -> tf.Tensor:
        """(N, 8) Keras-style transform (output -> input pixels) of the whole chain, for the
        parameters :meth:`draw` gives (drawn here, in float64, when ``params`` is None).

        Each image's matrix is computed on its own in float64
        (:func:`fastwarp.augment.keras_chain_matrix`), so it does not depend on the other
        images of the batch (TensorFlow's vectorized cos and sin round differently from
        their scalar tails)."""
        images = tf.convert_to_tensor(images)
        h, w = int(images.shape[1]), int(images.shape[2])
        perspective = self.spec.perspective > 0
        if params is None:
            def drawn(keys):
                p = self.spec.draw(keys, (h, w))
                return np.stack([keras_chain_matrix(p["rotation"][i], p["scale"][i], p["translation"][i],
                                                    p["shear"][i], p["start"][i], p["end"][i], h, w,
                                                    perspective) for i in range(len(keys))]).reshape(-1, 8)

            return _numpy_op(drawn, [self.element_keys(images)], tf.float64, [(None, 8)],
                             "augment_transforms")
        keys = ("angle", "zooms", "translations", "shear_factor", "start_points", "end_points")

        def matrices(*arrays):
            n = arrays[0].shape[0]
            out = np.empty((n, 8))
            for i in range(n):
                out[i] = keras_chain_matrix(*(a[i] for a in arrays), h, w, perspective)
            return out

        return _numpy_op(matrices, [tf.convert_to_tensor(params[k]) for k in keys], tf.float64, [(None, 8)],
                         "augment_transforms")

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
        h, w = int(x.shape[1]), int(x.shape[2])
        padding, spec = FILL_MODES[self.fill_mode], self.spec
        interpolation, fill_value, antialias = self.interpolation, self.fill_value, self.antialias

        def warp(im, keys):
            return _warp_theta(im, spec.theta((h, w), (h, w), keys), interpolation, padding, fill_value,
                               antialias)

        out = _numpy_op(warp, [x, self.element_keys(x)], x.dtype, [x.shape], "keras_random_affine")
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
                       "interpolation": self.interpolation, "seed": self.seed, "fill_value": self.fill_value,
                       "antialias": self.antialias})
        return config
