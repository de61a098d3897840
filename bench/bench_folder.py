"""``fastwarp warp`` against the OpenCV thread-pool script a user would write, on generated folders.

    python bench/bench_folder.py                      # the three sets, 3 alternated rounds
    python bench/bench_folder.py --sets small-jpeg --rounds 5 --dask

Sets (generated once under ``--dir``, reused when present): 1,500 JPEGs of
256x256, 160 JPEGs of 1024x1024 (quality 90) and 400 PNGs of 384x384, smooth
colour patterns plus noise.  Every run applies the same transform: rotation
15 degrees and scale 0.9 about the centre, JPEG quality 95.

For each set the two commands run as a user runs them, in fresh processes,
alternated ``--rounds`` times (medians are printed):

* ``fastwarp warp SET -o OUT --rotate 15 --scale 0.9 -q`` (default options);
* ``python opencv_script.py SET OUT``: ThreadPoolExecutor over the cores, each
  task cv2.imread -> cv2.warpAffine -> cv2.imwrite to a temporary name ->
  os.replace (:data:`OPENCV_SCRIPT`, OpenCV's default options).

Images/s are outputs over the command's wall time (start-up included); the
``in-run`` column is fastwarp's own summary line (start-up of the
interpreter excluded).  The codec bound is the number of cores over the
single-thread decode + encode time of one image, with OpenCV's codecs (what
the script pays) and with fastwarp's (OpenCV decode and JPEG encode, the
fastwarp PNG writer at level 1).  ``--dask`` adds ``fastwarp warp
--scheduler`` on a local cluster of one single-threaded worker per core
(cluster start-up not counted; a warm-up run loads the kernels first).
Timings depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

SETS = {  # name: (count, side, extension)
    "small-jpeg": (1500, 256, ".jpg"),
    "large-jpeg": (160, 1024, ".jpg"),
    "png": (400, 384, ".png"),
}
TRANSFORM = ["--rotate", "15", "--scale", "0.9"]

OPENCV_SCRIPT = '''\
import os, sys
from concurrent.futures import ThreadPoolExecutor
import cv2

src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
names = [n for n in sorted(os.listdir(src)) if n.endswith((".jpg", ".png"))]

def warp(name):
    img = cv2.imread(os.path.join(src, name))
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 15, 0.9)
    out = cv2.warpAffine(img, m, (w, h))
    ext = os.path.splitext(name)[1]
    tmp = os.path.join(dst, f".{name}.tmp{ext}")
    cv2.imwrite(tmp, out, [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == ".jpg" else [])
    os.replace(tmp, os.path.join(dst, name))

with ThreadPoolExecutor(os.cpu_count()) as pool:
    list(pool.map(warp, names))
'''


def _pattern(rng, side: int) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side] / side
    f = rng.uniform(1, 6, size=3)
    ph = rng.uniform(0, 6.3, size=3)
    img = np.stack([np.sin(f[c] * (xx + yy * (c + 1)) * 3 + ph[c]) for c in range(3)], -1)
    return np.clip(127.5 + 100 * img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def make_set(path: str, count: int, side: int, ext: str) -> None:
    """``count`` images of side x side in ``path`` (kept when a stamp says they are there)."""
    import cv2

    stamp = os.path.join(path, f".fastwarp-bench-{count}-{side}{ext}.stamp")
    if os.path.exists(stamp):
        return
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    rng = np.random.default_rng(0)
    for i in range(count):
        cv2.imwrite(os.path.join(path, f"img{i:05d}{ext}"), _pattern(rng, side),
                    [cv2.IMWRITE_JPEG_QUALITY, 90] if ext == ".jpg" else [])
    open(stamp, "w").close()


def _per_image(fn, items, repeat: int = 3) -> float:
    best = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for x in items:
            fn(x)
        best.append((time.perf_counter() - t0) / len(items))
    return statistics.median(best)


def codec_costs(path: str, ext: str, count: int = 40) -> dict:
    """Single-thread seconds per image: decode, encode with OpenCV's and fastwarp's encoders, and
    the warp by fastwarp's kernel (one thread) and by cv2.warpAffine (one thread)."""
    import cv2

    import fastwarp
    from fastwarp.batch.png import encode_png
    from fastwarp.core.threads import set_kernel_threads
    from fastwarp.transforms import affine_theta

    names = sorted(n for n in os.listdir(path) if n.endswith(ext))[:count]
    data = [np.frombuffer(open(os.path.join(path, n), "rb").read(), np.uint8) for n in names]
    images = [cv2.imdecode(d, cv2.IMREAD_COLOR) for d in data]
    dec = _per_image(lambda d: cv2.imdecode(d, cv2.IMREAD_COLOR), data)
    if ext == ".jpg":
        enc_cv = _per_image(lambda a: cv2.imencode(".jpg", a, [cv2.IMWRITE_JPEG_QUALITY, 95]), images)
        enc_fw = enc_cv
    else:
        enc_cv = _per_image(lambda a: cv2.imencode(".png", a), images)
        enc_fw = _per_image(lambda a: encode_png(a, level=1, order=(2, 1, 0)), images)
    h, w = images[0].shape[:2]
    theta = affine_theta((h, w), rotation=15, scale=0.9)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 15, 0.9)
    threads = cv2.getNumThreads()
    set_kernel_threads(1)
    cv2.setNumThreads(1)
    try:
        fastwarp.affine_warp(images[0], theta)
        warp_fw = _per_image(lambda a: fastwarp.affine_warp(a, theta), images)
        warp_cv = _per_image(lambda a: cv2.warpAffine(a, m, (w, h)), images)
    finally:
        cv2.setNumThreads(threads)
        set_kernel_threads(os.cpu_count() or 1)
    return {"decode": dec, "encode_cv2": enc_cv, "encode_fw": enc_fw, "warp_fw": warp_fw, "warp_cv2": warp_cv}


