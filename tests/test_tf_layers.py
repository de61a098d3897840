"""fastwarp.tf.layers: Keras's augmentation layers warped by fastwarp, against Keras's own outputs for
the same drawn parameters, every fill mode and interpolation; RandomAffine's one-warp chain; dtypes,
training=False, tf.data, fit, config and .keras round trips."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import fastwarp.tf.layers as L  # noqa: E402

FILL_MODES = ("reflect", "nearest", "constant", "wrap")
LAYERS = [
    ("RandomRotation", {"factor": 0.2}),
    ("RandomZoom", {"height_factor": (-0.4, 0.4), "width_factor": (-0.3, 0.2)}),
    ("RandomTranslation", {"height_factor": 0.3, "width_factor": (-0.2, 0.4)}),
    ("RandomShear", {"x_factor": 0.3, "y_factor": 0.3}),
]


def _images(rng, n=3, h=None, w=None):
    h = h or int(rng.integers(9, 26))
    w = w or int(rng.integers(9, 26))
    return (rng.random((n, h, w, 3)) * 255).astype(np.float32)


def _agree(ours, theirs, interpolation):
    """Equal up to float32 rounding (TF evaluates the matrix in float32); nearest may pick the
    other neighbour at a near-tie."""
    d = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
    if interpolation == "nearest":
        assert (d > 1e-3).mean() < 0.005, d.max()
    else:
        assert d.max() < 5e-3 * 255, d.max()


@pytest.mark.parametrize("name,kwargs", LAYERS, ids=[n for n, _ in LAYERS])
def test_layers_match_keras_for_the_same_parameters(rng, name, kwargs):
    img = _images(rng)
    seed = int(rng.integers(0, 2**31))
    for fill_mode in FILL_MODES:
        for interpolation in ("bilinear", "nearest"):
            kw = dict(kwargs, fill_mode=fill_mode, interpolation=interpolation, seed=seed, fill_value=17.0)
            theirs = getattr(keras.layers, name)(**kw)
            ours = getattr(L, name)(**kw)
            tr = theirs.get_random_transformation(img, training=True, seed=seed)
            want = theirs.transform_images(img, tr).numpy()
            got = ours.transform_images(img, tr).numpy()
            assert np.abs(want - img).max() > 1  # the warp did something
            _agree(got, want, interpolation)


def test_random_perspective_matches_keras(rng):
    img = _images(rng)
    for interpolation in ("bilinear", "nearest"):
        kw = dict(factor=(1.0, 1.0), scale=0.4, interpolation=interpolation, seed=4, fill_value=9.0)
        theirs, ours = keras.layers.RandomPerspective(**kw), L.RandomPerspective(**kw)
        tr = theirs.get_random_transformation(img, training=True, seed=4)
        want = theirs.transform_images(img, tr).numpy()
        _agree(ours.transform_images(img, tr).numpy(), want, interpolation)
        assert (want == 9.0).any()


def test_same_seed_same_draws_as_keras_and_integer_images_stay_integer(rng):
    """Called like Keras's layers (the layer draws its own parameters), with a seed."""
    img = _images(rng, 2, 16, 20)
    theirs = keras.layers.RandomRotation(0.3, seed=7, fill_mode="constant")
    ours = L.RandomRotation(0.3, seed=7, fill_mode="constant")
    _agree(ours(img).numpy(), theirs(img).numpy(), "bilinear")
    u8 = img.astype(np.uint8)
    out = L.RandomZoom(0.3, seed=1)(u8)
    assert out.dtype == tf.uint8
    assert keras.layers.RandomZoom(0.3, seed=1)(u8).dtype == tf.float32  # what Keras does
    u16 = (rng.random((2, 12, 13, 1)) * 65535).astype(np.uint16)
    assert L.RandomTranslation(0.2, 0.2, seed=2)(u16).dtype == tf.uint16


def test_training_false_returns_the_input(rng):
    img = _images(rng).astype(np.uint8)
    for layer in (L.RandomRotation(0.2), L.RandomAffine(rotation=0.2, zoom=0.1)):
        out = layer(img, training=False)
        assert out.dtype == tf.uint8
        np.testing.assert_array_equal(out.numpy(), img)


