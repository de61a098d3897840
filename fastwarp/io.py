"""Reading and writing image files for batch warping (Pillow, OpenCV's codecs, a fast PNG writer).

Pixels come out of :func:`read_image` as an ``(H, W, C)`` array in a dtype
:func:`fastwarp.affine_warp` can warp exactly, together with what is needed to
write the result back in the same format, mode and bit depth
(:class:`ImageInfo`); :func:`write_image` writes atomically.  :func:`probe_image`
tells the decoded shape and dtype from the file's header (to budget memory
before decoding).

Codecs
------
Pillow reads every header (format, mode, metadata).  When OpenCV (``cv2``) is
importable, plain 8-bit JPEGs (``L``, ``RGB``, no ICC profile or DPI to keep),
8-bit ``L``/``RGB``/``RGBA`` and 16-bit PNGs without transparency chunk or
metadata, and 16-bit colour TIFFs are decoded by OpenCV (quicker, and the
only way to 16-bit colour), and JPEG outputs without metadata are encoded by
it; the pixels then stay in OpenCV's B, G, R order (``ImageInfo.order``), which
the warp does not care about.  PNG outputs are written by
:func:`fastwarp.batch.png.encode_png` (``Sub`` filter, deflate level ``png_level``,
default 1, with isal when installed).  Everything else goes through Pillow.

Modes
-----
* ``L``, ``LA``, ``RGB``, ``RGBA``, ``CMYK``, ``YCbCr``: uint8, kept as is.
* ``I;16`` (16-bit PNG, TIFF): uint16, warped in float32 and rounded back
  (nearest, ties up) so 16-bit stays 16-bit.  ``I`` (32-bit integers, e.g.
  16-bit PGM files) is warped in float64 and rounded back; ``F`` in float32.
* ``1`` (bilevel) becomes ``L``; ``P`` (palette) becomes ``RGB`` or ``RGBA``
  when it has transparency; other modes become ``RGB``/``RGBA``.  Interpolating
  palette indices would mix unrelated colours.
* 16-bit colour PNG and TIFF (``RGB;16``, ``RGBA;16`` here): uint16, decoded by
  OpenCV, warped like ``I;16`` and written as 16-bit PNG or TIFF.  Without
  OpenCV (Pillow reads them as 8-bit) they are refused with an error, never
  written 8-bit; their ICC profile and DPI are not kept.
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
import functools
import io
import os
import secrets
import socket
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ImageInfo", "Probe", "probe_image", "read_image", "write_image", "encode_image",
    "format_extension", "is_image_name", "remove_stale_temps", "to_warp_dtype", "from_warp_dtype",
]

UINT8_MODES = ("L", "LA", "RGB", "RGBA", "CMYK", "YCbCr")
UINT16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
COLOR16_MODES = ("RGB;16", "RGBA;16")
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
    order: str = "RGB"  # channel order of the pixels: "RGB" (Pillow) or "BGR" (OpenCV)


def _pil():
    from PIL import Image, ImageOps

    return Image, ImageOps


def _cv2():
    """OpenCV, or None when it is not installed (then Pillow does everything it can)."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


@functools.lru_cache(maxsize=1)
def _readable_extensions() -> frozenset:
    Image, _ = _pil()
    Image.init()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


# Extensions answered without the full registry: Pillow's registry loads every one of its
# plugins (about 0.2 s, at the start of every folder walk); tests check both sets against it.
COMMON_IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".bmp", ".dib", ".gif", ".tif", ".tiff",
    ".webp", ".ppm", ".pgm", ".pbm", ".pnm"})
COMMON_OTHER_EXTENSIONS = frozenset({
    "", ".txt", ".json", ".csv", ".md", ".py", ".yaml", ".yml", ".xml", ".html", ".log", ".zip",
    ".tar", ".gz", ".npy", ".npz", ".part", ".tmp"})


