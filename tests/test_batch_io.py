"""Batch-warp I/O: the PNG writer, header sniffing, 16-bit colour end to end, Pillow-only modes,
the byte budget and peak memory of ``fastwarp warp`` on large images."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from PIL import Image

import fastwarp
import fastwarp.batch.png as png_mod
import fastwarp.io as io_mod
from fastwarp import reference
from fastwarp.batch.budget import ByteBudget, parse_bytes
from fastwarp.batch.sniff import sniff
from fastwarp.cli import main
from fastwarp.transforms import affine_theta


def _pil_pixels(data_or_path):
    src = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    with Image.open(src) as im:
        im.load()
        return im.mode, np.asarray(im)


@pytest.mark.parametrize("backend", ["zlib", "default"])
def test_png_writer_round_trips(rng, monkeypatch, backend):
    if backend == "zlib":
        monkeypatch.setattr(png_mod, "_isal", lambda: None)
        assert png_mod.deflate_backend(1) == "zlib"
    modes = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
    for c in (1, 2, 3, 4):
        for dtype in (np.uint8, np.uint16):
            h, w = (int(v) for v in rng.integers(1, 40, 2))
            a = rng.integers(0, np.iinfo(dtype).max + 1, (h, w, c)).astype(dtype)
            for level in (0, 1, 3, 9):
                data = png_mod.encode_png(a, level=level, dpi=(300, 150))
                # OpenCV reads every depth and channel count (B, G, R order)
                got = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
                got = got.reshape(h, w, -1)
                if c >= 3:
                    got = got[:, :, [2, 1, 0, 3][:c]]
                if c == 2:  # OpenCV expands gray+alpha to BGRA
                    got = got[:, :, [0, 3]]
                np.testing.assert_array_equal(got, a, err_msg=f"{c} {dtype} {level}")
                if dtype == np.uint8 or c == 1:  # Pillow reads these as they are
                    mode, px = _pil_pixels(data)
                    assert mode == (modes[c] if dtype == np.uint8 else "I;16")
                    np.testing.assert_array_equal(px.reshape(h, w, c), a)
                with Image.open(io.BytesIO(data)) as im:
                    assert [round(d) for d in im.info["dpi"]] == [300, 150]


def test_png_writer_levels_and_errors(rng):
    yy, xx = np.mgrid[0:61, 0:47]
    smooth = np.stack([xx * 3, yy * 2, xx + yy], -1).astype(np.uint8)
    sizes = [len(png_mod.encode_png(smooth, level=lv)) for lv in (0, 1, 9)]
    assert sizes[0] > sizes[1] >= sizes[2]
    with pytest.raises(TypeError, match="arr"):
        png_mod.encode_png(smooth.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        png_mod.encode_png(smooth[:, :, 0])
    with pytest.raises(ValueError, match="level"):
        png_mod.encode_png(smooth, level=10)


def test_sniff_agrees_with_pillow_and_declines_metadata(rng, tmp_path):
    cases = []
    for mode, shape in (("L", (13, 7)), ("RGB", (9, 21, 3)), ("RGBA", (5, 6, 4))):
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        for fmt in ("PNG", "JPEG"):
            if fmt == "JPEG" and mode == "RGBA":
                continue
            buf = io.BytesIO()
            Image.fromarray(a).save(buf, format=fmt, **({"progressive": True} if fmt == "JPEG" else {}))
            cases.append((buf.getvalue(), (fmt, mode, *shape[:2])))
    g16 = rng.integers(0, 65536, (11, 4)).astype(np.uint16)
    cases.append((cv2.imencode(".png", g16)[1].tobytes(), ("PNG", "I;16", 11, 4)))
    c16 = rng.integers(0, 65536, (3, 8, 3)).astype(np.uint16)
    cases.append((cv2.imencode(".png", c16)[1].tobytes(), ("PNG", "RGB;16", 3, 8)))
    for data, expected in cases:
        assert sniff(data) == expected
    # what the Pillow path must see: ICC profile, EXIF, DPI, palette, transparency, CMYK, other formats
    rgb = Image.fromarray(rng.integers(0, 256, (8, 9, 3), dtype=np.uint8))
    declined = []
    for kwargs, fmt, im in (({"icc_profile": b"\0" * 128}, "JPEG", rgb), ({"dpi": (300, 300)}, "JPEG", rgb),
                            ({"exif": rgb.getexif().tobytes()}, "JPEG", rgb), ({"dpi": (72, 72)}, "PNG", rgb),
                            ({}, "PNG", rgb.convert("P")), ({"transparency": (1, 2, 3)}, "PNG", rgb),
                            ({}, "JPEG", rgb.convert("CMYK")), ({}, "BMP", rgb), ({}, "TIFF", rgb)):
        if "exif" in kwargs:
            exif = im.getexif()
            exif[0x0112] = 3
            kwargs = {"exif": exif.tobytes()}
        buf = io.BytesIO()
        im.save(buf, format=fmt, **kwargs)
        declined.append(sniff(buf.getvalue()))
    assert declined == [None] * len(declined)
    assert sniff(b"") is None and sniff(b"\x89PNG\r\n\x1a\n" + b"\0" * 30) is None


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16_bit_colour_and_gray_stay_16_bit(rng, tmp_path, ext):
    d = tmp_path / "in"
    d.mkdir()
    images = {"rgb": rng.integers(0, 65536, (13, 17, 3)), "rgba": rng.integers(0, 65536, (9, 11, 4)),
              "gray": rng.integers(0, 65536, (10, 7, 1))}
    for name, a in images.items():  # files written by OpenCV: channels B, G, R(, A)
        assert cv2.imwrite(str(d / f"{name}{ext}"), a.astype(np.uint16))
    assert main(["warp", str(d), "-o", str(tmp_path / "o"), "--rotate", "23", "--scale", "1.2",
                 "--padding", "reflection", "-q"]) == 0
    for name, a in images.items():
        got = cv2.imread(str(tmp_path / "o" / f"{name}{ext}"), cv2.IMREAD_UNCHANGED)
        assert got.dtype == np.uint16, name
        theta = affine_theta(a.shape[:2], rotation=23, scale=1.2)
        exp = fastwarp.affine_warp(a.astype(np.uint16), theta, padding_mode="reflection")
        np.testing.assert_array_equal(got.reshape(exp.shape), exp, err_msg=name)
        # the uint16 kernels round the float64 interpolation: within 1 of the reference
        want = reference.affine_warp(a[None].astype(np.uint16), theta, None, "bilinear", "reflection")[0]
        assert np.abs(exp.astype(int) - want.astype(int)).max() <= 1
        assert exp.max() > 255


def test_16_bit_colour_is_refused_rather_than_made_8_bit(rng, tmp_path, monkeypatch, capsys):
    d = tmp_path / "in"
    d.mkdir()
    cv2.imwrite(str(d / "c16.png"), rng.integers(0, 65536, (6, 5, 3)).astype(np.uint16))
    Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).save(d / "c8.png")
    monkeypatch.setattr(io_mod, "_cv2", lambda: None)  # as without OpenCV: Pillow reads 8 bits
    assert main(["warp", str(d), "-o", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "c16.png" in err and "16-bit" in err
    assert os.listdir(tmp_path / "o") == ["c8.png"]
    # and 16-bit colour cannot be written as JPEG
    monkeypatch.undo()
    assert main(["warp", str(d / "c16.png"), "-o", str(tmp_path / "j"), "--format", "jpeg", "-q"]) == 2
    assert "PNG or TIFF only" in capsys.readouterr().err


def test_pillow_modes_keep_working(rng, tmp_path):
    """Palette, LA, CMYK JPEG, an ICC profile and EXIF orientation take the Pillow path as before."""
    d = tmp_path / "in"
    d.mkdir()
    rgb = rng.integers(0, 256, (11, 14, 3), dtype=np.uint8)
    Image.fromarray(rgb).quantize(16).save(d / "pal.png")
    Image.fromarray(rng.integers(0, 256, (9, 7, 2), dtype=np.uint8), "LA").save(d / "la.png")
    Image.fromarray(rgb).convert("CMYK").save(d / "cmyk.jpg", quality=95)
    Image.fromarray(rgb).save(d / "icc.jpg", icc_profile=b"\0" * 200, quality=95)
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 8  # displayed rotated 90 degrees counter-clockwise
    im.save(d / "turned.png", exif=exif)
    assert main(["warp", str(d), "-o", str(tmp_path / "o"), "--rotate", "9", "-q"]) == 0
    out = tmp_path / "o"
    modes = {}
    for f in sorted(os.listdir(out)):
        with Image.open(out / f) as im:
            modes[f] = im.mode
            if f == "icc.jpg":
                assert im.info.get("icc_profile") == b"\0" * 200
    assert modes == {"cmyk.jpg": "CMYK", "icc.jpg": "RGB", "la.png": "LA", "pal.png": "RGB",
                     "turned.png": "RGB"}
    # the EXIF-oriented PNG is warped as displayed
    with Image.open(d / "turned.png") as src:
        from PIL import ImageOps

        shown = np.asarray(ImageOps.exif_transpose(src))
    exp = fastwarp.affine_warp(shown, affine_theta(shown.shape[:2], rotation=9))
    np.testing.assert_array_equal(_pil_pixels(str(out / "turned.png"))[1], exp)


def test_png_level_option(rng, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    yy, xx = np.mgrid[0:97, 0:83]
    Image.fromarray(np.stack([xx * 2, yy, xx + yy], -1).astype(np.uint8)).save(d / "a.png")
    sizes = {}
    for level in (0, 9):
        o = tmp_path / f"o{level}"
        assert main(["warp", str(d), "-o", str(o), "--rotate", "4", "--png-level", str(level), "-q"]) == 0
        sizes[level] = os.path.getsize(o / "a.png")
    np.testing.assert_array_equal(_pil_pixels(str(tmp_path / "o0" / "a.png"))[1],
                                  _pil_pixels(str(tmp_path / "o9" / "a.png"))[1])
    assert sizes[0] > 2 * sizes[9]
    assert main(["warp", str(d), "-o", str(tmp_path / "x"), "--png-level", "12", "-q"]) == 1
    assert main(["warp", str(d), "-o", str(tmp_path / "x"), "--memory-budget", "lots", "-q"]) == 1


def test_byte_budget_bounds_concurrent_reservations(rng):
    assert parse_bytes("512MiB") == 512 * 2**20 and parse_bytes("1.5GB") == 1_500_000_000
    assert parse_bytes(4096) == 4096
    for bad in ("", "-3MB", "12XB", "0"):
        with pytest.raises(ValueError, match="memory budget"):
            parse_bytes(bad)
    budget = ByteBudget(1000)
    live = {"now": 0, "max": 0}
    lock = threading.Lock()
    sizes = [int(v) for v in rng.integers(1, 700, 60)] + [2500]  # the last one alone exceeds the budget

    def use(n):
        held = budget.acquire(n)
        with lock:
            live["now"] += n
            live["max"] = max(live["max"], live["now"])
            alone = live["now"] == n
        time.sleep(0.001)
        with lock:
            live["now"] -= n
        budget.release(held)
        return alone

    threads = []
    results = {}
    for i, n in enumerate(sizes):
        t = threading.Thread(target=lambda i=i, n=n: results.__setitem__(i, use(n)))
        threads.append(t)
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == len(sizes) and budget.used == 0
    assert results[len(sizes) - 1]  # the oversized one ran alone
    big = sizes[-1]
    assert live["max"] <= max(1000, big) and budget.peak == live["max"]
    assert live["max"] > max(sizes[:-1])  # reservations did overlap


_PEAK_SCRIPT = r"""
import json, sys, tracemalloc
import numpy as np
import fastwarp
from fastwarp.folder import OutputOptions, TransformSpec, plan_jobs, run_local
src, out, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
fastwarp.affine_warp(np.zeros((4, 5, 3), np.uint8), np.eye(2, 3))  # load the kernels first
fastwarp.affine_warp(np.zeros((4, 5, 3), np.float32), np.eye(2, 3))
jobs, _ = plan_jobs([src], out)
tracemalloc.start()
report = run_local(jobs, TransformSpec(rotate=(11, 11)), OutputOptions(), workers=4, memory_budget=budget)
print(json.dumps({"peak": tracemalloc.get_traced_memory()[1], "written": report.written,
                  "failed": len(report.failures)}))
