"""TensorFlow / Keras 3 adapter: fastwarp's warps as differentiable TF ops.

Installed with the ``tf`` extra (``pip install 'fastwarp[tf]'``).  ``import
fastwarp`` never imports TensorFlow; only ``import fastwarp.tf`` does.

What the ops are
----------------
:func:`affine_warp` and :func:`grid_sample` wrap the NumPy/Numba functions of
:mod:`fastwarp` in ``tf.numpy_function``; their gradients (``tf.custom_gradient``)
call :mod:`fastwarp.grad`'s backward kernels the same way.  Consequences:

* they run on the host CPU (a GPU tensor is copied to the host and back);
* they work eagerly, inside ``tf.function``, inside ``tf.data`` maps (also with
  ``num_parallel_calls=tf.data.AUTOTUNE``: fastwarp selects Numba's thread-safe
  threading layer) and inside Keras ``fit``;
* they cannot be compiled by XLA (``jit_compile=True`` fails with an error about
  the unsupported ``PyFunc`` op); :class:`SpatialTransformer` declares
  ``supports_jit = False`` so Keras keeps ``jit_compile`` off for models using it;
* the Python function is not part of a SavedModel graph: save Keras models in
  the ``.keras`` format (the layer is registered) and reload them in a process
  that imported ``fastwarp.tf``;
* uint8 and uint16 images are warped (forward) but have no gradient;
  gradients are first-order only (no gradient of a gradient).
* :func:`perspective_warp` differentiates with respect to the 3 x 3 matrix as
  well, which TF's own projective op (``ImageProjectiveTransformV3``) does not.

Conventions, flags and dtypes are those of :mod:`fastwarp.api` (PyTorch's
``affine_grid``/``grid_sample`` in NHWC).
"""

from __future__ import annotations

import math

import numpy as np

try:
    import keras
    import tensorflow as tf
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"fastwarp.tf needs TensorFlow 2.16+ with Keras 3: pip install 'fastwarp[tf]' ({e})") from e

from .. import api as _api
from .. import transforms as _transforms
from ..augment import AugmentSpec, element_key
from ..core.validate import check_antialias, check_flags, check_size

__all__ = [
    "affine_warp",
    "grid_sample",
    "perspective_warp",
    "SpatialTransformer",
    "IdentityAffine",
    "identity_head",
    "random_affine",
    "RandomAffine",
]

_IMAGE_DTYPES = (tf.float32, tf.float64, tf.float16, tf.uint8, tf.uint16)
_NO_GRAD_DTYPES = (tf.uint8, tf.uint16)


# ---------------------------------------------------------------------------
# ops
# ---------------------------------------------------------------------------

def _check_images(fn: str, images) -> tf.Tensor:
    images = tf.convert_to_tensor(images)
    if images.dtype not in _IMAGE_DTYPES:
        raise TypeError(f"{fn}: images must have dtype float32, float64, float16, uint8 or uint16; "
                        f"got {images.dtype.name}")
    rank = images.shape.rank
    if rank is not None and rank not in (3, 4):
        raise ValueError(f"{fn}: images must have shape (N, H, W, C) or (H, W, C); got shape {images.shape}")
    return images


def _check_coords(fn: str, name: str, x, images: tf.Tensor, tail: tuple, ranks: tuple,
                  expected: str) -> tf.Tensor:
    """theta or grid: a float tensor (ints become the images' float type) with the expected trailing axes."""
    x = tf.convert_to_tensor(x)
    if x.dtype.is_integer:
        x = tf.cast(x, images.dtype if images.dtype.is_floating else tf.float32)
    if x.dtype not in (tf.float32, tf.float64):
        raise TypeError(f"{fn}: {name} must have dtype float32 or float64; got {x.dtype.name}")
    shape = x.shape
    if shape.rank is not None:
        trailing = tuple(shape[shape.rank - len(tail):]) if shape.rank >= len(tail) else ()
        ok = shape.rank in ranks and all(t is None or d is None or d == t for d, t in zip(trailing, tail))
        if not ok:
            raise ValueError(f"{fn}: {name} must have shape {expected}; got {shape}")
    return x


