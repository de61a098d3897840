"""Benchmark workloads, baselines and timing, shared by ``fastwarp bench`` and ``bench/``.

Every library warps the same images with the same transform (rotation 30
degrees, scale 0.9, shift (5, -3) px, bilinear, border padding), written once
as an OpenCV pixel matrix ``M`` and converted with
:func:`fastwarp.transforms.theta_from_cv2` (``align_corners=False``), so all
baselines compute the same image (see ``tests/test_bench_baselines.py`` for the
tolerance each one needs).

A baseline is built by :func:`build` into a zero-argument callable: everything
that is set-up (layout conversion for the NCHW PyTorch variant, TF tensors,
``tf.function`` tracing happens in the warm-up) stays outside; the call itself
allocates its output as a normal call does and returns finished data (PyTorch
eager tensors, ``.numpy()`` on TF results).

Times are per call, in seconds: the median of ``repeat`` repeats, each the mean
of ``number`` back-to-back calls (timeit-style), after warm-up calls that
absorb JIT compilation and first-touch page faults.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
    from .transforms import affine_matrix

    return affine_matrix(size, rotation=ROTATION, scale=SCALE, translation=SHIFT)


def make_inputs(workload: Workload, dtype: str, seed: int = 0, *, backward: bool = False) -> Inputs:
    """Random images of the workload's shape (floats in [0, 1), uint8 in [0, 255])."""
    from .transforms import theta_from_cv2

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
        from .grad import affine_warp_backward

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


