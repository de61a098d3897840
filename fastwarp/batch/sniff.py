"""Size and pixel layout of plain JPEG and PNG files from their first bytes, without Pillow.

:func:`sniff` answers only for the files OpenCV decodes exactly as Pillow
would (no metadata that the Pillow path keeps or applies: ICC profile, DPI,
EXIF, transparency, Adobe colour transforms); for anything else it returns
None and the caller asks Pillow.  Pillow's lazy open costs about as much as
decoding a small JPEG, so this matters for folders of small images.
"""

from __future__ import annotations

import struct

__all__ = ["sniff"]

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
# (colour type, bit depth) -> mode
_PNG_MODES = {(0, 8): "L", (0, 16): "I;16", (2, 8): "RGB", (2, 16): "RGB;16", (6, 8): "RGBA",
              (6, 16): "RGBA;16"}
# chunks before IDAT that the Pillow path would keep or act on
_PNG_REFUSE = {b"iCCP", b"pHYs", b"tRNS", b"eXIf", b"PLTE", b"acTL"}
_SOF_PLAIN = {0xC0, 0xC1, 0xC2}  # baseline, extended, progressive Huffman


def _png(data: bytes):
    if len(data) < 33 or data[12:16] != b"IHDR":
        return None
    w, h, depth, ctype, _comp, _filt, _interlace = struct.unpack(">IIBBBBB", data[16:29])
    mode = _PNG_MODES.get((ctype, depth))
    if mode is None or not w or not h:
        return None
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT":
            return "PNG", mode, h, w
        if kind in _PNG_REFUSE:
            return None
        pos += 12 + length
    return None


def _jpeg(data: bytes):
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        seg = data[pos + 4:pos + 2 + length]
        if marker == 0xE0 and seg[:5] == b"JFIF\x00" and len(seg) >= 8 and seg[7] != 0:
            return None  # density in dots per inch/cm: Pillow keeps it as dpi
        if marker == 0xE1 and seg[:4] == b"Exif":
            return None  # orientation and the rest: Pillow's path
        if marker == 0xE2 and seg[:12] == b"ICC_PROFILE\x00":
            return None
        if marker == 0xEE and seg[:5] == b"Adobe":
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if marker not in _SOF_PLAIN or len(seg) < 6 or seg[0] != 8:
                return None
            h, w, comps = int.from_bytes(seg[1:3], "big"), int.from_bytes(seg[3:5], "big"), seg[5]
            if not h or not w or comps not in (1, 3):
                return None
            return "JPEG", ("L" if comps == 1 else "RGB"), h, w
        if marker == 0xDA:  # start of scan before a frame header
            return None
        pos += 2 + length
    return None


def sniff(data: bytes):
    """``(format, mode, height, width)`` of a plain JPEG or PNG, or None.

    Modes: ``L``, ``RGB`` (JPEG); ``L``, ``RGB``, ``RGBA``, ``I;16``,
    ``RGB;16``, ``RGBA;16`` (PNG, 8 or 16 bits).
    """
    if data[:8] == _PNG_SIG:
        return _png(data)
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg(data)
    return None
