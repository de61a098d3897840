"""``fastwarp warp``: outputs against fastwarp.affine_warp, formats and modes, determinism,
resuming, failures, atomic writes and refusals."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import fastwarp
from fastwarp.cli import main
from fastwarp.folder import TransformSpec, plan_jobs
from fastwarp.io import encode_image, read_image
from fastwarp.transforms import affine_theta, theta_from_cv2, theta_from_homography


def _u8(rng, shape):
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


@pytest.fixture
def folder(tmp_path, rng):
    """A small tree of images of several formats, modes and odd sizes."""
    d = tmp_path / "in"
    (d / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(_u8(rng, (13, 17, 3))).save(d / "rgb.png")
    Image.fromarray(_u8(rng, (13, 17, 4))).save(d / "sub" / "rgba.png")
    Image.fromarray(_u8(rng, (9, 11))).save(d / "sub" / "gray.png")
    Image.fromarray(_u8(rng, (16, 24, 3))).save(d / "photo.jpg", quality=90)
    Image.fromarray(_u8(rng, (7, 5, 3))).save(d / "sub" / "deeper" / "tiny.ppm")
    Image.fromarray(rng.integers(0, 65536, size=(10, 12)).astype(np.uint16)).save(d / "depth16.png")
    Image.fromarray(_u8(rng, (1, 1, 3))).save(d / "one.png")
    (d / "notes.txt").write_text("not an image")  # ignored in folders
    return d


def _files(root):
    return sorted(os.path.relpath(os.path.join(r, f), root).replace(os.sep, "/")
                  for r, _, fs in os.walk(root) for f in fs)


def _load(path):
    with Image.open(path) as im:
        return im.format, im.mode, np.asarray(im)


def _warped(src_path, theta, size=None, **flags):
    """The warp of a decoded input by fastwarp.affine_warp (perspective_warp for a 3 x 3 theta),
    in the file's own dtype (16-bit stays 16-bit), and its info."""
    pixels, info = read_image(src_path)
    warp = fastwarp.perspective_warp if np.shape(theta) == (3, 3) else fastwarp.affine_warp
    return warp(pixels, theta, size, **flags), info


def _as_displayed(w, info):
    """(H, W, C) pixels in the file's channel order as Pillow shows them (RGB, or 2-D for one channel)."""
    if info.order == "BGR" and w.shape[2] >= 3:
        w = w[:, :, [2, 1, 0, 3][: w.shape[2]]]
    return w[:, :, 0] if w.shape[2] == 1 else w


def _expected(src_path, theta, size=None, **flags):
    return _as_displayed(*_warped(src_path, theta, size, **flags))


def _no_temps(root):
    return [f for f in _files(root) if f.endswith(".fwtmp")]


def test_fixed_transform_matches_affine_warp(folder, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["warp", str(folder), "-o", str(out), "--rotate", "17", "--scale", "1.3",
               "--shift", "2", "-1.5", "--shear", "8", "--padding", "border", "-q"])
    assert rc == 0, capsys.readouterr()
    assert _files(out) == ["depth16.png", "one.png", "photo.jpg", "rgb.png", "sub/deeper/tiny.ppm",
                           "sub/gray.png", "sub/rgba.png"]
    for rel in _files(out):
        src = folder / rel
        in_fmt, in_mode, in_px = _load(src)
        fmt, mode, px = _load(out / rel)
        assert (fmt, mode, px.shape) == (in_fmt, in_mode, in_px.shape), rel
        theta = affine_theta(in_px.shape[:2], rotation=17, scale=1.3, translation=(2, -1.5), shear=8)
        exp = _expected(src, theta, padding_mode="border")
        if fmt == "JPEG":  # lossy: compare with the expected pixels encoded the same way (quality 95)
            w, info = _warped(src, theta, padding_mode="border")
            buf = io.BytesIO(encode_image(w, info, quality=95))
            np.testing.assert_array_equal(px, _load(buf)[2], err_msg=rel)
            # and the encoder is a real quality-95 JPEG encoder: close to the warp
            assert np.abs(px.astype(int) - exp).mean() < 8, rel
        else:
            np.testing.assert_array_equal(px, exp, err_msg=rel)
    assert "7 written, 0 skipped (existing), 0 failed" in capsys.readouterr().out
    assert not _no_temps(out)