def _flags(fn: str, mode: str, padding_mode: str, align_corners, fill_value=0.0) -> dict:
    check_flags(fn, mode, padding_mode, align_corners)
    fill = np.asarray(fill_value, np.float64) if not isinstance(fill_value, (str, bytes)) else fill_value
    if not isinstance(fill, np.ndarray) or fill.ndim > 1 or not np.isfinite(fill).all():
        raise ValueError(f"{fn}: fill_value must be a finite number or one per channel; got {fill_value!r}")
    return {"mode": mode, "padding_mode": padding_mode, "align_corners": bool(align_corners),
            "fill_value": fill}


def _warp_flags(fn: str, mode: str, padding_mode: str, align_corners, fill_value, antialias) -> dict:
    """:func:`_flags` plus ``antialias`` (checked by fastwarp's own rule, at trace time)."""
    flags = _flags(fn, mode, padding_mode, align_corners, fill_value)
    m, _, _ = check_flags(fn, mode, padding_mode, align_corners)
    return dict(flags, antialias=check_antialias(fn, antialias, m))


def _out_shape(images: tf.Tensor, spatial) -> tf.TensorShape:
    """Static (N, Ho, Wo, C) (or (Ho, Wo, C)) from the images' shape and the output's (Ho, Wo)."""
    s = images.shape
    if s.rank is None:
        return tf.TensorShape(None)
    ho, wo = spatial
    if s.rank == 4:
        return tf.TensorShape([s[0], ho, wo, s[3]])
    return tf.TensorShape([ho, wo, s[2]])


def _numpy_op(func, inputs, touts, shapes, name):
    outs = tf.numpy_function(func, inputs, touts, stateful=False, name=name)
    single = not isinstance(touts, (list, tuple))
    outs = [outs] if single else list(outs)
    for o, s in zip(outs, shapes):
        o.set_shape(s)
    return outs[0] if single else outs


def _differentiable(images: tf.Tensor, coords: tf.Tensor, forward, backward, out_shape, name):
    """A TF op images, coords -> output from NumPy forward/backward functions.

    ``backward(grad_out, images, coords) -> (grad_images, grad_coords)``.  uint8
    and uint16 images get the forward op only (no gradient).
    """
    def fwd(im, co):
        return _numpy_op(forward, [im, co], im.dtype, [out_shape], name)

    if images.dtype in _NO_GRAD_DTYPES:
        return fwd(images, coords)

    @tf.custom_gradient
    def op(im, co):
        out = fwd(im, co)

        def grad(upstream):
            def bwd(g, im_, co_):
                gi, gc = backward(g, im_, co_)
                return (np.asarray(gi, dtype=im_.dtype), np.asarray(gc, dtype=co_.dtype))

            return _numpy_op(bwd, [tf.cast(upstream, im.dtype), im, co], [im.dtype, co.dtype],
                             [im.shape, co.shape], name + "_grad")

        return out, grad

    return op(images, coords)


def affine_warp(images, theta, size=None, *, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool = False, fill_value=0.0, antialias: bool = False,
                name: str | None = None) -> tf.Tensor:
    """Differentiable TF op: warp images by affine matrices (:func:`fastwarp.affine_warp`).

    Parameters
    ----------
    images : tf.Tensor or array_like, shape (N, H, W, C) or (H, W, C)
        float32, float64, float16, uint8 or uint16.
    theta : tf.Tensor or array_like, shape (N, 2, 3) or (2, 3)
        Normalized output -> input matrices (float32/float64; integers are cast).
        A single (2, 3) matrix is used for every image.
    size : (int, int), optional
        Output (Ho, Wo); defaults to the input's (H, W).
    mode : {"bilinear", "nearest", "bicubic"}
    padding_mode : {"zeros", "border", "reflection", "constant", "wrap"}
    align_corners : bool, default False
    fill_value : float or sequence of float, default 0.0
        As in :func:`fastwarp.affine_warp` (used with ``padding_mode="constant"``).
    antialias : bool, default False
        As in :func:`fastwarp.affine_warp`: where the warp shrinks, each output
        pixel reads its whole footprint (mode "bilinear" or "bicubic").  The
        gradient (:func:`fastwarp.grad.affine_warp_backward` with the same
        flag) covers the filter, for images and theta.
    name : str, optional
        Name scope of the op.

    Returns
    -------
    tf.Tensor, shape (N, Ho, Wo, C) (or (Ho, Wo, C)), the images' dtype, with
    the static shape known wherever the inputs' is.

    Notes
    -----
    Gradients flow to ``images`` and ``theta`` for float images (computed by
    :func:`fastwarp.grad.affine_warp_backward`, first order only); uint8 and
    uint16 images have no gradient.  Runs on the host CPU; cannot be XLA-compiled.

    Raises
    ------
    TypeError, ValueError
        At trace time for a wrong dtype, rank or flag.  Errors only known
        at run time (a batch mismatch, a non-finite theta) carry fastwarp's
        message: as ``ValueError`` eagerly, as
        ``tf.errors.InvalidArgumentError`` inside a graph.
    """
    return _matrix_warp("affine_warp", 2, images, theta, size, name,
                        _warp_flags("affine_warp", mode, padding_mode, align_corners, fill_value, antialias))


