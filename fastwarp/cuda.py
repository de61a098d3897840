"""GPU path: the grids, samplers, warps and their gradients with numba.cuda.

Same names, arguments, conventions and dtypes as :mod:`fastwarp.api` (read the
convention there); the kernels (:mod:`fastwarp.gpu.kernels`) share the
coordinate math of the CPU kernels (:mod:`fastwarp.core.coords`).

Inputs may be GPU arrays (Numba device arrays, CuPy arrays, PyTorch CUDA
tensors: anything with ``__cuda_array_interface__``, used in place without a
copy; and the device arrays of Numba's CUDA simulator) or host arrays, which
are checked on the host and copied to the GPU.  Results are Numba device
arrays and stay on the GPU (wrap them with ``cupy.asarray(r)`` or
``torch.as_tensor(r, device="cuda")`` without a copy, or ``r.copy_to_host()``).
Kernels are launched on the default stream and not waited for.

Differences from the CPU path, all because checking would need a host sync:
a theta that already lives on the GPU is not checked for NaN or infinity (a
non-finite theta gives non-finite coordinates, which read 0 like a non-finite
grid point).  A single image ``(H, W, C)`` that lives on the GPU must be
C-contiguous (batched GPU images may have any strides).

Without a GPU every function raises ``RuntimeError`` saying so, unless
``NUMBA_ENABLE_CUDASIM=1`` was set before ``numba.cuda`` was first imported,
in which case everything runs (slowly) in Numba's CUDA simulator.
"""

from __future__ import annotations

import warnings

import numpy as np
from numba import cuda as _nc

from .core.coords import BICUBIC, NEAREST
from .core.validate import (
    FLOAT_DTYPES,
    GRAD_DTYPES,
    IMAGE_DTYPES,
    check_antialias,
    check_flags,
    check_grid,
    check_images,
    check_size,
    check_theta,
    fill_for,
)
from .cpu import antialias as AA
from .gpu import kernels as CK

__all__ = ["affine_grid", "perspective_grid", "grid_sample", "affine_warp", "perspective_warp",
           "affine_warp_backward", "grid_sample_backward", "perspective_warp_backward", "is_available",
           "SIMULATOR", "threads_per_block", "deterministic_backward"]

#: True when numba.cuda is Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1).
SIMULATOR = "simulator" in getattr(_nc.detect, "__module__", "")

#: Thread block (x over output columns, y over output rows); the tests shrink it.
threads_per_block = (32, 8)

# CUDA's limits on the grid's y and z block counts; beyond _MAX_BLOCKS_Z images
# the kernels loop over the batch (a grid-stride loop along z).
_MAX_BLOCKS_Y = 65535
_MAX_BLOCKS_Z = 65535


def is_available() -> bool:
    """True when a CUDA GPU (or the simulator) can run the kernels."""
    try:
        return bool(_nc.is_available())
    except Exception:  # noqa: BLE001 - a broken driver install counts as no GPU
        return False


def _require_gpu(fn: str) -> None:
    if not is_available():
        raise RuntimeError(
            f"{fn}: no CUDA GPU found (numba.cuda.is_available() is False). The GPU path needs an "
            "NVIDIA GPU with its driver and `pip install 'fastwarp[cuda]'`; to run it without a GPU, "
            "set NUMBA_ENABLE_CUDASIM=1 before importing fastwarp (Numba's CUDA simulator, slow). "
            "Or call the CPU path with device='cpu' and host arrays.")


def _check_device_arg(fn: str, device) -> None:
    if device not in (None, "cuda"):
        raise ValueError(f"{fn}: fastwarp.cuda runs on the GPU; device must be None or 'cuda', "
                         f"got {device!r} (use fastwarp.{fn} for the CPU)")


# --------------------------------------------------------------------- arrays

def _as_device(a):
    """The GPU array behind ``a`` (no copy), or None for a host array."""
    if hasattr(a, "__cuda_ndarray__"):  # Numba device array, real or simulated
        return a
    if hasattr(a, "__cuda_array_interface__"):  # CuPy, PyTorch, ...
        return _nc.as_cuda_array(a)
    return None


def _contiguous(a) -> bool:
    return bool(a.is_c_contiguous())