def test_homography_bicubic_constant_fill_and_wrap(folder, tmp_path, capsys):
    """A 9-number --matrix is cv2.warpPerspective's homography; --fill is what constant padding reads."""
    h = [1.0, 0.15, -2.0, -0.05, 0.95, 1.0, 0.004, -0.003, 1.0]
    out = tmp_path / "out"
    rc = main(["warp", str(folder / "rgb.png"), str(folder / "depth16.png"), "-o", str(out), "--matrix",
               *map(str, h), "--mode", "bicubic", "--padding", "constant", "--fill", "200", "-q"])
    assert rc == 0, capsys.readouterr()
    for name in ("rgb.png", "depth16.png"):
        shape = _load(folder / name)[2].shape
        theta = theta_from_homography(np.array(h).reshape(3, 3), shape[:2])
        exp = _expected(folder / name, theta, mode="bicubic", padding_mode="constant", fill_value=200)
        got = _load(out / name)[2]
        assert got.dtype == exp.dtype, name
        np.testing.assert_array_equal(got, exp, err_msg=name)
    rc = main(["warp", str(folder / "rgb.png"), "-o", str(tmp_path / "wrap"), "--shift", "7", "-4",
               "--padding", "wrap", "--fill", "1", "-q"])
    assert rc == 1 and "--fill needs --padding constant" in capsys.readouterr().err
    rc = main(["warp", str(folder / "rgb.png"), "-o", str(tmp_path / "wrap"), "--shift", "7", "-4",
               "--padding", "wrap", "-q"])
    assert rc == 0
    theta = affine_theta((13, 17), translation=(7, -4))
    np.testing.assert_array_equal(_load(tmp_path / "wrap" / "rgb.png")[2],
                                  _expected(folder / "rgb.png", theta, padding_mode="wrap"))
    rc = main(["warp", str(folder / "rgb.png"), "-o", str(tmp_path / "bad"), "--matrix", "1", "2", "3", "-q"])
    assert rc == 1 and "--matrix takes 6 numbers (affine) or 9 (homography); got 3" in capsys.readouterr().err



def test_antialias_zoom_out(tmp_path, rng, capsys):
    """--antialias filters the footprint where the warp shrinks: fastwarp.affine_warp(..., antialias=True)."""
    src_dir = tmp_path / "in"
    src_dir.mkdir()
    Image.fromarray(rng.integers(1, 256, (37, 45, 3), dtype=np.uint8)).save(src_dir / "big.png")
    src = src_dir / "big.png"
    out, plain = tmp_path / "out", tmp_path / "plain"
    args = ["warp", str(src), "--scale", "0.25", "--rotation", "10", "-q"]
    assert main([*args, "-o", str(out), "--antialias"]) == 0, capsys.readouterr()
    assert main([*args, "-o", str(plain)]) == 0
    theta = affine_theta((37, 45), rotation=10, scale=0.25)
    got = _load(out / "big.png")[2]
    np.testing.assert_array_equal(got, _expected(src, theta, antialias=True))
    assert not np.array_equal(got, _load(plain / "big.png")[2])
    capsys.readouterr()
    rc = main([*args, "-o", str(tmp_path / "bad"), "--antialias", "--mode", "nearest"])
    err = capsys.readouterr().err
    assert rc == 1 and "fastwarp warp: error: --antialias needs --mode bilinear or bicubic" in err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding", ["zeros", "reflection"])
