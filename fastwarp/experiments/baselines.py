"""What the benchmarks time: workloads, their inputs, and one builder per library.

Every library warps the same images with the same transform (rotation 30
degrees, scale 0.9, shift (5, -3) px, bilinear, border padding), written once
as an OpenCV pixel matrix ``M`` and converted with
:func:`fastwarp.transforms.theta_from_cv2` (``align_corners=False``), so all
baselines compute the same image (``tests/test_bench_baselines.py`` checks it,
with the tolerance each one needs).

:func:`build` turns a baseline into a zero-argument callable doing one timed
call.  Set-up stays outside (the NCHW copy for the PyTorch variant, TF
tensors); the call allocates its output as a normal call does and returns
finished data (PyTorch eager tensors, ``.numpy()`` on TF results).
Libraries are imported only when a baseline is checked or built, never at import.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# ---------------------------------------------------------------------------
# workloads and inputs
# ---------------------------------------------------------------------------

ROTATION, SCALE, SHIFT = 30.0, 0.9, (5.0, -3.0)


@dataclass(frozen=True)
class Workload:
    """A batch shape (N, H, W, C) and the dtypes it is timed in."""

    name: str
    shape: tuple[int, int, int, int]
    dtypes: tuple[str, ...] = ("float32",)
    note: str = ""


WORKLOADS = {
    "seed": Workload("seed", (2, 400, 400, 3), ("float32",), "the blog post's example"),
    "gtsrb": Workload("gtsrb", (256, 32, 32, 3), ("float32",), "a GTSRB training batch"),
    "augment": Workload("augment", (32, 224, 224, 3), ("float32", "uint8"), "ImageNet-size augmentation"),
    "large": Workload("large", (4, 1024, 1024, 3), ("float32",), "large images, memory-bound"),
}


@dataclass
class Inputs:
    """One workload's data, identical for every library."""

    workload: Workload
    dtype: str
    images: np.ndarray  # (N, H, W, C)
    matrix: np.ndarray  # OpenCV source -> destination pixel matrix (2, 3), float64
    theta: np.ndarray  # (N, 2, 3) float32, normalized output -> input, align_corners=False
    grad_out: np.ndarray | None = None  # (N, H, W, C) float32 upstream gradient (backward only)

    @property
    def nbytes_moved(self) -> int:
        """Bytes a warp must move at least: the input read once, the output written once."""
        return 2 * self.images.nbytes


def transform_matrix(size: tuple[int, int]) -> np.ndarray:
    """The benchmark transform as an OpenCV matrix for an (H, W) image."""
    from ..transforms import affine_matrix

    return affine_matrix(size, rotation=ROTATION, scale=SCALE, translation=SHIFT)


def make_inputs(workload: Workload, dtype: str, seed: int = 0, *, backward: bool = False) -> Inputs:
    """Random images of the workload's shape (floats in [0, 1), uint8 in [0, 255])."""
    from ..transforms import theta_from_cv2

    rng = np.random.default_rng(seed)
    n, h, w, _ = workload.shape
    if np.dtype(dtype) == np.uint8:
        images = rng.integers(0, 256, size=workload.shape, dtype=np.uint8)
    else:
        images = rng.random(workload.shape, dtype=np.float32).astype(dtype, copy=False)
    m = transform_matrix((h, w))
    theta = np.broadcast_to(theta_from_cv2(m, (h, w), align_corners=False), (n, 2, 3))
    theta = np.ascontiguousarray(theta, dtype=np.float32)
    g = rng.standard_normal(workload.shape, dtype=np.float32) if backward else None
    return Inputs(workload, str(np.dtype(dtype)), images, m, theta, g)


# ---------------------------------------------------------------------------
# baselines
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """A library variant: the modules it needs, how to install them, what it can time."""

    name: str
    label: str
    modules: tuple[str, ...]
    install: str
    ops: tuple[str, ...] = ("forward",)
    note: str = ""


