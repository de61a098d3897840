"""Runtime settings: small calls on the calling thread, the thread count left as it was."""

from __future__ import annotations

import numba
import numpy as np
import pytest

import fastwarp as fw
from fastwarp.core import runtime as _runtime
from fastwarp.reference import affine_warp as ref_warp


def test_small_call_keeps_the_callers_thread_count(rng):
    before = numba.get_num_threads()
    most = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(most)
    try:
        x = rng.random((1, 9, 11, 3), dtype=np.float32)  # 297 output elements < SMALL_WORK
        theta = np.array([[0.8, -0.3, 0.1], [0.35, 0.9, -0.2]])
        assert x.size < _runtime.SMALL_WORK
        got = fw.affine_warp(x, theta, padding_mode="reflection")
        assert numba.get_num_threads() == most
        np.testing.assert_allclose(got, ref_warp(x, theta, padding_mode="reflection"), rtol=0, atol=2e-6)
        with pytest.raises(ValueError, match="theta must be finite"):
            fw.affine_warp(x, np.full((2, 3), np.nan))
        assert numba.get_num_threads() == most
    finally:
        numba.set_num_threads(before)


def test_small_and_threaded_paths_agree_bit_for_bit(rng):
    # the same call below and above SMALL_WORK: a batch of one image, then that image among others
    x = rng.random((9, 23, 29, 3), dtype=np.float32)
    theta = rng.normal(0, 0.3, (9, 2, 3)) + np.eye(2, 3)
    assert x[:1].size < _runtime.SMALL_WORK <= x.size
    whole = fw.affine_warp(x, theta, padding_mode="zeros")
    one = fw.affine_warp(x[:1], theta[:1], padding_mode="zeros")
    np.testing.assert_array_equal(one, whole[:1])


def test_every_compilation_of_a_kernel_runs_with_slp_and_restores_the_setting(rng):
    # a fresh dispatcher: its first call through _runtime.call compiles (or loads) with SLP on
    seen = []

    @numba.njit
    def scaled(a, k):
        return a * k

    before = numba.config.SLP_VECTORIZE
    compile_ = scaled.compile

    def spy(sig):
        seen.append(numba.config.SLP_VECTORIZE)
        return compile_(sig)

    scaled.compile = spy
    x = rng.random(5)
    np.testing.assert_array_equal(_runtime.call(scaled, x, 2.0), x * 2.0)
    np.testing.assert_array_equal(_runtime.call(scaled, x.astype(np.float32), 3), x.astype(np.float32) * 3)
    assert seen == [1, 1]  # one compilation per specialization, each with SLP on
    _runtime.call(scaled, x, 4.0)
    assert seen == [1, 1]  # a known specialization compiles nothing
    assert numba.config.SLP_VECTORIZE == before