@pytest.mark.parametrize("align", [False, True])
def test_matrix_size_and_flags(folder, tmp_path, mode, padding, align):
    m = [0.9, 0.2, 3.0, -0.15, 1.1, -2.0]
    src = folder / "rgb.png"
    out = tmp_path / "out"
    args = ["warp", str(src), "-o", str(out), "--matrix", *map(str, m), "--size", "11", "14",
            "--mode", mode, "--padding", padding, "-q"] + (["--align-corners"] if align else [])
    assert main(args) == 0
    theta = theta_from_cv2(np.array(m).reshape(2, 3), (13, 17), (11, 14), align_corners=align)
    exp = _expected(src, theta, (11, 14), mode=mode, padding_mode=padding, align_corners=align)
    np.testing.assert_array_equal(_load(out / "rgb.png")[2], exp)
    # --inverse-map: the matrix maps destination to source
    assert main(args + ["--inverse-map", "-o", str(tmp_path / "inv")]) == 0
    theta = theta_from_cv2(np.array(m).reshape(2, 3), (13, 17), (11, 14), align_corners=align,
                           inverse_map=True)
    exp = _expected(src, theta, (11, 14), mode=mode, padding_mode=padding, align_corners=align)
    np.testing.assert_array_equal(_load(tmp_path / "inv" / "rgb.png")[2], exp)


def test_size_resizes_or_takes_a_window(folder, tmp_path):
    src = folder / "rgb.png"
    assert main(["warp", str(src), "-o", str(tmp_path / "r"), "--size", "8", "25", "--rotate", "10",
                 "-q"]) == 0
    exp = _expected(src, affine_theta((8, 25), rotation=10), (8, 25))
    np.testing.assert_array_equal(_load(tmp_path / "r" / "rgb.png")[2], exp)
    # plain --size is a resize: identity theta in normalized coordinates
    assert main(["warp", str(src), "-o", str(tmp_path / "p"), "--size", "8", "25", "-q"]) == 0
    exp = _expected(src, np.eye(2, 3), (8, 25))
    np.testing.assert_array_equal(_load(tmp_path / "p" / "rgb.png")[2], exp)
    assert main(["warp", str(src), "-o", str(tmp_path / "w"), "--size", "8", "25", "--no-resize",
                 "--rotate", "10", "-q"]) == 0
    exp = _expected(src, affine_theta((13, 17), (8, 25), rotation=10), (8, 25))
    np.testing.assert_array_equal(_load(tmp_path / "w" / "rgb.png")[2], exp)


def _read_all(root):
    return {f: (root / f).read_bytes() for f in _files(root)}


def test_random_copies_are_deterministic(folder, tmp_path):
    rand = ["--random-rotate", "-40", "40", "--random-scale", "0.7", "1.3", "--random-shear", "-10", "10",
            "--random-shift", "3", "2", "--copies", "3", "-q"]
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert main(["warp", str(folder), "-o", str(a), "--seed", "5", "--batch-size", "1", "--workers", "1"]
                + rand) == 0
    assert main(["warp", str(folder), "-o", str(b), "--seed", "5", "--batch-size", "64", "--workers", "3"]
                + rand) == 0
    files = _read_all(a)
    assert len(files) == 7 * 3 and "sub/rgba_2.png" in files
    assert files == _read_all(b)
    # a file warped on its own gets the same transforms as inside its folder
    assert main(["warp", str(folder / "rgb.png"), "-o", str(c), "--seed", "5"] + rand) == 0
    assert _read_all(c) == {k: v for k, v in files.items() if k.startswith("rgb_")}
    # the copies differ, and so does another seed
    assert len({files[f"rgb_{k}.png"] for k in range(3)}) == 3
    assert main(["warp", str(folder / "rgb.png"), "-o", str(tmp_path / "d"), "--seed", "6"] + rand) == 0
    assert (tmp_path / "d" / "rgb_0.png").read_bytes() != files["rgb_0.png"]
    # each copy is the warp by the theta the spec draws for (relative path, copy)
    spec = TransformSpec(rotate=(-40, 40), scale=(0.7, 1.3), shear=(-10, 10), shift_x=(-3, 3),
                         shift_y=(-2, 2), seed=5)
    for k in range(3):
        exp = _expected(folder / "sub" / "gray.png", spec.theta((9, 11), "sub/gray.png", k))
        np.testing.assert_array_equal(_load(a / "sub" / f"gray_{k}.png")[2], exp)