def is_image_name(name: str) -> bool:
    """Whether a file name has an extension Pillow can open."""
    ext = os.path.splitext(name)[1].lower()
    if ext in COMMON_IMAGE_EXTENSIONS:
        return True
    if ext in COMMON_OTHER_EXTENSIONS:
        return False
    return ext in _readable_extensions()


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


@dataclass(frozen=True)
class Probe:
    """What :func:`read_image` will return, known from the header: shape, dtype, decoder."""

    path: str
    shape: tuple[int, int, int]
    dtype: np.dtype
    file_bytes: int
    info: ImageInfo
    codec: str  # "cv2" or "pil"
    cv2_flag: int = -1
    data: bytes | None = field(default=None, repr=False)  # the file, when read for the header

    @property
    def nbytes(self) -> int:
        """Bytes of the decoded array."""
        h, w, c = self.shape
        return h * w * c * np.dtype(self.dtype).itemsize


def _raw_mode(im) -> str:
    tile = getattr(im, "tile", None) or []
    if not tile:
        return ""
    args = tile[0][3] if len(tile[0]) > 3 else None
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


_PIL_CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "CMYK": 4, "YCbCr": 3}


def _probe_bytes(path: str, data: bytes, cv2) -> Probe | None:
    """The probe of a plain JPEG/PNG from its bytes (:func:`fastwarp.batch.sniff.sniff`), or None."""
    from .batch.sniff import sniff

    found = sniff(data)
    if found is None:
        return None
    fmt, mode, h, w = found
    if mode in COLOR16_MODES:
        shape, dt = (h, w, 3 if mode == "RGB;16" else 4), np.uint16
    elif mode == "I;16":
        shape, dt = (h, w, 1), np.uint16
    else:
        shape, dt = (h, w, _PIL_CHANNELS[mode]), np.uint8
    if fmt == "JPEG":
        flag = cv2.IMREAD_GRAYSCALE if mode == "L" else cv2.IMREAD_COLOR
    else:
        flag = cv2.IMREAD_UNCHANGED
    return Probe(path, shape, np.dtype(dt), len(data), ImageInfo(fmt, mode, {}, "BGR"), "cv2", flag, data)


def probe_image(path: str | os.PathLike) -> Probe:
    """Read a file's header (Pillow, lazily) and decide how it will be decoded.

    Raises
    ------
    OSError, ValueError
        Unreadable or unsupported files, and 16-bit colour files when OpenCV
        is not installed (they would otherwise come out 8-bit).
    """
    path = os.fspath(path)
    cv2 = _cv2()
    if cv2 is not None:
        with open(path, "rb") as f:
            data = f.read()
        fast = _probe_bytes(path, data, cv2)
        if fast is not None:
            return fast
    Image, _ = _pil()
    with Image.open(path) as im:
        fmt = im.format or "PNG"
        opts = _save_options(im)
        mode = im.mode
        raw = _raw_mode(im)
        w, h = im.size
        orientation = im.getexif().get(0x0112, 1) if fmt != "PNG" or "exif" in im.info else 1
        transparent = "transparency" in im.info
    file_bytes = os.path.getsize(path)
    if orientation in (5, 6, 7, 8):
        h, w = w, h
    color16 = mode in ("RGB", "RGBA") and ";16" in raw
    if color16:
        if cv2 is None:
            raise ValueError(f"{mode} 16-bit per channel image: reading it as 16 bits needs OpenCV "
                             "(pip install opencv-python-headless); refusing to convert it to 8 bits")
        c = 3 if mode == "RGB" else 4
        return Probe(path, (h, w, c), np.dtype(np.uint16), file_bytes,
                     ImageInfo(fmt, mode + ";16", {}, "BGR"), "cv2", cv2.IMREAD_UNCHANGED)
    if cv2 is not None and not opts:
        if fmt == "JPEG" and mode in ("L", "RGB") and raw in ("L", "RGB"):
            flag = cv2.IMREAD_GRAYSCALE if mode == "L" else cv2.IMREAD_COLOR
            return Probe(path, (h, w, _PIL_CHANNELS[mode]), np.dtype(np.uint8), file_bytes,
                         ImageInfo(fmt, mode, {}, "BGR"), "cv2", flag)
        if fmt == "PNG" and not transparent and orientation == 1:
            if mode in ("L", "RGB", "RGBA") and raw == mode:
                return Probe(path, (h, w, _PIL_CHANNELS[mode]), np.dtype(np.uint8), file_bytes,
                             ImageInfo(fmt, mode, {}, "BGR"), "cv2", cv2.IMREAD_UNCHANGED)
            if mode in UINT16_MODES and raw.startswith("I;16"):
                return Probe(path, (h, w, 1), np.dtype(np.uint16), file_bytes,
                             ImageInfo(fmt, "I;16", {}, "BGR"), "cv2", cv2.IMREAD_UNCHANGED)
    # Pillow: the shape and dtype after the conversions of _read_pil
    if mode in UINT16_MODES:
        c, dt, m = 1, np.uint16, "I;16"
    elif mode in ("I", "F"):
        c, dt, m = 1, (np.int32 if mode == "I" else np.float32), mode
    elif mode == "1":
        c, dt, m = 1, np.uint8, "L"
    elif mode in ("P", "PA"):
        alpha = mode == "PA" or transparent
        c, dt, m = (4 if alpha else 3), np.uint8, ("RGBA" if alpha else "RGB")
    elif mode in UINT8_MODES:
        c, dt, m = _PIL_CHANNELS[mode], np.uint8, mode
    else:
        alpha = "A" in mode or "a" in mode
        c, dt, m = (4 if alpha else 3), np.uint8, ("RGBA" if alpha else "RGB")
    return Probe(path, (h, w, c), np.dtype(dt), file_bytes, ImageInfo(fmt, m, opts), "pil")


