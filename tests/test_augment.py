"""fastwarp.augment: one vocabulary for the pipeline stage, the CLI (TransformSpec) and the TF front
ends: the range rule, aliases, per-element seeding independent of batching, the composition (fixed
geometry exactly affine_theta's), perspective; the NumPy front ends against the spec."""

from __future__ import annotations

import numpy as np
import pytest

import fastwarp
from fastwarp import transforms as T
from fastwarp.augment import AugmentSpec, element_key, parse_range, uniforms
from fastwarp.cli import build_parser
from fastwarp.commands.warp import build_spec
from fastwarp.folder import TransformSpec
from fastwarp.pipeline import RandomAffine, warp_batches


def _size(rng):
    return tuple(int(v) for v in rng.integers(7, 30, 2))


def _spec(rng, perspective=0.0):
    return AugmentSpec(rotation=float(rng.uniform(5, 40)), scale=(0.8, 1.25), shear=(-6, 9),
                       translation=(float(rng.uniform(1, 4)), (-2.5, 1)), perspective=perspective,
                       seed=int(rng.integers(2**62)))


def test_range_rule_and_errors_name_the_argument():
    s = AugmentSpec(rotation=10, scale=1.5, shear=(1, 2), translation=3)
    assert s.rotation == (-10.0, 10.0) and s.scale == (1.5, 1.5) and s.shear == (1.0, 2.0)
    assert s.translation == ((-3.0, 3.0), (-3.0, 3.0)) and not s.projective
    assert AugmentSpec(translation=(2, (0, 1))).translation == ((-2.0, 2.0), (0.0, 1.0))
    assert AugmentSpec(rotation=10) == AugmentSpec(rotation=(-10, 10))
    assert parse_range("x", 2, symmetric=False) == (2.0, 2.0)
    bad = [({"rotation": -1}, "rotation must be >= 0"), ({"rotation": (3, 1)}, "rotation needs finite low"),
           ({"rotation": "a"}, "rotation must be a number"), ({"scale": 0}, "scale must be positive"),
           ({"scale": (0.5, np.inf)}, "scale needs finite"), ({"shear": 95}, "shear must lie inside"),
           ({"translation": "x"}, "translation must be a number"),
           ({"translation": (1, (2, 1))}, "translation y needs finite"),
           ({"perspective": 1.5}, "perspective must be a number in"), ({"convention": "torch"}, "convention"),
           ({"scale_x": (1, 2)}, "scale_x and shear_y belong")]
    for kw, msg in bad:
        with pytest.raises(ValueError, match=f"^AugmentSpec: {msg}"):
            AugmentSpec(**kw)
    with pytest.raises(TypeError, match="^AugmentSpec: seed must be an int"):
        AugmentSpec(seed=1.5)
    # the front ends name themselves
    with pytest.raises(ValueError, match="^RandomAffine: shear must lie inside"):
        RandomAffine(shear=(-100, 0))
    with pytest.raises(ValueError, match="^TransformSpec: rotation needs finite low <= high"):
        TransformSpec(rotation=(5, -5))
    with pytest.raises(ValueError, match="^RandomAffine: rotation and rotate are the same parameter"):
        RandomAffine(rotation=3, rotate=3)
    with pytest.raises(ValueError, match="^RandomAffine: give spec= or"):
        RandomAffine(spec=AugmentSpec(), rotation=3)


def test_element_keys_and_uniforms():
    assert element_key(7) == 7 and element_key(-1) == 2**64 - 1
    assert element_key("a.png", 0) != element_key("a.png", 1) != element_key("b.png", 1)
    assert element_key(1, 0) != element_key(0, 1)
    with pytest.raises(TypeError):
        element_key(1.5)
    keys = [element_key("dir/img.png", k) for k in range(400)]
    u = uniforms(3, keys)
    assert u.shape == (400, 16) and u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.02
    # a pure function of (seed, key, draw index): any subset, order or array type gives the same rows
    np.testing.assert_array_equal(uniforms(3, keys[::-7]), u[::-7])
    np.testing.assert_array_equal(uniforms(3, np.array(keys, np.uint64).view(np.int64)), u)
    np.testing.assert_array_equal(uniforms(3, keys[5])[0], u[5])
    assert not np.array_equal(uniforms(4, keys[:20]), u[:20])
    # seeds and small index keys do not alias each other
    assert not np.array_equal(uniforms(0, [1]), uniforms(1, [0]))