def test_random_parameters_stay_in_range_and_vary(rng):
    spec = TransformSpec(rotate=(-30, 30), scale=(0.8, 1.2), shear=(0, 5), shift_x=(-4, 4),
                         shift_y=(1, 2), seed=int(rng.integers(2**31)))
    draws = [spec.params(f"dir/img{i}.png", k) for i in range(40) for k in range(3)]
    rot = np.array([d["rotation"] for d in draws])
    sc = np.array([d["scale"] for d in draws])
    sh = np.array([d["shear"] for d in draws])
    tr = np.array([d["translation"] for d in draws])
    assert rot.min() >= -30 and rot.max() <= 30 and np.ptp(rot) > 30
    assert sc.min() >= 0.8 and sc.max() <= 1.2 and np.ptp(sc) > 0.2
    assert sh.min() >= 0 and sh.max() <= 5
    assert tr[:, 0].min() >= -4 and tr[:, 0].max() <= 4 and tr[:, 1].min() >= 1 and tr[:, 1].max() <= 2
    assert spec.params("dir/img3.png", 1) == spec.params("dir/img3.png", 1)


def test_formats_and_mode_conversions(folder, tmp_path):
    out = tmp_path / "out"
    assert main(["warp", str(folder), "-o", str(out), "--format", "png", "--rotate", "5", "-q"]) == 0
    assert "photo.png" in _files(out) and "sub/deeper/tiny.png" in _files(out)
    assert _load(out / "photo.png")[:2] == ("PNG", "RGB")
    assert _load(out / "depth16.png")[:2] == ("PNG", "I;16")
    # JPEG cannot hold alpha: RGBA becomes RGB, the colour channels warped as usual
    assert main(["warp", str(folder / "sub" / "rgba.png"), "-o", str(tmp_path / "j"), "--format", "jpg",
                 "-q"]) == 0
    assert _load(tmp_path / "j" / "rgba.jpg")[:2] == ("JPEG", "RGB")
    # palette and bilevel images are warped as RGB and L
    d = tmp_path / "odd"
    d.mkdir()
    Image.fromarray(np.arange(60, dtype=np.uint8).reshape(6, 10)).convert("P").save(d / "pal.png")
    Image.fromarray(np.arange(60, dtype=np.uint8).reshape(6, 10) > 30).save(d / "bits.png")
    assert main(["warp", str(d), "-o", str(tmp_path / "odd_out"), "-q"]) == 0
    assert _load(tmp_path / "odd_out" / "pal.png")[1] == "RGB"
    assert _load(tmp_path / "odd_out" / "bits.png")[1] == "L"


def test_wide_integer_and_float_modes(tmp_path, rng):
    """16-bit PGM (mode I, warped in float64) and float TIFF (mode F) keep mode and depth."""
    d = tmp_path / "wide"
    d.mkdir()
    g = rng.integers(0, 65536, (12, 10)).astype(np.uint16)
    f = rng.random((7, 9)).astype(np.float32)
    Image.fromarray(g).save(d / "g.pgm")
    Image.fromarray(f).save(d / "f.tif")
    assert main(["warp", str(d), "-o", str(tmp_path / "o"), "--rotate", "21", "--scale", "1.1", "-q"]) == 0
    fmt, mode, px = _load(tmp_path / "o" / "g.pgm")
    assert (fmt, mode) == ("PPM", "I")
    w = fastwarp.affine_warp(g[:, :, None].astype(np.float64), affine_theta((12, 10), rotation=21, scale=1.1))
    np.testing.assert_array_equal(px, np.floor(w[:, :, 0] + 0.5).astype(np.int32))
    assert px.max() > 255
    fmt, mode, px = _load(tmp_path / "o" / "f.tif")
    assert (fmt, mode) == ("TIFF", "F")
    theta = affine_theta((7, 9), rotation=21, scale=1.1)
    np.testing.assert_array_equal(px, fastwarp.affine_warp(f[:, :, None], theta)[:, :, 0])


def test_globs_mirror_the_fixed_part(folder, tmp_path):
    out = tmp_path / "out"
    assert main(["warp", str(folder / "**" / "*.png"), "-o", str(out), "-q"]) == 0
    assert _files(out) == ["depth16.png", "one.png", "rgb.png", "sub/gray.png", "sub/rgba.png"]


