"""One augmentation vocabulary for every front end: :class:`AugmentSpec`.

The ``tf.data`` map (:func:`fastwarp.tf.random_affine`), the Keras layer
(:class:`fastwarp.tf.layers.RandomAffine`), the pipeline stage
(:class:`fastwarp.pipeline.RandomAffine`) and the command line (``fastwarp
warp``, through :class:`fastwarp.folder.TransformSpec`) all describe a random
augmentation with an :class:`AugmentSpec` and draw, compose and seed it here:

names
    ``rotation``, ``scale``, ``shear``, ``translation``, ``perspective``
    (old spellings are aliases, see :data:`ALIASES`).
ranges
    One parser, :func:`parse_range`: for the symmetric parameters
    (``rotation``, ``shear``, each axis of ``translation``) a number ``a``
    means ``[-a, a]``; ``scale`` as a number is a constant; ``(low, high)``
    is explicit everywhere.  ``perspective`` is a number in [0, 1].
composition
    One function, :meth:`AugmentSpec.compose` (and :meth:`AugmentSpec.theta`,
    which draws first).  In the default ``convention="fastwarp"`` the image
    is scaled, sheared, rotated (about its centre, as
    :func:`fastwarp.transforms.affine_matrix`), shifted, and then its
    corners are moved (``perspective``).
seeding
    :func:`uniforms`: sixteen uniforms per element from a counter-based
    generator (SplitMix64's finalizer) keyed by ``(seed, element key, draw
    index)``.  An element's augmentation depends on nothing else: not on the
    batch it is in, its position, the order or the parallelism.  The element
    key is what the front end knows about the element (:func:`element_key`):
    a file's relative path and copy index, a ``tf.data`` index, a
    fingerprint of the image's bytes.

``convention="keras"`` is the same machinery read with Keras's units and
order, for the Keras layer (whose arguments must mean what Keras's factors
mean): ``rotation`` in degrees (the layer converts the fraction of a turn),
``scale`` and ``scale_x`` the output -> input zoom factors ``1 + factor`` of
height and width (``scale_x`` None: the width zooms with the height),
``shear`` and ``shear_y`` ``RandomShear``'s x and y factors (with its random
common sign), ``translation`` fractions of the width and height, composed in
the order of the chain ``RandomRotation``, ``RandomZoom``,
``RandomTranslation``, ``RandomShear``, ``RandomPerspective``.

Example
-------
>>> import numpy as np
>>> spec = AugmentSpec(rotation=20, scale=(0.9, 1.1), translation=(4, 2), perspective=0.1, seed=7)
>>> spec.theta((32, 48), keys=[element_key("cat.png", 0), element_key("dog.png", 0)]).shape
(2, 3, 3)
>>> AugmentSpec(rotation=(15, 15)).theta((32, 48), keys=0).shape   # no perspective: affine
(2, 3)

This module imports NumPy only.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["AugmentSpec", "ALIASES", "DRAWS", "element_key", "parse_range", "parse_translation", "uniforms"]

Range = tuple[float, float]

#: Old names that still work, and the canonical name each stands for.  A single number given
#: to ``rotate`` or ``shift`` keeps its old meaning: a constant, not a symmetric range.
ALIASES = {"rotate": "rotation", "shift": "translation", "shift_x": "translation",
           "shift_y": "translation"}

#: Uniforms drawn per element, in fixed slots (a parameter's draw does not move when another
#: parameter becomes random): 0 rotation, 1 scale (height in Keras's convention), 2 width scale,
#: 3 translation y, 4 translation x, 5 shear sign (Keras), 6 shear y, 7 shear x, 8-15 the four
#: corners' (x, y) displacements of ``perspective``.
DRAWS = 16

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_CONVENTIONS = ("fastwarp", "keras")


# ---------------------------------------------------------------- seeding

def _mix_int(z: int) -> int:
    """SplitMix64's finalizer on a Python int (64-bit wrap-around)."""
    z &= _MASK
    z = ((z ^ (z >> 30)) * _M1) & _MASK
    z = ((z ^ (z >> 27)) * _M2) & _MASK
    return z ^ (z >> 31)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer on a uint64 array (wraps modulo 2**64, as uint64 arrays do)."""
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(_M1)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(_M2)
    return z ^ (z >> np.uint64(31))


def _word(part) -> int:
    if isinstance(part, (bool, np.bool_)):
        raise TypeError(f"element_key: a key part must be an int, str or bytes; got {part!r}")
    if isinstance(part, (int, np.integer)):
        return int(part) & _MASK
    if isinstance(part, str):
        part = part.encode("utf-8")
    if isinstance(part, (bytes, bytearray, memoryview)):
        return int.from_bytes(hashlib.sha256(bytes(part)).digest()[:8], "little")
    raise TypeError(f"element_key: a key part must be an int, str or bytes; got {type(part).__name__}")


def element_key(*parts) -> int:
    """A 64-bit element key from one or more parts (ints, str, bytes).

    One int part is the key itself (modulo 2**64): a ``tf.data`` index, a
    fingerprint.  A str or bytes part is the first 8 bytes of its SHA-256.
    Several parts are folded left to right (``k = mix(k + golden) ^ part``).

    Examples
    --------
    >>> element_key(5)
    5
    >>> element_key("sub/cat.png", 0) == element_key("sub/cat.png", 0) != element_key("sub/cat.png", 1)
    True
    """
    if not parts:
        raise TypeError("element_key: needs at least one part")
    k = _word(parts[0])
    for p in parts[1:]:
        k = _mix_int(k + _GOLDEN) ^ _word(p)
    return k


def _keys(keys) -> tuple[np.ndarray, bool]:
    """(N,) uint64 keys and whether a single key was given."""
    if isinstance(keys, np.ndarray) and keys.dtype.kind in "iu":
        single = keys.ndim == 0
        a = np.atleast_1d(keys).reshape(-1)
        return (a.astype(np.int64).view(np.uint64) if a.dtype.kind == "i" else a.astype(np.uint64)), single
    single = not isinstance(keys, (Sequence, np.ndarray)) or isinstance(keys, (str, bytes))
    items = [keys] if single else list(keys)
    return np.array([element_key(k) for k in items], dtype=np.uint64).reshape(-1), single


def uniforms(seed: int, keys, count: int = DRAWS) -> np.ndarray:
    """(N, count) float64 uniforms in [0, 1), a pure function of ``(seed, key, draw index)``.

    ``u[i, k] = mix(mix(key_i ^ mix(seed + golden)) + (k + 1) * golden) / 2**64`` (53 bits),
    with ``mix`` SplitMix64's finalizer: no state, so any subset, order or
    batching of the elements gets the same numbers.

    Parameters
    ----------
    seed : int
        Any int (taken modulo 2**64).
    keys : int, str, bytes, a sequence of them, or an integer array (N,)
        Element keys (see :func:`element_key`); int64 arrays are read as
        their uint64 bits (TensorFlow's fingerprints).
    count : int
        Uniforms per element.
    """
    k, _ = _keys(keys)
    stream = _mix(k ^ np.uint64(_mix_int(int(seed) + _GOLDEN)))
    ctr = np.arange(1, count + 1, dtype=np.uint64) * np.uint64(_GOLDEN)
    z = _mix(stream[:, None] + ctr[None, :])
    return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


# ---------------------------------------------------------------- ranges

def _number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def parse_range(name: str, value, *, symmetric: bool, fn: str = "AugmentSpec", positive: bool = False,
                limit: float | None = None) -> Range:
    """A sampling range ``(low, high)`` from a number or a pair: the one range rule.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    value : number or (number, number)
        A number ``a`` means ``[-a, a]`` when ``symmetric`` (then ``a >= 0``)
        and the constant ``a`` otherwise; a pair is ``(low, high)``.
    symmetric : bool
    fn : str
        The function named in the error message.
    positive : bool
        Require ``low > 0``.
    limit : float, optional
        Require ``-limit < low <= high < limit``.

    Raises
    ------
    ValueError
        Naming ``fn`` and ``name``: not a number or pair, not finite, low >
        high, a negative symmetric number, or outside the bounds.
    """
    if _number(value):
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"{fn}: {name} must be finite; got {value!r}")
        if symmetric and v < 0:
            raise ValueError(f"{fn}: {name} must be >= 0 or a (low, high) pair; got {value!r}")
        lo, hi = (-v, v) if symmetric else (v, v)
    else:
        try:
            lo, hi = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"{fn}: {name} must be a number or a (low, high) pair; got {value!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"{fn}: {name} needs finite low <= high; got {value!r}")
    if positive and lo <= 0:
        raise ValueError(f"{fn}: {name} must be positive; got {value!r}")
    if limit is not None and not -limit < lo <= hi < limit:
        raise ValueError(f"{fn}: {name} must lie inside (-{limit:g}, {limit:g}); got {value!r}")
    return lo, hi


def parse_translation(name: str, value, *, symmetric: bool = True,
                      fn: str = "AugmentSpec") -> tuple[Range, Range]:
    """``((x_low, x_high), (y_low, y_high))`` from a number (both axes), ``(x, y)`` or a pair of ranges.

    Each axis follows :func:`parse_range` (a number ``t`` is ``[-t, t]`` when ``symmetric``).
    """
    if _number(value):
        value = (value, value)
    try:
        x, y = value
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: {name} must be a number, (x, y) or ((x_low, x_high), (y_low, y_high)); "
                         f"got {value!r}") from None
    return (parse_range(f"{name} x", x, symmetric=symmetric, fn=fn),
            parse_range(f"{name} y", y, symmetric=symmetric, fn=fn))


# ---------------------------------------------------------------- the spec

def _pick(r: Range, u: np.ndarray) -> np.ndarray:
    return r[0] + (r[1] - r[0]) * u


def _corners(h: int, w: int) -> np.ndarray:
    return np.array([[0.0, 0.0], [w - 1.0, 0.0], [0.0, h - 1.0], [w - 1.0, h - 1.0]])


def corner_homography(start, end) -> np.ndarray:
    """3x3 pixel homography taking the four ``end`` corners to the four ``start`` corners (m22 = 1)."""
    rows, rhs = [], []
    for (xs, ys), (xe, ye) in zip(np.asarray(start, np.float64), np.asarray(end, np.float64)):
        rows.append([xe, ye, 1.0, 0.0, 0.0, 0.0, -xs * xe, -xs * ye])
        rows.append([0.0, 0.0, 0.0, xe, ye, 1.0, -ys * xe, -ys * ye])
        rhs += [xs, ys]
    return np.append(np.linalg.solve(np.array(rows), np.array(rhs)), 1.0).reshape(3, 3)


def keras_chain_matrix(angle, zooms, translations, shear, start, end, h: int, w: int,
                       perspective: bool) -> np.ndarray:
    """The 8 transform entries of Keras's chain RandomRotation, RandomZoom, RandomTranslation,
    RandomShear (and RandomPerspective) for one image, in float64 (``convention="keras"``).

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
        m = m @ corner_homography(start, end)
    return (m / m[2, 2]).reshape(-1)[:8]


@dataclass(frozen=True)
class AugmentSpec:
    """A random (or fixed) geometric augmentation: what every fastwarp front end draws and composes.

    Fields are normalized on construction by :func:`parse_range` (a number
    ``a`` is ``[-a, a]`` for ``rotation``, ``shear`` and each axis of
    ``translation``; ``scale`` as a number is constant), so
    ``AugmentSpec(rotation=10) == AugmentSpec(rotation=(-10, 10))``.

    Parameters
    ----------
    rotation : float or (low, high), default 0
        Degrees, counter-clockwise on screen (as ``cv2.getRotationMatrix2D``
        and Keras's ``RandomRotation``).
    scale : float or (low, high), default 1
        Zoom factor, > 1 enlarges.  (Keras convention: the height's output ->
        input factor ``1 + height_factor``, > 1 shrinks.)
    shear : float or (low, high), default 0
        Horizontal shear angle in degrees, ``x' = x + tan(shear) y``.  (Keras
        convention: ``RandomShear``'s x factor.)
    translation : float, (x, y) or ((x_low, x_high), (y_low, y_high)), default 0
        Shift in output pixels, x right and y down.  (Keras convention:
        fractions of the width and height.)
    perspective : float in [0, 1], default 0
        Corner displacement, as ``keras.layers.RandomPerspective``'s
        ``scale``: each output corner ``p`` moves to ``p + p * f`` with each
        of f's coordinates uniform in ``[-perspective / 2, perspective / 2]``
        (so the corner at the origin stays), after the affine part.  With a
        non-zero value thetas are 3 x 3 (for :func:`fastwarp.perspective_warp`).
    seed : int, default 0
        Base seed of :func:`uniforms`.
    convention : {"fastwarp", "keras"}, default "fastwarp"
        The units and order the parameters are read in (module docstring).
    scale_x : (low, high), optional
        Keras convention only: the width's zoom factor range (``None``: the
        width takes the height's draw).
    shear_y : (low, high), default (0, 0)
        Keras convention only: ``RandomShear``'s y factor.

    Raises
    ------
    ValueError
        For a malformed range (naming the field), a non-positive scale, a
        fastwarp shear outside (-90, 90) degrees, a perspective outside [0, 1]
        or an unknown convention.
    """

    rotation: Range = (0.0, 0.0)
    scale: Range = (1.0, 1.0)
    shear: Range = (0.0, 0.0)
    translation: tuple[Range, Range] = ((0.0, 0.0), (0.0, 0.0))
    perspective: float = 0.0
    seed: int = 0
    convention: str = "fastwarp"
    scale_x: Range | None = None
    shear_y: Range = (0.0, 0.0)

    def __post_init__(self):
        fn = "AugmentSpec"
        if self.convention not in _CONVENTIONS:
            raise ValueError(f"{fn}: convention must be one of {_CONVENTIONS}; got {self.convention!r}")
        keras = self.convention == "keras"
        set_ = object.__setattr__
        set_(self, "rotation", parse_range("rotation", self.rotation, symmetric=True))
        set_(self, "scale", parse_range("scale", self.scale, symmetric=False, positive=not keras))
        set_(self, "shear", parse_range("shear", self.shear, symmetric=True, limit=None if keras else 90))
        set_(self, "translation", parse_translation("translation", self.translation))
        if self.scale_x is not None:
            set_(self, "scale_x", parse_range("scale_x", self.scale_x, symmetric=False))
        set_(self, "shear_y", parse_range("shear_y", self.shear_y, symmetric=True))
        if not keras and (self.scale_x is not None or self.shear_y != (0.0, 0.0)):
            raise ValueError(f"{fn}: scale_x and shear_y belong to convention='keras'")
        if not (_number(self.perspective) and 0 <= self.perspective <= 1):
            raise ValueError(f"{fn}: perspective must be a number in [0, 1]; got {self.perspective!r}")
        set_(self, "perspective", float(self.perspective))
        if isinstance(self.seed, (bool, np.bool_)) or not isinstance(self.seed, (int, np.integer)):
            raise TypeError(f"{fn}: seed must be an int; got {self.seed!r}")
        set_(self, "seed", int(self.seed))

    @classmethod
    def create(cls, fn: str = "AugmentSpec", *, rotation=None, scale=None, shear=None, translation=None,
               perspective=None, seed: int = 0, rotate=None, shift=None, shift_x=None,
               shift_y=None) -> AugmentSpec:
        """An :class:`AugmentSpec` from canonical names or their old aliases (:data:`ALIASES`).

        ``rotate`` and ``shift`` (and ``shift_x``/``shift_y``) read a single
        number as a constant, as they always did; ``rotation`` and
        ``translation`` read it as ``[-a, a]``.  Giving a name and its alias
        is a ValueError; ``fn`` names the caller in errors.
        """
        def one(canonical, value, aliases):
            given = [(n, v) for n, v in ((canonical, value), *aliases) if v is not None]
            if len(given) > 1:
                raise ValueError(f"{fn}: {' and '.join(n for n, _ in given)} are the same parameter "
                                 f"({canonical}); give one")
            return given[0] if given else (canonical, None)

        name, rot = one("rotation", rotation, [("rotate", rotate)])
        if name == "rotate":
            rot = parse_range("rotate", rot, symmetric=False, fn=fn)
        xy = shift_x is not None or shift_y is not None
        name, tr = one("translation", translation,
                       [("shift", shift)] + ([("shift_x/shift_y", (shift_x, shift_y))] if xy else []))
        if name == "shift":
            tr = parse_translation("shift", tr, symmetric=False, fn=fn)
        elif name == "shift_x/shift_y":  # TransformSpec's old fields, a range (or constant) per axis
            tr = (parse_range("shift_x", 0.0 if shift_x is None else shift_x, symmetric=False, fn=fn),
                  parse_range("shift_y", 0.0 if shift_y is None else shift_y, symmetric=False, fn=fn))
        kw = {"rotation": rot, "scale": scale, "shear": shear, "translation": tr, "perspective": perspective}
        kw = {k: v for k, v in kw.items() if v is not None}
        try:
            return cls(seed=seed, **kw)
        except (ValueError, TypeError) as e:
            raise type(e)(str(e).replace("AugmentSpec:", f"{fn}:", 1)) from None

    # ------------------------------------------------------------ queries

    @property
    def is_random(self) -> bool:
        """Whether any parameter is drawn (a range with low < high, or a perspective)."""
        ranges = [self.rotation, self.scale, self.shear, *self.translation, self.shear_y]
        if self.scale_x is not None:
            ranges.append(self.scale_x)
        return self.perspective > 0 or any(lo != hi for lo, hi in ranges)

    @property
    def projective(self) -> bool:
        """Whether thetas are 3 x 3 (a perspective, or the Keras convention) rather than 2 x 3."""
        return self.perspective > 0 or self.convention == "keras"

    # ------------------------------------------------------------ draw and compose

    def draw(self, keys, in_size, out_size=None) -> dict:
        """The parameters drawn for each element key, in pixels.

        Parameters
        ----------
        keys : int, str, sequence, or integer array (N,)
            Element keys (:func:`element_key`).
        in_size, out_size : (int, int)
            (H, W) of the input and the output (default: the input's).

        Returns
        -------
        dict of float64 arrays, N first: ``rotation`` (N,) degrees;
        ``scale`` (N, 2) (x, y); ``shear`` (N, 2) (x, y) (fastwarp: degrees,
        y 0; Keras: signed factors); ``translation`` (N, 2) (x, y) output
        pixels; ``start``, ``end`` (N, 4, 2) the output corners and where
        ``perspective`` moves them.
        """
        u = uniforms(self.seed, keys)
        n = u.shape[0]
        h, w = (int(v) for v in in_size[:2])
        ho, wo = (h, w) if out_size is None else (int(v) for v in out_size[:2])
        sy = _pick(self.scale, u[:, 1])
        tx, ty = _pick(self.translation[0], u[:, 4]), _pick(self.translation[1], u[:, 3])
        if self.convention == "keras":
            sx = sy if self.scale_x is None else _pick(self.scale_x, u[:, 2])
            sign = np.where(u[:, 5] > 0.5, -1.0, 1.0)
            shear = np.stack([_pick(self.shear, u[:, 7]), _pick(self.shear_y, u[:, 6])], axis=1)
            shear = shear * sign[:, None]
            tx, ty = tx * w, ty * h
            start = _corners(h, w)
        else:
            sx = sy
            shear = np.stack([_pick(self.shear, u[:, 7]), np.zeros(n)], axis=1)
            start = _corners(ho, wo)
        start = np.broadcast_to(start, (n, 4, 2)).copy()
        factor = (-0.5 * self.perspective + self.perspective * u[:, 8:16]).reshape(n, 4, 2)
        return {"rotation": _pick(self.rotation, u[:, 0]), "scale": np.stack([sx, sy], axis=1),
                "shear": shear, "translation": np.stack([tx, ty], axis=1), "start": start,
                "end": start + start * factor}

    def compose(self, params: dict, in_size, out_size=None, *, align_corners: bool = False) -> np.ndarray:
        """Thetas (N, 2, 3), or (N, 3, 3) when :attr:`projective`, for drawn parameters.

        Each element is composed on its own, in float64 scalars, so its theta
        does not depend on the others in the batch.  The fastwarp convention
        without perspective is exactly :func:`fastwarp.transforms.affine_theta`;
        with it, ``theta_from_homography(inv(affine_matrix) @ P, inverse_map=True)``
        where P takes the moved output corners back to the corners.  The Keras
        convention is :func:`keras_chain_matrix` through ``theta_from_homography``.
        """
        from .transforms import (
            _homogeneous,
            affine_matrix,
            affine_theta,
            invert_affine,
            theta_from_homography,
        )

        h, w = (int(v) for v in in_size[:2])
        out = (h, w) if out_size is None else tuple(int(v) for v in out_size[:2])
        rot, sc, sh, tr = (np.asarray(params[k], np.float64) for k in ("rotation", "scale", "shear",
                                                                        "translation"))
        start, end = np.asarray(params["start"], np.float64), np.asarray(params["end"], np.float64)
        n = rot.shape[0]
        thetas = np.empty((n, 3 if self.projective else 2, 3))
        for i in range(n):
            if self.convention == "keras":
                m = keras_chain_matrix(rot[i], sc[i], tr[i], sh[i], start[i], end[i], h, w,
                                       self.perspective > 0)
                m = np.append(m, 1.0).reshape(3, 3)
                thetas[i] = theta_from_homography(m, (h, w), out, align_corners=align_corners,
                                                  inverse_map=True)
                continue
            kw = {"rotation": float(rot[i]), "scale": float(sc[i, 0]), "shear": float(sh[i, 0]),
                  "translation": (float(tr[i, 0]), float(tr[i, 1]))}
            if not self.projective:
                thetas[i] = affine_theta((h, w), out, align_corners=align_corners, **kw)
                continue
            dst_to_src = _homogeneous(invert_affine(affine_matrix((h, w), out, **kw)))
            m = dst_to_src @ corner_homography(start[i], end[i])
            thetas[i] = theta_from_homography(m, (h, w), out, align_corners=align_corners, inverse_map=True)
        return thetas

    def theta(self, in_size, out_size=None, keys=0, *, align_corners: bool = False) -> np.ndarray:
        """Thetas for element ``keys``: :meth:`draw` then :meth:`compose`.

        A single key gives one (2, 3) or (3, 3) theta; a sequence or array of N
        keys gives (N, 2, 3) or (N, 3, 3).  ``in_size`` is the (H, W) the
        input is mapped from (the output size itself for a resize onto it).
        """
        _, single = _keys(keys)
        t = self.compose(self.draw(keys, in_size, out_size), in_size, out_size, align_corners=align_corners)
        return t[0] if single else t