@pytest.mark.parametrize("align", [False, True])
def test_fixed_geometry_is_exactly_affine_theta(rng, align):
    in_size, out_size = _size(rng), _size(rng)
    kw = {"rotation": float(rng.uniform(-90, 90)), "scale": float(rng.uniform(0.5, 2)),
          "shear": float(rng.uniform(-30, 30)),
          "translation": tuple(float(v) for v in rng.uniform(-5, 5, 2))}
    spec = AugmentSpec(rotation=(kw["rotation"],) * 2, scale=kw["scale"], shear=(kw["shear"],) * 2,
                       translation=tuple((v, v) for v in kw["translation"]))
    want = T.affine_theta(in_size, out_size, align_corners=align, **kw)
    for key in (0, "x.png", 2**63 + 5):
        np.testing.assert_array_equal(spec.theta(in_size, out_size, key, align_corners=align), want)
    # the CLI's spec (old names) and the pipeline stage give the same fixed theta
    ts = TransformSpec(rotate=kw["rotation"], scale=kw["scale"], shear=(kw["shear"],) * 2,
                       shift_x=kw["translation"][0], shift_y=kw["translation"][1], size=out_size,
                       resize=False, align_corners=align)
    np.testing.assert_array_equal(ts.theta(in_size, "any.png", 3), want)
    stage = RandomAffine(rotate=kw["rotation"], scale=kw["scale"], shear=(kw["shear"],) * 2,
                         shift=kw["translation"], size=out_size, resize=False, align_corners=align)
    np.testing.assert_array_equal(stage(4, np.zeros((3, *in_size, 1), np.uint8)), np.stack([want] * 3))


def test_draws_stay_in_range_and_batching_does_not_matter(rng):
    spec = _spec(rng, perspective=0.3)
    in_size = _size(rng)
    keys = [element_key(f"f{i}.png", k) for i in range(60) for k in range(2)]
    p = spec.draw(keys, in_size)
    lo, hi = spec.rotation
    assert lo <= p["rotation"].min() and p["rotation"].max() <= hi and np.ptp(p["rotation"]) > (hi - lo) / 2
    assert 0.8 <= p["scale"].min() and p["scale"].max() <= 1.25
    np.testing.assert_array_equal(p["scale"][:, 0], p["scale"][:, 1])
    assert (np.abs(p["end"] - p["start"]) <= 0.15 * p["start"] + 1e-12).all()
    np.testing.assert_array_equal(p["end"][:, 0], 0.0)  # Keras's corner rule: the origin stays
    whole = spec.theta(in_size, None, keys)
    assert whole.shape == (120, 3, 3)
    parts = np.concatenate([spec.theta(in_size, None, keys[i:i + 7]) for i in range(0, 120, 7)])
    np.testing.assert_array_equal(parts, whole)
    np.testing.assert_array_equal(spec.theta(in_size, None, keys[41]), whole[41])


def test_perspective_moves_the_output_corners(rng):
    """The output corners' moved positions read the input where the affine part puts the corners."""
    in_size, out_size = _size(rng), _size(rng)
    spec = _spec(rng, perspective=0.4)
    keys = list(range(5))
    p = spec.draw(keys, in_size, out_size)
    theta = spec.compose(p, in_size, out_size)
    for align in (False, True):
        theta = spec.compose(p, in_size, out_size, align_corners=align)
        for i in range(5):
            m = T.affine_matrix(in_size, out_size, rotation=p["rotation"][i], scale=p["scale"][i, 0],
                                shear=p["shear"][i, 0], translation=p["translation"][i])
            want = T.invert_affine(m) @ np.c_[p["start"][i], np.ones(4)].T  # (2, 4) input pixels
            pts = T._to_normalized(out_size, align) @ np.c_[p["end"][i], np.ones(4)].T
            src = T._to_pixel(in_size, align) @ (theta[i] @ pts)
            np.testing.assert_allclose(src[:2] / src[2], want, atol=1e-9)
    # no perspective: the affine theta of the same draws
    flat = AugmentSpec(**{**_fields(spec), "perspective": 0.0})
    t2 = flat.theta(in_size, out_size, keys)
    assert t2.shape == (5, 2, 3)


def _fields(spec):
    return {k: getattr(spec, k) for k in ("rotation", "scale", "shear", "translation", "perspective", "seed")}


def _args(argv):
    return build_parser().parse_args(["warp", "in", "-o", "out", *argv])


