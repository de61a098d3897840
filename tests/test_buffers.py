"""The output pool (fastwarp.core.buffers): reuse only what nobody refers to, within its limit."""

from __future__ import annotations

import numpy as np
import pytest

import fastwarp as fw
from fastwarp.core import buffers as B


@pytest.fixture
def pool(monkeypatch):
    monkeypatch.setattr(B, "LIMIT", 64 << 20)
    B.clear()
    yield B
    B.clear()


def test_a_released_slab_is_reused_and_a_held_one_never(pool):
    shape = (2, 512, 512, 3)
    a = pool.empty(shape, np.float32)
    where = a.ctypes.data
    a[...] = 1.0
    del a
    b = pool.empty(shape, np.float32)
    assert b.ctypes.data == where  # released: handed out again
    c = pool.empty(shape, np.float32)
    assert c.ctypes.data != where  # b still holds it
    view = b[1]
    del b
    d = pool.empty(shape, np.float32)
    assert d.ctypes.data not in (where, c.ctypes.data)  # a view of b keeps the slab
    assert not np.shares_memory(view, d) and not np.shares_memory(c, d)
    assert d.shape == shape and d.dtype == np.float32 and d.flags.c_contiguous and d.flags.writeable


def test_small_arrays_bypass_the_pool_and_the_limit_holds(pool):
    small = pool.empty((10, 10), np.float64)
    assert small.base is None
    held = [pool.empty((4 << 20,), np.float32) for _ in range(6)]  # 16 MiB each: 4 fit in 64 MiB
    pooled = [a for a in held if a.base is not None]
    assert len(pooled) == 4 and pool._held == 64 << 20
    del held, pooled
    other = pool.empty((3 << 20,), np.float64)  # 24 MiB: idle slabs are dropped to make room
    assert other.base is not None and pool._held <= 64 << 20
    del other
    assert pool.clear() > 0 and pool._held == 0


def test_pooling_off(monkeypatch):
    monkeypatch.setattr(B, "LIMIT", 0)
    assert B.empty((4 << 20,), np.float32).base is None


def test_warps_in_a_loop_reuse_memory_and_stay_correct(pool):
    rng = np.random.default_rng()
    x = rng.random((2, 300, 301, 3), dtype=np.float32)
    theta = np.array([[0.9, 0.3, 0.05], [-0.3, 0.9, -0.1]])
    first = fw.affine_warp(x, theta)
    want = first.copy()
    kept = [first]
    for _ in range(3):
        again = fw.affine_warp(x, theta)
        assert not any(np.shares_memory(again, k) for k in kept)
        np.testing.assert_array_equal(again, want)
        kept.append(again)
    addresses = {k.ctypes.data for k in kept}
    slabs = len(pool._slabs)
    del kept, first, again
    assert fw.affine_warp(x, theta).ctypes.data in addresses  # a released slab, not a new one
    assert len(pool._slabs) == slabs
