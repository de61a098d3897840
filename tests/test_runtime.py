"""Runtime settings: small calls on the calling thread, the thread count left as it was."""

from __future__ import annotations

import time

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
import time

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


def test_a_helpers_exception_reaches_the_caller_and_marks_the_schedule():
    import threading

    from fastwarp.cpu import sched

    done = threading.Event()
    errors: list = []
    s = sched.schedule(4, 2)

    def failing(sched_arr):
        try:
            raise ZeroDivisionError("boom")
        finally:
            done.set()

    sched._helpers(1).post([failing, (), s, 1, errors])
    assert done.wait(10)
    deadline = time.monotonic() + 10
    while not errors and time.monotonic() < deadline:
        time.sleep(0.001)
    assert isinstance(errors[0], ZeroDivisionError) and s[sched.FAILED] == 1


def test_helpers_stay_out_of_calls_that_do_not_want_them():
    import threading

    from fastwarp.cpu import sched

    crew = sched._helpers(1)
    ran = threading.Event()
    crew.post([lambda s: ran.set(), (), sched.schedule(1, 1), 0, []])  # zero helpers wanted
    assert not ran.wait(0.2)
    crew.post([lambda s: ran.set(), (), sched.schedule(1, 1), 1, []])
    assert ran.wait(10)


@pytest.mark.parametrize("raw", ["abc", "1.5"])
def test_spin_setting_must_be_whole_microseconds(monkeypatch, raw):
    from fastwarp.cpu import sched

    monkeypatch.setenv("FASTWARP_SPIN_US", raw)
    with pytest.raises(ValueError, match="FASTWARP_SPIN_US"):
        sched.spin_us()
    monkeypatch.setenv("FASTWARP_SPIN_US", "0")
    assert sched.spin_us() == 0


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_helpers(rng):
    """A child forked after the parent's threaded calls has none of the parent's threads:
    its threaded calls start their own helpers instead of waiting on missing ones."""
    import multiprocessing as mp

    x = rng.random((6, 41, 37, 3), dtype=np.float32)
    theta = rng.normal(0, 0.3, (6, 2, 3)) + np.eye(2, 3)
    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        expected = fw.affine_warp(x, theta)  # the parent's helpers exist now
        with mp.get_context("fork").Pool(1) as pool:
            got, own_crew = pool.apply(_warp_with_two_threads, (x, theta))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(got, expected)
    assert own_crew or numba.config.NUMBA_NUM_THREADS < 2


def _warp_with_two_threads(x, theta):
    import os

    from fastwarp.cpu import sched

    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    out = fw.affine_warp(x, theta)
    return out, sched._crew is not None and sched._crew.pid == os.getpid()


def test_a_helper_survives_a_job_emptied_under_it():
    """The caller empties its job list when its call ends, possibly while a helper is
    taking it apart: the helper must shrug that off and serve the next call."""
    import threading

    from fastwarp.cpu import sched

    crew = sched._helpers(1)
    crew.post([1, 2])  # what a half-emptied list looks like to a helper
    crew.post([])
    ran = threading.Event()
    crew.post([lambda s: ran.set(), (), sched.schedule(1, 1), 1, []])
    assert ran.wait(10)


def test_nothing_writes_into_the_output_after_a_failed_call_returns():
    """A chunk that raises ends the call with its exception, and by then no other thread is
    still writing rows: the caller stops further claims and waits for running helpers.
    (Without that, when the caller is the thread that raises, its helper goes on writing
    the remaining chunks; the deterministic check of the waiting is the next test.)"""
    import math

    from fastwarp.cpu import sched

    @numba.njit(nogil=True)
    def kernel(out, s):
        c = sched.claim(s)
        while c < s[sched.CHUNKS]:
            r0, r1 = sched.chunk_rows(s, c)
            if c == 5:
                raise ValueError("chunk 5 failed")
            for r in range(r0, r1):
                acc = 0.0
                for k in range(20000):
                    acc += math.sqrt(k + r)
                out[r] = acc
            c = sched.next_chunk(s)

    out = np.zeros(256)
    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        with pytest.raises(ValueError, match="chunk 5 failed"):
            sched.call_rows(kernel, out, rows=out.size, work=10**6)
        snapshot = out.copy()
        time.sleep(0.05)
        np.testing.assert_array_equal(out, snapshot)
    finally:
        numba.set_num_threads(before)


def test_a_failed_call_waits_for_the_helpers_inside_the_kernel():
    import threading

    from fastwarp.cpu import sched

    s = sched.schedule(8, 4)
    inside = threading.Event()
    wrote = []

    def slow(s_arr):  # a helper in the middle of its chunk
        inside.set()
        time.sleep(0.1)
        wrote.append(1)

    sched._helpers(1).post([slow, (), s, 1, []])
    assert inside.wait(10)
    sched._stop(s)
    assert wrote == [1] and s[sched.ACTIVE] == 0
    assert s[sched.NEXT] >= s[sched.CHUNKS]  # no thread claims another chunk


def _numba_only(fn) -> bool:
    return bool(getattr(fn, "targetoptions", {}).get("no_cpython_wrapper"))


def test_functions_called_from_python_keep_their_entry_points():
    """A Numba-only function (``core.runtime.NUMBA_ONLY``) crashes the interpreter when Python
    calls it.  The GPU kernels call fastwarp's scalar CPU helpers, and Numba's CUDA simulator
    runs those calls in Python: every helper they import keeps its entry point.  The row
    functions only Numba code calls are Numba-only (their entry points cost compile time)."""
    import ast
    import importlib
    import pathlib

    import fastwarp.gpu

    source = pathlib.Path(fastwarp.gpu.__file__).with_name("kernels.py").read_text()
    checked = 0
    for node in ast.walk(ast.parse(source)):
        ours = isinstance(node, ast.ImportFrom) and node.level == 2
        if ours and node.module.split(".")[0] in ("cpu", "core"):
            module = importlib.import_module("fastwarp." + node.module)
            for alias in node.names:
                fn = getattr(module, alias.name)
                if hasattr(fn, "py_func"):
                    assert not _numba_only(fn), f"{node.module}.{alias.name} has no Python entry point"
                    checked += 1
    assert checked >= 20
    from fastwarp.cpu import antialias, backward, bilinear, generic, rows, span

    for fn in (bilinear.rows_c3, bilinear.bilinear_point, span._point_row, rows.row_pixels,
               generic.bicubic_point, backward.point_row, antialias.row_filter):
        assert _numba_only(fn), fn.py_func.__qualname__
    for fn in (antialias.forward_kernel, antialias.backward_kernel, antialias.mask_kernel,
               generic.forward_kernel(0, 0, 3, False), generic.backward_kernel(0, 0, 3, False)):
        assert not _numba_only(fn)