def _batch_view(fn: str, name: str, a):
    """(1, ...) view of an unbatched C-contiguous device array."""
    if not _contiguous(a):
        raise ValueError(f"{fn}: a single-image {name} on the GPU must be C-contiguous; "
                         f"got strides {tuple(a.strides)} (pass it batched or contiguous)")
    return a.reshape((1,) + tuple(a.shape))


def _span(a) -> tuple[int, int]:
    """[first, last) byte addresses an array may touch."""
    cai = getattr(a, "__cuda_array_interface__", None)
    if cai is None:  # the simulator's arrays wrap NumPy arrays
        cai = a.__array_interface__
    lo = hi = cai["data"][0]
    for n, s in zip(a.shape, a.strides):
        if n == 0:
            return lo, lo
        if s > 0:
            hi += (n - 1) * s
        else:
            lo += (n - 1) * s
    return lo, hi + a.dtype.itemsize


def _overlaps(a, b) -> bool:
    a0, a1 = _span(a)
    b0, b1 = _span(b)
    return a0 < b1 and b0 < a1


def _images(fn: str, images):
    """(N, H, W, C) device images and whether the call is batched."""
    d = _as_device(images)
    if d is None:
        src, batched = check_images(fn, images)
        return _nc.to_device(src), batched
    if d.dtype not in IMAGE_DTYPES:
        names = ", ".join(t.name for t in IMAGE_DTYPES)
        raise TypeError(f"{fn}: images must have dtype {names} (native byte order); got {d.dtype}")
    shape = tuple(d.shape)
    if len(shape) not in (3, 4):
        raise ValueError(f"{fn}: images must have shape (N, H, W, C) or (H, W, C); got shape {shape}")
    if min(shape[-3:]) < 1:
        raise ValueError(f"{fn}: images need H, W and C of at least 1; got shape {shape}")
    if len(shape) == 3:
        return _batch_view(fn, "image", d), False
    return d, True


def _theta(fn: str, theta, n: int, batched: bool, rows: int = 2):
    """Device theta of shape (n, rows, 3) or (1, rows, 3) (one matrix for every image)."""
    d = _as_device(theta)
    if d is None:
        return _nc.to_device(check_theta(fn, theta, n, batched, rows=rows))
    if d.dtype.kind not in "fiu" or not d.dtype.isnative:
        raise TypeError(f"{fn}: theta must be a real float or integer array; got dtype {d.dtype}")
    shape = tuple(d.shape)
    if shape == (rows, 3):
        return _batch_view(fn, "theta", d)
    if len(shape) == 3 and shape[1:] == (rows, 3):
        if shape[0] != n:
            what = f"batch of {n} images" if batched else "single image"
            raise ValueError(f"{fn}: theta has {shape[0]} matrices for a {what}; "
                             f"expected shape ({n}, {rows}, 3) or ({rows}, 3), got {shape}")
        return d
    raise ValueError(f"{fn}: theta must have shape (N, {rows}, 3) or ({rows}, 3); got {shape}")


def _grid(fn: str, grid, n: int, batched: bool):
    d = _as_device(grid)
    if d is None:
        return _nc.to_device(check_grid(fn, grid, n, batched))
    if d.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{fn}: grid must have dtype float32, float64 (native byte order); got {d.dtype}")
    shape = tuple(d.shape)
    if not batched:
        if len(shape) != 3 or shape[-1] != 2:
            raise ValueError(f"{fn}: grid for a single image must have shape (Ho, Wo, 2); got {shape}")
        d = _batch_view(fn, "grid", d)
        shape = (1,) + shape
    if len(shape) != 4 or shape[-1] != 2:
        raise ValueError(f"{fn}: grid must have shape (N, Ho, Wo, 2); got {shape}")
    if shape[0] != n:
        raise ValueError(f"{fn}: grid has batch size {shape[0]} but images have {n}")
    if shape[1] < 1 or shape[2] < 1:
        raise ValueError(f"{fn}: grid needs Ho and Wo of at least 1; got shape {shape}")
    return d


