"""Argument checks and normalization for the public API.

Every check raises ``TypeError`` (wrong type or dtype) or ``ValueError`` (wrong
shape or value) with a message that starts with the public function's name and
says what was expected and what arrived.  What passes is handed to the kernels
as native-endian, C-contiguous arrays, so a kernel never sees a shape or a
layout it did not expect.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence

import numpy as np

from .coords import BICUBIC, BILINEAR, BORDER, CONSTANT, NEAREST, REFLECTION, WRAP, ZEROS

IMAGE_DTYPES = tuple(np.dtype(d) for d in (np.float32, np.float64, np.float16, np.uint8, np.uint16))
# their type codes, in either byte order
_IMAGE_CHARS = frozenset(d.char for d in IMAGE_DTYPES)
# images that have a gradient
GRAD_DTYPES = tuple(np.dtype(d) for d in (np.float32, np.float64, np.float16))
# grids, grad_out and buffers of the gradients
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
MODES = {"bilinear": BILINEAR, "nearest": NEAREST, "bicubic": BICUBIC}
PADDINGS = {"zeros": ZEROS, "border": BORDER, "reflection": REFLECTION, "constant": CONSTANT, "wrap": WRAP}


def _names(dtypes) -> str:
    return ", ".join(d.name for d in dtypes)


def as_native(a: np.ndarray) -> np.ndarray:
    """C-contiguous, native byte order; a copy only when needed."""
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return np.ascontiguousarray(a)


def all_finite(a: np.ndarray) -> bool:
    """No NaN or infinity in the real array ``a`` (small arrays in Python: a ufunc and its
    reduction cost more than a few matrices' entries)."""
    if a.size <= 64:
        return all(map(math.isfinite, a.ravel().tolist()))
    return bool(np.isfinite(a).all())


def _asarray(fn: str, name: str, x) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "__cuda_array_interface__") or hasattr(x, "__cuda_ndarray__"):
        raise TypeError(f"{fn}: {name} is a GPU array; pass device='cuda' or use fastwarp.cuda")
    try:
        return np.asarray(x)
    except Exception as e:  # noqa: BLE001 - report any conversion failure the same way
        raise TypeError(f"{fn}: {name} must be array-like, got {type(x).__name__}") from e


def check_images(fn: str, images) -> tuple[np.ndarray, bool]:
    """Return (images as (N, H, W, C) native C-contiguous, batched?)."""
    a = _asarray(fn, "images", images)
    if a.dtype.char not in _IMAGE_CHARS or a.dtype.newbyteorder("=") not in IMAGE_DTYPES:
        raise TypeError(f"{fn}: images must have dtype {_names(IMAGE_DTYPES)}; got {a.dtype}")
    if a.ndim == 3:
        batched = False
        a = a[None]
    elif a.ndim == 4:
        batched = True
    else:
        raise ValueError(
            f"{fn}: images must have shape (N, H, W, C) or (H, W, C); got shape {a.shape}")
    if a.shape[1] < 1 or a.shape[2] < 1 or a.shape[3] < 1:
        raise ValueError(
            f"{fn}: images need H, W and C of at least 1; got shape {a.shape if batched else a.shape[1:]}")
    return as_native(a), batched


def check_theta(fn: str, theta, n: int, batched: bool, rows: int = 2) -> np.ndarray:
    """Return theta as (n, rows, 3) float64, broadcasting a single (rows, 3) matrix
    (rows 2: affine, 3: projective)."""
    t = _asarray(fn, "theta", theta)
    m = (rows, 3)
    if t.dtype.kind not in "fiu" or t.dtype == np.bool_:
        raise TypeError(f"{fn}: theta must be a real float or integer array; got dtype {t.dtype}")
    if t.ndim == 3 and t.shape[1:] == m and t.shape[0] != n:
        what = f"batch of {n} images" if batched else "single image"
        raise ValueError(
            f"{fn}: theta has {t.shape[0]} matrices for a {what}; "
            f"expected shape ({n}, {rows}, 3) or ({rows}, 3), got {t.shape}")
    if t.shape != m and not (t.ndim == 3 and t.shape[1:] == m):
        raise ValueError(f"{fn}: theta must have shape (N, {rows}, 3) or ({rows}, 3); got {t.shape}")
    # the finiteness check runs on the matrices as given, before a single theta is repeated
    if not all_finite(t):
        raise ValueError(f"{fn}: theta must be finite; got NaN or infinity")
    if t.ndim == 2:
        one = t.astype(np.float64)
        t = np.empty((n, rows, 3))
        t[...] = one
    else:
        t = np.ascontiguousarray(t, dtype=np.float64)
    return t


def check_size(fn: str, size, default: tuple[int, int]) -> tuple[int, int]:
    """Return the output size (Ho, Wo) as two positive ints."""
    if size is None:
        return default
    if isinstance(size, (str, bytes)) or not isinstance(size, (Sequence, np.ndarray)):
        raise TypeError(f"{fn}: size must be a pair (Ho, Wo) of ints; got {size!r}")
    if len(size) != 2:
        raise ValueError(f"{fn}: size must be a pair (Ho, Wo); got {len(size)} values {tuple(size)!r}")
    out = []
    for v in size:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{fn}: size must be a pair (Ho, Wo) of ints; got {tuple(size)!r}")
        if v < 1:
            raise ValueError(f"{fn}: size must be positive; got {tuple(int(s) for s in size)!r}")
        out.append(int(v))
    return out[0], out[1]