BASELINES = {
    "fastwarp": Baseline("fastwarp", "fastwarp", (), "", ("forward", "backward"),
                         "affine_warp; output allocated by the call"),
    "fastwarp_out": Baseline("fastwarp_out", "fastwarp out=", (), "", ("forward",),
                             "affine_warp writing into a preallocated out= buffer"),
    "opencv": Baseline("opencv", "OpenCV", ("cv2",), "pip install 'fastwarp[cv]'", ("forward",),
                       "cv2.warpAffine per image, INTER_LINEAR, BORDER_REPLICATE"),
    "torch": Baseline("torch", "PyTorch", ("torch",), "pip install 'fastwarp[torch]'",
                      ("forward", "backward"), "affine_grid + grid_sample on NCHW (layout change not timed)"),
    "torch_nhwc": Baseline("torch_nhwc", "PyTorch+NHWC", ("torch",), "pip install 'fastwarp[torch]'",
                           ("forward",), "as torch, NHWC->NCHW->NHWC conversion timed"),
    "tf_ipt": Baseline("tf_ipt", "TF IPTv3", ("tensorflow",), "pip install 'fastwarp[tf]'", ("forward",),
                       "tf.raw_ops.ImageProjectiveTransformV3, fill_mode NEAREST"),
    "tf_gather": Baseline("tf_gather", "TF gather", ("tensorflow",), "pip install 'fastwarp[tf]'",
                          ("forward", "backward"),
                          "classic STN sampler: tf.gather_nd bilinear in a tf.function"),
    "tf_xla": Baseline("tf_xla", "TF XLA", ("tensorflow",), "pip install 'fastwarp[tf]'",
                       ("forward", "backward"),
                       "the same gather sampler in a tf.function(jit_compile=True) (XLA on the CPU)"),
    "numpy": Baseline("numpy", "NumPy", (), "", ("forward",), "fastwarp.reference.affine_warp"),
}

REFERENCE = "fastwarp"  # ratios are baseline time / this library's time


def _import(mod: str):
    if mod == "tensorflow":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's start-up chatter out of the report
    return importlib.import_module(mod)


def missing_modules(name: str) -> list[str]:
    """Modules a baseline needs that cannot be imported here."""
    missing = []
    for mod in BASELINES[name].modules:
        try:
            _import(mod)
        except ImportError:
            missing.append(mod)
    return missing


def install_hint(name: str) -> str:
    b = BASELINES[name]
    return f"{b.label}: skipped, {'/'.join(missing_modules(name) or b.modules)} not installed ({b.install})"


def backward_available() -> bool:
    """Whether fastwarp's backward pass (fastwarp.grad) is importable."""
    try:
        grad = importlib.import_module("fastwarp.grad")
    except ImportError:
        return False
    return hasattr(grad, "affine_warp_backward")


def set_threads(n: int | None) -> None:
    """Ask every imported library to use n threads (None: leave the defaults)."""
    if n is None:
        return
    import numba

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    if cv2 := sys.modules.get("cv2"):
        cv2.setNumThreads(n)
    if torch := sys.modules.get("torch"):
        torch.set_num_threads(n)
    if tf := sys.modules.get("tensorflow"):
        try:  # only possible before TF's runtime starts
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(n)
        except RuntimeError:
            pass


def _fastwarp(x: Inputs, op: str):
    import fastwarp

    kw = dict(mode="bilinear", padding_mode="border", align_corners=False)
    if op == "backward":
        from ..grad import affine_warp_backward

        def fwd_bwd():
            out = fastwarp.affine_warp(x.images, x.theta, **kw)
            gi, gt = affine_warp_backward(x.grad_out, x.images, x.theta, **kw)
            return out, gi, gt
        return fwd_bwd
    return lambda: fastwarp.affine_warp(x.images, x.theta, **kw)


def _fastwarp_out(x: Inputs, op: str):
    import fastwarp

    out = np.empty_like(x.images)
    return lambda: fastwarp.affine_warp(x.images, x.theta, padding_mode="border", align_corners=False,
                                        out=out)


def _opencv(x: Inputs, op: str):
    import cv2

    n, h, w, _ = x.images.shape
    m = x.matrix
    flags, border = cv2.INTER_LINEAR, cv2.BORDER_REPLICATE

    def warp():
        out = np.empty_like(x.images)
        for k in range(n):
            cv2.warpAffine(x.images[k], m, (w, h), dst=out[k], flags=flags, borderMode=border)
        return out
    return warp


def _torch_theta(x: Inputs):
    """theta as a tensor of the float type grid_sample will run in (float64 only for float64 images)."""
    import torch

    return torch.from_numpy(x.theta.astype(np.float64 if x.images.dtype == np.float64 else np.float32))


