"""TensorFlow adapter: ops (eager, tf.function, tf.data), gradients, Keras layer, augmentation."""

from __future__ import annotations

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import fastwarp  # noqa: E402
import fastwarp.tf as ftf  # noqa: E402
from fastwarp import transforms  # noqa: E402

FLAGS = [(m, p, a) for m in ("bilinear", "nearest") for p in ("zeros", "border", "reflection")
         for a in (False, True)]


def random_theta(rng, n, spread=0.3):
    """Random matrices around the identity (a random theta puts no sample point exactly on a kink)."""
    return np.eye(2, 3) + rng.uniform(-spread, spread, (n, 2, 3))


def test_import_fastwarp_does_not_import_tensorflow():
    code = "import sys, fastwarp; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------------------
# forward ops
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_eager_forward_matches_numpy(rng, dtype):
    n, h, w, c = 3, int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 4))
    x = (rng.random((n, h, w, c)) * 255).astype(dtype)
    theta = random_theta(rng, n)
    size = tuple(int(v) for v in rng.integers(1, 8, 2))
    grid = rng.uniform(-1.3, 1.3, (n,) + size + (2,))
    for mode, pad, ac in FLAGS:
        kw = dict(mode=mode, padding_mode=pad, align_corners=ac)
        got = ftf.affine_warp(x, theta, size, **kw)
        assert got.dtype == tf.as_dtype(dtype)
        np.testing.assert_array_equal(got.numpy(), fastwarp.affine_warp(x, theta, size, **kw))
        got = ftf.grid_sample(x, grid, **kw)
        np.testing.assert_array_equal(got.numpy(), fastwarp.grid_sample(x, grid, **kw))


def test_single_image_and_broadcast_theta(rng):
    x = rng.random((2, 5, 6, 3)).astype(np.float32)
    theta = random_theta(rng, 1)[0]
    np.testing.assert_array_equal(ftf.affine_warp(x[0], theta).numpy(), fastwarp.affine_warp(x[0], theta))
    np.testing.assert_array_equal(ftf.affine_warp(x, theta, (4, 7)).numpy(),
                                  fastwarp.affine_warp(x, theta, (4, 7)))
    ints = ftf.affine_warp(x, [[1, 0, 0], [0, 1, 0]])  # integer theta is cast
    np.testing.assert_array_equal(ints.numpy(), x)


def test_tf_function_and_static_shapes(rng):
    x = rng.random((4, 6, 7, 2)).astype(np.float32)
    theta = random_theta(rng, 4).astype(np.float32)
    grid = rng.uniform(-1, 1, (4, 3, 5, 2)).astype(np.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, 6, 7, 2]), tf.TensorSpec([None, 2, 3])])
    def warp_same(a, t):
        out = ftf.affine_warp(a, t)
        assert out.shape.as_list() == [None, 6, 7, 2]
        return out

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 2]), tf.TensorSpec([None, 2, 3])])
    def warp_sized(a, t):
        out = ftf.affine_warp(a, t, (5, 9), padding_mode="border")
        assert out.shape.as_list() == [None, 5, 9, 2]
        return out

    @tf.function(input_signature=[tf.TensorSpec([4, 6, 7, 2]), tf.TensorSpec([4, None, 5, 2])])
    def sample(a, g):
        out = ftf.grid_sample(a, g, align_corners=True)
        assert out.shape.as_list() == [4, None, 5, 2]
        return out

    np.testing.assert_array_equal(warp_same(x, theta).numpy(), fastwarp.affine_warp(x, theta))
    np.testing.assert_array_equal(warp_sized(x, theta).numpy(),
                                  fastwarp.affine_warp(x, theta, (5, 9), padding_mode="border"))
    np.testing.assert_array_equal(sample(x, grid).numpy(), fastwarp.grid_sample(x, grid, align_corners=True))