def _drop(folder: str) -> None:
    """Remove a run's outputs and let the filesystem settle (ext4 with online discard goes on
    working after a large removal and would slow the next command)."""
    shutil.rmtree(folder, ignore_errors=True)
    os.sync()


def _run(cmd: list[str], env=None) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"{cmd} exited with {res.returncode}: {res.stderr[-2000:]}")
    return dt, res.stdout


OUT_BASE = None  # folder for the outputs (--out); None: the system's temporary folder


def time_fastwarp(src: str, extra=()) -> tuple[float, float]:
    """(wall seconds of the command, seconds in fastwarp's summary line)."""
    out = tempfile.mkdtemp(prefix="fastwarp-bench-out-", dir=OUT_BASE)
    try:
        dt, stdout = _run([sys.executable, "-m", "fastwarp.cli", "warp", src, "-o", out, *TRANSFORM, "-q",
                           *extra])
        m = re.search(r"in ([0-9.]+) s", stdout)
        return dt, float(m.group(1)) if m else float("nan")
    finally:
        _drop(out)


def time_opencv(src: str, script: str) -> float:
    out = tempfile.mkdtemp(prefix="opencv-bench-out-", dir=OUT_BASE)
    try:
        return _run([sys.executable, script, src, out])[0]
    finally:
        _drop(out)


def time_dask(src: str, address: str) -> float:
    from fastwarp.cli import main

    out = tempfile.mkdtemp(prefix="fastwarp-bench-dask-", dir=OUT_BASE)
    try:
        t0 = time.perf_counter()
        rc = main(["warp", src, "-o", out, *TRANSFORM, "-q", "--scheduler", address])
        dt = time.perf_counter() - t0
        if rc != 0:
            raise RuntimeError(f"fastwarp warp --scheduler exited with {rc}")
        return dt
    finally:
        _drop(out)


def steady_state(src: str, rounds: int) -> tuple[float, float]:
    """Images/s of fastwarp's runner and of the script's loop in this process, warmed up, no
    start-up: (fastwarp, OpenCV script), medians of alternated runs."""
    import gc

    from fastwarp.folder import OutputOptions, TransformSpec, plan_jobs, run_local

    ns: dict = {}
    code = OPENCV_SCRIPT.split("with ThreadPoolExecutor")[0]
    for line in ("src, dst = sys.argv[1], sys.argv[2]\n", "os.makedirs(dst, exist_ok=True)\n"):
        code = code.replace(line, "")
    spec = TransformSpec(rotate=(15.0, 15.0), scale=(0.9, 0.9))
    fw, cv = [], []
    for i in range(rounds + 1):
        out = tempfile.mkdtemp(prefix="fastwarp-bench-steady-", dir=OUT_BASE)
        jobs, _ = plan_jobs([src], out)
        gc.freeze()
        t0 = time.perf_counter()
        run_local(jobs, spec, OutputOptions())
        dt_fw = time.perf_counter() - t0
        _drop(out)
        out = tempfile.mkdtemp(prefix="opencv-bench-steady-", dir=OUT_BASE)
        ns.update(src=src, dst=out, sys=sys)
        exec(code, ns)  # defines names and warp() for this src/dst
        from concurrent.futures import ThreadPoolExecutor

        t0 = time.perf_counter()
        with ThreadPoolExecutor(os.cpu_count()) as pool:
            list(pool.map(ns["warp"], ns["names"]))
        dt_cv = time.perf_counter() - t0
        _drop(out)
        if i:  # the first round warms both up
            fw.append(len(jobs) / dt_fw)
            cv.append(len(ns["names"]) / dt_cv)
    return statistics.median(fw), statistics.median(cv)


