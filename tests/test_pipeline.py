"""fastwarp.pipeline: order, results, exceptions, early stop and bounded read-ahead."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import fastwarp
from fastwarp.augment import element_key
from fastwarp.pipeline import RandomAffine, prefetch_map, warp_batches
from fastwarp.transforms import affine_theta


def _threads():
    return [t for t in threading.enumerate() if t.name.startswith("fastwarp-prefetch")]


def _batches(rng, sizes, shape=(9, 13, 3), dtype=np.uint8):
    out = []
    for i, n in enumerate(sizes):
        images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8).astype(dtype)
        out.append((images, np.arange(n) + 100 * i))
    return out


@pytest.mark.parametrize("workers", [1, 3])
def test_results_equal_affine_warp_in_order(rng, workers):
    data = _batches(rng, [4, 1, 7, 3, 5, 2])
    thetas = [np.tile(np.eye(2, 3), (len(x), 1, 1)) + rng.normal(scale=0.3, size=(len(x), 2, 3))
              for x, _ in data]

    def slow_source():
        for item in data:
            time.sleep(float(rng.uniform(0, 0.01)))  # uneven arrival
            yield item

    def theta(index, images):
        time.sleep(0.01 * (index % 2))  # later batches sometimes finish first
        return thetas[index]

    got = list(warp_batches(slow_source(), theta, (6, 8), padding_mode="reflection", workers=workers))
    assert len(got) == len(data)
    for (images, labels), (warped, lab), t in zip(data, got, thetas):
        np.testing.assert_array_equal(lab, labels)
        np.testing.assert_array_equal(warped, fastwarp.affine_warp(images, t, (6, 8),
                                                                   padding_mode="reflection"))
    assert not _threads()


def test_plain_arrays_and_fixed_theta(rng):
    data = [x for x, _ in _batches(rng, [2, 3], dtype=np.float32)]
    t = affine_theta((9, 13), rotation=30)
    got = list(warp_batches(iter(data), t, mode="nearest"))
    for x, w in zip(data, got):
        assert isinstance(w, np.ndarray)
        np.testing.assert_array_equal(w, fastwarp.affine_warp(x, t, mode="nearest"))


def test_random_affine_reproducible_per_batch(rng):
    aug = RandomAffine(seed=3, rotate=(-30, 30), scale=(0.8, 1.2), shift=((-2, 2), (-1, 1)))
    x = np.zeros((5, 9, 13, 3), np.uint8)
    a, b = aug(0, x), aug(0, x)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (5, 2, 3)
    assert not np.allclose(aug(1, x), a)
    assert len({tuple(t.ravel()) for t in a}) == 5  # each image its own draw
    p = aug.spec.draw([element_key(0, 2)], (9, 13))
    params = {"rotation": p["rotation"][0], "scale": p["scale"][0, 0], "shear": p["shear"][0, 0],
              "translation": p["translation"][0]}
    assert -30 <= params["rotation"] <= 30 and 0.8 <= params["scale"] <= 1.2
    np.testing.assert_allclose(a[2], affine_theta((9, 13), **params))
    data = _batches(rng, [5, 5])
    got = list(warp_batches(data, aug, workers=2))
    for i, ((images, _), (w, _)) in enumerate(zip(data, got)):
        np.testing.assert_array_equal(w, fastwarp.affine_warp(images, aug(i, images)))



def test_antialias_is_passed_through(rng):
    data = _batches(rng, [3, 2], shape=(19, 23, 3))
    t = affine_theta((19, 23), (7, 9), rotation=25, scale=1 / 3)
    aug = RandomAffine(seed=2, rotation=30, scale=(0.3, 0.5), perspective=0.2)
    for theta in (t, aug):
        got = list(warp_batches(data, theta, (7, 9), antialias=True, workers=2))
        for i, ((images, labels), (w, lab)) in enumerate(zip(data, got)):
            ti = theta(i, images) if callable(theta) else t
            warp = fastwarp.perspective_warp if ti.shape[-2:] == (3, 3) else fastwarp.affine_warp
            want = warp(images, ti, (7, 9), antialias=True)
            assert not np.array_equal(want, warp(images, ti, (7, 9)))
            np.testing.assert_array_equal(w, want)
            np.testing.assert_array_equal(lab, labels)
    with pytest.raises(ValueError, match="^warp_batches: antialias=True needs mode"):
        warp_batches(data, t, mode="nearest", antialias=True)


def test_source_exception_reaches_consumer_in_position(rng):
    data = _batches(rng, [2, 2, 2])

    def source():
        yield from data[:2]
        raise OSError("disk went away")

    seen = []
    with pytest.raises(OSError, match="disk went away"):
        for images, _ in warp_batches(source(), np.eye(2, 3)):
            seen.append(images)
    assert len(seen) == 2
    time.sleep(0.05)
    assert not _threads()


def test_warp_exception_reaches_consumer_in_position(rng):
    good = _batches(rng, [2, 2])
    bad = (np.zeros((2, 5), np.uint8), None)  # not an image batch
    it = warp_batches([good[0], bad, good[1]], np.eye(2, 3), workers=2)
    next(it)
    with pytest.raises(ValueError, match="affine_warp: images must have shape"):
        next(it)


def test_early_stop_closes_source_and_bounds_read_ahead(rng):
    pulled = []
    closed = threading.Event()
    images = rng.integers(0, 256, size=(2, 8, 8, 1), dtype=np.uint8)

    def endless():
        try:
            while True:
                pulled.append(len(pulled))
                yield images
        finally:
            closed.set()

    gen = warp_batches(endless(), np.eye(2, 3), prefetch=2, workers=2)
    for k, _ in enumerate(gen):
        if k == 2:
            time.sleep(0.2)  # let the background threads run as far ahead as they may
            ahead = len(pulled) - 3
            break
    assert 0 <= ahead <= 2 + 2 + 1  # prefetch + workers, plus the item the feeder holds
    gen.close()
    assert closed.wait(2)
    assert not _threads()


def test_prefetch_map_order_and_arguments():
    assert list(prefetch_map(lambda v: v * v, range(50), workers=4, prefetch=0)) == [v * v for v in range(50)]
    with pytest.raises(ValueError, match="prefetch_map: workers"):
        prefetch_map(str, [], workers=0)
    with pytest.raises(ValueError, match="prefetch_map: prefetch"):
        prefetch_map(str, [], prefetch=-1)
    with pytest.raises(ValueError, match="warp_batches: mode"):
        warp_batches([], np.eye(2, 3), mode="cubic")


def test_workers_share_the_cores_and_results_do_not_change(rng):
    """With workers > 1 each worker's kernel runs on CPUs // workers threads (set in the worker
    thread, where the warp runs), and the warped batches are the same as with one worker."""
    import numba

    from fastwarp.core.threads import cpu_count

    data = _batches(rng, [3, 5, 2, 4])
    seen = []

    def theta(index, images):
        seen.append(numba.get_num_threads())
        return np.tile(affine_theta(images.shape[1:3], rotation=7 * index + 3), (len(images), 1, 1))

    two = list(warp_batches(iter(data), theta, workers=2))
    assert seen and set(seen) == {max(1, min(cpu_count() // 2, numba.config.NUMBA_NUM_THREADS))}
    one = list(warp_batches(iter(data), theta, workers=1))
    for (a, la), (b, lb) in zip(two, one):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    with pytest.raises(ValueError, match="workers"):
        warp_batches(iter(data), theta, workers=0)


def test_folder_and_pipeline_do_not_import_each_other():
    import subprocess
    import sys

    for mod, other in (("fastwarp.pipeline", "fastwarp.folder"), ("fastwarp.folder", "fastwarp.pipeline")):
        code = f"import sys, {mod}; sys.exit(int({other!r} in sys.modules))"
        assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0, mod