def _output(fn: str, out, shape: tuple, dtype, batched: bool, *inputs):
    """(kernel's (N, Ho, Wo, K) device array, what to return to the caller)."""
    dtype = np.dtype(dtype)
    user_shape = shape if batched else shape[1:]
    if out is None:
        res = _nc.device_array(user_shape, dtype)
        return (res if batched else res.reshape(shape)), res
    d = _as_device(out)
    if d is None:
        raise TypeError(f"{fn}: out must be a GPU array on the GPU path; got {type(out).__name__}")
    if tuple(d.shape) != tuple(user_shape):
        raise ValueError(f"{fn}: out must have shape {tuple(user_shape)}; got {tuple(d.shape)}")
    if d.dtype != dtype:
        raise TypeError(f"{fn}: out must have dtype {dtype}; got {d.dtype}")
    for a in inputs:
        if _overlaps(d, a):
            raise ValueError(f"{fn}: out overlaps an input array; pass a separate buffer")
    return (d if batched else _batch_view(fn, "out", d)), out


def _launch(fn: str, kernel, shape, *args) -> None:
    """One thread per output pixel of an (N, Ho, Wo, .) output; z strides over the batch."""
    n, ho, wo = shape[0], shape[1], shape[2]
    if n == 0:
        return
    bx, by = threads_per_block
    grid = ((wo + bx - 1) // bx, (ho + by - 1) // by, min(n, _MAX_BLOCKS_Z))
    if grid[1] > _MAX_BLOCKS_Y:
        raise ValueError(f"{fn}: output height {ho} is too large for one CUDA launch "
                         f"(at most {_MAX_BLOCKS_Y * by} rows)")
    _configure(kernel, grid, (bx, by, 1))(*args)


def _configure(kernel, grid, block):
    """kernel[grid, block] without numba-cuda's low-occupancy warning: small batches and the
    per-image reductions legitimately launch few blocks."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Grid size .* under-utilization")
        return kernel[grid, block]


# ----------------------------------------------------------------- public API

def _fill(fn: str, fill_value, padding: int, channels: int):
    """The per-channel fill values (see :func:`fastwarp.core.validate.fill_for`) on the device."""
    return _nc.to_device(fill_for(fn, fill_value, padding, channels))


def _matrix_grid(fn: str, theta, size, align_corners, out, rows: int):
    """affine_grid (rows 2) and perspective_grid (rows 3) on the GPU."""
    check_flags(fn, "bilinear", "zeros", align_corners)
    t_dev = _as_device(theta)
    batched = len(t_dev.shape) == 3 if t_dev is not None else np.ndim(theta) == 3
    n = (t_dev.shape[0] if t_dev is not None else len(theta)) if batched else 1
    t = _theta(fn, theta, n, batched, rows)
    if size is None:
        raise TypeError(f"{fn}: size (Ho, Wo) is required; got None")
    ho, wo = check_size(fn, size, (0, 0))
    res, user = _output(fn, out, (n, ho, wo, 2), np.float64, batched, t)
    _launch(fn, CK.grid_kernels().matrix_grid, res.shape, t, res, bool(align_corners))
    return user


def affine_grid(theta, size, *, align_corners: bool = False, out=None, device: str | None = None):
    """GPU :func:`fastwarp.affine_grid`: float64 grid (N, Ho, Wo, 2) as a device array.

    Parameters and errors as in :func:`fastwarp.affine_grid`; ``theta`` may be
    a host or a GPU array, ``out`` must be a GPU array.  Raises ``RuntimeError``
    when no GPU (or simulator) is available.
    """
    fn = "affine_grid"
    _check_device_arg(fn, device)
    _require_gpu(fn)
    return _matrix_grid(fn, theta, size, align_corners, out, 2)


def perspective_grid(theta, size, *, align_corners: bool = False, out=None, device: str | None = None):
    """GPU :func:`fastwarp.perspective_grid`: float64 grid (N, Ho, Wo, 2), NaN where w <= 0.

    Parameters and errors as in :func:`fastwarp.perspective_grid`; ``theta``
    ((N, 3, 3) or (3, 3)) may be a host or a GPU array.
    """
    fn = "perspective_grid"
    _check_device_arg(fn, device)
    _require_gpu(fn)
    return _matrix_grid(fn, theta, size, align_corners, out, 3)


def grid_sample(images, grid, *, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool = False, fill_value=0.0, out=None, device: str | None = None):
    """GPU :func:`fastwarp.grid_sample`: returns an (N, Ho, Wo, C) device array of the images' dtype.

    Parameters and errors as in :func:`fastwarp.grid_sample` (every mode,
    padding mode and image dtype); ``images`` and ``grid`` may be host or GPU
    arrays, ``out`` must be a GPU array.  Raises ``RuntimeError`` when no GPU
    (or simulator) is available.
    """
    fn = "grid_sample"
    _check_device_arg(fn, device)
    _require_gpu(fn)
    m, p, a = check_flags(fn, mode, padding_mode, align_corners)
    src, batched = _images(fn, images)
    g = _grid(fn, grid, src.shape[0], batched)
    fill = _fill(fn, fill_value, p, src.shape[3])
    shape = (src.shape[0], g.shape[1], g.shape[2], src.shape[3])
    res, user = _output(fn, out, shape, src.dtype, batched, src, g)
    f32 = m == NEAREST and g.dtype == np.float32
    _launch(fn, CK.kernels(src.dtype).grid_sample, shape, src, g, fill, res, m, p, a, f32)
    return user


def _warp(fn, images, theta, size, mode, padding_mode, align_corners, fill_value, antialias, out, rows):
    m, p, a = check_flags(fn, mode, padding_mode, align_corners)
    aa = check_antialias(fn, antialias, m)
    src, batched = _images(fn, images)
    t = _theta(fn, theta, src.shape[0], batched, rows)
    fill = _fill(fn, fill_value, p, src.shape[3])
    ho, wo = check_size(fn, size, (src.shape[1], src.shape[2]))
    shape = (src.shape[0], ho, wo, src.shape[3])
    res, user = _output(fn, out, shape, src.dtype, batched, src, t)
    _launch(fn, CK.kernels(src.dtype).warp, shape, src, t, fill, res, m, p, a)
    if aa and shape[0]:
        # the footprint filter over the shrinking pixels (fastwarp.cpu.antialias), from the pixel
        # maps H = N_in theta P_out, computed on the host (a theta on the GPU is copied back)
        hpx = _pixel_maps(t, shape[0], src.shape[1:3], (ho, wo), a)
        if rows == 3 or (AA.largest_stretch(hpx) > 1.0).any():
            _launch(fn, CK.antialias_kernels(src.dtype).antialias, shape, src, _nc.to_device(hpx), fill,
                    res, m == BICUBIC, p, a)
    return user


def affine_warp(images, theta, size=None, *, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool = False, fill_value=0.0, antialias: bool = False, out=None,
                device: str | None = None):
    """GPU :func:`fastwarp.affine_warp` (fused grid + sampling): an (N, Ho, Wo, C) device array.

    Parameters and errors as in :func:`fastwarp.affine_warp`; ``images`` and
    ``theta`` may be host or GPU arrays, ``out`` must be a GPU array.  A theta
    on the GPU is not checked for NaN/infinity.  ``antialias=True`` runs the
    CPU's footprint filter (``fastwarp.cpu.antialias``) over the shrinking pixels,
    one thread per pixel, from pixel maps computed on the host (a theta on the
    GPU is copied back for it); :func:`affine_warp_backward` has its gradient.  Raises
    ``RuntimeError`` when no GPU (or simulator) is available.
    """
    fn = "affine_warp"
    _check_device_arg(fn, device)
    _require_gpu(fn)
    return _warp(fn, images, theta, size, mode, padding_mode, align_corners, fill_value, antialias, out, 2)


def perspective_warp(images, theta, size=None, *, mode: str = "bilinear", padding_mode: str = "zeros",
                     align_corners: bool = False, fill_value=0.0, antialias: bool = False, out=None,
                     device: str | None = None):
    """GPU :func:`fastwarp.perspective_warp`: (N, 3, 3) or (3, 3) theta, an (N, Ho, Wo, C) device array.

    As :func:`affine_warp`; a theta whose last row is (0, 0, 1) gives
    :func:`affine_warp`'s numbers bit for bit.
    """
    fn = "perspective_warp"
    _check_device_arg(fn, device)
    _require_gpu(fn)
    return _warp(fn, images, theta, size, mode, padding_mode, align_corners, fill_value, antialias, out, 3)


# ------------------------------------------------------------------- backward

#: Default of the ``deterministic`` argument of the backward functions, which is
#: what ``fastwarp.grad`` gets when it dispatches here.
deterministic_backward = False

# The deterministic backward aims at about this many threads, and its per-thread
# image-gradient buffers may take at most this much GPU memory.
_DET_TARGET_THREADS = 4096
_DET_SCRATCH_BYTES = 256 * 2**20


def _det_chunks(n: int, ho: int, image_bytes: int) -> int:
    """Output-row slices K per image for the deterministic backward (shapes only)."""
    if n == 0:
        return 1
    k = min(-(-_DET_TARGET_THREADS // n), ho, _DET_SCRATCH_BYTES // max(1, n * image_bytes))
    return max(k, 1)


def _launch_1d(kernel, total: int, *args) -> None:
    if total == 0:
        return
    tpb = threads_per_block[0] * threads_per_block[1]
    _configure(kernel, (total + tpb - 1) // tpb, tpb)(*args)


def _zeros(shape, dtype):
    """A zero-filled device array, filled on the device (no host transfer)."""
    a = _nc.device_array(shape, dtype)
    _launch_1d(CK.reduce_kernels().fill_zero, a.size, a.reshape(a.size))
    return a


def _float_images(fn: str, images):
    src, batched = _images(fn, images)
    if src.dtype not in GRAD_DTYPES:
        raise TypeError(f"{fn}: images must have dtype {', '.join(d.name for d in GRAD_DTYPES)} to be "
                        f"differentiated (integer images have no gradient); got {src.dtype}")
    return src, batched


def _grad_out(fn: str, grad_out, shape: tuple, batched: bool):
    """grad_out on the device as (N, Ho, Wo, C), float32 or float64 (the kernels cast it)."""
    d = _as_device(grad_out)
    if d is None:
        g = np.asarray(grad_out)
        if g.dtype not in FLOAT_DTYPES and g.dtype.newbyteorder("=") in FLOAT_DTYPES:
            g = g.astype(g.dtype.newbyteorder("="))
    else:
        g = d
    want = shape if batched else shape[1:]
    if g.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{fn}: grad_out must have dtype float32, float64; got {g.dtype}")
    if tuple(g.shape) != tuple(want):
        raise ValueError(f"{fn}: grad_out must have the forward output's shape {tuple(want)}; "
                         f"got {tuple(g.shape)}")
    if d is None:
        return _nc.to_device(np.ascontiguousarray(g).reshape(shape))
    return d if batched else _batch_view(fn, "grad_out", d)


def _image_grad(ho: int, shape, dtype, det: bool, launch):
    """Run ``launch(target, K)`` scattering into a fresh image gradient of ``shape``.

    Atomic mode scatters straight into a zeroed (N, H, W, C) array (K = 1);
    deterministic mode into N K zeroed buffers that are then summed in order.
    float16 images get their gradient in float32 buffers, rounded to float16
    at the end (as on the CPU, which differentiates them in float32).
    """
    n, h, w, c = shape
    acc = np.dtype(np.float32) if np.dtype(dtype) == np.float16 else np.dtype(dtype)
    if not det:
        gimg = _zeros(shape, acc)
        launch(gimg, 1)
    else:
        k = _det_chunks(n, ho, h * w * c * acc.itemsize)
        gimg = _zeros((n * k, h, w, c), acc)
        launch(gimg, k)
        if k > 1:
            total = _nc.device_array(shape, acc)
            _launch("sum_chunks", CK.reduce_kernels().sum_chunks, shape, gimg, total)
            gimg = total
    if acc == dtype:
        return gimg
    half = _nc.device_array(shape, dtype)
    _launch_1d(CK.reduce_kernels().cast, gimg.size, gimg.reshape(gimg.size), half.reshape(half.size))
    return half


def _user_shape(a, batched: bool):
    return a if batched else a.reshape(tuple(a.shape[1:]))


def grid_sample_backward(grad_out, images, grid, *, mode: str = "bilinear",
                         padding_mode: str = "zeros", align_corners: bool = False, fill_value=0.0,
                         device: str | None = None, deterministic: bool | None = None):
    """GPU :func:`fastwarp.grad.grid_sample_backward`: (grad_images, grad_grid) as device arrays.

    Same semantics, dtypes and errors as the CPU function.  The image gradient
    is scattered with atomic adds (its last bits may vary from run to run)
    unless ``deterministic=True`` (default: the module's
    ``deterministic_backward``), which is slower and bit-reproducible.  The
    grid gradient is deterministic either way.
    """
    fn = "grid_sample_backward"
    _check_device_arg(fn, device)
    _require_gpu(fn)
    det = deterministic_backward if deterministic is None else bool(deterministic)
    m, p, a = check_flags(fn, mode, padding_mode, align_corners)
    src, batched = _float_images(fn, images)
    g = _grid(fn, grid, src.shape[0], batched)
    fill = _fill(fn, fill_value, p, src.shape[3])
    n, ho, wo = g.shape[0], g.shape[1], g.shape[2]
    gout = _grad_out(fn, grad_out, (n, ho, wo, src.shape[3]), batched)
    ggrid = _nc.device_array(tuple(g.shape), g.dtype)
    ks = CK.backward_kernels(src.dtype)
    f32 = m == NEAREST and g.dtype == np.float32

    def launch(target, k):
        if k == 1 and not det:
            _launch(fn, ks.grid_sample_backward, (n, ho, wo), gout, src, g, fill, target, ggrid, m, p, a,
                    f32)
        else:
            _launch_1d(ks.grid_sample_backward_chunks, n * k, gout, src, g, fill, target, ggrid, m, p, a,
                       f32)

    gimg = _image_grad(ho, tuple(src.shape), src.dtype, det, launch)
    return _user_shape(gimg, batched), _user_shape(ggrid, batched)


def _pixel_maps(t, n: int, in_size, out_size, align: bool) -> np.ndarray:
    """H = N_in theta P_out per image (``antialias.pixel_homographies``) on the host; a theta
    on the GPU is copied back (a shared theta is repeated)."""
    t_host = t.copy_to_host()
    if t_host.shape[0] != n:
        t_host = np.repeat(t_host, n, 0)
    return AA.pixel_homographies(t_host, tuple(in_size), tuple(out_size), align)


def _warp_backward(fn, grad_out, images, theta, size, mode, padding_mode, align_corners, fill_value,
                   deterministic, rows, antialias=False):
    """Shared body of the affine (rows 2) and projective (rows 3) warp backward; with
    ``antialias`` the shrinking pixels' gradient is the filter's (as on the CPU): their
    grad_out is masked out of the plain kernels and the filter's kernel scatters into the
    same image gradient, its dL/dH summed per output row and chained to theta on the host."""
    det = deterministic_backward if deterministic is None else bool(deterministic)
    m, p, a = check_flags(fn, mode, padding_mode, align_corners)
    aa = check_antialias(fn, antialias, m)
    src, batched = _float_images(fn, images)
    t_dev = _as_device(theta)
    shared = (tuple(t_dev.shape) if t_dev is not None else np.shape(theta)) == (rows, 3)
    t = _theta(fn, theta, src.shape[0], batched, rows)
    fill = _fill(fn, fill_value, p, src.shape[3])
    ho, wo = check_size(fn, size, (src.shape[1], src.shape[2]))
    n = src.shape[0]
    gout = _grad_out(fn, grad_out, (n, ho, wo, src.shape[3]), batched)
    ks = CK.backward_kernels(src.dtype)
    rk = CK.reduce_kernels()
    gtheta = _nc.device_array((n, rows, 3), np.float64)
    hpx = _pixel_maps(t, n, src.shape[1:3], (ho, wo), a) if aa and n else None
    if hpx is not None and rows == 2 and not (AA.largest_stretch(hpx) > 1.0).any():
        hpx = None  # nothing shrinks: the plain gradient is the whole gradient
    full = gout
    if hpx is not None:
        aks = CK.antialias_backward_kernels(src.dtype)
        hpx_d = _nc.to_device(hpx)
        gh = _zeros((n, ho, 9), np.float64)
        gout = _nc.device_array(tuple(full.shape), full.dtype)
        _launch(fn, aks.mask_shrinking, (n, ho, wo), full, hpx_d, gout)

    def filtered(target, k):
        # one task per output row (atomic adds), or the plain kernels' K row chunks (deterministic)
        if hpx is not None:
            tasks = ho if not det else k
            _launch_1d(aks.antialias_backward, n * tasks, full, src, hpx_d, fill, target, gh, tasks,
                       m == BICUBIC, p, a, rows == 3, not det)

    if not det:
        # one thread per pixel; dL/dtheta summed per block in shared memory, then over blocks
        bx, by = threads_per_block
        if bx * by > CK.MAX_BLOCK_THREADS:
            raise ValueError(f"{fn}: threads_per_block {threads_per_block} has more than "
                             f"{CK.MAX_BLOCK_THREADS} threads")
        partial = _nc.device_array((n, -(-ho // by), -(-wo // bx), 3 * rows), np.float64)

        def launch(target, k):
            _launch(fn, ks.warp_backward, (n, ho, wo), gout, src, t, fill, target, partial, m, p, a)
            filtered(target, k)

        gimg = _image_grad(ho, tuple(src.shape), src.dtype, det, launch)
        _launch_1d(rk.theta_from_partials, n * 3 * rows, partial, gtheta)
    else:
        # serial slices; dL/d(u, v, w) per pixel, then row sums and image sums in order
        duvw = _nc.device_array((n, ho, wo, rows), np.float64)

        def launch(target, k):
            _launch_1d(ks.warp_backward_chunks, n * k, gout, src, t, fill, target, duvw, m, p, a)
            filtered(target, k)

        gimg = _image_grad(ho, tuple(src.shape), src.dtype, det, launch)
        row_sums = _nc.device_array((n, ho, 2 * rows), np.float64)
        _launch_1d(rk.theta_rows, n * ho, duvw, row_sums, a)
        _launch_1d(rk.theta_grad, n, row_sums, gtheta, a)
    if hpx is not None:
        # dL/dtheta += N_in^T dL/dH P_out^T (H = N_in theta P_out), rows summed in order
        n_in, p_out = AA.normalizers(tuple(src.shape[1:3]), (ho, wo), a)
        dh = gh.copy_to_host().sum(axis=1).reshape(n, 3, 3)
        gtheta = _nc.to_device(gtheta.copy_to_host() + (n_in.T @ dh @ p_out.T)[:, :rows])
    if shared:
        total = _nc.device_array((1, rows, 3), np.float64)
        _launch_1d(rk.sum_batch, 3 * rows, gtheta, total)
        gtheta = total.reshape((rows, 3))
    elif not batched:
        gtheta = gtheta.reshape((rows, 3))
    return _user_shape(gimg, batched), gtheta


def affine_warp_backward(grad_out, images, theta, size=None, *, mode: str = "bilinear",
                         padding_mode: str = "zeros", align_corners: bool = False, fill_value=0.0,
                         antialias: bool = False, device: str | None = None,
                         deterministic: bool | None = None):
    """GPU :func:`fastwarp.grad.affine_warp_backward`: (grad_images, grad_theta) as device arrays.

    Same semantics, dtypes and errors as the CPU function (grad_theta float64,
    summed over the batch for a single (2, 3) theta).  grad_theta is reduced
    in a fixed order in both modes (per thread block, then over blocks; with
    ``deterministic=True`` per row, then over rows, as on the CPU); the image
    gradient uses atomic adds unless ``deterministic=True`` (see
    :func:`grid_sample_backward`).
    """
    fn = "affine_warp_backward"
    _check_device_arg(fn, device)
    _require_gpu(fn)
    return _warp_backward(fn, grad_out, images, theta, size, mode, padding_mode, align_corners, fill_value,
                          deterministic, 2, antialias)


def perspective_warp_backward(grad_out, images, theta, size=None, *, mode: str = "bilinear",
                              padding_mode: str = "zeros", align_corners: bool = False, fill_value=0.0,
                              antialias: bool = False, device: str | None = None,
                              deterministic: bool | None = None):
    """GPU :func:`fastwarp.grad.perspective_warp_backward`: (grad_images, grad_theta (N, 3, 3)).

    As :func:`affine_warp_backward`, for (N, 3, 3) or (3, 3) matrices; the last
    row of theta has a gradient even when it is (0, 0, 1).
    """
    fn = "perspective_warp_backward"
    _check_device_arg(fn, device)
    _require_gpu(fn)
    return _warp_backward(fn, grad_out, images, theta, size, mode, padding_mode, align_corners, fill_value,
                          deterministic, 3, antialias)