def _cpu_name() -> str:
    """The CPU's model, family and micro-architecture (as ``fastwarp bench`` reports it)."""
    from fastwarp.experiments.benchmark import cpu_model

    return cpu_model()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sets", nargs="+", choices=sorted(SETS), default=list(SETS))
    p.add_argument("--rounds", type=int, default=3, help="alternated runs of each command (default 3)")
    p.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "fastwarp-bench-folders"))
    p.add_argument("--dask", action="store_true", help="also time --scheduler on a LocalCluster")
    p.add_argument("--steady", action="store_true",
                   help="also time both in this process, warmed up (throughput without start-up)")
    p.add_argument("--out", default=None,
                   help="where outputs are written (e.g. /dev/shm to take the disk out of the timings)")
    args = p.parse_args(argv)
    global OUT_BASE
    OUT_BASE = args.out

    from fastwarp.batch.png import deflate_backend
    from fastwarp.core.threads import cpu_count

    cores = cpu_count()
    script = os.path.join(args.dir, "opencv_script.py")
    os.makedirs(args.dir, exist_ok=True)
    with open(script, "w") as f:
        f.write(OPENCV_SCRIPT)
    print(f"{_cpu_name()}, {cores} cores; PNG deflate: {deflate_backend(1)}; {args.rounds} rounds, medians; "
          f"outputs in {args.out or tempfile.gettempdir()}")
    rows = []
    cluster = None
    if args.dask:
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=cores, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
    try:
        for name in args.sets:
            count, side, ext = SETS[name]
            path = os.path.join(args.dir, name)
            make_set(path, count, side, ext)
            costs = codec_costs(path, ext)
            fw, fw_in, cv = [], [], []
            time_fastwarp(path)  # load the kernels' disk cache once
            for _ in range(args.rounds):
                wall, inrun = time_fastwarp(path)
                fw.append(wall)
                fw_in.append(inrun)
                cv.append(time_opencv(path, script))
            row = {"set": f"{count:,} {ext[1:].upper()}s {side}x{side}", "n": count,
                   "fastwarp": count / statistics.median(fw),
                   "fastwarp_inrun": count / statistics.median(fw_in),
                   "opencv": count / statistics.median(cv),
                   "bound_cv2": cores / (costs["decode"] + costs["encode_cv2"]),
                   "bound_fw": cores / (costs["decode"] + costs["encode_fw"]), **costs}
            if args.steady:
                row["steady_fw"], row["steady_cv"] = steady_state(path, args.rounds)
            if cluster is not None:
                time_dask(os.path.join(path), cluster.scheduler_address)  # warm-up
                row["dask"] = count / statistics.median(
                    [time_dask(path, cluster.scheduler_address) for _ in range(args.rounds)])
            rows.append(row)
            print(f"{row['set']}, ms per image on one thread: decode {costs['decode'] * 1e3:.2f}, encode "
                  f"OpenCV {costs['encode_cv2'] * 1e3:.2f} / fastwarp {costs['encode_fw'] * 1e3:.2f}, warp "
                  f"fastwarp {costs['warp_fw'] * 1e3:.2f} / cv2.warpAffine {costs['warp_cv2'] * 1e3:.2f}",
                  flush=True)
    finally:
        if cluster is not None:
            cluster.close()
    head = "| inputs | fastwarp warp | (in-run) | OpenCV script | ratio | codec bound fastwarp / OpenCV |"
    if args.steady:
        head += " steady state fastwarp / script | ratio |"
    if args.dask:
        head += " Dask LocalCluster |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        line = (f"| {r['set']} | {r['fastwarp']:.0f} | {r['fastwarp_inrun']:.0f} | {r['opencv']:.0f} | "
                f"{r['fastwarp'] / r['opencv']:.2f}x | {r['bound_fw']:.0f} / {r['bound_cv2']:.0f} |")
        if args.steady:
            line += f" {r['steady_fw']:.0f} / {r['steady_cv']:.0f} | {r['steady_fw'] / r['steady_cv']:.2f}x |"
        if args.dask:
            line += f" {r['dask']:.0f} |"
        print(line)
    print("(images/s; fastwarp warp and the script are whole commands, start-up included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