def _ramp(n, h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.repeat(np.stack([xx, yy, xx - yy], -1)[None], n, 0)


def test_random_affine_is_the_chain_of_keras_layers_as_one_warp(rng):
    """On a linear ramp (which bilinear interpolation reproduces exactly), RandomAffine's single
    warp equals Keras's five layers applied one after the other with the same parameters,
    wherever the chain never read outside the image."""
    n, h, w = 3, 31, 37
    ramp = _ramp(n, h, w) + rng.integers(0, 5, (n, 1, 1, 1)).astype(np.float32)  # distinct images
    aff = L.RandomAffine(rotation=0.04, zoom=(-0.2, 0.2), translation=(0.05, 0.08), shear=0.15,
                         perspective=0.1, seed=int(rng.integers(0, 2**31)), fill_mode="constant",
                         fill_value=-1e4)
    p = aff.draw(ramp)
    got = aff(ramp).numpy()

    def run_chain(fill):
        kw = dict(fill_mode="constant", fill_value=fill, interpolation="bilinear")
        chain = [
            (keras.layers.RandomRotation(0.04, **kw),
             {"rotation_matrix": aff._rot._compute_affine_matrix(
                 center_x=0.5, center_y=0.5, angle=p["angle"], translate_x=tf.zeros((n,)),
                 translate_y=tf.zeros((n,)), scale=tf.ones((n,)), shear_x=tf.zeros((n,)),
                 shear_y=tf.zeros((n,)), height=h, width=w)}),
            (keras.layers.RandomZoom(0.2, 0.2, **kw),
             {"width_zoom": p["zooms"][:, :1], "height_zoom": p["zooms"][:, 1:]}),
            (keras.layers.RandomTranslation(0.1, 0.1, **kw), {"translations": p["translations"]}),
            (keras.layers.RandomShear(0.2, 0.2, **kw), {"shear_factor": p["shear_factor"]}),
            (keras.layers.RandomPerspective(factor=(1.0, 1.0), scale=0.1, interpolation="bilinear",
                                            fill_value=fill),
             {"apply_perspective": tf.ones((n,), bool), "start_points": p["start_points"],
              "end_points": p["end_points"]}),
        ]
        x = tf.constant(ramp)
        for layer, tr in chain:
            x = layer.transform_images(x, dict(tr, input_shape=x.shape))
        return x.numpy()

    # pixels where the fill has no weight anywhere along the chain: two fills give the same value
    want, want2 = run_chain(-1e4), run_chain(1e4)
    clean = (np.abs(want - want2) < 1e-3).all(-1) & (got > -1).all(-1)
    assert clean.mean() > 0.3
    np.testing.assert_allclose(got[clean], want[clean], atol=0.02)
    # and the single warp is exactly the composed transform applied to the ramp
    t = aff.transforms(ramp, p).numpy()
    m = np.concatenate([t, np.ones((n, 1))], 1).reshape(n, 3, 3)
    jj, ii = np.meshgrid(np.arange(w), np.arange(h))
    uvw = np.einsum("nkl,lhw->nhwk", m, np.stack([jj, ii, np.ones_like(jj)]))
    sx, sy = uvw[..., 0] / uvw[..., 2], uvw[..., 1] / uvw[..., 2]
    inside = (sx > 0) & (sx < w - 1) & (sy > 0) & (sy < h - 1)
    offset = ramp[:, :1, :1, 0]
    np.testing.assert_allclose(got[..., 0][inside], (sx + offset)[inside], atol=2e-3)
    np.testing.assert_allclose(got[..., 1][inside], (sy + offset)[inside], atol=2e-3)


def test_random_affine_is_deterministic_per_element_whatever_the_parallelism(rng):
    imgs = (rng.random((24, 20, 22, 3)) * 255).astype(np.uint8)
    aff = L.RandomAffine(rotation=0.1, zoom=0.2, translation=0.1, shear=0.1, seed=5)
    ds = tf.data.Dataset.from_tensor_slices(imgs)
    a = np.stack([x.numpy() for x in ds.batch(8).map(aff, num_parallel_calls=tf.data.AUTOTUNE)
                  .unbatch()])
    b = np.stack([x.numpy() for x in ds.batch(5).map(aff, num_parallel_calls=1).unbatch()])
    assert a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)  # the same augmentation per image, however batched
    other = L.RandomAffine(rotation=0.1, zoom=0.2, translation=0.1, shear=0.1, seed=6)
    assert not np.array_equal(other(imgs[:8]).numpy(), a[:8])


