"""Reading and writing image files for batch warping (Pillow).

Pixels come out of :func:`read_image` as an ``(H, W, C)`` array in a dtype
:func:`fastwarp.affine_warp` can warp exactly, together with what is needed to
write the result back in the same format, mode and bit depth
(:class:`ImageInfo`); :func:`write_image` writes atomically.

Modes
-----
* ``L``, ``LA``, ``RGB``, ``RGBA``, ``CMYK``, ``YCbCr``: uint8, kept as is.
* ``I;16`` (16-bit PNG, TIFF): uint16, warped in float32 and rounded back
  (nearest, ties up) so 16-bit stays 16-bit.  ``I`` (32-bit integers, e.g.
  16-bit PGM files) is warped in float64 and rounded back; ``F`` in float32.
* ``1`` (bilevel) becomes ``L``; ``P`` (palette) becomes ``RGB`` or ``RGBA``
  when it has transparency; other modes become ``RGB``/``RGBA``.  Interpolating
  palette indices would mix unrelated colours.
* Pillow decodes 16-bit-per-channel colour PNGs as 8-bit ``RGB``: such files
  come out 8-bit (a Pillow limitation).
* An EXIF orientation tag is applied on reading (the pixels are warped as they
  are displayed) and EXIF is not copied to the output.  Only the first frame of
  animated or multi-page files is read.

Atomic writes
-------------
Every output is encoded into a hidden temporary file in its destination folder
(``.NAME.HOST-PID-RANDOM.fwtmp``) and renamed onto the final name with
:func:`os.replace`, so a reader never sees a half-written image under the final
name, whatever interrupts the writer.  Temporaries left behind by a killed
process are removed by :func:`remove_stale_temps` once that process is gone.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ImageInfo", "read_image", "write_image", "encode_image", "format_extension",
    "is_image_name", "remove_stale_temps", "to_warp_dtype", "from_warp_dtype",
]

UINT8_MODES = ("L", "LA", "RGB", "RGBA", "CMYK", "YCbCr")
UINT16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
# Canonical file extension per Pillow format name (for --format).
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "PPM": ".ppm", "BMP": ".bmp", "TIFF": ".tif",
              "WEBP": ".webp", "GIF": ".gif", "TGA": ".tga", "JPEG2000": ".jp2", "QOI": ".qoi"}
TEMP_SUFFIX = ".fwtmp"


@dataclass(frozen=True)
class ImageInfo:
    """How a decoded image was stored: Pillow format and mode, and save options to keep."""

    format: str
    mode: str
    save_options: dict = field(default_factory=dict, hash=False, compare=False)


def _pil():
    from PIL import Image, ImageOps

    return Image, ImageOps


def is_image_name(name: str) -> bool:
    """Whether a file name has an extension Pillow can open."""
    Image, _ = _pil()
    Image.init()
    ext = os.path.splitext(name)[1].lower()
    return Image.registered_extensions().get(ext) in Image.OPEN


def format_extension(fmt: str) -> str:
    """File extension (with the dot) for a Pillow format name such as ``"PNG"``."""
    Image, _ = _pil()
    fmt = fmt.upper()
    if fmt in EXTENSIONS:
        return EXTENSIONS[fmt]
    Image.init()
    for ext, f in Image.registered_extensions().items():
        if f == fmt:
            return ext
    raise ValueError(f"unknown image format {fmt!r}")


def check_format(fmt: str) -> str:
    """Upper-case Pillow format name that Pillow can write; ValueError otherwise."""
    Image, _ = _pil()
    Image.init()
    f = {"JPG": "JPEG", "TIF": "TIFF", "PGM": "PPM", "PBM": "PPM"}.get(fmt.upper(), fmt.upper())
    if f not in Image.SAVE:
        raise ValueError(f"cannot write format {fmt!r}; Pillow writes {', '.join(sorted(Image.SAVE))}")
    return f


def _save_options(im) -> dict:
    """Options worth carrying from the input file to the output file."""
    opts = {}
    for key in ("icc_profile", "dpi"):
        if key in im.info:
            opts[key] = im.info[key]
    if im.format == "TIFF" and "compression" in im.info:
        opts["compression"] = im.info["compression"]
    if im.format == "WEBP" and im.info.get("lossless"):
        opts["lossless"] = True
    return opts


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, ImageInfo]:
    """Decode an image file into an (H, W, C) array and its :class:`ImageInfo`.

    Returns uint8 for 8-bit modes, uint16 for ``I;16``, int32 for ``I`` and
    float32 for ``F`` (see the module docstring for mode conversions).

    Raises
    ------
    OSError, ValueError
        Unreadable, truncated or unsupported files (Pillow's errors).
    """
    Image, ImageOps = _pil()
    with Image.open(path) as im:
        fmt = im.format or "PNG"
        opts = _save_options(im)
        if im.getexif().get(0x0112, 1) != 1:  # EXIF orientation: warp what viewers display
            im = ImageOps.exif_transpose(im)
        im.load()
        mode = im.mode
        if mode == "1":
            im = im.convert("L")
        elif mode in ("P", "PA"):
            alpha = mode == "PA" or "transparency" in im.info
            im = im.convert("RGBA" if alpha else "RGB")
        elif mode in UINT16_MODES:
            arr = np.asarray(im).astype(np.uint16)  # native byte order
            return arr[:, :, None], ImageInfo(fmt, "I;16", opts)
        elif mode in ("I", "F"):
            arr = np.asarray(im).astype(np.int32 if mode == "I" else np.float32)
            return arr[:, :, None], ImageInfo(fmt, mode, opts)
        elif mode not in UINT8_MODES:
            im = im.convert("RGBA" if "A" in mode or "a" in mode else "RGB")
        arr = np.asarray(im)
        mode = im.mode
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.ascontiguousarray(arr), ImageInfo(fmt, mode, opts)


def to_warp_dtype(arr: np.ndarray) -> np.ndarray:
    """The array in a dtype the kernels warp (uint8 and float32 stay; uint16 -> float32; int32 -> float64)."""
    if arr.dtype == np.uint16:
        return arr.astype(np.float32)
    if arr.dtype == np.int32:
        return arr.astype(np.float64)
    return arr


def from_warp_dtype(warped: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Back to the file's dtype: round to nearest (ties up) and saturate integers."""
    dtype = np.dtype(dtype)
    if warped.dtype == dtype:
        return warped
    info = np.iinfo(dtype)
    return np.clip(np.floor(warped + 0.5), info.min, info.max).astype(dtype)


def _to_pil(arr: np.ndarray, mode: str):
    Image, _ = _pil()
    h, w = arr.shape[:2]
    if mode in UINT8_MODES:
        return Image.frombytes(mode, (w, h), np.ascontiguousarray(arr, dtype=np.uint8).tobytes())
    if mode == "I;16":
        return Image.frombytes("I;16", (w, h), np.ascontiguousarray(arr[:, :, 0], dtype="<u2").tobytes())
    return Image.fromarray(np.ascontiguousarray(arr[:, :, 0]))  # I (int32), F (float32)


def _fit_to_format(im, fmt: str):
    """Adapt the modes a format cannot store: JPEG drops alpha (LA -> L, RGBA -> RGB)."""
    if fmt == "JPEG" and im.mode in ("LA", "RGBA"):
        return im.convert("L" if im.mode == "LA" else "RGB")
    if fmt == "PPM" and im.mode in ("LA", "RGBA"):
        return im.convert("L" if im.mode == "LA" else "RGB")
    return im


def encode_image(arr: np.ndarray, info: ImageInfo, fileobj, *, format: str | None = None,
                 quality: int = 95) -> None:
    """Encode an (H, W, C) array as ``info.mode`` into an open binary file."""
    fmt = (format or info.format).upper()
    im = _fit_to_format(_to_pil(arr, info.mode), fmt)
    opts = dict(info.save_options)
    if fmt in ("JPEG", "WEBP", "JPEG2000") and not opts.get("lossless"):
        opts["quality"] = quality
    if fmt == "JPEG2000":
        opts.pop("quality", None)
    im.save(fileobj, format=fmt, **opts)


def _host() -> str:
    return socket.gethostname().replace(".", "_").replace("-", "_")


def _temp_name(path: str) -> str:
    d, name = os.path.split(path)
    tag = f"{_host()}-{os.getpid()}-{secrets.token_hex(4)}"
    return os.path.join(d, f".{name}.{tag}{TEMP_SUFFIX}")


def write_image(path: str | os.PathLike, arr: np.ndarray, info: ImageInfo, *,
                format: str | None = None, quality: int = 95, fsync: bool = False) -> None:
    """Encode ``arr`` and atomically put it at ``path`` (temporary file + :func:`os.replace`).

    The folder is created if needed.  On any error the temporary file is
    removed and the final path is left as it was.
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = _temp_name(path)
    try:
        with open(tmp, "wb") as f:
            encode_image(arr, info, f, format=format, quality=quality)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folders) -> int:
    """Delete temporaries of :func:`write_image` left by dead processes of this host in ``folders``.

    Returns the number of files removed.  Temporaries of live processes and of
    other hosts are left alone.
    """
    host = _host()
    removed = 0
    for folder in set(folders):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            if not (e.name.startswith(".") and e.name.endswith(TEMP_SUFFIX)):
                continue
            tag = e.name[: -len(TEMP_SUFFIX)].rsplit(".", 1)[-1]
            parts = tag.rsplit("-", 2)
            if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
                continue
            if not _pid_alive(int(parts[1])):
                with contextlib.suppress(OSError):
                    os.remove(e.path)
                    removed += 1
    return removed