def _torch_sample(images_nchw, theta):
    import torch.nn.functional as F

    grid = F.affine_grid(theta, list(images_nchw.shape), align_corners=False)
    return F.grid_sample(images_nchw, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _torch(x: Inputs, op: str):
    import torch

    uint8 = x.images.dtype == np.uint8
    nchw = torch.from_numpy(np.ascontiguousarray(x.images.transpose(0, 3, 1, 2)))
    theta = _torch_theta(x)
    if op == "backward":
        img = nchw.clone().requires_grad_(True)
        th = theta.clone().requires_grad_(True)
        g = torch.from_numpy(np.ascontiguousarray(x.grad_out.transpose(0, 3, 1, 2)))

        def fwd_bwd():
            img.grad = None
            th.grad = None
            out = _torch_sample(img, th)
            out.backward(g)
            return out, img.grad, th.grad
        return fwd_bwd

    def warp():
        with torch.no_grad():
            if uint8:  # grid_sample has no uint8 kernel: convert, then round and saturate
                out = _torch_sample(nchw.float(), theta)
                return (out + 0.5).floor_().clamp_(0, 255).to(torch.uint8)
            return _torch_sample(nchw, theta)
    return warp


def _torch_nhwc(x: Inputs, op: str):
    import torch

    uint8 = x.images.dtype == np.uint8
    theta = _torch_theta(x)

    def warp():
        with torch.no_grad():
            # a permuted view (channels_last strides): grid_sample takes it directly,
            # which is faster than a .contiguous() NCHW copy
            nchw = torch.from_numpy(x.images).permute(0, 3, 1, 2)
            if uint8:
                nchw = nchw.float()
            out = _torch_sample(nchw, theta)
            if uint8:
                out = (out + 0.5).floor_().clamp_(0, 255).to(torch.uint8)
            return out.permute(0, 2, 3, 1).contiguous().numpy()
    return warp


def _tf():
    return _import("tensorflow")


def ipt_transforms(matrix: np.ndarray, n: int) -> np.ndarray:
    """ImageProjectiveTransformV3's 8 parameters (a0 a1 a2 b0 b1 b2 c0 c1) for an OpenCV matrix.

    TF maps each output pixel (x, y) to the input point
    ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k), k = c0 x + c1 y + 1, in
    pixel coordinates with pixel centres at integers: the destination -> source
    inverse of M, with c0 = c1 = 0.
    """
    from ..transforms import invert_affine

    a = invert_affine(matrix)
    row = np.array([a[0, 0], a[0, 1], a[0, 2], a[1, 0], a[1, 1], a[1, 2], 0.0, 0.0], np.float32)
    return np.tile(row, (n, 1))


def _tf_ipt(x: Inputs, op: str):
    tf = _tf()
    n, h, w, _ = x.images.shape
    images = tf.constant(x.images)
    transforms = tf.constant(ipt_transforms(x.matrix, n))
    shape = tf.constant([h, w], tf.int32)
    fill = tf.constant(0.0, tf.float32)

    def warp():
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=images, transforms=transforms, output_shape=shape, fill_value=fill,
            interpolation="BILINEAR", fill_mode="NEAREST").numpy()
    return warp