def test_cli_old_and_new_spellings_are_one_spec():
    pairs = [(["--rotate", "12"], ["--rotation", "12"]),
             (["--shift", "2", "-3"], ["--translation", "2", "-3"]),
             (["--random-rotate", "-9", "4"], ["--random-rotation", "-9", "4"]),
             (["--random-shift", "3", "2"], ["--random-translation", "3", "2"]),
             (["--random-perspective", "0.2"], ["--perspective", "0.2"])]
    for old, new in pairs:
        assert build_spec(_args(old + ["--seed", "4"]))[0] == build_spec(_args(new + ["--seed", "4"]))[0]
    spec = build_spec(_args(["--random-rotation", "-20", "20", "--random-scale", "0.9", "1.1",
                             "--random-shear", "-5", "5", "--random-translation", "3", "2",
                             "--perspective", "0.2", "--seed", "9"]))[0]
    assert spec.augment == AugmentSpec(rotation=20, scale=(0.9, 1.1), shear=5, translation=(3, 2),
                                       perspective=0.2, seed=9)
    assert (spec.rotate, spec.shift_x, spec.shift_y) == (spec.rotation, *spec.translation)  # old names
    for bad in (["--rotate", "1", "--random-rotation", "0", "2"], ["--perspective", "2"],
                ["--matrix", "1", "0", "0", "0", "1", "0", "--perspective", "0.1"]):
        with pytest.raises(ValueError):
            build_spec(_args(bad))


def test_pipeline_aliases_and_keys(rng):
    x = rng.integers(0, 256, (6, *_size(rng), 3), dtype=np.uint8)
    old = RandomAffine(seed=5, rotate=(-20, 20), scale=(0.9, 1.1), shift=((-2, 2), (-1, 1)))
    new = RandomAffine(seed=5, rotation=20, scale=(0.9, 1.1), translation=(2, 1))
    assert old.spec == new.spec
    np.testing.assert_array_equal(old(3, x), new(3, x))
    # the old names keep reading a number as a constant; the canonical ones as [-a, a]
    fixed = AugmentSpec(rotation=(7, 7), translation=((1, 1), (2, 2)))
    assert RandomAffine(rotate=7, shift=(1, 2)).spec == fixed
    assert RandomAffine(rotation=7).spec.rotation == (-7.0, 7.0)
    # position keys: (batch index, position); content keys: the same image, the same theta, any batching
    spec = _spec(rng, perspective=0.2)
    pos = RandomAffine(spec=spec)
    want = spec.theta(x.shape[1:3], None, [element_key(2, i) for i in range(6)])
    np.testing.assert_array_equal(pos(2, x), want)
    content = RandomAffine(spec=spec, key="content")
    np.testing.assert_array_equal(content(0, x)[4], content(9, x[3:])[1])
    np.testing.assert_array_equal(content(0, x[4]), content(0, x)[4])
    named = RandomAffine(spec=spec, key=lambda index, images: [f"id{index}-{i}" for i in range(len(images))])
    np.testing.assert_array_equal(named(1, x[:2])[1], spec.theta(x.shape[1:3], None, "id1-1"))


def test_pipeline_perspective_warps_by_the_spec(rng):
    spec = _spec(rng, perspective=0.25)
    batches = [rng.integers(0, 256, (n, 11, 13, 3), dtype=np.uint8) for n in (3, 2)]
    aug = RandomAffine(spec=spec, key="content", size=(9, 10))
    got = list(warp_batches(batches, aug, size=(9, 10)))
    for images, warped in zip(batches, got):
        keys = [element_key(im.tobytes()) for im in images]
        want = fastwarp.perspective_warp(images, spec.theta((9, 10), (9, 10), keys), (9, 10))
        np.testing.assert_array_equal(warped, want)
        assert warped.shape == (len(images), 9, 10, 3)


def test_cli_warps_by_the_spec_of_its_flags(rng, tmp_path):
    from PIL import Image

    from fastwarp.cli import main

    img = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    (tmp_path / "in" / "sub").mkdir(parents=True)
    Image.fromarray(img).save(tmp_path / "in" / "sub" / "a.png")
    seed = int(rng.integers(2**31))
    assert main(["warp", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--random-rotation", "-25", "25",
                 "--random-scale", "0.8", "1.2", "--random-translation", "3", "2", "--perspective", "0.15",
                 "--copies", "2", "--seed", str(seed), "-q"]) == 0
    spec = AugmentSpec(rotation=25, scale=(0.8, 1.2), translation=(3, 2), perspective=0.15, seed=seed)
    for k in range(2):
        want = fastwarp.perspective_warp(img, spec.theta((13, 17), None, element_key("sub/a.png", k)))
        got = np.asarray(Image.open(tmp_path / "out" / "sub" / f"a_{k}.png"))
        np.testing.assert_array_equal(got, want)