def test_skip_existing_resumes_without_rewriting(folder, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["warp", str(folder), "-o", str(out), "--random-rotate", "-9", "9", "--copies", "2", "-q"]
    assert main(args) == 0
    stamp = {f: os.stat(out / f) for f in _files(out)}
    (out / "sub" / "gray_1.png").unlink()
    (out / "rgb_0.png").unlink()
    capsys.readouterr()
    assert main(args + ["--skip-existing"]) == 0
    assert "2 written, 12 skipped (existing), 0 failed" in capsys.readouterr().out
    assert set(_files(out)) == set(stamp)
    for f, st in stamp.items():
        now = os.stat(out / f)
        rewritten = f in ("sub/gray_1.png", "rgb_0.png")
        assert ((now.st_ino, now.st_mtime_ns) != (st.st_ino, st.st_mtime_ns)) == rewritten, f
    # without --skip-existing every output is replaced
    assert main(args) == 0
    assert all(os.stat(out / f).st_ino != stamp[f].st_ino for f in stamp if f != "rgb_0.png")


def test_corrupt_and_missing_inputs_are_reported(folder, tmp_path, capsys):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    good = (folder / "rgb.png").read_bytes()
    (folder / "sub" / "truncated.png").write_bytes(good[: len(good) // 2])
    out = tmp_path / "out"
    rc = main(["warp", str(folder), str(tmp_path / "nope.png"), "-o", str(out), "-q"])
    cap = capsys.readouterr()
    assert rc == 2
    assert "7 written, 0 skipped (existing), 3 failed" in cap.out
    for name in ("broken.png", "truncated.png", "nope.png"):
        assert any(name in line and "failed" in line for line in cap.err.splitlines()), cap.err
    assert "UnidentifiedImageError" in cap.err
    assert "broken.png" not in _files(out) and "sub/truncated.png" not in _files(out)
    assert len(_files(out)) == 7 and not _no_temps(out)


def test_refuses_to_overwrite_inputs(folder, tmp_path, capsys):
    before = _read_all(folder)
    assert main(["warp", str(folder), "-o", str(folder), "--rotate", "3", "-q"]) == 1
    assert "is an input file" in capsys.readouterr().err
    assert _read_all(folder) == before
    assert main(["warp", str(folder / "rgb.png"), "-o", str(folder), "--rotate", "3", "--overwrite-inputs",
                 "-q"]) == 0
    after = _read_all(folder)
    assert after["rgb.png"] != before["rgb.png"]
    assert {k: v for k, v in after.items() if k != "rgb.png"} == \
        {k: v for k, v in before.items() if k != "rgb.png"}


def test_output_folder_inside_input_is_not_rescanned(folder, tmp_path):
    out = folder / "warped"
    assert main(["warp", str(folder), "-o", str(out), "-q"]) == 0
    first = _files(out)
    assert main(["warp", str(folder), "-o", str(out), "-q"]) == 0
    assert _files(out) == first and not any(f.startswith("warped/") for f in first)


def test_collisions_and_bad_arguments_refused(folder, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(other / "rgb.png")
    assert main(["warp", str(folder), str(other), "-o", str(tmp_path / "o"), "-q"]) == 1
    assert "would both be written" in capsys.readouterr().err
    for bad in (["--rotate", "3", "--random-rotate", "0", "3"], ["--matrix", "1", "0", "0", "0", "1", "0",
                "--scale", "2"], ["--random-scale", "2", "1"], ["--copies", "0"], ["--no-resize"],
                ["--scale", "0"], ["--format", "nonsense"]):
        assert main(["warp", str(folder), "-o", str(tmp_path / "o"), "-q", *bad]) == 1, bad
        assert "error" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_interrupted_run_leaves_no_partial_image(folder, tmp_path, monkeypatch):
    """A KeyboardInterrupt in the middle of encoding the 3rd output: the finished
    outputs are complete, nothing half-written is visible, and --skip-existing completes."""
    import fastwarp.io as io_mod

    out = tmp_path / "out"
    real_write = io_mod._write_all
    calls = {"n": 0}

    def write(f, data):
        calls["n"] += 1
        if calls["n"] == 3:
            f.write(b"".join(bytes(x) for x in data)[:100])
            raise KeyboardInterrupt
        return real_write(f, data)

    monkeypatch.setattr(io_mod, "_write_all", write)
    args = ["warp", str(folder), "-o", str(out), "--rotate", "12", "-q", "--workers", "1"]
    assert main(args) == 130
    monkeypatch.setattr(io_mod, "_write_all", real_write)
    done = _files(out) if out.exists() else []
    assert not _no_temps(out) if out.exists() else True
    assert len(done) < 7
    for f in done:  # every visible output decodes fully
        with Image.open(out / f) as im:
            im.load()
    assert main(args + ["--skip-existing"]) == 0
    assert len(_files(out)) == 7 and not _no_temps(out)


def test_plan_skips_existing_and_names_copies(folder, tmp_path):
    jobs, rep = plan_jobs([str(folder / "sub")], str(tmp_path / "o"), copies=11, format="PNG")
    outs = sorted(os.path.relpath(p, tmp_path / "o") for j in jobs for _, p in j.outputs)
    assert len(outs) == 33 and outs[0] == os.path.join("deeper", "tiny_00.png")
    assert outs[-1] == "rgba_10.png" and rep.skipped == 0


def test_help_in_process_and_console_script(capsys):
    with pytest.raises(SystemExit) as e:
        main(["warp", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "--random-rotate" in text and "--scheduler" in text and "exit status" in text
    res = subprocess.run([sys.executable, "-m", "fastwarp.cli", "warp", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and "--skip-existing" in res.stdout


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_killed_process_leaves_only_complete_images(tmp_path, rng, sig):
    """Kill a real ``fastwarp warp`` process mid-run: every visible output is a complete
    image, the next --skip-existing run finishes the job and removes the dead run's temporaries.
    SIGTERM unwinds like Ctrl-C (exit status 143, no temporaries left)."""
    import signal
    import time

    src = tmp_path / "many"
    src.mkdir()
    base = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    for i in range(300):
        Image.fromarray(np.roll(base, i, axis=1)).save(src / f"im{i:03d}.png", compress_level=0)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "fastwarp.cli", "warp", str(src), "-o", str(out), "--random-rotate",
           "-20", "20", "--batch-size", "4", "--workers", "1", "-q"]
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and len(os.listdir(out)) >= 20:
            break
        time.sleep(0.01)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, getattr(signal, sig))
    rc = proc.wait(60)
    if sig == "SIGTERM":
        assert rc == 143 and not _no_temps(out)
    done = [f for f in _files(out) if not f.endswith(".fwtmp")]
    for f in done:
        with Image.open(out / f) as im:
            im.load()
            assert im.size == (48, 48)
    res = subprocess.run(cmd + ["--skip-existing"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"{300 - len(done)} written, {len(done)} skipped (existing), 0 failed" in res.stdout
    assert len(_files(out)) == 300 and not _no_temps(out)
    assert killed, "the first run finished before it could be killed"


def test_exif_orientation_is_applied(tmp_path, rng):
    d = tmp_path / "exif"
    d.mkdir()
    im = Image.fromarray(rng.integers(0, 256, (6, 10, 3), dtype=np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(d / "phone.jpg", exif=exif, quality=95)
    assert main(["warp", str(d), "-o", str(tmp_path / "o"), "-q"]) == 0
    with Image.open(tmp_path / "o" / "phone.jpg") as out:
        assert out.size == (6, 10) and out.getexif().get(0x0112, 1) == 1


def test_local_run_keeps_one_image_per_thread_in_memory(tmp_path, rng, monkeypatch):
    """Each I/O thread holds one decoded image at a time once the kernel is loaded: never
    more live images than threads."""
    import threading

    import fastwarp.batch.filework as folder_mod

    src = tmp_path / "many"
    src.mkdir()
    for i in range(300):
        shape = ((5, 6, 3), (6, 5, 3), (5, 6))[i % 3]  # three groups interleaved
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(src / f"{i:03d}.png")
    # a first run loads the kernel (decoding ahead meanwhile, see the next test)
    assert main(["warp", str(src), "-o", str(tmp_path / "warm"), "--workers", "2", "-q"]) == 0
    lock = threading.Lock()
    live = {"now": 0, "max": 0}
    real_read, real_write = folder_mod.read_image, folder_mod.write_image

    def read(path, probe=None):
        res = real_read(path, probe)
        with lock:
            live["now"] += 1
            live["max"] = max(live["max"], live["now"])
        return res

    def write(*args, **kwargs):
        real_write(*args, **kwargs)
        with lock:
            live["now"] -= 1

    monkeypatch.setattr(folder_mod, "read_image", read)
    monkeypatch.setattr(folder_mod, "write_image", write)
    assert main(["warp", str(src), "-o", str(tmp_path / "o"), "--workers", "2", "-q"]) == 0
    assert len(_files(tmp_path / "o")) == 300 and live["now"] == 0
    assert 1 <= live["max"] <= 2, live


def test_inputs_decode_ahead_while_the_kernel_loads_within_the_budget(tmp_path, rng, monkeypatch):
    """The first run in a process decodes inputs ahead while it loads the kernel, holding
    no more than the byte budget; every output equals a run without decoding ahead, and
    an unreadable input among them is reported and counted with the rest written."""
    import threading
    import time

    import numba

    import fastwarp.batch.filework as filework
    import fastwarp.folder as folder
    from fastwarp.batch.budget import ByteBudget

    src = tmp_path / "in"
    src.mkdir()
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)).save(src / f"{i:02d}.png")
    (src / "07.png").write_bytes(b"not a png")
    spec = TransformSpec(rotate=(17, 17), scale=(0.8, 0.8))
    opts = folder.OutputOptions(format="png")
    # the reference: every file through the usual path, decoding ahead skipped
    monkeypatch.setattr(folder, "_decode_ahead", lambda pool, threads, jobs, *a: list(jobs))
    jobs, _ = plan_jobs([str(src)], str(tmp_path / "ref"), copies=2)
    want = folder.run_local(jobs, spec, opts, workers=2)
    monkeypatch.undo()

    lock = threading.Lock()
    live = {"now": 0, "max": 0}
    real_open, real_finish, real_warm = filework.open_job, filework.finish_job, folder._warm_up

    def open_job(*a, **k):
        opened, failed = real_open(*a, **k)
        if opened is not None:
            with lock:
                live["now"] += 1
                live["max"] = max(live["max"], live["now"])
        return opened, failed

    def finish_job(*a, **k):
        try:
            return real_finish(*a, **k)
        finally:
            with lock:
                live["now"] -= 1

    def slow_warm_up(*a):
        time.sleep(0.3)  # a kernel that takes a while to load: the threads decode meanwhile
        real_warm(*a)

    budgets = []
    real_budget = folder.ByteBudget

    def budget(limit):
        budgets.append(real_budget(limit))
        return budgets[-1]

    monkeypatch.setattr(folder, "open_job", open_job)
    monkeypatch.setattr(folder, "finish_job", finish_job)
    monkeypatch.setattr(filework, "open_job", open_job)
    monkeypatch.setattr(filework, "finish_job", finish_job)
    monkeypatch.setattr(folder, "_warm_up", slow_warm_up)
    monkeypatch.setattr(folder, "_WARMED", set())
    monkeypatch.setattr(folder, "ByteBudget", budget)
    probe = filework.probe_image(str(src / "00.png"))
    one = filework.job_bytes(probe, spec)
    jobs, _ = plan_jobs([str(src)], str(tmp_path / "got"), copies=2)
    threads = numba.get_num_threads()
    got = folder.run_local(jobs, spec, opts, workers=2, memory_budget=12 * one)
    assert numba.get_num_threads() == threads  # the warm-up gave the calling thread its count back
    assert 2 < live["max"] <= 12, live  # decoded ahead, within the budget (12 files' worth)
    assert live["now"] == 0 and isinstance(budgets[0], ByteBudget) and budgets[0].used == 0
    assert got.written == want.written == 78 and [p for p, _ in got.failures] == [str(src / "07.png")]
    for f in sorted((tmp_path / "ref").iterdir()):
        got_pixels = np.asarray(Image.open(tmp_path / "got" / f.name))
        np.testing.assert_array_equal(got_pixels, np.asarray(Image.open(f)))
