"""How fastwarp and OpenCV hold up in the call patterns of real code, per OpenMP spin policy.

    python bench/bench_call_patterns.py                       # default policy and a sweep of spin counts
    python bench/bench_call_patterns.py --spin 1000 300000    # only these GOMP_SPINCOUNT values
    python bench/bench_call_patterns.py --workload augment --dtype uint8

Each policy runs in a fresh process (OpenMP reads its environment once), which
times, for one workload (default: seed, 2x400x400x3 float32, bilinear, border):

* ``back_to_back``: calls in a tight loop;
* ``python_1ms``: about 1 ms of single-threaded Python between calls;
* ``after_tf``: a TensorFlow op (the same warp with ImageProjectiveTransformV3)
  right before each call;
* ``after_idle``: 20 ms of sleep before each call;
* ``tiny``: back-to-back calls on a 1x16x16x3 batch (where threads cannot help);

for fastwarp (``out=``) and for OpenCV (``cv2.warpAffine`` per image into
preallocated buffers), each library in its own block of calls.  It then
measures what the policy costs the code that runs *next*: a NumPy op (a 1 MB
``np.add``) and a TF op (a 256x256 matmul), timed right after a fastwarp call
and compared with the same op after 20 ms of idle.

Every cell is the median over many calls; ratios are OpenCV's time over
fastwarp's (above 1: fastwarp is faster).  Timings depend on the machine and on
what else runs on it: run on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, os, sys, time
import numpy as np
cfg = json.loads(sys.argv[1])
import fastwarp as fw
from fastwarp.benchmark import WORKLOADS, make_inputs, ipt_transforms, cpu_model
import cv2
import tensorflow as tf

x = make_inputs(WORKLOADS[cfg["workload"]], cfg["dtype"])
imgs, theta, M = x.images, x.theta, x.matrix
N, H, W, C = imgs.shape
out = np.empty_like(imgs)
cv_out = [np.empty_like(im) for im in imgs]
tiny = np.ascontiguousarray(imgs[:1, :16, :16])
tiny_out = np.empty_like(tiny)
tiny_theta = theta[:1]

def fastwarp_call():
    fw.affine_warp(imgs, theta, padding_mode="border", out=out)

def opencv_call():
    for im, o in zip(imgs, cv_out):
        cv2.warpAffine(im, M, (W, H), dst=o, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

def fastwarp_tiny():
    fw.affine_warp(tiny, tiny_theta, padding_mode="border", out=tiny_out)

tiny_cv_out = np.empty_like(tiny[0])
def opencv_tiny():
    cv2.warpAffine(tiny[0], M, (16, 16), dst=tiny_cv_out, flags=cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_REPLICATE)

tf_imgs = tf.constant(imgs)
tf_tr = tf.constant(ipt_transforms(M, N))
def tf_op():
    tf.raw_ops.ImageProjectiveTransformV3(images=tf_imgs, transforms=tf_tr, output_shape=[H, W],
                                          fill_value=0.0, interpolation="BILINEAR",
                                          fill_mode="NEAREST").numpy()

def python_work(seconds=0.001):
    t_end = time.perf_counter() + seconds
    k = 0
    while time.perf_counter() < t_end:
        k += 1
    return k

def timed(fn, before, calls):
    ts = []
    for _ in range(calls):
        before()
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))

nothing = lambda: None
idle = lambda: time.sleep(0.02)
budget = cfg["calls"]
res = {"spin": os.environ.get("GOMP_SPINCOUNT"), "wait_policy": os.environ.get("OMP_WAIT_POLICY"),
       "threading_layer": None, "cpu": cpu_model()}
for name, fn, tinyfn in (("fastwarp", fastwarp_call, fastwarp_tiny), ("opencv", opencv_call, opencv_tiny)):
    for _ in range(5):
        fn(); tinyfn(); tf_op()
    r = {}
    r["back_to_back"] = timed(fn, nothing, budget)
    r["python_1ms"] = timed(fn, python_work, budget)
    r["after_tf"] = timed(fn, tf_op, max(budget // 2, 10))
    r["after_idle"] = timed(fn, idle, max(budget // 4, 10))
    r["tiny"] = timed(tinyfn, nothing, budget * 4)
    res[name] = r
import numba
res["threading_layer"] = numba.threading_layer()

# what the next code pays: the op right after a fastwarp call vs after idle
a = np.random.default_rng(0).random(2**17)
b = np.empty_like(a)
np_op = lambda: np.add(a, a, out=b)
m = tf.constant(np.random.default_rng(1).random((256, 256), dtype=np.float32))
tf_next = lambda: tf.linalg.matmul(m, m).numpy()
for _ in range(5):
    np_op(); tf_next()
res["next"] = {
    "numpy_after_fastwarp": timed(np_op, fastwarp_call, budget),
    "numpy_after_opencv": timed(np_op, opencv_call, budget),
    "numpy_after_idle": timed(np_op, idle, max(budget // 4, 10)),
    "tf_after_fastwarp": timed(tf_next, fastwarp_call, budget),
    "tf_after_opencv": timed(tf_next, opencv_call, budget),
    "tf_after_idle": timed(tf_next, idle, max(budget // 4, 10)),
}
print(json.dumps(res))
"""

PATTERNS = ("back_to_back", "python_1ms", "after_tf", "after_idle", "tiny")


def run_policy(spin: str | None, cfg: dict) -> dict:
    """Run the child in a fresh process with GOMP_SPINCOUNT=spin (None: fastwarp's default policy)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    if spin is not None:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
        env["GOMP_SPINCOUNT"] = spin
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], env=env, capture_output=True,
                       text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"child failed for spin={spin}:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def format_rows(results: list[dict]) -> str:
    head = ("| policy | " + " | ".join(f"{p} fastwarp / OpenCV (ms)" for p in PATTERNS)
            + " | NumPy op after fastwarp / idle (us) | TF op after fastwarp / idle (us) |")
    lines = [head, "|" + "---|" * (len(PATTERNS) + 3)]
    for r in results:
        label = f"spin {r['spin']}" if r["spin"] else "default"
        cells = []
        for p in PATTERNS:
            f, o = r["fastwarp"][p] * 1e3, r["opencv"][p] * 1e3
            cells.append(f"{f:.3g} / {o:.3g} ({o / f:.2f}x)")
        n = r["next"]
        cells.append(f"{n['numpy_after_fastwarp'] * 1e6:.0f} / {n['numpy_after_idle'] * 1e6:.0f}")
        cells.append(f"{n['tf_after_fastwarp'] * 1e6:.0f} / {n['tf_after_idle'] * 1e6:.0f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spin", nargs="*", default=None,
                   help="GOMP_SPINCOUNT values to sweep (default: fastwarp's default, 1000, 30000, 300000)")
    p.add_argument("--workload", default="seed")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--calls", type=int, default=200, help="calls per cell (default 200)")
    p.add_argument("--json", help="write the raw results here")
    args = p.parse_args(argv)
    spins = [None, "1000", "30000", "300000"] if args.spin is None else args.spin
    cfg = {"workload": args.workload, "dtype": args.dtype, "calls": args.calls}
    results = []
    for spin in spins:
        t0 = time.perf_counter()
        results.append(run_policy(spin, cfg))
        print(f"policy spin={spin or 'default'}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(f"{args.workload} {args.dtype}, {results[0]['cpu']}, layer {results[0]['threading_layer']}")
    print(format_rows(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
