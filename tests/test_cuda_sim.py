"""The GPU path (fastwarp.cuda), tested without a GPU in Numba's CUDA simulator.

Why subprocesses: Numba picks the simulator or the real driver once per
process, when ``numba.cuda`` is first imported, from ``NUMBA_ENABLE_CUDASIM``.
Setting the variable inside this pytest process would depend on import order
(another test may already have imported ``numba.cuda``) and would leak the
simulator into every later test.  So each check runs in a fresh child process
with exactly the environment it needs:

* :func:`test_gpu_cases` runs ``tests/cuda_sim_cases.py`` (the comparisons of
  every kernel with the CPU kernels for every mode x padding x align_corners x
  dtype, dispatch and error cases) under pytest, with ``NUMBA_ENABLE_CUDASIM=1``
  when this machine has no GPU and on the real GPU when it has one (the same
  cases, unchanged);
* :func:`test_no_gpu_gives_a_clear_error` hides every GPU
  (``CUDA_VISIBLE_DEVICES=""``) and leaves the simulator off: asking for the
  GPU must raise ``RuntimeError`` saying what to install, not crash;
* :func:`test_kernels_compile_to_ptx` compiles every CUDA kernel for a real GPU
  target with NVVM (``tests/cuda_ptx_check.py``): the simulator runs the
  kernels as Python, so this is what shows that the shared ``coords``
  functions and the kernels are valid CUDA code.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numba.cuda  # noqa: F401  (numba-cuda is in the test extras: a missing install fails here)

TESTS = Path(__file__).resolve().parent


def _env(**changes) -> dict:
    env = dict(os.environ)
    for k, v in changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def _run(args, env, timeout=1200) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, cwd=TESTS.parent, capture_output=True,
                          text=True, timeout=timeout)


def _real_gpu() -> bool:
    probe = "from numba import cuda; print(cuda.is_available())"
    r = _run(["-c", probe], _env(NUMBA_ENABLE_CUDASIM=None))
    return r.returncode == 0 and r.stdout.strip().endswith("True")


def test_gpu_cases():
    sim = None if _real_gpu() else "1"
    r = _run(["-m", "pytest", str(TESTS / "cuda_sim_cases.py"), "-q", "-p", "no:cacheprovider"],
             _env(NUMBA_ENABLE_CUDASIM=sim))
    where = "simulator" if sim else "real GPU"
    assert r.returncode == 0, f"GPU cases failed ({where}):\n{r.stdout[-20000:]}\n{r.stderr[-5000:]}"
    assert " passed" in r.stdout and "failed" not in r.stdout, r.stdout[-3000:]


def test_no_gpu_gives_a_clear_error():
    code = """
import numpy as np
import fastwarp as fw
import fastwarp.grad as fg
img = np.zeros((2, 4, 5, 3), np.float32)
theta = np.tile(np.eye(2, 3), (2, 1, 1))
calls = [
    lambda: fw.affine_warp(img, theta, device="cuda"),
    lambda: fw.grid_sample(img, np.zeros((2, 3, 3, 2)), device="cuda"),
    lambda: fw.affine_grid(theta, (3, 3), device="cuda"),
    lambda: fg.affine_warp_backward(img, img, theta, device="cuda"),
    lambda: fg.grid_sample_backward(img[:, :3, :3], img, np.zeros((2, 3, 3, 2)), device="cuda"),
    lambda: fw.perspective_warp(img, np.eye(3), device="cuda"),
    lambda: fw.perspective_grid(np.eye(3), (3, 3), device="cuda"),
    lambda: fg.perspective_warp_backward(img, img, np.eye(3), device="cuda"),
]
for call in calls:
    try:
        call()
    except RuntimeError as e:
        msg = str(e)
        assert "GPU" in msg and "fastwarp[cuda]" in msg and "NUMBA_ENABLE_CUDASIM" in msg, msg
    else:
        raise AssertionError("no error without a GPU")
print("clear errors")
"""
    r = _run(["-c", code], _env(NUMBA_ENABLE_CUDASIM=None, CUDA_VISIBLE_DEVICES=""))
    assert r.returncode == 0 and "clear errors" in r.stdout, r.stdout + r.stderr


def test_kernels_compile_to_ptx():
    r = _run([str(TESTS / "cuda_ptx_check.py")], _env(NUMBA_ENABLE_CUDASIM=None))
    # exit 3 means NVVM is absent: the test extras install it, so that is a failure too
    assert r.returncode == 0, r.stdout + r.stderr
    assert "compiled" in r.stdout, r.stdout


def test_bench_script_without_gpu_says_so():
    r = _run([str(TESTS.parent / "bench" / "bench_cuda.py")],
             _env(NUMBA_ENABLE_CUDASIM=None, CUDA_VISIBLE_DEVICES=""))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no CUDA GPU found" in r.stderr, r.stderr