def test_tf_data_parallel_map(rng):
    """num_parallel_calls=AUTOTUNE runs many warps at once on fastwarp's thread-safe layer."""
    n = 96
    x = rng.random((n, 11, 13, 3)).astype(np.float32)
    theta = random_theta(rng, n).astype(np.float32)
    labels = np.arange(n)
    ds = tf.data.Dataset.from_tensor_slices((x, theta, labels)).map(
        lambda im, th, y: (ftf.affine_warp(im, th, (9, 10), padding_mode="reflection"), y),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    assert ds.element_spec[0].shape.as_list() == [9, 10, 3]
    seen = set()
    for im, y in ds.batch(8):
        for a, k in zip(im.numpy(), y.numpy()):
            want = fastwarp.affine_warp(x[k], theta[k], (9, 10), padding_mode="reflection")
            np.testing.assert_array_equal(a, want)
            seen.add(int(k))
    assert seen == set(range(n))


def test_errors_name_the_op():
    x = np.zeros((2, 4, 4, 1), np.float32)
    with pytest.raises(TypeError, match="^affine_warp: images must have dtype"):
        ftf.affine_warp(np.zeros((2, 4, 4, 1), np.int32), np.eye(2, 3))
    with pytest.raises(ValueError, match="^affine_warp: images must have shape"):
        ftf.affine_warp(np.zeros((4, 4), np.float32), np.eye(2, 3))
    with pytest.raises(ValueError, match=r"^affine_warp: theta must have shape"):
        ftf.affine_warp(x, np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="^affine_warp: mode must be one of"):
        ftf.affine_warp(x, np.eye(2, 3), mode="lanczos")
    with pytest.raises(ValueError, match="^grid_sample: grid must have shape"):
        ftf.grid_sample(x, np.zeros((2, 3, 3, 3), np.float32))
    bad = np.full((2, 3), np.nan)
    with pytest.raises(ValueError, match="^affine_warp: theta must be finite"):  # eagerly: fastwarp's error
        ftf.affine_warp(x, bad)
    with pytest.raises(tf.errors.InvalidArgumentError, match="affine_warp: theta must be finite"):
        tf.function(ftf.affine_warp)(x, bad)  # in a graph: wrapped by TensorFlow


# ---------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------

def _check_jacobians(f, inputs):
    theoretical, numerical = tf.test.compute_gradient(f, [tf.constant(v) for v in inputs], delta=1e-6)
    for t, n in zip(theoretical, numerical):
        assert np.abs(t).max() > 0 or np.abs(n).max() == 0
        np.testing.assert_allclose(t, n, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode,padding,align", FLAGS)
def test_affine_warp_gradients_match_finite_differences(rng, mode, padding, align):
    x = rng.normal(size=(2, 4, 5, 2))
    theta = random_theta(rng, 2, 0.4)
    _check_jacobians(lambda a, t: ftf.affine_warp(a, t, (3, 4), mode=mode, padding_mode=padding,
                                                  align_corners=align), [x, theta])


@pytest.mark.parametrize("mode,padding,align", FLAGS)
def test_grid_sample_gradients_match_finite_differences(rng, mode, padding, align):
    x = rng.normal(size=(2, 3, 4, 2))
    grid = rng.uniform(-1.3, 1.3, (2, 2, 3, 2))
    _check_jacobians(lambda a, g: ftf.grid_sample(a, g, mode=mode, padding_mode=padding,
                                                  align_corners=align), [x, grid])


def test_gradients_single_image_and_shared_theta(rng):
    x = rng.normal(size=(3, 4, 2))
    _check_jacobians(lambda a, t: ftf.affine_warp(a, t, (5, 3)), [x, random_theta(rng, 1)[0]])
    xb = rng.normal(size=(3, 4, 3, 1))
    _check_jacobians(lambda a, t: ftf.affine_warp(a, t, padding_mode="border"), [xb, random_theta(rng, 1)[0]])


def test_float32_gradients_and_tape(rng):
    x = tf.constant(rng.normal(size=(2, 5, 4, 3)).astype(np.float32))
    theta = tf.Variable(random_theta(rng, 2).astype(np.float32))
    weights = tf.constant(rng.normal(size=(2, 6, 3, 3)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        loss = tf.reduce_sum(ftf.affine_warp(x, theta, (6, 3)) * weights)
    gx, gt = tape.gradient(loss, [x, theta])
    assert gx.dtype == tf.float32 and gt.dtype == tf.float32
    assert gx.shape == x.shape and gt.shape == theta.shape
    with tf.GradientTape() as tape64:
        x64, t64 = tf.cast(x, tf.float64), tf.cast(theta, tf.float64)
        tape64.watch([x64, t64])
        loss64 = tf.reduce_sum(ftf.affine_warp(x64, t64, (6, 3)) * tf.cast(weights, tf.float64))
    gx64, gt64 = tape64.gradient(loss64, [x64, t64])
    np.testing.assert_allclose(gx.numpy(), gx64.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gt.numpy(), gt64.numpy(), rtol=1e-3, atol=1e-3)


def test_uint8_forward_has_no_gradient(rng):
    x = tf.constant((rng.random((2, 5, 5, 1)) * 255).astype(np.uint8))
    theta = tf.constant(random_theta(rng, 2))
    with tf.GradientTape() as tape:
        tape.watch(theta)
        out = ftf.affine_warp(x, theta)
    assert out.dtype == tf.uint8
    np.testing.assert_array_equal(out.numpy(), fastwarp.affine_warp(x.numpy(), theta.numpy()))
    assert tape.gradient(out, theta) is None


def _perspective(rng, n, spread=0.15):
    t = np.tile(np.eye(3), (n, 1, 1)) + rng.uniform(-spread, spread, (n, 3, 3))
    t[:, 2, 2] = 1.0
    return t


@pytest.mark.parametrize("mode,padding", [("bilinear", "constant"), ("bicubic", "wrap"),
                                          ("nearest", "zeros")])
def test_perspective_warp_op_and_its_matrix_gradient(rng, mode, padding):
    """The TF projective warp: fastwarp's numbers, and gradients for the images and all of theta."""
    x = rng.normal(size=(2, 5, 6, 2))
    theta = _perspective(rng, 2)
    kw = dict(mode=mode, padding_mode=padding, fill_value=[0.5, -1.0])
    got = ftf.perspective_warp(x, theta, (4, 5), **kw)
    np.testing.assert_array_equal(got.numpy(), fastwarp.perspective_warp(x, theta, (4, 5), **kw))
    if mode != "nearest":
        _check_jacobians(lambda a, t: ftf.perspective_warp(a, t, (4, 5), **kw), [x, theta])
    gt = tf.function(lambda a, t: ftf.perspective_warp(a, t, **kw))(x, theta)
    assert gt.shape == (2, 5, 6, 2)


def test_new_flags_and_dtypes_in_the_ops(rng):
    x16 = tf.constant(rng.integers(0, 65536, (2, 6, 7, 3)).astype(np.uint16))
    theta = random_theta(rng, 2)
    out = ftf.affine_warp(x16, theta, mode="bicubic", padding_mode="constant", fill_value=60000)
    assert out.dtype == tf.uint16
    want = fastwarp.affine_warp(x16.numpy(), theta, mode="bicubic", padding_mode="constant", fill_value=60000)
    np.testing.assert_array_equal(out.numpy(), want)
    with tf.GradientTape() as tape:
        t = tf.constant(theta)
        tape.watch(t)
        o = ftf.affine_warp(x16, t)
    assert tape.gradient(o, t) is None  # integer images have no gradient
    xh = tf.constant(rng.random((2, 6, 7, 3)).astype(np.float16))
    out = ftf.grid_sample(xh, rng.uniform(-1.2, 1.2, (2, 3, 4, 2)), padding_mode="wrap")
    assert out.dtype == tf.float16
    with pytest.raises(ValueError, match="^perspective_warp: theta must have shape"):
        ftf.perspective_warp(x16, theta)
    with pytest.raises(ValueError, match="^affine_warp: fill_value must be a finite"):
        ftf.affine_warp(x16, theta, fill_value=np.nan)
    aug = ftf.random_affine(rotation=30, scale=0.5, seed=3, padding_mode="constant", fill_value=7)
    img = np.full((9, 9, 1), 200, np.uint8)
    warped = aug(tf.constant(img)).numpy()
    assert set(np.unique(warped)) <= set(range(7, 201)) and (warped == 7).any() and (warped == 200).any()


def test_xla_compilation_fails_clearly():
    @tf.function(jit_compile=True)
    def f(a, t):
        return ftf.affine_warp(a, t)

    with pytest.raises((tf.errors.InvalidArgumentError, tf.errors.UnimplementedError), match="PyFunc"):
        f(tf.zeros((1, 3, 3, 1)), tf.constant(np.eye(2, 3)[None], tf.float32))


# ---------------------------------------------------------------------------
# Keras layer
# ---------------------------------------------------------------------------

def localization():
    return keras.Sequential([keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.Flatten(),
                             keras.layers.Dense(8, activation="tanh")])


def st_model(shape=(10, 12, 1), out_size=(8, 8), classes=3):
    inp = keras.Input(shape)
    h = ftf.SpatialTransformer(localization(), output_size=out_size, padding_mode="border", name="st")(inp)
    out = keras.layers.Dense(classes)(keras.layers.Flatten()(h))
    return keras.Model(inp, out)


def test_layer_starts_at_identity(rng):
    x = rng.random((3, 9, 7, 2)).astype(np.float32)
    st = ftf.SpatialTransformer(localization())
    np.testing.assert_array_equal(st(x).numpy(), x)  # identity theta at pixel centres: an exact copy
    np.testing.assert_array_equal(st.theta(x).numpy(), np.broadcast_to(np.eye(2, 3), (3, 2, 3)))
    assert st.supports_jit is False


def test_layer_without_head_uses_the_network_output(rng):
    x = rng.random((2, 6, 6, 1)).astype(np.float32)
    loc = keras.Sequential([keras.layers.Flatten(), ftf.identity_head()])
    st = ftf.SpatialTransformer(loc, output_size=(4, 5), identity_head=False)
    np.testing.assert_array_equal(st(x).numpy(), fastwarp.affine_warp(x, np.eye(2, 3), (4, 5)))
    with pytest.raises(ValueError, match="must output 6 numbers"):
        ftf.SpatialTransformer(keras.layers.Flatten(), identity_head=False)(x)


def test_layer_config_round_trip():
    st = ftf.SpatialTransformer(localization(), output_size=(5, 6), mode="nearest", padding_mode="reflection",
                                align_corners=True, name="st")
    st.build((None, 10, 12, 1))
    config = st.get_config()
    again = ftf.SpatialTransformer.from_config(config)
    assert again.get_config() == config
    assert (again.output_size, again.mode, again.padding_mode, again.align_corners) == (
        (5, 6), "nearest", "reflection", True)
    assert isinstance(again.localization, keras.Sequential)
    assert [type(a) for a in again.localization.layers] == [type(a) for a in st.localization.layers]


def test_keras_fit_learns_through_the_transformer(rng):
    """A few steps of fit: the loss falls and the localization head leaves the identity."""
    keras.utils.set_random_seed(int(rng.integers(2**31)))
    x = rng.random((64, 10, 12, 1)).astype(np.float32)
    y = (x[:, :5].mean(axis=(1, 2, 3)) > x[:, 5:].mean(axis=(1, 2, 3))).astype(np.int64)
    model = st_model(classes=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    head = model.get_layer("st").head
    hist = model.fit(x, y, batch_size=16, epochs=6, verbose=0)
    losses = hist.history["loss"]
    assert losses[-1] < losses[0]
    assert np.abs(head.kernel.numpy()).max() > 0  # gradients reached theta


def test_compile_with_jit_falls_back():
    model = st_model()
    with pytest.warns(UserWarning, match="jit_compile"):
        model.compile(optimizer="adam", loss="mse", jit_compile=True)
    assert model.jit_compile is False


def test_keras_file_save_and_reload(rng, tmp_path):
    model = st_model()
    head = model.get_layer("st").head
    head.kernel.assign(rng.normal(scale=0.05, size=head.kernel.shape).astype(np.float32))
    x = rng.random((5, 10, 12, 1)).astype(np.float32)
    before = model(x).numpy()
    path = tmp_path / "st.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer("st"), ftf.SpatialTransformer)
    np.testing.assert_array_equal(loaded(x).numpy(), before)
    theta = loaded.get_layer("st").theta(x).numpy()
    np.testing.assert_array_equal(theta, model.get_layer("st").theta(x).numpy())
    assert not np.allclose(theta, np.eye(2, 3))


# ---------------------------------------------------------------------------
# augmentation
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("align", [False, True])
def test_tf_theta_matches_transforms(rng, align):
    n = 7
    in_size = tuple(int(v) for v in rng.integers(1, 40, 2))
    out_size = tuple(int(v) for v in rng.integers(1, 40, 2))
    rot, sc, sh = rng.uniform(-180, 180, n), rng.uniform(0.3, 3, n), rng.uniform(-40, 40, n)
    shift = rng.uniform(-10, 10, (n, 2))
    params = (tf.constant(v) for v in (rot, sc, sh, shift[:, 0], shift[:, 1]))
    got = ftf.affine_theta(in_size, out_size, *params, align_corners=align)
    want = transforms.affine_theta(in_size, out_size, rotation=rot, scale=sc, shear=sh, translation=shift,
                                   align_corners=align)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


def test_random_affine_constant_parameters_match_fastwarp(rng):
    x = rng.random((4, 9, 11, 3)).astype(np.float32)
    aug = ftf.random_affine(rotation=(20, 20), scale=1.3, shear=(-5, -5), translation=((1.5, 1.5), (-2, -2)),
                            output_size=(8, 10), padding_mode="border", align_corners=True)
    theta = transforms.affine_theta((9, 11), (8, 10), rotation=20, scale=1.3, shear=-5, translation=(1.5, -2),
                                    align_corners=True)
    want = fastwarp.affine_warp(x, theta, (8, 10), padding_mode="border", align_corners=True)
    np.testing.assert_allclose(aug(tf.constant(x[0])).numpy(), want[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(aug(tf.constant(x)).numpy(), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_random_affine_dataset_reproducible_with_labels(rng, dtype):
    n = 40
    x = (rng.random((n, 12, 10, 1)) * 255).astype(dtype)
    labels = rng.integers(0, 10, n)
    seed = int(rng.integers(2**40))

    def run(s, deterministic):
        aug = ftf.random_affine(rotation=30, scale=(0.8, 1.2), shear=10, translation=2, seed=s)
        ds = tf.data.Dataset.from_tensor_slices((x, labels, np.arange(n)))
        ds = ds.map(lambda im, y, k: (*aug(im, y), k), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=deterministic)
        out = {}
        for im, y, k in ds:
            assert im.dtype == tf.as_dtype(dtype) and im.shape == (12, 10, 1)
            assert y.numpy() == labels[k.numpy()]  # labels pass through
            out[int(k)] = im.numpy()
        return out

    a, b, other = run(seed, True), run(seed, False), run(seed + 1, True)
    assert sorted(a) == list(range(n))
    for k in range(n):
        np.testing.assert_array_equal(a[k], b[k])  # same element, same transform, whatever the order
    assert sum(not np.array_equal(a[k], other[k]) for k in range(n)) > n // 2
    assert sum(not np.array_equal(a[k], x[k]) for k in range(n)) > n // 2


def test_random_affine_by_index_varies_per_epoch(rng):
    x = rng.random((1, 8, 8, 1)).astype(np.float32)
    aug = ftf.random_affine(rotation=90, seed=3, by_index=True)
    ds = tf.data.Dataset.from_tensor_slices((x, [7])).repeat(3).enumerate().map(aug)
    out = [(im.numpy(), int(y)) for im, y in ds]
    assert [y for _, y in out] == [7, 7, 7]
    assert not np.array_equal(out[0][0], out[1][0]) and not np.array_equal(out[1][0], out[2][0])
    again = [im.numpy() for im, _ in ds]
    for (a, _), b in zip(out, again):
        np.testing.assert_array_equal(a, b)
    single = tf.data.Dataset.from_tensor_slices(x).enumerate().map(aug)
    assert next(iter(single)).shape == (8, 8, 1)


def test_random_affine_rejects_bad_arguments():
    with pytest.raises(ValueError, match="^random_affine: rotation"):
        ftf.random_affine(rotation=-5)
    with pytest.raises(ValueError, match="^random_affine: scale must be positive"):
        ftf.random_affine(scale=(0, 1))
    with pytest.raises(TypeError, match="^random_affine: seed must be an int"):
        ftf.random_affine(seed=1.5)
    with pytest.raises(ValueError, match="^random_affine: mode"):
        ftf.random_affine(mode="cubic")


# ---------------------------------------------------------------------------
# antialias
# ---------------------------------------------------------------------------

def _zoom_out(h, w, n):
    """(n, 2, 3) thetas that shrink a (h, w) image onto (h // 3, w // 3), rotated, with a small jitter."""
    t = transforms.affine_theta((h, w), (h // 3, w // 3), rotation=25, scale=1 / 3)
    return np.repeat(t[None], n, 0) + np.linspace(0, 0.02, n)[:, None, None]


def test_antialias_ops_and_gradients_equal_fastwarp(rng):
    n, h, w = 2, 23, 29
    size = (h // 3, w // 3)
    x = rng.random((n, h, w, 3)).astype(np.float32) + 0.1
    upstream = rng.normal(size=(n, *size, 3)).astype(np.float32)
    for rows, op, warp, backward in (
            (2, ftf.affine_warp, fastwarp.affine_warp, fastwarp.affine_warp_backward),
            (3, ftf.perspective_warp, fastwarp.perspective_warp, fastwarp.perspective_warp_backward)):
        theta = _zoom_out(h, w, n)
        if rows == 3:  # a perspective whose shrink grows across the image
            theta = np.concatenate([theta, np.tile([[[0.15, -0.1, 1.0]]], (n, 1, 1))], 1)
        want = warp(x, theta, size, antialias=True)
        assert np.abs(want - warp(x, theta, size)).max() > 0.05  # the filter did something
        xt, tt = tf.constant(x), tf.constant(theta)
        with tf.GradientTape() as tape:
            tape.watch([xt, tt])
            out = op(xt, tt, size, antialias=True)
            loss = tf.reduce_sum(out * upstream)
        np.testing.assert_array_equal(out.numpy(), want)
        gx, gt = tape.gradient(loss, [xt, tt])
        wx, wt = backward(upstream, x, theta, size, antialias=True)
        np.testing.assert_allclose(gx.numpy(), wx, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(gt.numpy(), wt, rtol=1e-6, atol=1e-6)


def test_antialias_random_affine_and_errors(rng):
    h, w = 21, 19
    x = (rng.random((3, h, w, 3)) * 254 + 1).astype(np.uint8)
    kw = dict(rotation=20, scale=(0.3, 0.5), seed=int(rng.integers(2**40)))
    aug = ftf.random_affine(**kw, antialias=True)
    got = aug(tf.constant(x)).numpy()
    theta = aug.thetas(tf.constant(x)).numpy()
    np.testing.assert_array_equal(got, fastwarp.affine_warp(x, theta, antialias=True))
    assert not np.array_equal(got, ftf.random_affine(**kw)(tf.constant(x)).numpy())
    persp = ftf.random_affine(**kw, perspective=0.3, antialias=True)
    theta = persp.thetas(tf.constant(x)).numpy()
    assert theta.shape == (3, 3, 3)
    np.testing.assert_array_equal(persp(tf.constant(x)).numpy(),
                                  fastwarp.perspective_warp(x, theta, antialias=True))
    with pytest.raises(ValueError, match="^affine_warp: antialias=True needs mode"):
        ftf.affine_warp(x, theta[:, :2], mode="nearest", antialias=True)
    with pytest.raises(TypeError, match="^perspective_warp: antialias must be a bool"):
        ftf.perspective_warp(x, theta, antialias=1)
    with pytest.raises(ValueError, match="^random_affine: antialias=True needs mode"):
        ftf.random_affine(mode="nearest", antialias=True)
