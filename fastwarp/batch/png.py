"""A small, fast PNG writer for 8- and 16-bit images (the filter in NumPy, deflate in isal or zlib).

Pillow's PNG encoder tries every row filter and compresses with zlib level 6,
and OpenCV's default is not much quicker; on photographic images both spend
most of their time in deflate.  This writer uses the ``Sub`` filter for every
row (one vectorised subtraction) and compresses with `isal
<https://pypi.org/project/isal/>`_ (Intel ISA-L, 3-5x quicker than zlib at
equal size) for levels 1-3 when it is installed, and with :mod:`zlib`
otherwise.  The files are ordinary PNGs (PNG specification, 2nd edition).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

__all__ = ["encode_png", "png_parts", "deflate_backend"]

# colour type per number of channels: gray, gray+alpha, RGB, RGBA
_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _isal():
    try:
        from isal import isal_zlib
    except ImportError:
        return None
    return isal_zlib


def deflate_backend(level: int) -> str:
    """Which library deflates at ``level``: ``"isal"`` (levels 1-3 when installed) or ``"zlib"``."""
    return "isal" if 1 <= level <= 3 and _isal() is not None else "zlib"


def _chunk(kind: bytes, data) -> list:
    """A chunk as parts to write one after another (the data is not copied)."""
    return [struct.pack(">I", len(data)) + kind, data, struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))]


def _sub_filtered(arr: np.ndarray, order=None) -> np.ndarray:
    """Rows as bytes, each prefixed by filter type 1 (Sub): byte minus the byte one pixel left.

    ``order`` lists the input channel of each output channel (e.g. (2, 1, 0)
    for B, G, R pixels); the reordering happens in the copies made anyway.
    """
    h, w, c = arr.shape
    order = tuple(range(c)) if order is None else tuple(order)
    if arr.dtype == np.uint16:
        be = np.empty((h, w, c), ">u2")
        for j, k in enumerate(order):
            be[:, :, j] = arr[:, :, k]
        raw = be.view(np.uint8).reshape(h, w, 2 * c)
    elif order != tuple(range(c)):
        raw = None
    else:
        raw = arr
    if raw is None:  # 8-bit, reordered: subtract channel by channel straight from the input
        out = np.empty((h, 1 + w * c), np.uint8)
        out[:, 0] = 1
        body = out[:, 1:].reshape(h, w, c)
        for j, k in enumerate(order):
            body[:, :1, j] = arr[:, :1, k]
            np.subtract(arr[:, 1:, k], arr[:, :-1, k], out=body[:, 1:, j])
        return out
    bpp = raw.shape[2]
    out = np.empty((h, 1 + w * bpp), np.uint8)
    out[:, 0] = 1
    body = out[:, 1:].reshape(h, w, bpp)
    body[:, :1] = raw[:, :1]
    np.subtract(raw[:, 1:], raw[:, :-1], out=body[:, 1:])
    return out


def _deflate(data, level: int) -> bytes:
    if deflate_backend(level) == "isal":
        return _isal().compress(data, level)
    return zlib.compress(data, level)


def encode_png(arr: np.ndarray, *, level: int = 1, icc_profile: bytes | None = None,
               dpi: tuple[float, float] | None = None, order=None) -> bytes:
    """PNG file bytes of an (H, W, C) uint8 or uint16 array (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA).

    Parameters
    ----------
    arr : ndarray
        Channels in the order gray[, alpha] or R, G, B[, A] (see ``order``).
    level : int, default 1
        Deflate level 0 (stored) to 9 (smallest).
    icc_profile : bytes, optional
        Written as an ``iCCP`` chunk.
    dpi : (float, float), optional
        Written as a ``pHYs`` chunk (pixels per metre).
    order : sequence of int, optional
        Input channel of each output channel, e.g. ``(2, 1, 0, 3)`` for B, G,
        R, A pixels (default: as they are).

    Raises
    ------
    TypeError, ValueError
        For another dtype, shape or level.
    """
    return b"".join(png_parts(arr, level=level, icc_profile=icc_profile, dpi=dpi, order=order))


def png_parts(arr: np.ndarray, *, level: int = 1, icc_profile: bytes | None = None,
              dpi: tuple[float, float] | None = None, order=None) -> list:
    """:func:`encode_png` as a list of bytes-like parts to write in turn (saves a copy of the file)."""
    if arr.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"encode_png: arr must be uint8 or uint16; got {arr.dtype}")
    if arr.ndim != 3 or arr.shape[2] not in _COLOR_TYPE or min(arr.shape[:2]) < 1:
        raise ValueError(f"encode_png: arr must have shape (H, W, 1..4); got {arr.shape}")
    if not isinstance(level, int) or not 0 <= level <= 9:
        raise ValueError(f"encode_png: level must be an int in 0..9; got {level!r}")
    h, w, c = arr.shape
    depth = 16 if arr.dtype == np.uint16 else 8
    if order is not None and sorted(order) != list(range(c)):
        raise ValueError(f"encode_png: order must be a permutation of range({c}); got {order!r}")
    parts = [_SIGNATURE, *_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, _COLOR_TYPE[c], 0, 0, 0))]
    if icc_profile:
        parts += _chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile))
    if dpi:
        ppm = [max(1, round(float(d) / 0.0254)) for d in dpi]
        parts += _chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1))
    filtered = _sub_filtered(arr, order)
    data = _deflate(filtered, level)
    del filtered
    parts += _chunk(b"IDAT", data)
    parts += _chunk(b"IEND", b"")
    return parts