def tf_gather_sampler():
    """The classic pure-TF bilinear sampler (STN style), fixed to fastwarp's convention.

    ``sample(images, theta)``: float32 (N, H, W, C) images, (N, 2, 3) theta,
    align_corners=False, border padding.  Normalized output mesh -> theta ->
    pixel coordinates ``((x + 1) W - 1) / 2`` clipped to the image, then the
    four neighbours gathered with ``tf.gather_nd`` and blended.
    """
    tf = _tf()

    def sample(images, theta):
        shape = tf.shape(images)
        n, h, w = shape[0], shape[1], shape[2]
        dt = images.dtype  # compute in the images' float type
        theta = tf.cast(theta, dt)
        hf, wf = tf.cast(h, dt), tf.cast(w, dt)
        # normalized centres of the output pixels (align_corners=False)
        xs = (2.0 * tf.range(wf) + 1.0) / wf - 1.0
        ys = (2.0 * tf.range(hf) + 1.0) / hf - 1.0
        xt, yt = tf.meshgrid(xs, ys)
        xt, yt = tf.reshape(xt, [-1]), tf.reshape(yt, [-1])
        mesh = tf.stack([xt, yt, tf.ones_like(xt)])  # (3, H*W)
        grid = tf.einsum("nij,jk->nik", theta, mesh)  # (N, 2, H*W)
        # to pixels, clamped to the image: border padding
        x = tf.clip_by_value(((grid[:, 0] + 1.0) * wf - 1.0) * 0.5, 0.0, wf - 1.0)
        y = tf.clip_by_value(((grid[:, 1] + 1.0) * hf - 1.0) * 0.5, 0.0, hf - 1.0)
        x0f, y0f = tf.floor(x), tf.floor(y)
        wx, wy = (x - x0f)[..., None], (y - y0f)[..., None]
        x0, y0 = tf.cast(x0f, tf.int32), tf.cast(y0f, tf.int32)
        x1, y1 = tf.minimum(x0 + 1, w - 1), tf.minimum(y0 + 1, h - 1)
        b = tf.broadcast_to(tf.range(n)[:, None], tf.shape(x0))

        def pixel(yi, xi):
            return tf.gather_nd(images, tf.stack([b, yi, xi], axis=-1))  # (N, H*W, C)

        top = (1.0 - wx) * pixel(y0, x0) + wx * pixel(y0, x1)
        bottom = (1.0 - wx) * pixel(y1, x0) + wx * pixel(y1, x1)
        return tf.reshape((1.0 - wy) * top + wy * bottom, shape)

    return sample


def _tf_gather(x: Inputs, op: str, *, jit_compile: bool = False):
    tf = _tf()
    sample = tf_gather_sampler()
    images = tf.constant(x.images)
    theta = tf.constant(x.theta)
    if op == "backward":
        g = tf.constant(x.grad_out)

        @tf.function(reduce_retracing=True, jit_compile=jit_compile)
        def fwd_bwd(images, theta, g):
            with tf.GradientTape() as tape:
                tape.watch([images, theta])
                out = sample(images, theta)
            gi, gt = tape.gradient(out, [images, theta], output_gradients=g)
            return out, gi, gt

        return lambda: tuple(t.numpy() for t in fwd_bwd(images, theta, g))

    if x.images.dtype == np.uint8:
        @tf.function(reduce_retracing=True, jit_compile=jit_compile)
        def warp(images, theta):
            v = sample(tf.cast(images, tf.float32), theta)
            return tf.cast(tf.clip_by_value(tf.floor(v + 0.5), 0.0, 255.0), tf.uint8)
    else:
        warp = tf.function(sample, reduce_retracing=True, jit_compile=jit_compile)
    return lambda: warp(images, theta).numpy()


def _tf_xla(x: Inputs, op: str):
    return _tf_gather(x, op, jit_compile=True)


def _numpy(x: Inputs, op: str):
    from ..reference import affine_warp

    return lambda: affine_warp(x.images, x.theta, padding_mode="border", align_corners=False)


_BUILDERS: dict[str, Callable] = {
    "fastwarp": _fastwarp, "fastwarp_out": _fastwarp_out, "opencv": _opencv, "torch": _torch,
    "torch_nhwc": _torch_nhwc, "tf_ipt": _tf_ipt, "tf_gather": _tf_gather, "tf_xla": _tf_xla, "numpy": _numpy,
}


def build(name: str, inputs: Inputs, op: str = "forward") -> Callable[[], object]:
    """A zero-argument callable doing one timed call of baseline ``name`` on ``inputs``.

    Raises ``ImportError`` when the library is missing and ``ValueError`` when
    the baseline does not time ``op``.
    """
    if op not in BASELINES[name].ops:
        raise ValueError(f"build: {name} has no {op!r} benchmark; it has {BASELINES[name].ops}")
    if op == "backward" and inputs.grad_out is None:
        raise ValueError("build: backward needs inputs made with make_inputs(..., backward=True)")
    return _BUILDERS[name](inputs, op)


def as_numpy(result) -> np.ndarray:
    """The (N, H, W, C) NumPy image of a forward call's result, whatever the library."""
    if isinstance(result, np.ndarray):
        return result
    if hasattr(result, "numpy"):
        a = result.detach().numpy() if hasattr(result, "detach") else result.numpy()
        if a.ndim == 4 and type(result).__module__.startswith("torch"):  # NCHW tensors
            a = a.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(a)
    raise TypeError(f"as_numpy: cannot convert {type(result).__name__}")