"""


def _peak(src, out, budget):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    res = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(src), str(out), str(budget)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_peak_memory_stays_under_the_budget_on_large_images(rng, tmp_path):
    """Large 8-bit and 16-bit images, 4 I/O threads: the bytes Python and NumPy hold at once
    (tracemalloc, which sees OpenCV's and NumPy's arrays and the file bytes) stay under the
    memory budget, and the same run with a budget too large to matter goes over it."""
    src = tmp_path / "big"
    src.mkdir()
    h, w = 1203, 1001
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    for i in range(7):
        cv2.imwrite(str(src / f"rgb{i}.png"), np.roll(base, 37 * i, axis=1), [cv2.IMWRITE_PNG_COMPRESSION, 0])
    cv2.imwrite(str(src / "deep.png"), base.astype(np.uint16) * 257, [cv2.IMWRITE_PNG_COMPRESSION, 0])
    one_image = h * w * 3
    # about two 8-bit files in flight (or the 16-bit one alone): with no budget, four threads
    # hold several more at once (95-99 MB against 50-52 MB under this budget, measured)
    budget = 18 * one_image
    tight = _peak(src, tmp_path / "o1", budget)
    assert tight["written"] == 8 and tight["failed"] == 0
    print("peak MB tight", tight["peak"] / 1e6, "budget", budget / 1e6)
    assert tight["peak"] <= budget, tight
    loose = _peak(src, tmp_path / "o2", 100 * budget)
    assert loose["written"] == 8
    print("loose", loose["peak"] / 1e6)
    assert loose["peak"] > budget, loose  # files side by side do not fit: the bound is what held
    assert tight["peak"] > 3 * one_image  # the measure does see the pixels


def test_image_names_without_loading_every_pillow_plugin(monkeypatch):
    """Common extensions are answered from fixed sets that agree with Pillow's registry; only
    other extensions load the registry."""
    readable = io_mod._readable_extensions()
    assert io_mod.COMMON_IMAGE_EXTENSIONS <= readable
    assert io_mod.COMMON_OTHER_EXTENSIONS.isdisjoint(readable)
    calls = []
    monkeypatch.setattr(io_mod, "_readable_extensions", lambda: calls.append(1) or readable)
    monkeypatch.setattr(Image, "init", lambda: (_ for _ in ()).throw(AssertionError("init called")))
    assert all(io_mod.is_image_name(n) for n in ("a/b.JPG", "x.tiff", "p.png"))
    assert not io_mod.is_image_name("notes.txt") and not io_mod.is_image_name("README")
    assert calls == []
    rare = sorted(readable - io_mod.COMMON_IMAGE_EXTENSIONS)[0]  # e.g. a Pillow-only format
    assert io_mod.is_image_name("f" + rare) and calls == [1]
    assert not io_mod.is_image_name("f.not-an-image-ext") and calls == [1, 1]