def _torch_sample(torch_mod, images_nchw, theta):
    import torch.nn.functional as F

    grid = F.affine_grid(theta, list(images_nchw.shape), align_corners=False)
    return F.grid_sample(images_nchw, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _torch(x: Inputs, op: str):
    import torch

    uint8 = x.images.dtype == np.uint8
    nchw = torch.from_numpy(np.ascontiguousarray(x.images.transpose(0, 3, 1, 2)))
    theta = torch.from_numpy(x.theta)
    if op == "backward":
        img = nchw.clone().requires_grad_(True)
        th = theta.clone().requires_grad_(True)
        g = torch.from_numpy(np.ascontiguousarray(x.grad_out.transpose(0, 3, 1, 2)))

        def fwd_bwd():
            img.grad = None
            th.grad = None
            out = _torch_sample(torch, img, th)
            out.backward(g)
            return out, img.grad, th.grad
        return fwd_bwd

    def warp():
        with torch.no_grad():
            if uint8:  # grid_sample has no uint8 kernel: convert, then round and saturate
                out = _torch_sample(torch, nchw.float(), theta)
                return (out + 0.5).floor_().clamp_(0, 255).to(torch.uint8)
            return _torch_sample(torch, nchw, theta)
    return warp


def _torch_nhwc(x: Inputs, op: str):
    import torch

    uint8 = x.images.dtype == np.uint8
    theta = torch.from_numpy(x.theta)

    def warp():
        with torch.no_grad():
            # a permuted view (channels_last strides): grid_sample takes it directly,
            # which is faster than a .contiguous() NCHW copy
            nchw = torch.from_numpy(x.images).permute(0, 3, 1, 2)
            if uint8:
                nchw = nchw.float()
            out = _torch_sample(torch, nchw, theta)
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
    from .transforms import invert_affine

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
        hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
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


def _tf_gather(x: Inputs, op: str):
    tf = _tf()
    sample = tf_gather_sampler()
    images = tf.constant(x.images)
    theta = tf.constant(x.theta)
    if op == "backward":
        g = tf.constant(x.grad_out)

        @tf.function(reduce_retracing=True)
        def fwd_bwd(images, theta, g):
            with tf.GradientTape() as tape:
                tape.watch([images, theta])
                out = sample(images, theta)
            gi, gt = tape.gradient(out, [images, theta], output_gradients=g)
            return out, gi, gt

        return lambda: tuple(t.numpy() for t in fwd_bwd(images, theta, g))

    if x.images.dtype == np.uint8:
        @tf.function(reduce_retracing=True)
        def warp(images, theta):
            v = sample(tf.cast(images, tf.float32), theta)
            return tf.cast(tf.clip_by_value(tf.floor(v + 0.5), 0.0, 255.0), tf.uint8)
    else:
        warp = tf.function(sample, reduce_retracing=True)
    return lambda: warp(images, theta).numpy()


def _numpy(x: Inputs, op: str):
    from .reference import affine_warp

    return lambda: affine_warp(x.images, x.theta, padding_mode="border", align_corners=False)


_BUILDERS: dict[str, Callable] = {
    "fastwarp": _fastwarp, "fastwarp_out": _fastwarp_out, "opencv": _opencv, "torch": _torch,
    "torch_nhwc": _torch_nhwc, "tf_ipt": _tf_ipt, "tf_gather": _tf_gather, "numpy": _numpy,
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


# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------


@dataclass
class Timing:
    """Per-call seconds of each repeat (each the mean of ``number`` calls)."""

    times: list[float]
    number: int

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def time_call(fn: Callable[[], object], *, warmup: int = 2, repeat: int = 7, min_repeat_s: float = 0.05,
              budget_s: float = 2.0, min_repeats: int = 3) -> Timing:
    """Median-of-repeats timing after ``warmup`` untimed calls (compilation, page faults).

    Each repeat runs ``number`` calls, ``number`` chosen so a repeat lasts at
    least ``min_repeat_s``; ``repeat`` is cut so the timing stays near
    ``budget_s`` (never below ``min_repeats``).
    """
    for _ in range(max(warmup, 1)):
        fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    number = max(1, math.ceil(min_repeat_s / one))
    repeat = max(min_repeats, min(repeat, int(budget_s / (one * number))))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return Timing(times, number)


def _copy_kernel():
    from numba import njit, prange

    @njit(parallel=True, nogil=True, cache=True)
    def parallel_copy(src, dst):
        for i in prange(src.size):
            dst[i] = src[i]

    return parallel_copy


def copy_bandwidth(nbytes: int = 512 * 2**20, repeat: int = 5) -> float:
    """Bytes per second moved by a parallel copy of an ``nbytes`` array on all Numba threads.

    Counts the read and the write (2 x nbytes per copy), the same accounting as
    the warp's memory floor.
    """
    copy = _copy_kernel()
    src = np.ones(nbytes // 8, np.float64)
    dst = np.empty_like(src)
    t = time_call(lambda: copy(src, dst), warmup=2, repeat=repeat, min_repeat_s=0.0, budget_s=0.0,
                  min_repeats=repeat)
    return 2 * src.nbytes / t.median


def memory_floor(inputs: Inputs, bandwidth: float, fastwarp_out_s: float) -> dict:
    """The time the warp cannot beat (bytes moved / copy bandwidth) and the fraction of it reached."""
    floor = inputs.nbytes_moved / bandwidth
    return {"workload": inputs.workload.name, "dtype": inputs.dtype, "bytes_moved": inputs.nbytes_moved,
            "bandwidth_GBps": bandwidth / 1e9, "floor_ms": floor * 1e3,
            "fastwarp_out_ms": fastwarp_out_s * 1e3, "fraction_of_floor": floor / fastwarp_out_s}


_COLD_SCRIPT = """
import json, time
import numpy as np
t0 = time.perf_counter()
import fastwarp
t1 = time.perf_counter()
x = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
th = np.array([[0.9, 0.1, 0.05], [-0.1, 0.9, 0.0]], np.float32)
t2 = time.perf_counter()
fastwarp.affine_warp(x, th, padding_mode="border")
t3 = time.perf_counter()
fastwarp.affine_warp(x, th, padding_mode="border")
t4 = time.perf_counter()
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "first_call_ms": (t3 - t2) * 1e3,
                  "second_call_ms": (t4 - t3) * 1e3}))
"""


def cold_start(cached: bool, timeout: float = 300.0) -> dict:
    """Import time and first-call latency of fastwarp in a fresh Python process.

    ``cached=False`` points ``NUMBA_CACHE_DIR`` at an empty temporary directory,
    so the first call compiles; ``cached=True`` keeps the usual cache location,
    runs once to make sure it is filled, then measures a second process.
    """
    with tempfile.TemporaryDirectory(prefix="fastwarp-numba-cache-") as cache:
        env = dict(os.environ) if cached else dict(os.environ, NUMBA_CACHE_DIR=cache)

        def once():
            r = subprocess.run([sys.executable, "-c", _COLD_SCRIPT], env=env, capture_output=True,
                               text=True, timeout=timeout, check=True)
            return json.loads(r.stdout.strip().splitlines()[-1])

        if cached:
            once()
        return dict(once(), numba_cache="warm" if cached else "empty")


# ---------------------------------------------------------------------------
# machine description
# ---------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"cpu": cpu_model(), "logical_cores": os.cpu_count(), "usable_cores": usable,
            "platform": platform.platform(), "python": platform.python_version()}


def library_versions() -> dict:
    import numba

    import fastwarp

    from ._runtime import threading_layer

    versions = {"fastwarp": fastwarp.__version__, "numpy": np.__version__, "numba": numba.__version__,
                "numba_threading_layer": threading_layer()}
    for key, mod in (("opencv", "cv2"), ("torch", "torch"), ("tensorflow", "tensorflow")):
        if sys.modules.get(mod):
            versions[key] = getattr(sys.modules[mod], "__version__", "?")
    return versions


def thread_counts() -> dict:
    import numba

    counts = {"numba": numba.get_num_threads()}
    if cv2 := sys.modules.get("cv2"):
        counts["opencv"] = cv2.getNumThreads()
    if torch := sys.modules.get("torch"):
        counts["torch"] = torch.get_num_threads()
    if tf := sys.modules.get("tensorflow"):
        counts["tensorflow_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads() or "default"
    return counts


# ---------------------------------------------------------------------------
# targets
# ---------------------------------------------------------------------------


def target(op: str, workload: str, dtype: str, library: str) -> float | None:
    """The speed-up over ``library`` fastwarp aims for (None: no target)."""
    if op == "backward":
        return {"torch": 2.0, "tf_gather": 10.0}.get(library)
    if library == "opencv":
        if dtype == "uint8" or workload == "large":
            return 1.2
        return 1.5 if workload in ("seed", "gtsrb", "augment") else None
    return {"torch": 2.0, "torch_nhwc": 2.0, "tf_ipt": 3.0, "numpy": 20.0}.get(library)


FLOOR_TARGET = 0.30  # fastwarp out= on "large" reaches >= 30% of the memory floor


# ---------------------------------------------------------------------------
# the runner
# ---------------------------------------------------------------------------


@dataclass
class Config:
    """What ``run`` measures; the defaults are the full benchmark."""

    workloads: list[Workload] = field(default_factory=lambda: list(WORKLOADS.values()))
    dtypes: list[str] | None = None  # None: each workload's own dtypes
    libraries: list[str] = field(default_factory=lambda: list(BASELINES))
    ops: tuple[str, ...] = ("forward", "backward")
    backward_workloads: tuple[str, ...] = ("seed", "gtsrb", "augment")
    threads: int | None = None
    repeat: int = 7
    budget_s: float = 2.0  # per timing cell
    min_repeat_s: float = 0.05
    numpy_max_elements: int | None = None  # skip the NumPy baseline on larger inputs
    memory_floor: bool = True
    floor_bytes: int = 512 * 2**20
    scaling: bool = True
    scaling_batches: tuple[int, ...] = (1, 4, 16, 64)
    scaling_sides: tuple[int, ...] = (64, 128, 256, 512, 1024)
    scaling_libraries: tuple[str, ...] = ("fastwarp", "opencv", "torch", "tf_ipt")
    cold_start: bool = True
    cold_start_uncached: bool = True
    seed: int = 0


def _cases(cfg: Config) -> list[tuple[Workload, str]]:
    return [(w, d) for w in cfg.workloads for d in (cfg.dtypes or w.dtypes)]


def _record(op, inputs, library, timing: Timing) -> dict:
    w = inputs.workload
    return {"op": op, "workload": w.name, "dtype": inputs.dtype, "shape": list(w.shape), "library": library,
            "median_ms": timing.median * 1e3, "times_ms": [t * 1e3 for t in timing.times],
            "number": timing.number}


def _add_ratios(results: list[dict]) -> None:
    ref = {(r["op"], r["workload"], r["dtype"]): r["median_ms"] for r in results if r["library"] == REFERENCE}
    for r in results:
        base = ref.get((r["op"], r["workload"], r["dtype"]))
        r["ratio"] = r["median_ms"] / base if base else None
        r["target"] = target(r["op"], r["workload"], r["dtype"], r["library"])
        r["meets_target"] = None if r["target"] is None or r["ratio"] is None else r["ratio"] >= r["target"]


def _timed(cfg: Config, fn) -> Timing:
    return time_call(fn, repeat=cfg.repeat, budget_s=cfg.budget_s, min_repeat_s=cfg.min_repeat_s)


def _available(cfg: Config, log) -> tuple[list[str], list[str]]:
    ok, skipped = [], []
    for name in cfg.libraries:
        if missing_modules(name):
            log(install_hint(name))
            skipped.append(name)
        else:
            ok.append(name)
    return ok, skipped


def _scaling(cfg: Config, libs: list[str], log) -> dict:
    """Time vs batch size (224x224), vs image side (batch 4), vs thread count, float32."""
    libs = [lib for lib in cfg.scaling_libraries if lib in libs]
    out: dict = {"libraries": libs, "batch": {}, "side": {}, "threads": {}}

    def point(shape, lib):
        x = make_inputs(Workload("scaling", shape), "float32", cfg.seed)
        return _timed(cfg, build(lib, x, "forward")).median * 1e3

    for lib in libs:
        out["batch"][lib] = [[n, point((n, 224, 224, 3), lib)] for n in cfg.scaling_batches]
        out["side"][lib] = [[s, point((4, s, s, 3), lib)] for s in cfg.scaling_sides]
        log(f"  scaling {lib}: done")
    # TF fixes its thread pools when its runtime starts, so it cannot be re-threaded here
    import numba

    most = numba.config.NUMBA_NUM_THREADS
    counts = sorted({1, 2, most} & set(range(1, most + 1)))
    shape = (32, 224, 224, 3)
    for lib in (lib for lib in libs if not lib.startswith("tf")):
        row = []
        for t in counts:
            set_threads(t)
            row.append([t, point(shape, lib)])
        out["threads"][lib] = row
    set_threads(cfg.threads or most)
    out["threads_shape"] = list(shape)
    return out


def run(cfg: Config, log: Callable[[str], None] = print) -> dict:
    """Run the benchmark described by ``cfg``; return the report as a JSON-ready dict."""
    libs, skipped = _available(cfg, log)
    for name in libs:  # import first so thread settings reach every library
        for mod in BASELINES[name].modules:
            _import(mod)
    set_threads(cfg.threads)
    report: dict = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine_info(),
                    "threads": thread_counts(), "skipped": {n: install_hint(n) for n in skipped},
                    "baselines": {n: BASELINES[n].note for n in libs},
                    "transform": {"rotation_deg": ROTATION, "scale": SCALE, "shift_px": list(SHIFT),
                                  "mode": "bilinear", "padding": "border", "align_corners": False},
                    "results": [], "notes": []}
    results = report["results"]
    out_timings = []  # (inputs, seconds) of fastwarp out= per case, for the memory floor
    if "forward" in cfg.ops:
        for w, dtype in _cases(cfg):
            x = make_inputs(w, dtype, cfg.seed)
            log(f"forward {w.name} {dtype} {'x'.join(map(str, w.shape))}")
            for lib in libs:
                if lib == "numpy" and cfg.numpy_max_elements and x.images.size > cfg.numpy_max_elements:
                    report["notes"].append(f"NumPy not timed on {w.name} {dtype} (input above "
                                           f"{cfg.numpy_max_elements} elements in this mode)")
                    continue
                t = _timed(cfg, build(lib, x, "forward"))
                results.append(_record("forward", x, lib, t))
                log(f"  {BASELINES[lib].label:14s} {t.median * 1e3:10.3f} ms")
                if lib == "fastwarp_out":
                    out_timings.append((x, t.median))
    if "backward" in cfg.ops:
        blibs = [lib for lib in libs if "backward" in BASELINES[lib].ops]
        if not backward_available():
            report["notes"].append("backward not timed: fastwarp.grad.affine_warp_backward is not available")
            log(report["notes"][-1])
        else:
            chosen = [w for w in cfg.workloads if w.name in cfg.backward_workloads or w.name not in WORKLOADS]
            for w in chosen:
                x = make_inputs(w, "float32", cfg.seed, backward=True)
                log(f"forward+backward {w.name} float32 {'x'.join(map(str, w.shape))}")
                for lib in blibs:
                    t = _timed(cfg, build(lib, x, "backward"))
                    results.append(_record("backward", x, lib, t))
                    log(f"  {BASELINES[lib].label:14s} {t.median * 1e3:10.3f} ms")
    _add_ratios(results)
    if cfg.memory_floor and out_timings:
        # on "large" (float32) when it was timed, else on the biggest input
        x, secs = max(out_timings, key=lambda xt: (
            xt[0].workload.name == "large" and xt[0].dtype == "float32", xt[0].images.nbytes))
        log(f"memory floor: timing a parallel copy of {cfg.floor_bytes / 2**20:.0f} MiB")
        bw = copy_bandwidth(cfg.floor_bytes)
        report["memory_floor"] = dict(memory_floor(x, bw, secs), target=FLOOR_TARGET,
                                      copy_bytes=cfg.floor_bytes)
        mf = report["memory_floor"]
        mf["meets_target"] = mf["fraction_of_floor"] >= FLOOR_TARGET
    if cfg.scaling:
        log("scaling: batch size, image side, threads")
        report["scaling"] = _scaling(cfg, libs, log)
    if cfg.cold_start:
        log("cold start: fresh processes")
        report["cold_start"] = [cold_start(cached=True)]
        if cfg.cold_start_uncached:
            report["cold_start"].append(cold_start(cached=False))
    report["versions"] = library_versions()
    report["threads"] = thread_counts()
    return report
