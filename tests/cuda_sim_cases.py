"""GPU-path checks, run by tests/test_cuda_sim.py in a separate process.

Not collected by a plain ``pytest`` run (the name does not start with
``test_``): Numba decides once per process, when ``numba.cuda`` is first
imported, between the CUDA simulator and the real driver, so these cases run
in a child process that was started with ``NUMBA_ENABLE_CUDASIM=1`` (no GPU)
or without it (a real GPU).  They are the same cases either way.  Run them by
hand with::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda_sim_cases.py -q   # simulator
    python -m pytest tests/cuda_sim_cases.py -q                          # real GPU

Inputs are tiny (the simulator runs every GPU thread as a Python thread) and
the thread blocks are 4x4, so outputs of 5x6 pixels span several blocks with a
partial last block along both axes.

Oracle: every result is compared, for every mode x padding x align_corners x
dtype, with ``fastwarp.reference`` (the NumPy oracle the CPU kernels are
tested against, with the same tolerances), and
:func:`test_matches_the_cpu_kernels` compares the GPU with the CPU kernels
directly.  ``FASTWARP_CUDA_ORACLE=cpu`` makes the CPU kernels the oracle of
every case; it is not the default because each CPU kernel specialization then
compiles in this process (minutes on a loaded 2-core machine) while the
reference needs no compilation.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from helpers import MODES, PADDINGS, assert_matches, random_images, random_theta
from numba import cuda

import fastwarp as fw
import fastwarp.cuda as fc
import fastwarp.grad as fgrad
from fastwarp import reference as ref

FLAGS = list(itertools.product(MODES, PADDINGS, (False, True)))
SHAPE = (2, 5, 7, 3)  # N, H, W, C
SIZE = (5, 6)  # output Ho, Wo: 2x2 blocks of 4x4 threads, the last ones partial


ORACLE = os.environ.get("FASTWARP_CUDA_ORACLE", "reference")
assert ORACLE in ("reference", "cpu"), f"FASTWARP_CUDA_ORACLE must be reference or cpu, got {ORACLE}"


def _batched(fn, *arrays):
    """Run a batch-only reference function on possibly unbatched (H, W, C) inputs."""
    if arrays[0].ndim == 4:
        return fn(*arrays)
    res = fn(*(a[None] for a in arrays))
    return tuple(r[0] for r in res) if isinstance(res, tuple) else res[0]


def want_affine_warp(img, theta, size, mode="bilinear", padding_mode="zeros", align_corners=False):
    if ORACLE == "cpu":
        return fw.affine_warp(img, theta, size, mode=mode, padding_mode=padding_mode,
                              align_corners=align_corners)
    return _batched(lambda i: ref.affine_warp(i, theta, size, mode, padding_mode, align_corners), img)


def want_grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False):
    if ORACLE == "cpu":
        return fw.grid_sample(img, grid, mode=mode, padding_mode=padding_mode,
                              align_corners=align_corners)
    return _batched(lambda i, g: ref.grid_sample(i, g, mode, padding_mode, align_corners), img, grid)


def want_affine_grid(theta, size, align_corners=False):
    if ORACLE == "cpu":
        return fw.affine_grid(theta, size, align_corners=align_corners)
    theta = np.asarray(theta, np.float64)
    if theta.ndim == 2:
        return ref.affine_grid(theta[None], size, align_corners)[0]
    return ref.affine_grid(theta, size, align_corners)


def want_affine_warp_backward(gout, img, theta, size, mode="bilinear", padding_mode="zeros",
                              align_corners=False):
    if ORACLE == "cpu":
        return fgrad.affine_warp_backward(gout, img, theta, size, mode=mode,
                                          padding_mode=padding_mode, align_corners=align_corners)
    if img.ndim == 3:  # a single image: its theta is (2, 3), whose gradient is the batch sum
        gi, gt = ref.affine_warp_backward(gout[None], img[None], theta, size, mode, padding_mode,
                                          align_corners)
        return gi[0], gt
    return ref.affine_warp_backward(gout, img, theta, size, mode, padding_mode, align_corners)


def want_grid_sample_backward(gout, img, grid, mode="bilinear", padding_mode="zeros",
                              align_corners=False):
    if ORACLE == "cpu":
        return fgrad.grid_sample_backward(gout, img, grid, mode=mode, padding_mode=padding_mode,
                                          align_corners=align_corners)
    return _batched(lambda o, i, g: ref.grid_sample_backward(o, i, g, mode, padding_mode,
                                                             align_corners), gout, img, grid)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(fc, "threads_per_block", (4, 4))


def host(a) -> np.ndarray:
    assert hasattr(a, "__cuda_ndarray__") or hasattr(a, "__cuda_array_interface__"), type(a)
    return a.copy_to_host()


def test_backend_is_what_the_parent_asked_for():
    import os

    assert fc.SIMULATOR == (os.environ.get("NUMBA_ENABLE_CUDASIM") == "1")
    assert fc.is_available()


# float64 runs every mode x padding in test_every_mode_and_padding_matches_the_reference
@pytest.mark.parametrize("dtype", (np.float32, np.uint8), ids=lambda d: d.__name__)
def test_affine_warp_matches_oracle(rng, dtype):
    img = random_images(rng, SHAPE, dtype)
    d_img = cuda.to_device(img)
    for k, (mode, padding, align) in enumerate(FLAGS):
        theta = random_theta(rng, SHAPE[0])
        # alternate host theta, device float64 theta and device float32 theta
        th = [theta, cuda.to_device(theta), cuda.to_device(theta.astype(np.float32))][k % 3]
        th_cpu = theta.astype(np.float32).astype(np.float64) if k % 3 == 2 else theta
        kw = dict(mode=mode, padding_mode=padding, align_corners=align)
        got = fw.affine_warp(d_img, th, SIZE, **kw)
        want = want_affine_warp(img, th_cpu, SIZE, **kw)
        assert_matches(host(got), want, dtype, f"{mode}/{padding}/{align}")


@pytest.mark.parametrize("dtype", (np.float32, np.uint8), ids=lambda d: d.__name__)
def test_grid_sample_matches_oracle(rng, dtype):
    img = random_images(rng, SHAPE, dtype)
    d_img = cuda.to_device(img)
    for k, (mode, padding, align) in enumerate(FLAGS):
        gdt = (np.float32, np.float64)[k % 2]
        grid = rng.uniform(-1.6, 1.6, size=(SHAPE[0],) + SIZE + (2,)).astype(gdt)
        grid[0, 0, 0] = (np.nan, 0.0)
        grid[0, 1, 1] = (np.inf, -np.inf)
        grid[1, 2, 3] = (1e6, -3e5)  # far outside: follows the padding mode
        grid[1, 3, 2] = (1e30, 0.2)  # beyond 2**40: reads 0 like NaN
        grid[1, 4, 5] = (1.0, -1.0)  # exact edges/corners
        kw = dict(mode=mode, padding_mode=padding, align_corners=align)
        g = grid if k % 3 == 0 else cuda.to_device(grid)  # host grid too
        got = fw.grid_sample(d_img, g, **kw)
        want = want_grid_sample(img, grid, **kw)
        assert_matches(host(got), want, dtype, f"{mode}/{padding}/{align}/{gdt.__name__}")


def test_matches_the_cpu_kernels(rng):
    """GPU vs fastwarp's CPU kernels directly (float32; the flag matrix is covered above).  The
    default flags: the CPU kernels they need are in ``fastwarp precompile``'s cache when the
    suite runs this, instead of compiling here."""
    img = random_images(rng, SHAPE, np.float32)
    theta = random_theta(rng, SHAPE[0])
    d_img = cuda.to_device(img)
    kw = dict(mode="bilinear", padding_mode="zeros", align_corners=False)
    assert_matches(host(fw.affine_warp(d_img, theta, SIZE, **kw)),
                   fw.affine_warp(img, theta, SIZE, **kw), np.float32)
    grid = fw.affine_grid(theta, SIZE, align_corners=True)
    np.testing.assert_allclose(host(fw.affine_grid(theta, SIZE, align_corners=True, device="cuda")),
                               grid, rtol=0, atol=1e-12)
    assert_matches(host(fw.grid_sample(d_img, cuda.to_device(grid), **kw)),
                   fw.grid_sample(img, grid, **kw), np.float32)
    gout = rng.standard_normal((SHAPE[0],) + SIZE + (SHAPE[3],)).astype(np.float32)
    kw = dict(mode="bilinear", padding_mode="zeros", align_corners=False)
    gi, gt = fc.affine_warp_backward(cuda.to_device(gout), d_img, theta, SIZE, **kw)
    wi, wt = fgrad.affine_warp_backward(gout, img, theta, SIZE, **kw)
    assert_grad_close(gi, wi, np.float32)
    assert_grad_close(gt, wt, np.float32)


@pytest.mark.parametrize("align", (False, True))
def test_affine_grid_matches_oracle(rng, align):
    theta = random_theta(rng, 3)
    for th, device in ((theta, "cuda"), (cuda.to_device(theta), None)):
        got = fw.affine_grid(th, SIZE, align_corners=align, device=device)
        want = want_affine_grid(theta, SIZE, align_corners=align)
        assert host(got).dtype == np.float64
        np.testing.assert_allclose(host(got), want, rtol=0, atol=1e-12)
    # one (2, 3) matrix -> one (Ho, Wo, 2) grid
    got = fw.affine_grid(cuda.to_device(theta[1]), (1, 4), align_corners=align)
    np.testing.assert_allclose(host(got), want_affine_grid(theta[1], (1, 4), align_corners=align),
                               rtol=0, atol=1e-12)


def test_single_image_shared_theta_and_one_pixel(rng):
    img = random_images(rng, SHAPE, np.float32)
    theta = random_theta(rng, 1)[0]
    # a (2, 3) theta on the device serves the whole batch
    got = fw.affine_warp(cuda.to_device(img), cuda.to_device(theta), SIZE, padding_mode="border")
    assert_matches(host(got), want_affine_warp(img, theta, SIZE, padding_mode="border"), np.float32)
    # a single (H, W, C) image gives a single (Ho, Wo, C) result
    got = fw.affine_warp(cuda.to_device(img[1]), theta, SIZE, mode="nearest")
    assert got.shape == SIZE + (SHAPE[3],)
    assert_matches(host(got), want_affine_warp(img[1], theta, SIZE, mode="nearest"), np.float32)
    # 1-pixel images and 1-pixel outputs
    one = random_images(rng, (3, 1, 1, 2), np.uint8)
    th3 = random_theta(rng, 3)
    for size in ((1, 1), (3, 2)):
        for align in (False, True):
            got = fw.affine_warp(cuda.to_device(one), th3, size, padding_mode="reflection",
                                 align_corners=align)
            want = want_affine_warp(one, th3, size, padding_mode="reflection", align_corners=align)
            assert_matches(host(got), want, np.uint8, f"{size}/{align}")


def test_strided_device_images(rng):
    """Batched device views with any strides are read in place (no copy, no error)."""
    big = random_images(rng, (2, 5, 14, 3), np.float64)
    view = cuda.to_device(big)[:, :, ::2]
    assert not view.is_c_contiguous()
    theta = random_theta(rng, 2)
    got = fw.affine_warp(view, theta, SIZE, align_corners=True)
    want = want_affine_warp(big[:, :, ::2], theta, SIZE, align_corners=True)
    assert_matches(host(got), want, np.float64)


def test_batch_loop_beyond_the_grid_limit(rng, monkeypatch):
    """With fewer z blocks than images the kernels loop over the batch."""
    monkeypatch.setattr(fc, "_MAX_BLOCKS_Z", 2)
    img = random_images(rng, (5, 4, 3, 2), np.float32)
    theta = random_theta(rng, 5)
    got = fw.affine_warp(cuda.to_device(img), theta, (3, 5))
    assert_matches(host(got), want_affine_warp(img, theta, (3, 5)), np.float32)
    grid = np.ascontiguousarray(want_affine_grid(theta, (3, 5)))
    got = fw.grid_sample(cuda.to_device(img), cuda.to_device(grid))
    assert_matches(host(got), want_grid_sample(img, grid), np.float32)
    got = fw.affine_grid(cuda.to_device(theta), (3, 5))
    np.testing.assert_allclose(host(got), grid, rtol=0, atol=1e-12)


def test_out_buffer(rng):
    img = random_images(rng, SHAPE, np.uint8)
    theta = random_theta(rng, SHAPE[0])
    out = cuda.device_array((SHAPE[0],) + SIZE + (SHAPE[3],), np.uint8)
    res = fw.affine_warp(cuda.to_device(img), theta, SIZE, out=out)
    assert res is out
    assert_matches(host(out), want_affine_warp(img, theta, SIZE), np.uint8)
    gout = cuda.device_array(SIZE + (2,), np.float64)
    assert fw.affine_grid(theta[0], SIZE, out=gout) is gout
    np.testing.assert_allclose(host(gout), want_affine_grid(theta[0], SIZE), rtol=0, atol=1e-12)


def test_empty_batch():
    res = fw.affine_warp(cuda.to_device(np.zeros((0, 3, 4, 2), np.float32)), np.zeros((0, 2, 3)),
                         SIZE)
    assert res.shape == (0,) + SIZE + (2,)
    assert host(res).dtype == np.float32


# ------------------------------------------------------------------- dispatch

def test_device_array_in_device_array_out(rng):
    img = random_images(rng, SHAPE, np.float32)
    theta = random_theta(rng, SHAPE[0])
    for res in (fw.affine_warp(cuda.to_device(img), theta),
                fw.grid_sample(cuda.to_device(img), want_affine_grid(theta, SHAPE[1:3])),
                fw.affine_grid(cuda.to_device(theta), SIZE)):
        assert hasattr(res, "__cuda_ndarray__") and not isinstance(res, np.ndarray)


def test_device_cuda_copies_host_arrays(rng):
    img = random_images(rng, SHAPE, np.float64)
    theta = random_theta(rng, SHAPE[0])
    res = fw.affine_warp(img, theta, SIZE, device="cuda", mode="nearest")
    assert not isinstance(res, np.ndarray)
    assert_matches(host(res), want_affine_warp(img, theta, SIZE, mode="nearest"), np.float64)
    grid = fw.affine_grid(theta, SIZE, device="cuda")
    np.testing.assert_allclose(host(grid), want_affine_grid(theta, SIZE), rtol=0, atol=1e-12)
    res = fw.grid_sample(img, host(grid), device="cuda")
    assert_matches(host(res), want_grid_sample(img, host(grid)), np.float64)


def test_device_cpu_refuses_device_arrays(rng):
    img = cuda.to_device(random_images(rng, SHAPE, np.float32))
    theta = random_theta(rng, SHAPE[0])
    with pytest.raises(ValueError, match="^affine_warp: device='cpu'"):
        fw.affine_warp(img, theta, device="cpu")
    with pytest.raises(ValueError, match="^grid_sample: device='cpu'"):
        fw.grid_sample(img, cuda.to_device(np.zeros(SHAPE[:3] + (2,))), device="cpu")
    with pytest.raises(ValueError, match="^affine_grid: device='cpu'"):
        fw.affine_grid(cuda.to_device(theta), SIZE, device="cpu")
    with pytest.raises(ValueError, match="^affine_warp: fastwarp.cuda runs on the GPU"):
        fc.affine_warp(img, theta, device="cpu")


# --------------------------------------------------------------- bad input

def test_bad_device_inputs_raise_clear_errors(rng):
    img = cuda.to_device(random_images(rng, SHAPE, np.float32))
    theta = random_theta(rng, SHAPE[0])
    cases = [
        (TypeError, "^affine_warp: images must have dtype float32, float64, float16, uint8, uint16",
         lambda: fw.affine_warp(cuda.to_device(np.zeros(SHAPE, np.int32)), theta)),
        (ValueError, r"^affine_warp: images must have shape \(N, H, W, C\)",
         lambda: fw.affine_warp(cuda.to_device(np.zeros((2, 3), np.float32)), theta)),
        (ValueError, r"^affine_warp: theta has 3 matrices for a batch of 2 images",
         lambda: fw.affine_warp(img, cuda.to_device(random_theta(rng, 3)))),
        (ValueError, r"^affine_warp: theta must have shape \(N, 2, 3\)",
         lambda: fw.affine_warp(img, cuda.to_device(np.zeros((2, 3, 3))))),
        (TypeError, "^affine_warp: theta must be a real",
         lambda: fw.affine_warp(img, cuda.to_device(np.zeros((2, 2, 3), np.complex128)))),
        (ValueError, "^affine_warp: theta must be finite",
         lambda: fw.affine_warp(img, np.full((2, 3), np.nan))),
        (ValueError, r"^grid_sample: grid must have shape \(N, Ho, Wo, 2\)",
         lambda: fw.grid_sample(img, cuda.to_device(np.zeros((2, 4, 4, 3))))),
        (ValueError, "^grid_sample: grid has batch size 1 but images have 2",
         lambda: fw.grid_sample(img, cuda.to_device(np.zeros((1, 4, 4, 2))))),
        (TypeError, "^grid_sample: grid must have dtype float32, float64",
         lambda: fw.grid_sample(img, cuda.to_device(np.zeros((2, 4, 4, 2), np.int64)))),
        (ValueError, "^grid_sample: padding_mode must be one of",
         lambda: fw.grid_sample(img, cuda.to_device(np.zeros((2, 4, 4, 2))), padding_mode="tile")),
        (ValueError, r"^perspective_warp: theta must have shape \(N, 3, 3\)",
         lambda: fw.perspective_warp(img, cuda.to_device(np.zeros((2, 2, 3))))),
        (ValueError, "^grid_sample: fill_value must be a scalar or 3 values",
         lambda: fw.grid_sample(img, cuda.to_device(np.zeros((2, 4, 4, 2))), padding_mode="constant",
                                fill_value=[1.0, 2.0])),
        (ValueError, "^perspective_warp: antialias=True needs mode 'bilinear' or 'bicubic'",
         lambda: fw.perspective_warp(img, np.eye(3), mode="nearest", antialias=True)),
        (ValueError, "^affine_warp_backward: antialias=True needs mode 'bilinear' or 'bicubic'",
         lambda: fgrad.affine_warp_backward(img, img, theta, mode="nearest", antialias=True)),
        (TypeError, "^affine_warp: out must be a GPU array",
         lambda: fw.affine_warp(img, theta, out=np.zeros(SHAPE, np.float32))),
        (ValueError, r"^affine_warp: out must have shape \(2, 5, 7, 3\)",
         lambda: fw.affine_warp(img, theta, out=cuda.device_array((2, 5, 7, 2), np.float32))),
        (TypeError, "^affine_warp: out must have dtype float32",
         lambda: fw.affine_warp(img, theta, out=cuda.device_array(SHAPE, np.float64))),
        (ValueError, "^affine_warp: out overlaps an input",
         lambda: fw.affine_warp(img, theta, out=img)),
        (ValueError, "^affine_warp: a single-image image on the GPU must be C-contiguous",
         lambda: fw.affine_warp(img[0, :, ::2], theta[0])),
        (ValueError, "^affine_warp: size must be positive",
         lambda: fw.affine_warp(img, theta, (0, 3))),
        (TypeError, "^affine_grid: size .Ho, Wo. is required",
         lambda: fw.affine_grid(cuda.to_device(theta), None)),
    ]
    for exc, pattern, call in cases:
        with pytest.raises(exc, match=pattern):
            call()


# ------------------------------------------------------------------- backward

def assert_grad_close(got, want, dtype, msg=""):
    """GPU gradient vs the oracle's, with tests/test_backward.py's tolerances: float32 results
    (accumulated in float32) to 2e-4, float64 to 1e-10, relative to the largest value."""
    got = host(got)
    assert got.dtype == want.dtype and got.shape == want.shape, (msg, got.dtype, got.shape)
    scale = max(1.0, float(np.abs(want).max(initial=0)))
    tol = (2e-4 if np.dtype(dtype) == np.float32 else 1e-10) * scale
    np.testing.assert_allclose(got, want, rtol=0, atol=tol, err_msg=msg)




# float64 gradients of every mode x padding: test_every_mode_and_padding_backward
@pytest.mark.parametrize("dtype", (np.float32,), ids=lambda d: d.__name__)
def test_affine_warp_backward_matches_oracle(rng, dtype):
    img = random_images(rng, SHAPE, dtype)
    d_img = cuda.to_device(img)
    for k, (mode, padding, align) in enumerate(FLAGS):
        gout = rng.standard_normal((SHAPE[0],) + SIZE + (SHAPE[3],)).astype(dtype)
        theta = random_theta(rng, SHAPE[0])
        if k % 4 == 3:
            theta = theta[0]  # one matrix shared by the batch: its gradient is summed
        th = cuda.to_device(theta) if k % 2 else theta
        det = k % 3 == 0
        kw = dict(mode=mode, padding_mode=padding, align_corners=align)
        gi, gt = fc.affine_warp_backward(cuda.to_device(gout), d_img, th, SIZE, deterministic=det,
                                         **kw)
        wi, wt = want_affine_warp_backward(gout, img, theta, SIZE, **kw)
        msg = f"{mode}/{padding}/{align}/det={det}"
        assert_grad_close(gi, wi, dtype, "images " + msg)
        assert_grad_close(gt, wt, dtype, "theta " + msg)


@pytest.mark.parametrize("dtype", (np.float32,), ids=lambda d: d.__name__)
def test_grid_sample_backward_matches_oracle(rng, dtype):
    img = random_images(rng, SHAPE, dtype)
    d_img = cuda.to_device(img)
    for k, (mode, padding, align) in enumerate(FLAGS):
        gdt = (np.float32, np.float64)[k % 2]
        grid = rng.uniform(-1.4, 1.4, size=(SHAPE[0],) + SIZE + (2,)).astype(gdt)
        grid[0, 0, 0] = (np.nan, 0.3)
        grid[1, 4, 5] = (1.0, -1.0)
        # grad_out in the other float type: converted like the CPU path does
        gout = rng.standard_normal((SHAPE[0],) + SIZE + (SHAPE[3],))
        det = k % 3 == 1
        kw = dict(mode=mode, padding_mode=padding, align_corners=align)
        gi, gg = fc.grid_sample_backward(cuda.to_device(gout), d_img, cuda.to_device(grid),
                                         deterministic=det, **kw)
        wi, wg = want_grid_sample_backward(gout, img, grid, **kw)
        msg = f"{mode}/{padding}/{align}/{gdt.__name__}/det={det}"
        assert_grad_close(gi, wi, dtype, "images " + msg)
        assert_grad_close(gg, wg, dtype, "grid " + msg)  # accumulated in the images' type


def test_backward_single_image_and_dispatch(rng):
    img = random_images(rng, SHAPE[1:], np.float64)
    theta = random_theta(rng, 1)[0]
    gout = rng.standard_normal(SIZE + (SHAPE[3],))
    # through fastwarp.grad: device arrays in -> the GPU path -> device arrays out
    gi, gt = fgrad.affine_warp_backward(cuda.to_device(gout), cuda.to_device(img), theta, SIZE,
                                        padding_mode="reflection")
    wi, wt = want_affine_warp_backward(gout, img, theta, SIZE, padding_mode="reflection")
    assert gi.shape == img.shape and gt.shape == (2, 3)
    assert_grad_close(gi, wi, np.float64)
    assert_grad_close(gt, wt, np.float64)
    grid = want_affine_grid(theta, SIZE)
    gi, gg = fgrad.grid_sample_backward(gout, img, grid, device="cuda", align_corners=False)
    wi, wg = want_grid_sample_backward(gout, img, grid)
    assert not isinstance(gi, np.ndarray) and gg.shape == grid.shape
    assert_grad_close(gi, wi, np.float64)
    assert_grad_close(gg, wg, np.float64)
    with pytest.raises(ValueError, match="^affine_warp_backward: device='cpu'"):
        fgrad.affine_warp_backward(cuda.to_device(gout), img, theta, SIZE, device="cpu")


def test_deterministic_backward(rng, monkeypatch):
    """deterministic=True: bit-identical on every run, equal (to rounding) to the atomic version;
    one slice per image (K = 1) and several (K > 1, summed in order) give the same gradient.
    (In the simulator the atomic mode is reproducible too; on a GPU its image gradient is not.)"""
    img = cuda.to_device(random_images(rng, SHAPE, np.float32))
    gout = cuda.to_device(rng.standard_normal((SHAPE[0],) + SIZE + (SHAPE[3],)).astype(np.float32))
    theta = random_theta(rng, SHAPE[0], spread=0.3)
    kw = dict(padding_mode="border", align_corners=True)
    runs = [fc.affine_warp_backward(gout, img, theta, SIZE, deterministic=True, **kw)
            for _ in range(2)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(host(a), host(b))
    atomic = [fc.affine_warp_backward(gout, img, theta, SIZE, **kw) for _ in range(2)]
    assert_grad_close(runs[0][0], host(atomic[0][0]), np.float32)
    assert_grad_close(runs[0][1], host(atomic[0][1]), np.float32)
    # theta's gradient is reduced in a fixed order in the atomic mode too
    np.testing.assert_array_equal(host(atomic[0][1]), host(atomic[1][1]))
    assert fc._det_chunks(SHAPE[0], SIZE[0], 1) == SIZE[0]  # K > 1 above
    monkeypatch.setattr(fc, "_DET_TARGET_THREADS", 1)
    assert fc._det_chunks(SHAPE[0], SIZE[0], 1) == 1
    one = fc.affine_warp_backward(gout, img, theta, SIZE, deterministic=True, **kw)
    assert_grad_close(one[0], host(runs[0][0]), np.float32)


def test_theta_block_reduction_any_block_shape(rng, monkeypatch):
    """The per-block tree sum of dL/dtheta with a block of 15 threads (not a power of two)
    and partial blocks; blocks over MAX_BLOCK_THREADS are refused."""
    monkeypatch.setattr(fc, "threads_per_block", (3, 5))
    img = random_images(rng, SHAPE, np.float64)
    gout = rng.standard_normal((SHAPE[0],) + SIZE + (SHAPE[3],))
    theta = random_theta(rng, SHAPE[0])
    kw = dict(mode="bilinear", padding_mode="reflection", align_corners=False)
    gi, gt = fc.affine_warp_backward(cuda.to_device(gout), cuda.to_device(img), theta, SIZE, **kw)
    wi, wt = want_affine_warp_backward(gout, img, theta, SIZE, **kw)
    assert_grad_close(gi, wi, np.float64)
    assert_grad_close(gt, wt, np.float64)
    monkeypatch.setattr(fc, "threads_per_block", (32, 16))
    with pytest.raises(ValueError, match="^affine_warp_backward: threads_per_block"):
        fc.affine_warp_backward(cuda.to_device(gout), cuda.to_device(img), theta, SIZE, **kw)


def test_backward_empty_batch():
    img = cuda.to_device(np.zeros((0, 3, 4, 2), np.float32))
    gout = cuda.to_device(np.zeros((0,) + SIZE + (2,), np.float32))
    gi, gt = fc.affine_warp_backward(gout, img, np.eye(2, 3), SIZE)
    assert gi.shape == (0, 3, 4, 2)
    np.testing.assert_array_equal(host(gt), np.zeros((2, 3)))


def test_backward_bad_input(rng):
    img = cuda.to_device(random_images(rng, SHAPE, np.float32))
    theta = random_theta(rng, SHAPE[0])
    gout = cuda.to_device(np.zeros((SHAPE[0],) + SIZE + (SHAPE[3],), np.float32))
    with pytest.raises(TypeError, match="^affine_warp_backward: images must have dtype float32, "
                                        "float64, float16 to be differentiated"):
        fc.affine_warp_backward(gout, cuda.to_device(np.zeros(SHAPE, np.uint8)), theta, SIZE)
    with pytest.raises(ValueError, match=r"^affine_warp_backward: grad_out must have the forward "
                                         r"output's shape \(2, 5, 6, 3\); got \(2, 5, 7, 3\)"):
        fc.affine_warp_backward(img, img, theta, SIZE)
    with pytest.raises(TypeError, match="^grid_sample_backward: grad_out must have dtype"):
        fc.grid_sample_backward(cuda.to_device(np.zeros((2, 5, 6, 3), np.int16)), img,
                                cuda.to_device(np.zeros((2, 5, 6, 2))))


# ------------------------------------------- breadth: modes, paddings, projective, dtypes

ALL_MODES = ("nearest", "bilinear", "bicubic")
ALL_PADDINGS = ("zeros", "border", "reflection", "constant", "wrap")
ALL_FLAGS = list(itertools.product(ALL_MODES, ALL_PADDINGS, (False, True)))


def random_perspective(rng, n, strength=0.3):
    """Projective matrices near the identity with w = t20 x + t21 y + 1 in [0.4, 1.6] over the
    output: w near 0 would put points at millions of pixels, where a one-ulp difference in the
    sums (the GPU contracts them into FMAs, the reference's BLAS orders them its own way) moves
    a reflected or wrapped sample by more than the 1e-12 tolerance.  Points behind the viewer
    are tested in test_perspective_with_affine_last_row_and_grid."""
    t = np.tile(np.eye(3), (n, 1, 1)) + rng.normal(scale=strength, size=(n, 3, 3)) * [[0.5, 0.5, 1.0]] * 2
    t[:, 2, :2] = rng.normal(scale=strength, size=(n, 2))
    t[:, 2, :2] *= np.minimum(1.0, 0.6 / np.abs(t[:, 2, :2]).sum(axis=1, keepdims=True))
    t[:, 2, 2] = 1.0
    return t


def test_every_mode_and_padding_matches_the_reference(rng):
    """perspective_warp, affine_warp and grid_sample on float64 images for every mode x padding
    x align_corners, with a per-channel fill value, against fastwarp.reference."""
    img = random_images(rng, SHAPE, np.float64)
    d_img = cuda.to_device(img)
    for k, (mode, padding, align) in enumerate(ALL_FLAGS):
        fill = rng.uniform(-2, 2, SHAPE[3])
        kw = dict(mode=mode, padding_mode=padding, align_corners=align, fill_value=fill)
        msg = f"{mode}/{padding}/{align}"
        theta = random_perspective(rng, SHAPE[0])
        got = fw.perspective_warp(d_img, theta if k % 2 else cuda.to_device(theta), SIZE, **kw)
        want = ref.perspective_warp(img, theta, SIZE, mode, padding, align, fill)
        np.testing.assert_allclose(host(got), want, rtol=0, atol=1e-12, err_msg="perspective " + msg)
        theta = random_theta(rng, SHAPE[0])
        got = fw.affine_warp(d_img, theta, SIZE, **kw)
        want = ref.affine_warp(img, theta, SIZE, mode, padding, align, fill)
        np.testing.assert_allclose(host(got), want, rtol=0, atol=1e-12, err_msg="affine " + msg)
        grid = rng.uniform(-1.7, 1.7, size=(SHAPE[0],) + SIZE + (2,))
        grid[0, 0, 0] = (np.nan, 0.0)
        grid[0, 1, 1] = (0.2, np.inf)
        grid[1, 2, 3] = (1e13, 0.0)  # beyond HUGE: no image, reads the fill
        grid[1, 4, 5] = (1.0, -1.0)
        got = fw.grid_sample(d_img, cuda.to_device(grid), **kw)
        want = ref.grid_sample(img, grid, mode, padding, align, fill)
        np.testing.assert_allclose(host(got), want, rtol=0, atol=1e-12, err_msg="grid " + msg)


def test_every_mode_and_padding_backward(rng):
    """Gradients for every mode x padding (float64): perspective_warp or affine_warp by turns
    (they run the same kernel; every padding meets both), both align_corners values and both
    the atomic and the deterministic image gradient for each, and grid_sample for one
    combination in three.  (The simulator runs every GPU thread in Python: the full product
    would take minutes.)"""
    img = random_images(rng, SHAPE, np.float64)
    d_img = cuda.to_device(img)
    for k, (mode, padding) in enumerate(itertools.product(ALL_MODES, ALL_PADDINGS)):
        align = k % 3 == 0
        fill = rng.uniform(-2, 2, SHAPE[3])
        kw = dict(mode=mode, padding_mode=padding, align_corners=align, fill_value=fill)
        det = k % 4 < 2
        msg = f"{mode}/{padding}/{align}/det={det}"
        gout = rng.standard_normal((SHAPE[0],) + SIZE + (SHAPE[3],))
        d_gout = cuda.to_device(gout)
        if k % 2 == 0:
            theta = random_perspective(rng, SHAPE[0])
            gi, gt = fc.perspective_warp_backward(d_gout, d_img, theta, SIZE, deterministic=det, **kw)
            wi, wt = ref.perspective_warp_backward(gout, img, theta, SIZE, mode, padding, align, fill)
            assert gt.shape == (SHAPE[0], 3, 3)
            what = "perspective"
        else:
            theta = random_theta(rng, SHAPE[0])
            gi, gt = fc.affine_warp_backward(d_gout, d_img, theta, SIZE, deterministic=det, **kw)
            wi, wt = ref.affine_warp_backward(gout, img, theta, SIZE, mode, padding, align, fill)
            what = "affine"
        assert_grad_close(gi, wi, np.float64, f"{what} images " + msg)
        assert_grad_close(gt, wt, np.float64, f"{what} theta " + msg)
        if k % 3:
            continue  # the grid source for one combination in three, each padding once
        grid = rng.uniform(-1.4, 1.4, size=(SHAPE[0],) + SIZE + (2,))
        grid[0, 0, 0] = (np.nan, 0.3)
        grid[1, 4, 5] = (1.0, -1.0)
        kw["align_corners"] = galign = k % 2 == 1  # (align is True wherever k % 3 == 0)
        gi, gg = fc.grid_sample_backward(d_gout, d_img, cuda.to_device(grid), deterministic=det, **kw)
        wi, wg = ref.grid_sample_backward(gout, img, grid, mode, padding, galign, fill)
        msg = f"{mode}/{padding}/{galign}/det={det}"
        assert_grad_close(gi, wi, np.float64, "grid images " + msg)
        assert_grad_close(gg, wg, np.float64, "grid " + msg)


def test_float32_images_in_the_new_modes(rng):
    """float32 images (accumulated in float32) in bicubic, constant and wrap, forward and backward."""
    img = random_images(rng, SHAPE, np.float32)
    d_img = cuda.to_device(img)
    theta = random_perspective(rng, SHAPE[0])
    for mode, padding in (("bicubic", "reflection"), ("bilinear", "constant"), ("nearest", "wrap"),
                          ("bicubic", "wrap")):
        kw = dict(mode=mode, padding_mode=padding, fill_value=0.7)
        got = fw.perspective_warp(d_img, theta, SIZE, **kw)
        want = ref.perspective_warp(img, theta, SIZE, mode, padding, False, 0.7)
        assert_matches(host(got), want, np.float32, f"{mode}/{padding}")
        gout = rng.standard_normal((SHAPE[0],) + SIZE + (SHAPE[3],)).astype(np.float32)
        gi, gt = fc.perspective_warp_backward(cuda.to_device(gout), d_img, theta, SIZE, **kw)
        wi, wt = ref.perspective_warp_backward(gout, img, theta, SIZE, mode, padding, False, 0.7)
        assert_grad_close(gi, wi, np.float32, f"images {mode}/{padding}")
        assert_grad_close(gt, wt, np.float32, f"theta {mode}/{padding}")


def test_uint16_uint8_and_float16_images(rng):
    """uint16 (rounded, saturated, blended in float64), uint8 and float16 (computed in float32,
    stored as float16; its gradient too) on the GPU, against the reference."""
    theta = random_perspective(rng, SHAPE[0])
    for dtype, hi in ((np.uint16, 65535), (np.uint8, 255)):
        img = rng.integers(0, hi + 1, size=SHAPE).astype(dtype)
        img[0, :2] = hi  # bicubic overshoots next to a plateau: saturates
        for mode, padding in (("bicubic", "reflection"), ("bilinear", "constant"), ("nearest", "wrap")):
            got = host(fw.perspective_warp(cuda.to_device(img), theta, SIZE, mode=mode, padding_mode=padding,
                                           fill_value=hi * 1.5))
            want = ref.perspective_warp(img, theta, SIZE, mode, padding, False, hi * 1.5)
            assert got.dtype == dtype
            diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
            assert diff.max() <= 1 and (diff > 0).mean() < 0.05, (dtype, mode, padding, diff.max())
    img = rng.random(SHAPE)
    x16 = img.astype(np.float16)
    for mode, padding in (("bicubic", "wrap"), ("bilinear", "zeros")):
        got = host(fw.perspective_warp(cuda.to_device(x16), theta, SIZE, mode=mode, padding_mode=padding))
        want = ref.perspective_warp(x16, theta, SIZE, mode, padding)
        assert got.dtype == np.float16
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=2e-3, atol=2e-3)
    gout = rng.standard_normal((SHAPE[0],) + SIZE + (SHAPE[3],))
    for det in (False, True):
        gi, gt = fc.perspective_warp_backward(gout, x16, theta, SIZE, mode="bicubic", deterministic=det)
        ri, rt = ref.perspective_warp_backward(gout, x16.astype(np.float64), theta, SIZE, "bicubic")
        gi = host(gi)
        assert gi.dtype == np.float16 and host(gt).dtype == np.float64
        np.testing.assert_allclose(gi.astype(np.float64), ri, rtol=5e-3, atol=5e-3)
        np.testing.assert_allclose(host(gt), rt, rtol=1e-3, atol=1e-3 * np.abs(rt).max())


def test_nearest_float32_grid_rounds_like_torch():
    """A float32 grid in nearest mode is unnormalized in float32, as PyTorch does: on a width-5
    image x = -0.2 lands exactly on 1.5 and rounds half to even (column 2); a float64 grid of
    the same value reads column 1.  The backward scatters to the same pixel."""
    img = np.arange(5, dtype=np.float32).reshape(1, 1, 5, 1)
    g32 = np.array([[[[-0.2, 0.0]]]], np.float32)
    got = host(fw.grid_sample(cuda.to_device(img), cuda.to_device(g32), mode="nearest"))
    assert got[0, 0, 0, 0] == 2.0
    got = host(fw.grid_sample(cuda.to_device(img), cuda.to_device(g32.astype(np.float64)), mode="nearest"))
    assert got[0, 0, 0, 0] == 1.0
    gi, _ = fc.grid_sample_backward(np.ones((1, 1, 1, 1), np.float32), img, g32, mode="nearest")
    np.testing.assert_array_equal(host(gi)[0, 0, :, 0], [0, 0, 1, 0, 0])


def test_perspective_with_affine_last_row_and_grid(rng):
    """A last row (0, 0, 1) gives affine_warp's numbers bit for bit; perspective_grid holds
    NaN where w <= 0 and matches the reference elsewhere; grid_sample of it equals the fused warp."""
    img = cuda.to_device(random_images(rng, SHAPE, np.float64))
    theta2 = random_theta(rng, SHAPE[0])
    theta3 = np.concatenate([theta2, np.tile([[[0.0, 0.0, 1.0]]], (SHAPE[0], 1, 1))], axis=1)
    for mode in ALL_MODES:
        a = host(fw.affine_warp(img, theta2, SIZE, mode=mode, padding_mode="reflection"))
        p = host(fw.perspective_warp(img, theta3, SIZE, mode=mode, padding_mode="reflection"))
        np.testing.assert_array_equal(a, p)
    theta = random_perspective(rng, SHAPE[0])
    theta[0, 2] = (1.5, 0.0, 1.0)  # w = 1.5 x + 1 <= 0 left of x = -2/3: behind the viewer
    for align in (False, True):
        grid = host(fw.perspective_grid(cuda.to_device(theta), SIZE, align_corners=align))
        want = ref.perspective_grid(theta, SIZE, align)
        np.testing.assert_allclose(grid, want, rtol=0, atol=1e-12)
        assert np.array_equal(np.isnan(grid), np.isnan(want))
        single = host(fw.perspective_grid(theta[0], SIZE, align_corners=align, device="cuda"))
        np.testing.assert_allclose(single, want[0], rtol=0, atol=1e-12)
    assert np.isnan(grid[0]).any() and not np.isnan(grid[0, :, -1]).any()
    got = host(fw.grid_sample(img, cuda.to_device(grid), mode="bilinear", align_corners=True))
    want = host(fw.perspective_warp(img, theta, SIZE, mode="bilinear", align_corners=True))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_shared_perspective_theta_gradient_is_the_batch_sum(rng):
    img = random_images(rng, SHAPE, np.float64)
    theta = random_perspective(rng, 1)[0]
    gout = rng.standard_normal((SHAPE[0],) + SIZE + (SHAPE[3],))
    for det in (False, True):
        gi, gt = fc.perspective_warp_backward(gout, img, theta, SIZE, deterministic=det)
        wi, wt = ref.perspective_warp_backward(gout, img, np.broadcast_to(theta, (SHAPE[0], 3, 3)), SIZE)
        assert gt.shape == (3, 3)
        assert_grad_close(gi, wi, np.float64)
        assert_grad_close(gt, wt.sum(axis=0), np.float64)
    # through fastwarp.grad: device arrays dispatch to the GPU
    gi, gt = fgrad.perspective_warp_backward(cuda.to_device(gout), cuda.to_device(img), theta, SIZE)
    assert not isinstance(gi, np.ndarray)
    assert_grad_close(gt, wt.sum(axis=0), np.float64)


def test_antialias_matches_the_reference(rng):
    """antialias=True on the GPU: the footprint filter where the warp shrinks (random rotated,
    sheared, anisotropic zooms out; a perspective whose shrink grows across the image), the
    plain warp bit for bit where nothing shrinks, for both modes, every padding, every dtype."""
    from fastwarp.transforms import affine_theta

    h, w, size = 17, 19, (4, 5)
    img = rng.random((2, h, w, 2))
    d_img = cuda.to_device(img)
    for k, padding in enumerate(ALL_PADDINGS):
        mode = ("bilinear", "bicubic")[k % 2]
        align = k % 3 == 0
        kw = dict(mode=mode, padding_mode=padding, align_corners=align, fill_value=[0.3, -0.2],
                  antialias=True)
        theta = np.stack([affine_theta((h, w), size, rotation=rng.uniform(-180, 180),
                                       scale=rng.uniform(0.3, 0.6), shear=rng.uniform(-20, 20))
                          for _ in range(2)])
        got = host(fw.affine_warp(d_img, theta, size, **kw))
        np.testing.assert_allclose(got, ref.affine_warp(img, theta, size, **kw), rtol=0, atol=1e-12,
                                   err_msg=f"affine {mode}/{padding}")
        if padding not in ("zeros", "wrap"):
            continue  # (the simulator runs each thread's tap loop in Python)
        p = np.vstack([affine_theta((h, w), (7, 6), rotation=rng.uniform(-180, 180)), [0.0, 0.0, 1.0]])
        p[2, :2] = (0.3, -0.25)  # w over about [0.45, 1.55]: shrinks in part of the output
        mask = ref.antialias_mask(img[:1], p[None], (7, 6), align)[0]
        got = host(fw.perspective_warp(d_img[:1], p, (7, 6), **kw))[0]
        want = ref.perspective_warp(img[:1], p[None], (7, 6), **kw)[0]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=f"perspective {mode}/{padding}")
        plain = host(fw.perspective_warp(d_img[:1], p, (7, 6), **dict(kw, antialias=False)))[0]
        assert 0 < mask.mean() < 1
        np.testing.assert_array_equal(got[~mask], plain[~mask])
    # integer and half images, and a zoom in (no shrink: the plain warp bit for bit)
    for dtype in (np.uint16, np.float16):
        x = random_images(rng, (2, h, w, 3), np.float64)
        x = (x * 255).astype(dtype) if dtype == np.uint8 else (
            (x * 65535).astype(dtype) if dtype == np.uint16 else x.astype(dtype))
        theta = affine_theta((h, w), size, rotation=30.0, scale=0.3)
        got = host(fw.affine_warp(cuda.to_device(x), theta, size, antialias=True))
        want = ref.affine_warp(x[None] if x.ndim == 3 else x, theta, size, antialias=True)
        assert got.dtype == dtype
        tol = 1 if dtype in (np.uint8, np.uint16) else (2e-3 if dtype == np.float16 else 2e-5)
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=0, atol=tol)
        zoom_in = affine_theta((h, w), (h, w), rotation=20.0, scale=1.5)
        np.testing.assert_array_equal(host(fw.affine_warp(cuda.to_device(x), zoom_in, antialias=True)),
                                      host(fw.affine_warp(cuda.to_device(x), zoom_in)))


def test_antialias_gradient_matches_the_cpu(rng):
    """The antialias gradient on the GPU (images and theta, atomic and deterministic) against
    the CPU's, which the CPU tests check against finite differences and the adjoint identity:
    rotated anisotropic zooms out and a perspective whose shrink varies, both modes, three
    paddings, float64 and float16 images; deterministic runs are bit-identical."""
    from fastwarp.transforms import affine_theta

    h, w, size = 13, 11, (5, 6)
    img = rng.random((2, h, w, 2))
    gout = rng.standard_normal((2,) + size + (2,))
    theta = np.stack([affine_theta((h, w), size, rotation=rng.uniform(-180, 180),
                                   scale=rng.uniform(0.35, 0.6), shear=rng.uniform(-15, 15))
                      for _ in range(2)])
    cases = (("bilinear", "zeros", False), ("bicubic", "reflection", True), ("bilinear", "constant", True))
    for k, (mode, padding, det) in enumerate(cases):
        kw = dict(mode=mode, padding_mode=padding, fill_value=[0.3, -0.2], antialias=True)
        b = 2 if k == 0 else 1  # (the simulator runs every tap loop in Python: one image mostly)
        want = fgrad.affine_warp_backward(gout[:b], img[:b], theta[:b], size, **kw)
        got = fc.affine_warp_backward(gout[:b], img[:b], theta[:b], size, deterministic=det, **kw)
        for g, e, what in zip(got, want, ("images", "theta")):
            np.testing.assert_allclose(host(g), e, rtol=0, atol=1e-12 * max(1.0, np.abs(e).max()),
                                       err_msg=f"{mode}/{padding}/det={det}: {what}")
        if k == 2:
            again = fc.affine_warp_backward(gout[:b], img[:b], theta[:b], size, deterministic=True, **kw)
            for a, c in zip(got, again):
                np.testing.assert_array_equal(host(a), host(c))
    p = np.vstack([affine_theta((h, w), size, rotation=rng.uniform(-180, 180), scale=0.5), [0.0, 0.0, 1.0]])
    p[2, :2] = (0.3, -0.25)  # w over about [0.45, 1.55]: the shrink varies across the output
    kw = dict(mode="bilinear", padding_mode="wrap", antialias=True)
    want = fgrad.perspective_warp_backward(gout[:1], img[:1], p[None], size, **kw)
    got = fc.perspective_warp_backward(gout[:1], img[:1], p[None], size, **kw)
    for g, e in zip(got, want):
        np.testing.assert_allclose(host(g), e, rtol=0, atol=1e-12 * max(1.0, np.abs(e).max()))
    for dtype, tol in ((np.float16, 2e-3),):  # differentiated in float32, float32 buffers
        x = img[:1].astype(dtype)
        want = fgrad.affine_warp_backward(gout[:1], x, theta[:1], size, antialias=True)
        got = fc.affine_warp_backward(gout[:1], x, theta[:1], size, antialias=True)
        assert host(got[0]).dtype == dtype and host(got[1]).dtype == np.float64
        np.testing.assert_allclose(host(got[0]).astype(np.float64), want[0].astype(np.float64), rtol=0,
                                   atol=tol)
        np.testing.assert_allclose(host(got[1]), want[1], rtol=tol, atol=tol * np.abs(want[1]).max())
