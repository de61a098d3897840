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


def test_numba_started_without_scipy_linalg_still_compiles_everything():
    """The command-line tools start Numba's CPU context with scipy.linalg refused: fastwarp's
    kernels, Numba's np.correlate and (importing SciPy on its own compile) np.dot still work."""
    import importlib.util
    import subprocess
    import sys

    code = """
import sys
import numba
import numpy as np
import fastwarp as fw
from fastwarp.core.runtime import start_numba_without_blas
from fastwarp.reference import affine_warp
assert "numba.np.arraymath" not in sys.modules
assert start_numba_without_blas() is True
assert "numba.np.arraymath" in sys.modules and "scipy.linalg" not in sys.modules
assert start_numba_without_blas() is False  # once per process
rng = np.random.default_rng(int(sys.argv[1]))
x = rng.random((2, 7, 9, 3))
theta = np.array([[0.8, -0.3, 0.1], [0.35, 0.9, -0.2]])
np.testing.assert_allclose(fw.affine_warp(x, theta), affine_warp(x, theta), rtol=0, atol=1e-12)
assert "scipy.linalg" not in sys.modules
a = rng.random(5)
assert np.allclose(numba.njit(lambda v: np.correlate(v, v))(a), np.correlate(a, a))
if sys.argv[2] == "1":
    assert np.isclose(numba.njit(lambda v: np.dot(v, v))(a), a @ a)
    assert "scipy.linalg" in sys.modules
print("ok")
"""
    has_scipy = "1" if importlib.util.find_spec("scipy") else "0"
    seed = str(np.random.SeedSequence().entropy % 2**32)
    r = subprocess.run([sys.executable, "-c", code, seed, has_scipy], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