def test_layers_in_a_model_fit_and_keras_file_round_trip(rng, tmp_path):
    x = rng.random((16, 12, 12, 3)).astype(np.float32)
    y = rng.integers(0, 2, 16)
    model = keras.Sequential([
        keras.Input((12, 12, 3)),
        L.RandomAffine(rotation=0.1, zoom=0.1, seed=1, fill_mode="nearest"),
        L.RandomRotation(0.05, seed=2),
        keras.layers.Flatten(),
        keras.layers.Dense(2),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    back = keras.models.load_model(path)
    assert [type(layer).__name__ for layer in back.layers[:2]] == ["RandomAffine", "RandomRotation"]
    assert back.layers[0].get_config()["zoom"] == 0.1
    assert tuple(back.layers[1].get_config()["factor"]) == (-0.05, 0.05)
    np.testing.assert_allclose(back.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="RandomAffine: fill_mode must be one of"):
        L.RandomAffine(fill_mode="mirror")
    with pytest.raises(ValueError, match="RandomAffine: interpolation must be"):
        L.RandomAffine(interpolation="bicubic")
    with pytest.raises(TypeError, match="RandomAffine: seed must be an int"):
        L.RandomAffine(seed="x")
    with pytest.raises(ValueError, match="RandomAffine: perspective must be a number in"):
        L.RandomAffine(perspective=2.0)
    with pytest.raises(ValueError):  # Keras's own check of the factor
        L.RandomRotation(factor=(0.1, 0.2, 0.3))


def test_one_spec_for_the_tf_map_the_keras_layer_the_pipeline_and_the_cli(rng):
    """Same AugmentSpec, seed and element key: the same theta and the same pixels from every front end."""
    import fastwarp
    import fastwarp.tf as ftf
    from fastwarp.augment import AugmentSpec, element_key
    from fastwarp.folder import TransformSpec
    from fastwarp.pipeline import RandomAffine as Stage

    h, w = (int(v) for v in rng.integers(9, 26, 2) | 1)
    x = (rng.random((3, h, w, 3)) * 255).astype(np.uint8)
    spec = AugmentSpec(rotation=25, scale=(0.8, 1.2), shear=8, translation=(3, 2), perspective=0.15,
                       seed=int(rng.integers(2**62)))
    keys = [4, 9, 2**40 + 3]
    want = spec.theta((h, w), None, keys)
    # tf.data map keyed by index
    aug = ftf.random_affine(spec=spec, by_index=True)
    for k, img, t in zip(keys, x, want):
        np.testing.assert_array_equal(aug.thetas(img, k).numpy(), t)
        np.testing.assert_array_equal(aug(k, img).numpy(), fastwarp.perspective_warp(img, t))
    # the pipeline stage given the same keys; the CLI's spec keyed by (relative path, copy)
    np.testing.assert_array_equal(Stage(spec=spec, key=lambda index, images: keys)(0, x), want)
    np.testing.assert_array_equal(TransformSpec(augment=spec).theta((h, w), "a/b.png", 1),
                                  spec.theta((h, w), None, element_key("a/b.png", 1)))
    # the Keras layer: its factors in the spec's Keras convention, keyed by the images' fingerprints,
    # which is tf.random_affine's content key as well
    layer = L.RandomAffine(rotation=0.05, zoom=0.1, translation=0.1, shear=0.1, perspective=0.2,
                           seed=int(rng.integers(2**31)), fill_mode="constant")
    got = layer(x).numpy()
    assert got.dtype == np.uint8
    theta = layer.spec.theta((h, w), None, layer.element_keys(x).numpy())
    np.testing.assert_array_equal(got, fastwarp.perspective_warp(x, theta, padding_mode="constant"))
    np.testing.assert_array_equal(ftf.random_affine(spec=layer.spec, padding_mode="constant")(x).numpy(), got)
    np.testing.assert_array_equal(Stage(spec=layer.spec, key=lambda i, ims: layer.element_keys(ims).numpy())(
        0, x), theta)


def test_antialias_random_affine_equals_fastwarp_on_its_own_transforms(rng):
    import fastwarp

    h, w = (int(v) for v in rng.integers(15, 26, 2) | 1)
    x = (rng.random((3, h, w, 3)) * 254 + 1).astype(np.float32)
    seed = int(rng.integers(2**31))
    for perspective in (0.0, 0.2):
        kw = dict(rotation=0.05, zoom=(0.6, 0.9), perspective=perspective, seed=seed)
        layer = L.RandomAffine(**kw, antialias=True)
        got = layer(x).numpy()
        theta = L.keras_transform_to_theta(layer.transforms(x).numpy(), (h, w))
        want = fastwarp.perspective_warp(x, theta, padding_mode="reflection", antialias=True)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)
        plain = L.RandomAffine(**kw)(x).numpy()
        assert np.abs(got - plain).max() > 1  # a zoom out: the filter changed the pixels
        back = L.RandomAffine.from_config(layer.get_config())
        assert back.get_config()["antialias"] is True
        np.testing.assert_array_equal(back(x).numpy(), got)
    assert L.RandomAffine().get_config()["antialias"] is False


def test_antialias_keras_subclass_layers(rng):
    img = _images(rng, 2, 17, 21)
    out_kw = dict(height_factor=(0.6, 0.8), seed=3)
    plain, filtered = L.RandomZoom(**out_kw), L.RandomZoom(**out_kw, antialias=True)
    tr = plain.get_random_transformation(img, training=True, seed=3)
    diff = filtered.transform_images(img, tr).numpy() - plain.transform_images(img, tr).numpy()
    assert np.abs(diff).max() > 1
    # a zoom in does not shrink: exactly the plain warp
    in_kw = dict(height_factor=(-0.4, -0.2), seed=3)
    tr = L.RandomZoom(**in_kw).get_random_transformation(img, training=True, seed=3)
    np.testing.assert_array_equal(L.RandomZoom(**in_kw, antialias=True).transform_images(img, tr).numpy(),
                                  L.RandomZoom(**in_kw).transform_images(img, tr).numpy())
    config = filtered.get_config()
    assert config["antialias"] is True and L.RandomZoom.from_config(config).antialias is True
    assert L.RandomRotation(0.1).get_config()["antialias"] is False
    for make in (lambda **k: L.RandomAffine(zoom=0.3, **k), lambda **k: L.RandomRotation(0.1, **k),
                 lambda **k: L.RandomPerspective(**k)):
        with pytest.raises(ValueError, match="antialias=True needs interpolation='bilinear'"):
            make(interpolation="nearest", antialias=True)
        with pytest.raises(TypeError, match="antialias must be a bool"):
            make(antialias="yes")