def _complete(data: bytes, fmt: str) -> bool:
    """Whether encoded data ends as a whole file should (libjpeg and libpng accept truncated data)."""
    if fmt == "JPEG":
        return data.rstrip(b"\x00").endswith(b"\xff\xd9")
    if fmt == "PNG":
        return data.endswith(b"IEND\xaeB`\x82")
    return True


def _read_cv2(probe: Probe):
    cv2 = _cv2()
    data = probe.data
    if data is None:
        with open(probe.path, "rb") as f:
            data = f.read()
    if not _complete(data, probe.info.format):
        return None
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), probe.cv2_flag)
    if arr is None:
        return None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape != probe.shape or arr.dtype != probe.dtype:
        return None
    return arr


def _read_pil(path):
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


def read_image(path: str | os.PathLike, probe: Probe | None = None) -> tuple[np.ndarray, ImageInfo]:
    """Decode an image file into an (H, W, C) array and its :class:`ImageInfo`.

    Returns uint8 for 8-bit modes, uint16 for ``I;16`` and 16-bit colour,
    int32 for ``I`` and float32 for ``F`` (see the module docstring for mode
    conversions and channel order).

    Parameters
    ----------
    path : str or PathLike
    probe : Probe, optional
        The file's :func:`probe_image` result, when already known.

    Raises
    ------
    OSError, ValueError
        Unreadable, truncated or unsupported files (Pillow's errors).
    """
    probe = probe or probe_image(path)
    if probe.codec == "cv2":
        arr = _read_cv2(probe)
        if arr is not None:
            return arr, probe.info
        if probe.info.mode in COLOR16_MODES:
            raise OSError(f"OpenCV could not decode the 16-bit colour image {probe.path} (truncated?)")
    return _read_pil(path)  # Pillow's error for damaged files; its decoding otherwise


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


def _in_order(arr: np.ndarray, have: str, want: str) -> np.ndarray:
    """Colour channels reordered from ``have`` to ``want`` ("RGB"/"BGR"); alpha stays last."""
    if have == want or arr.shape[2] < 3:
        return arr
    return arr[:, :, [2, 1, 0, 3][: arr.shape[2]]]


