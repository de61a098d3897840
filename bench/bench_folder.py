"""Throughput of ``fastwarp warp`` on a folder of JPEGs: kernel, local run, Dask cluster.

    python bench/bench_folder.py                 # 3000 JPEGs of 256x256 in /tmp
    python bench/bench_folder.py -n 500 --workers 2 --no-dask

Generates the folder once (reused when it already holds the right files),
then prints images per second for:

* kernel: ``fastwarp.affine_warp`` alone on decoded uint8 batches (no I/O);
* decode+encode: Pillow alone, one thread (JPEG read + JPEG write at quality 95,
  in memory), the per-image I/O cost the pipeline has to hide;
* local: ``fastwarp warp`` in this process (decode threads, batched kernel,
  encode threads);
* dask: ``fastwarp warp --scheduler`` on a local cluster of ``--dask-workers``
  worker processes with one thread each (cluster start-up not counted; a small
  warm-up run loads the kernels in the workers first).

Every run warps with a random rotation and scale per image.  Timings depend
on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time

import numpy as np

TRANSFORM = ["--random-rotate", "-30", "30", "--random-scale", "0.8", "1.2", "--padding", "reflection",
             "-q"]


def make_folder(path: str, n: int, size: int) -> None:
    """n JPEGs (smooth colour patterns plus noise) in 10 sub-folders; reused if present."""
    from PIL import Image

    stamp = os.path.join(path, f".fastwarp-bench-{n}-{size}")
    if os.path.exists(stamp):
        return
    shutil.rmtree(path, ignore_errors=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        f = rng.uniform(1, 6, size=3)
        ph = rng.uniform(0, 6.3, size=3)
        img = np.stack([np.sin(f[c] * (xx + yy * (c + 1)) * 3 + ph[c]) for c in range(3)], -1)
        img = 127.5 + 100 * img + rng.normal(0, 8, img.shape)
        sub = os.path.join(path, f"part{i % 10}")
        os.makedirs(sub, exist_ok=True)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
            os.path.join(sub, f"img{i:05d}.jpg"), quality=90)
    open(stamp, "w").close()


def bench_kernel(size: int, batch: int = 32, seconds: float = 2.0) -> float:
    import fastwarp
    from fastwarp.transforms import affine_theta

    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(batch, size, size, 3), dtype=np.uint8)
    theta = affine_theta((size, size), rotation=rng.uniform(-30, 30, batch),
                         scale=rng.uniform(0.8, 1.2, batch))
    out = np.empty_like(x)
    fastwarp.affine_warp(x, theta, padding_mode="reflection", out=out)  # compile / load the cache
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fastwarp.affine_warp(x, theta, padding_mode="reflection", out=out)
        n += batch
    return n / (time.perf_counter() - t0)


def bench_codec(folder: str, count: int = 300) -> float:
    from PIL import Image

    files = [os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs if f.endswith(".jpg")][:count]
    t0 = time.perf_counter()
    for f in files:
        with Image.open(f) as im:
            a = np.asarray(im)
        Image.fromarray(a).save(io.BytesIO(), format="JPEG", quality=95)
    return len(files) / (time.perf_counter() - t0)


def bench_cli(folder: str, extra: list[str]) -> float:
    from fastwarp.cli import main

    out = tempfile.mkdtemp(prefix="fastwarp-bench-out-")
    try:
        n = sum(f.endswith(".jpg") for _, _, fs in os.walk(folder) for f in fs)
        t0 = time.perf_counter()
        rc = main(["warp", folder, "-o", out, *TRANSFORM, *extra])
        dt = time.perf_counter() - t0
        if rc != 0:
            raise RuntimeError(f"fastwarp warp exited with {rc}")
        return n / dt
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=3000, help="number of images (default 3000)")
    p.add_argument("--size", type=int, default=256, help="image side (default 256)")
    p.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "fastwarp-bench-folder"))
    p.add_argument("--workers", type=int, default=None, help="--workers of the local run")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--dask-workers", type=int, default=2)
    p.add_argument("--no-dask", action="store_true")
    args = p.parse_args(argv)

    import fastwarp

    t0 = time.perf_counter()
    make_folder(args.dir, args.n, args.size)
    print(f"folder: {args.dir} ({args.n} JPEGs of {args.size}x{args.size}, ready in "
          f"{time.perf_counter() - t0:.1f} s); {os.cpu_count()} CPUs; fastwarp {fastwarp.__version__}")
    rows = [("kernel only (uint8 batches of 32, no I/O)", bench_kernel(args.size)),
            ("Pillow decode + encode only, 1 thread", bench_codec(args.dir))]
    common = ["--batch-size", str(args.batch_size)]
    if args.workers:
        common += ["--workers", str(args.workers)]
    rows.append((f"fastwarp warp, local ({args.workers or 'default'} I/O threads)",
                 bench_cli(args.dir, common)))
    if not args.no_dask:
        from distributed import LocalCluster

        with LocalCluster(n_workers=args.dask_workers, threads_per_worker=1, processes=True,
                          dashboard_address=None, silence_logs=40) as cluster:
            # warm-up on one sub-folder: the workers load (or compile) the kernels
            bench_cli(os.path.join(args.dir, "part0"), ["--scheduler", cluster.scheduler_address])
            rows.append((f"fastwarp warp --scheduler (LocalCluster {args.dask_workers}x1 thread)",
                         bench_cli(args.dir, ["--scheduler", cluster.scheduler_address, *common])))
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  images/s")
    for name, rate in rows:
        print(f"{name:{width}}  {rate:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