def _matrix_warp(fn: str, rows: int, images, theta, size, name, flags: dict) -> tf.Tensor:
    """The affine (rows 2) and projective (rows 3) warp ops: checks, static shape, gradient."""
    from .. import grad as _grad

    warp = _api.affine_warp if rows == 2 else _api.perspective_warp
    warp_backward = _grad.affine_warp_backward if rows == 2 else _grad.perspective_warp_backward
    if size is not None:
        size = check_size(fn, size, (1, 1))
    with tf.name_scope(name or f"fastwarp_{fn}"):
        images = _check_images(fn, images)
        theta = _check_coords(fn, "theta", theta, images, (rows, 3), (2, 3),
                              f"(N, {rows}, 3) or ({rows}, 3)")
        s = images.shape
        spatial = size if size is not None else ((s[-3], s[-2]) if s.rank is not None else (None, None))

        def forward(im, th):
            return warp(im, th, size, **flags)

        def backward(g, im, th):
            return warp_backward(g, im, th, size, **flags)

        return _differentiable(images, theta, forward, backward, _out_shape(images, spatial), fn)


def grid_sample(images, grid, *, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool = False, fill_value=0.0, name: str | None = None) -> tf.Tensor:
    """Differentiable TF op: sample images at normalized grid points (:func:`fastwarp.grid_sample`).

    Parameters
    ----------
    images : tf.Tensor or array_like, shape (N, H, W, C) or (H, W, C)
        float32, float64, float16, uint8 or uint16.
    grid : tf.Tensor or array_like, shape (N, Ho, Wo, 2) or (Ho, Wo, 2)
        float32 or float64 normalized (x, y) points, x the column.
    mode, padding_mode, align_corners, fill_value, name
        As in :func:`affine_warp`.

    Returns
    -------
    tf.Tensor, shape (N, Ho, Wo, C) (or (Ho, Wo, C)), the images' dtype.

    Notes
    -----
    Gradients flow to ``images`` and ``grid`` for float images
    (:func:`fastwarp.grad.grid_sample_backward`); uint8 images have none.
    """
    fn = "grid_sample"
    flags = _flags(fn, mode, padding_mode, align_corners, fill_value)
    with tf.name_scope(name or "fastwarp_grid_sample"):
        images = _check_images(fn, images)
        grid = _check_coords(fn, "grid", grid, images, (None, None, 2), (3, 4),
                             "(N, Ho, Wo, 2) or (Ho, Wo, 2)")
        g = grid.shape
        spatial = (g[-3], g[-2]) if g.rank is not None else (None, None)

        def forward(im, gr):
            return _api.grid_sample(im, gr, **flags)

        def backward(gout, im, gr):
            from .. import grad as _grad
            return _grad.grid_sample_backward(gout, im, gr, **flags)

        return _differentiable(images, grid, forward, backward, _out_shape(images, spatial), "grid_sample")