def encode_image(arr: np.ndarray, info: ImageInfo, *, format: str | None = None, quality: int = 95,
                 png_level: int = 1) -> bytes:
    """Encode an (H, W, C) array of ``info.mode`` pixels (in ``info.order``) as file bytes.

    :func:`write_image` uses the same encoders without joining the parts.

    Parameters
    ----------
    arr : ndarray
    info : ImageInfo
    format : str, optional
        Pillow format name; default ``info.format``.
    quality : int, default 95
        JPEG/WebP quality.
    png_level : int, default 1
        PNG deflate level 0-9.

    Raises
    ------
    ValueError
        For a format that cannot hold the mode (16-bit colour outside PNG/TIFF).
    """
    return b"".join(bytes(p) for p in _encode_parts(arr, info, format, quality, png_level))


def _encode_parts(arr: np.ndarray, info: ImageInfo, format, quality, png_level) -> list:
    """The encoded file as bytes-like parts (no copy of the whole file where it can be helped)."""
    from .batch.png import png_parts

    fmt = (format or info.format).upper()
    mode = info.mode
    opts = dict(info.save_options)
    if fmt == "PNG" and arr.dtype in (np.uint8, np.uint16) and \
            mode in ("L", "LA", "RGB", "RGBA", "I;16", *COLOR16_MODES):
        c = arr.shape[2]
        order = [2, 1, 0, 3][:c] if info.order == "BGR" and c >= 3 else None
        return png_parts(arr, level=png_level, icc_profile=opts.get("icc_profile"), dpi=opts.get("dpi"),
                         order=order)
    cv2 = _cv2()
    if mode in COLOR16_MODES:
        if fmt != "TIFF" or cv2 is None:
            raise ValueError(f"16-bit colour can be written as PNG or TIFF only, not {fmt}; "
                             "use --format png")
        ok, buf = cv2.imencode(".tif", np.ascontiguousarray(_in_order(arr, info.order, "BGR")))
        if not ok:
            raise OSError("OpenCV could not encode the TIFF")
        return [buf]
    if fmt == "JPEG" and cv2 is not None and mode in ("L", "LA", "RGB", "RGBA") and \
            arr.dtype == np.uint8 and not opts:
        px = arr[:, :, :1] if mode in ("L", "LA") else _in_order(arr[:, :, :3], info.order, "BGR")
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(px), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise OSError("OpenCV could not encode the JPEG")
        return [buf]
    im = _fit_to_format(_to_pil(np.ascontiguousarray(_in_order(arr, info.order, "RGB")), mode), fmt)
    if fmt in ("JPEG", "WEBP", "JPEG2000") and not opts.get("lossless"):
        opts["quality"] = quality
    if fmt == "JPEG2000":
        opts.pop("quality", None)
    out = io.BytesIO()
    im.save(out, format=fmt, **opts)
    return [out.getbuffer()]


def _host() -> str:
    return socket.gethostname().replace(".", "_").replace("-", "_")


def _temp_name(path: str) -> str:
    d, name = os.path.split(path)
    tag = f"{_host()}-{os.getpid()}-{secrets.token_hex(4)}"
    return os.path.join(d, f".{name}.{tag}{TEMP_SUFFIX}")


def _write_all(f, parts: list) -> None:
    for part in parts:
        f.write(part)


def write_image(path: str | os.PathLike, arr: np.ndarray, info: ImageInfo, *,
                format: str | None = None, quality: int = 95, png_level: int = 1,
                fsync: bool = False) -> None:
    """Encode ``arr`` (in memory) and atomically put it at ``path`` (temporary file + :func:`os.replace`).

    The folder is created if needed.  On any error the temporary file is
    removed and the final path is left as it was.
    """
    path = os.fspath(path)
    data = _encode_parts(arr, info, format, quality, png_level)
    tmp = _temp_name(path)
    try:
        try:
            f = open(tmp, "wb")
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            f = open(tmp, "wb")
        with f:
            _write_all(f, data)
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
