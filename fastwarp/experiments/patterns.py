"""Call patterns of real code: fastwarp against OpenCV back to back, between Python work,
after TensorFlow work and after idle, and what each costs the code that runs next.

Used by ``fastwarp bench`` (the current process's thread policy) and by
``bench/bench_call_patterns.py`` (one fresh process per OpenMP spin policy).
Each library is timed in its own block of calls; a cell is the median of
single-call times.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

PATTERNS = ("back_to_back", "python_1ms", "after_tf", "after_idle", "tiny")
IDLE_S = 0.02  # "after idle": the pause before each call


def python_work(seconds: float = 0.001) -> int:
    """About ``seconds`` of single-threaded pure-Python work (a counting loop)."""
    t_end = time.perf_counter() + seconds
    k = 0
    while time.perf_counter() < t_end:
        k += 1
    return k


def timed(fn: Callable[[], object], before: Callable[[], object], calls: int) -> float:
    """Median seconds of ``fn`` over ``calls`` calls, each right after ``before`` (not timed)."""
    ts = []
    for _ in range(calls):
        before()
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def measure(workload: str = "seed", dtype: str = "float32", calls: int = 200) -> dict:
    """Time fastwarp (``out=``) and OpenCV (into preallocated buffers) in each pattern.

    Needs OpenCV and TensorFlow.  Returns ``{"fastwarp": {pattern: s}, "opencv": {...},
    "next": {...}}``: ``next`` holds a NumPy op (1 MB ``np.add``) and a TF op (256x256
    matmul) timed right after a fastwarp call, right after an OpenCV call and after idle.
    """
    import cv2
    import tensorflow as tf

    import fastwarp as fw

    from .baselines import WORKLOADS, ipt_transforms, make_inputs

    x = make_inputs(WORKLOADS[workload], dtype)
    imgs, theta, M = x.images, x.theta, x.matrix
    n, h, w, _ = imgs.shape
    out = np.empty_like(imgs)
    cv_out = [np.empty_like(im) for im in imgs]
    tiny = np.ascontiguousarray(imgs[:1, :16, :16])
    tiny_out = np.empty_like(tiny)
    tiny_cv_out = np.empty_like(tiny[0])
    flags = {"flags": cv2.INTER_LINEAR, "borderMode": cv2.BORDER_REPLICATE}

    def fastwarp_call():
        fw.affine_warp(imgs, theta, padding_mode="border", out=out)

    def opencv_call():
        for im, o in zip(imgs, cv_out):
            cv2.warpAffine(im, M, (w, h), dst=o, **flags)

    def fastwarp_tiny():
        fw.affine_warp(tiny, theta[:1], padding_mode="border", out=tiny_out)

    def opencv_tiny():
        cv2.warpAffine(tiny[0], M, (16, 16), dst=tiny_cv_out, **flags)

    tf_imgs = tf.constant(imgs)
    tf_tr = tf.constant(ipt_transforms(M, n))

    def tf_op():
        tf.raw_ops.ImageProjectiveTransformV3(images=tf_imgs, transforms=tf_tr, output_shape=[h, w],
                                              fill_value=0.0, interpolation="BILINEAR",
                                              fill_mode="NEAREST").numpy()

    def nothing():
        return None

    def idle():
        time.sleep(IDLE_S)

    res: dict = {"workload": workload, "dtype": dtype, "calls": calls}
    libraries = (("fastwarp", fastwarp_call, fastwarp_tiny), ("opencv", opencv_call, opencv_tiny))
    for name, fn, tiny_fn in libraries:
        for _ in range(5):
            fn()
            tiny_fn()
            tf_op()
        res[name] = {"back_to_back": timed(fn, nothing, calls),
                     "python_1ms": timed(fn, python_work, calls),
                     "after_tf": timed(fn, tf_op, max(calls // 2, 10)),
                     "after_idle": timed(fn, idle, max(calls // 4, 10)),
                     "tiny": timed(tiny_fn, nothing, calls * 4)}
    a = np.random.default_rng(0).random(2**17)
    b = np.empty_like(a)
    m = tf.constant(np.random.default_rng(1).random((256, 256), dtype=np.float32))

    def np_op():
        np.add(a, a, out=b)

    def tf_next():
        tf.linalg.matmul(m, m).numpy()

    for _ in range(5):
        np_op()
        tf_next()
    res["next"] = {
        "numpy_after_fastwarp": timed(np_op, fastwarp_call, calls),
        "numpy_after_opencv": timed(np_op, opencv_call, calls),
        "numpy_after_idle": timed(np_op, idle, max(calls // 4, 10)),
        "tf_after_fastwarp": timed(tf_next, fastwarp_call, calls),
        "tf_after_opencv": timed(tf_next, opencv_call, calls),
        "tf_after_idle": timed(tf_next, idle, max(calls // 4, 10)),
    }
    return res


def format_patterns(p: dict, label: str = "") -> list[str]:
    """Text lines: one per pattern (fastwarp ms, OpenCV ms, ratio), then the next-op costs."""
    where = f"{p['workload']} {p['dtype']}" + (f", {label}" if label else "")
    lines = [f"call patterns ({where}; median ms per call, ratio = OpenCV / fastwarp):"]
    for pat in PATTERNS:
        f, o = p["fastwarp"][pat] * 1e3, p["opencv"][pat] * 1e3
        lines.append(f"  {pat:13s} fastwarp {f:8.3f}  OpenCV {o:8.3f}  ({o / f:.2f}x)")
    nx = p["next"]
    us = {k: v * 1e6 for k, v in nx.items()}
    lines.append(f"  next op (us): NumPy 1 MB add after fastwarp {us['numpy_after_fastwarp']:.0f}, "
                 f"after OpenCV {us['numpy_after_opencv']:.0f}, after idle {us['numpy_after_idle']:.0f}; "
                 f"TF 256x256 matmul after fastwarp {us['tf_after_fastwarp']:.0f}, "
                 f"after OpenCV {us['tf_after_opencv']:.0f}, after idle {us['tf_after_idle']:.0f}")
    return lines