def perspective_warp(images, theta, size=None, *, mode: str = "bilinear", padding_mode: str = "zeros",
                     align_corners: bool = False, fill_value=0.0, antialias: bool = False,
                     name: str | None = None) -> tf.Tensor:
    """Differentiable TF op: warp images by projective matrices (:func:`fastwarp.perspective_warp`).

    Parameters
    ----------
    images : tf.Tensor or array_like, shape (N, H, W, C) or (H, W, C)
        float32, float64, float16, uint8 or uint16.
    theta : tf.Tensor or array_like, shape (N, 3, 3) or (3, 3)
        Normalized output -> input homographies (float32/float64; integers are cast).
    size, mode, padding_mode, align_corners, fill_value, antialias, name
        As in :func:`affine_warp` (``antialias``: :func:`fastwarp.perspective_warp`'s,
        the footprint taken per output pixel).

    Returns
    -------
    tf.Tensor, shape (N, Ho, Wo, C) (or (Ho, Wo, C)), the images' dtype.

    Notes
    -----
    Gradients flow to ``images`` and to all nine entries of ``theta``
    (:func:`fastwarp.grad.perspective_warp_backward`).
    """
    return _matrix_warp("perspective_warp", 3, images, theta, size, name,
                        _warp_flags("perspective_warp", mode, padding_mode, align_corners, fill_value,
                                    antialias))


# ---------------------------------------------------------------------------
# Keras layer
# ---------------------------------------------------------------------------

IDENTITY_THETA = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@keras.saving.register_keras_serializable(package="fastwarp")
class IdentityAffine(keras.initializers.Initializer):
    """Bias initializer giving the identity transform: ``[1, 0, 0, 0, 1, 0]`` (theta row-major)."""

    def __call__(self, shape, dtype=None):
        if tuple(shape) != (6,):
            raise ValueError(f"IdentityAffine: expected shape (6,); got {tuple(shape)}")
        return keras.ops.convert_to_tensor(np.array(IDENTITY_THETA), dtype=dtype or "float32")

    def get_config(self):
        return {}


def identity_head(name: str | None = None) -> keras.layers.Dense:
    """``Dense(6)`` with a zero kernel and the identity bias: a localization head that starts at theta = I."""
    return keras.layers.Dense(6, kernel_initializer="zeros", bias_initializer=IdentityAffine(), name=name)


_identity_head = identity_head  # SpatialTransformer's parameter of the same name shadows it


def _require_tf_backend(fn: str) -> None:
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"{fn}: needs the TensorFlow Keras backend; KERAS_BACKEND is {keras.backend.backend()!r}")