def check_grid(fn: str, grid, n: int, batched: bool) -> np.ndarray:
    """Return the sampling grid as (n, Ho, Wo, 2) float32/float64, native C-contiguous."""
    g = _asarray(fn, "grid", grid)
    if g.dtype.newbyteorder("=") not in FLOAT_DTYPES:
        raise TypeError(f"{fn}: grid must have dtype {_names(FLOAT_DTYPES)}; got {g.dtype}")
    if not batched:
        if g.ndim != 3 or g.shape[-1] != 2:
            raise ValueError(f"{fn}: grid for a single image must have shape (Ho, Wo, 2); got {g.shape}")
        g = g[None]
    if g.ndim != 4 or g.shape[-1] != 2:
        raise ValueError(f"{fn}: grid must have shape (N, Ho, Wo, 2); got {g.shape}")
    if g.shape[0] != n:
        raise ValueError(f"{fn}: grid has batch size {g.shape[0]} but images have {n}")
    if g.shape[1] < 1 or g.shape[2] < 1:
        raise ValueError(f"{fn}: grid needs Ho and Wo of at least 1; got shape {g.shape}")
    return as_native(g)


def check_flags(fn: str, mode: str, padding_mode: str, align_corners, *,
                modes=tuple(MODES), paddings=tuple(PADDINGS)) -> tuple[int, int, bool]:
    """Translate the string flags to the kernels' integer codes (``modes`` and
    ``paddings``: the names the caller's backend implements)."""
    if not isinstance(mode, str) or mode not in modes:
        raise ValueError(f"{fn}: mode must be one of {sorted(modes)}; got {mode!r}")
    if not isinstance(padding_mode, str) or padding_mode not in paddings:
        raise ValueError(f"{fn}: padding_mode must be one of {sorted(paddings)}; got {padding_mode!r}")
    if not isinstance(align_corners, (bool, np.bool_)):
        raise TypeError(f"{fn}: align_corners must be a bool; got {align_corners!r}")
    return MODES[mode], PADDINGS[padding_mode], bool(align_corners)


def check_antialias(fn: str, antialias, mode: int) -> bool:
    """``antialias`` as a bool; it needs a filtering mode (bilinear or bicubic)."""
    if not isinstance(antialias, (bool, np.bool_)):
        raise TypeError(f"{fn}: antialias must be a bool; got {antialias!r}")
    if antialias and mode == MODES["nearest"]:
        raise ValueError(f"{fn}: antialias=True needs mode 'bilinear' or 'bicubic'; got mode 'nearest'")
    return bool(antialias)


def check_fill(fn: str, fill_value, channels: int) -> np.ndarray:
    """Return fill_value as a float64 array of one value per channel (a scalar is repeated)."""
    if type(fill_value) in (float, int) and -1e300 < fill_value < 1e300:  # a plain finite number
        return np.full(channels, float(fill_value))
    if isinstance(fill_value, (str, bytes)):
        raise TypeError(f"{fn}: fill_value must be a real number or one per channel; got {fill_value!r}")
    try:
        f = np.asarray(fill_value)
    except Exception as e:  # noqa: BLE001 - report any conversion failure the same way
        raise TypeError(f"{fn}: fill_value must be a real number or one per channel; "
                        f"got {fill_value!r}") from e
    if f.dtype.kind not in "fiu" or f.dtype == np.bool_:
        raise TypeError(f"{fn}: fill_value must be a real number or one per channel; got {fill_value!r}")
    if f.ndim > 1 or (f.ndim == 1 and f.shape[0] not in (1, channels)):
        raise ValueError(f"{fn}: fill_value must be a scalar or {channels} values (one per channel); "
                         f"got shape {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError(f"{fn}: fill_value must be finite; got {fill_value!r}")
    out = np.empty(channels)
    out[:] = f.astype(np.float64)
    return out


def check_out(fn: str, out, shape: tuple[int, ...], dtype: np.dtype, *inputs: np.ndarray,
              name: str = "out") -> np.ndarray:
    """Check a caller's output buffer: ndarray, exact shape and dtype, writable,
    C-contiguous, native byte order, and not overlapping any input."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a numpy.ndarray; got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{fn}: {name} must have shape {tuple(shape)}; got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"{fn}: {name} must have dtype {np.dtype(dtype)}; got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{fn}: {name} must be writable")
    if not out.flags.c_contiguous or not out.dtype.isnative:
        raise ValueError(f"{fn}: {name} must be C-contiguous and native-endian")
    for a in inputs:
        if np.may_share_memory(out, a):
            raise ValueError(f"{fn}: {name} overlaps an input array; pass a separate buffer")
    return out


def readonly(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Read-only views of kernel inputs, so writable, read-only and broadcast
    arrays share one compiled Numba specialization."""
    views = []
    for a in arrays:
        if not a.flags.writeable:
            views.append(a)
            continue
        v = a.view()
        v.setflags(write=False)
        views.append(v)
    return tuple(views)


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype the kernels run on: float16 images are computed in float32."""
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def fill_for(fn: str, fill_value, padding: int, channels: int) -> np.ndarray:
    """One fill value per channel: ``fill_value`` for constant padding, 0 otherwise (checked either way)."""
    if padding != CONSTANT and type(fill_value) in (float, int) and -1e300 < fill_value < 1e300:
        return _zeros(channels)  # a plain finite number that no tap reads
    f = check_fill(fn, fill_value, channels)
    return f if padding == CONSTANT else _zeros(channels)


@functools.lru_cache(maxsize=64)
def _zeros(channels: int) -> np.ndarray:
    """A read-only row of zeros (the fill of every padding mode but constant)."""
    z = np.zeros(channels)
    z.flags.writeable = False
    return z