@keras.saving.register_keras_serializable(package="fastwarp")
class SpatialTransformer(keras.layers.Layer):
    """Spatial transformer (Jaderberg et al., 2015): predict theta, warp the input with fastwarp.

    ``output = affine_warp(x, theta(x), output_size)`` where ``theta(x)`` is
    the localization network's output, reshaped to (N, 2, 3).

    Parameters
    ----------
    localization : keras.layers.Layer or keras.Model
        Maps the (N, H, W, C) input to per-example features.
    output_size : (int, int), optional
        (Ho, Wo) of the warped output; defaults to the input's (H, W).
    mode, padding_mode, align_corners
        Sampling flags, as in :func:`fastwarp.affine_warp`.
    identity_head : bool, default True
        True: the layer flattens the localization output and appends its own
        ``Dense(6)`` head (zero kernel, bias ``[1, 0, 0, 0, 1, 0]``), so
        training starts from the identity transform.  False: the localization
        network itself must output exactly 6 numbers per example (theta
        row-major); use :func:`identity_head` as its last layer to start at
        the identity.
    **kwargs
        Passed to ``keras.layers.Layer`` (name, dtype, ...).

    Notes
    -----
    Needs the TensorFlow Keras backend.  Images are float32 or float64 (other
    float inputs are cast to float32).  The warp runs on the host CPU through
    ``tf.numpy_function``, so the layer sets ``supports_jit = False`` (Keras
    then compiles models with ``jit_compile=False``).  Save models as
    ``.keras`` files; loading needs ``import fastwarp.tf`` first (which
    registers the layer as ``fastwarp>SpatialTransformer``).
    """

    def __init__(self, localization, output_size=None, mode: str = "bilinear", padding_mode: str = "zeros",
                 align_corners: bool = False, identity_head: bool = True, **kwargs):
        super().__init__(**kwargs)
        fn = "SpatialTransformer"
        _require_tf_backend(fn)
        if isinstance(localization, dict):
            localization = keras.saving.deserialize_keras_object(localization)
        if not isinstance(localization, keras.layers.Layer):
            raise TypeError(
                f"{fn}: localization must be a Keras layer or model; got {type(localization).__name__}")
        _flags(fn, mode, padding_mode, align_corners)
        self.localization = localization
        self.output_size = None if output_size is None else check_size(fn, tuple(output_size), (1, 1))
        self.mode = mode
        self.padding_mode = padding_mode
        self.align_corners = bool(align_corners)
        self.identity_head = bool(identity_head)
        self.head = _identity_head(name="theta") if self.identity_head else None
        self.supports_jit = False

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(f"SpatialTransformer: expected inputs of shape (N, H, W, C); got {input_shape}")
        if not self.localization.built:
            self.localization.build(input_shape)
        try:
            loc_shape = tuple(self.localization.compute_output_shape(input_shape))
        except Exception:  # noqa: BLE001 - layers without compute_output_shape: trace symbolically
            loc_shape = tuple(self.localization.compute_output_spec(keras.KerasTensor(input_shape)).shape)
        features = math.prod(loc_shape[1:]) if None not in loc_shape[1:] else None
        if self.head is not None:
            if features is None:
                raise ValueError(
                    f"SpatialTransformer: localization output needs a static size; got shape {loc_shape}")
            self.head.build((input_shape[0], features))
        elif features not in (None, 6):
            raise ValueError(
                f"SpatialTransformer: with identity_head=False the localization network must output 6 "
                f"numbers per example (theta); got shape {loc_shape}")
        super().build(input_shape)

    def theta(self, inputs) -> tf.Tensor:
        """The (N, 2, 3) affine matrices the layer predicts for ``inputs``."""
        feats = self.localization(inputs)
        feats = tf.reshape(feats, (tf.shape(feats)[0], -1))
        if self.head is not None:
            feats = self.head(feats)
        return tf.reshape(feats, (-1, 2, 3))

    def call(self, inputs):
        x = tf.convert_to_tensor(inputs)
        if x.dtype not in (tf.float32, tf.float64):
            x = tf.cast(x, tf.float32)
        theta = tf.cast(self.theta(x), x.dtype)
        return affine_warp(x, theta, self.output_size, mode=self.mode, padding_mode=self.padding_mode,
                           align_corners=self.align_corners)

    def compute_output_shape(self, input_shape):
        n, h, w, c = tuple(input_shape)
        ho, wo = self.output_size if self.output_size is not None else (h, w)
        return (n, ho, wo, c)

    def get_config(self):
        config = super().get_config()
        config.update({
            "localization": keras.saving.serialize_keras_object(self.localization),
            "output_size": None if self.output_size is None else list(self.output_size),
            "mode": self.mode,
            "padding_mode": self.padding_mode,
            "align_corners": self.align_corners,
            "identity_head": self.identity_head,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        localization = keras.saving.deserialize_keras_object(config.pop("localization"))
        return cls(localization, **config)


# ---------------------------------------------------------------------------
# tf.data augmentation
# ---------------------------------------------------------------------------

def affine_theta(in_size, out_size, rotation, scale, shear, tx, ty, align_corners: bool = False) -> tf.Tensor:
    """:func:`fastwarp.transforms.affine_theta` as a TF op (float64, batched over the parameters).

    ``rotation``, ``scale``, ``shear`` (degrees, factor, degrees) and ``tx``,
    ``ty`` (output pixels) are float64 tensors (or numbers) broadcasting to
    one shape S; returns theta of shape S + (2, 3): scale, shear, then rotate
    (counter-clockwise on screen) about the input's centre, which lands on the
    output's centre plus (tx, ty).  The NumPy function itself runs (through
    ``tf.numpy_function``), so the two cannot drift apart.
    """
    params = [tf.cast(tf.convert_to_tensor(v), tf.float64) for v in (rotation, scale, shear, tx, ty)]
    static = params[0].shape
    for v in params[1:]:
        static = tf.broadcast_static_shape(static, v.shape)
    (hi, wi), (ho, wo) = in_size, out_size

    def theta(r, s, sh, x, y):
        r, s, sh, x, y = np.broadcast_arrays(r, s, sh, x, y)
        t = _transforms.affine_theta((hi, wi), (ho, wo), rotation=r.ravel(), scale=s.ravel(),
                                     shear=sh.ravel(), translation=np.stack([x.ravel(), y.ravel()], -1),
                                     align_corners=align_corners)
        return t.reshape(r.shape + (2, 3))

    return _numpy_op(theta, params, tf.float64, [static.concatenate((2, 3))], "affine_theta")


class RandomAffine:
    """Random augmentation for ``tf.data``, drawn and composed by
    :class:`fastwarp.augment.AugmentSpec`; build it with :func:`random_affine`."""

    def __init__(self, rotation, scale, shear, translation, seed, output_size, mode, padding_mode,
                 align_corners, by_index, fill_value=0.0, perspective=0.0, spec: AugmentSpec | None = None,
                 antialias: bool = False):
        if spec is None:
            spec = AugmentSpec.create("random_affine", rotation=rotation, scale=scale, shear=shear,
                                      translation=translation, perspective=perspective, seed=seed)
        elif not isinstance(spec, AugmentSpec):
            raise TypeError(f"random_affine: spec must be an AugmentSpec; got {type(spec).__name__}")
        self.spec = spec
        self.seed = spec.seed
        self.output_size = None if output_size is None else check_size("random_affine", output_size, (1, 1))
        self.flags = _warp_flags("random_affine", mode, padding_mode, align_corners, fill_value, antialias)
        self.by_index = bool(by_index)

    def _keys(self, image: tf.Tensor, index) -> tf.Tensor:
        """int64 (N,) element keys (their bits are the uint64 keys) of an image or a batch."""
        batch = image if image.shape.rank == 4 else image[None]
        n = tf.shape(batch)[0]
        if index is None:  # content key: a 64-bit fingerprint of each image's bytes
            fp = tf.bitcast(tf.fingerprint(tf.reshape(batch, (n, -1))), tf.uint64)
            return tf.bitcast(fp, tf.int64)
        index = tf.cast(index, tf.int64)
        if image.shape.rank == 3:
            return index[None]

        def keys(i, count):  # a batch under one index: (index, position)
            return np.array([element_key(int(i), k) for k in range(int(count))], np.uint64).view(np.int64)

        return _numpy_op(keys, [index, n], tf.int64, [tf.TensorShape([image.shape[0]])], "element_keys")

    def _size(self, image: tf.Tensor) -> tuple[int, int]:
        if image.shape.rank is None or None in image.shape[-3:-1]:
            raise ValueError(f"random_affine: images need a static rank and (H, W); got shape {image.shape}")
        return int(image.shape[-3]), int(image.shape[-2])

    def thetas(self, image, index=None) -> tf.Tensor:
        """The thetas (N, 2, 3) (or (N, 3, 3) with a perspective) of a batch (N, H, W, C); for one
        image (H, W, C), its (2, 3) or (3, 3) theta (float64)."""
        image = _check_images("random_affine", image)
        in_size = self._size(image)
        out = self.output_size or in_size
        rows = 3 if self.spec.projective else 2
        align = self.flags["align_corners"]

        def theta(keys):
            return self.spec.theta(in_size, out, keys, align_corners=align)

        keys = self._keys(image, index)
        t = _numpy_op(theta, [keys], tf.float64, [keys.shape.concatenate((rows, 3))], "augment_theta")
        return t if image.shape.rank == 4 else t[0]

    def warp(self, image, index=None) -> tf.Tensor:
        """Warp one image (H, W, C) or a batch (N, H, W, C) by its drawn transforms."""
        image = _check_images("random_affine", image)
        in_size = self._size(image)
        out = self.output_size or in_size
        size, flags, spec = self.output_size, self.flags, self.spec
        warp = _api.perspective_warp if spec.projective else _api.affine_warp

        def forward(im, keys):
            theta = spec.theta(in_size, out, keys, align_corners=flags["align_corners"])
            return warp(im, theta if im.ndim == 4 else theta[0], size, **flags)

        return _numpy_op(forward, [image, self._keys(image, index)], image.dtype, [_out_shape(image, out)],
                         "random_affine")

    def __call__(self, *element):
        if self.by_index:
            if len(element) < 2:
                raise TypeError(
                    "random_affine: with by_index=True elements must be (index, image[, label...])")
            index, rest = element[0], element[1:]
            if len(rest) == 1 and isinstance(rest[0], tuple):
                rest = rest[0]
        else:
            index, rest = None, element
        if not rest:
            raise TypeError("random_affine: expected an (image) or (image, label...) element")
        warped = self.warp(rest[0], index)
        return warped if len(rest) == 1 else (warped, *rest[1:])


def random_affine(rotation=0.0, scale=1.0, shear=0.0, translation=0.0, *, perspective: float = 0.0,
                  seed: int = 0, spec: AugmentSpec | None = None, output_size=None, mode: str = "bilinear",
                  padding_mode: str = "zeros", align_corners: bool = False, by_index: bool = False,
                  fill_value=0.0, antialias: bool = False) -> RandomAffine:
    """A seeded random augmentation for ``dataset.map(fn, num_parallel_calls=AUTOTUNE)``.

    Each element gets a rotation, scale, shear, translation (and perspective)
    drawn and composed by :class:`fastwarp.augment.AugmentSpec` (about the
    image centre, as :func:`fastwarp.transforms.affine_theta` does: scale,
    shear, rotation, translation; then the corner moves), and is warped by
    :func:`fastwarp.affine_warp` (:func:`fastwarp.perspective_warp` with a
    perspective) in float64 thetas (host CPU, no gradient: this is for input
    pipelines).

    Parameters
    ----------
    rotation : float or (low, high), default 0
        Degrees, counter-clockwise on screen; a number a means [-a, a].
    scale : float or (low, high), default 1
        Zoom factor (> 1 enlarges); a number is a constant.
    shear : float or (low, high), default 0
        Horizontal shear angle in degrees; a number a means [-a, a].
    translation : float, (tx, ty) or ((lo, hi), (lo, hi)), default 0
        Shift in output pixels; a number t means [-t, t].
    perspective : float in [0, 1], default 0
        Corner displacement, as ``keras.layers.RandomPerspective``'s ``scale``.
    seed : int
        Base seed.  The transform of an element depends only on the seed and a
        per-element key, never on the order or parallelism of the map.
    spec : AugmentSpec, optional
        The augmentation as one object (instead of the five parameters and
        ``seed``), e.g. a Keras layer's ``RandomAffine(...).spec``.
    output_size : (int, int), optional
        (Ho, Wo) of the result; defaults to the input's (H, W).
    mode, padding_mode, align_corners, fill_value
        As in :func:`fastwarp.affine_warp` (every mode and padding, e.g.
        ``padding_mode="constant", fill_value=128``).
    antialias : bool, default False
        As in :func:`fastwarp.affine_warp` (and :func:`fastwarp.perspective_warp`
        with a perspective): where a drawn transform shrinks (a zoom out), read
        each output pixel's whole footprint.  Needs mode "bilinear" or "bicubic".
    by_index : bool, default False
        The per-element key.  False: a 64-bit fingerprint of the image's bytes
        (elements ``(image)`` or ``(image, label, ...)``), so equal images get
        equal transforms in every epoch.  True: an integer index given first
        (elements ``(index, image[, label...])`` as made by
        ``dataset.enumerate()``; put ``.repeat()`` before ``.enumerate()`` to
        get fresh transforms each epoch); the index is dropped from the output.
        A batch under one index keys its images by ``(index, position)``.

    Returns
    -------
    RandomAffine
        Callable ``fn(image)`` -> warped image, ``fn(image, label, ...)`` ->
        ``(warped, label, ...)`` (labels passed through unchanged).  Images are
        (H, W, C) or batches (N, H, W, C) with static H and W, dtype float32,
        float64, float16, uint8 or uint16 (integers are interpolated in floating
        point and rounded).  ``fn.thetas(image)`` gives the thetas it warps by.
    """
    if spec is not None and (rotation, scale, shear, translation, perspective, seed) != (0.0, 1.0, 0.0, 0.0,
                                                                                         0.0, 0):
        raise ValueError("random_affine: give spec= or the parameters and seed, not both")
    return RandomAffine(rotation, scale, shear, translation, seed, output_size, mode, padding_mode,
                        align_corners, by_index, fill_value, perspective, spec, antialias)
