"""fastwarp.dask: lazy warps of Dask arrays, and ``fastwarp warp --scheduler`` on a real
multi-process cluster (byte-identical to the local run, surviving a killed worker)."""

from __future__ import annotations

import functools
import os
import sys

import dask.array as da  # test extras: a missing install fails, never skips
import distributed
import numpy as np
import pytest
from PIL import Image

import fastwarp
from fastwarp.cli import main
from fastwarp.dask import affine_warp, perspective_warp, run_distributed
from fastwarp.folder import OutputOptions, TransformSpec, plan_jobs, process_jobs  # noqa: E402

# ---------------------------------------------------------------- dask arrays

@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_dask_array_equals_in_memory(rng, dtype):
    n, h, w, c = int(rng.integers(1, 12)), int(rng.integers(1, 15)), int(rng.integers(1, 15)), 3
    x = rng.integers(0, 256, size=(n, h, w, c)).astype(dtype)
    theta = np.tile(np.eye(2, 3), (n, 1, 1)) + rng.normal(scale=0.4, size=(n, 2, 3))
    dx = da.from_array(x, chunks=(int(rng.integers(1, n + 1)), max(1, h // 2), max(1, w // 2), 2))
    for mode in ("bilinear", "nearest"):
        for padding in ("zeros", "border", "reflection"):
            for align in (False, True):
                flags = dict(mode=mode, padding_mode=padding, align_corners=align)
                lazy = affine_warp(dx, theta, (5, 7), **flags)
                assert isinstance(lazy, da.Array) and lazy.chunks[0] == dx.chunks[0]
                assert lazy.shape == (n, 5, 7, c) and lazy.dtype == x.dtype
                np.testing.assert_array_equal(lazy.compute(), fastwarp.affine_warp(x, theta, (5, 7), **flags))
    # theta as a Dask array with other chunks, and one theta for all
    dt = da.from_array(theta, chunks=(max(1, n // 3 + 1), 2, 3))
    np.testing.assert_array_equal(affine_warp(dx, dt).compute(), fastwarp.affine_warp(x, theta))
    np.testing.assert_array_equal(affine_warp(dx, theta[0]).compute(), fastwarp.affine_warp(x, theta[0]))
    # a single (H, W, C) image
    np.testing.assert_array_equal(affine_warp(dx[0], theta[0]).compute(),
                                  fastwarp.affine_warp(x[0], theta[0]))


def test_dask_array_errors():
    dx = da.zeros((4, 5, 6, 1), chunks=2, dtype=np.uint8)
    with pytest.raises(ValueError, match=r"affine_warp: theta must have shape \(4, 2, 3\)"):
        affine_warp(dx, da.zeros((3, 2, 3), chunks=1))
    with pytest.raises(ValueError, match="affine_warp: theta has 3 matrices"):
        affine_warp(dx, np.zeros((3, 2, 3)))
    with pytest.raises(TypeError, match="affine_warp: images must have dtype"):
        affine_warp(dx.astype(np.int16), np.eye(2, 3))
    with pytest.raises(ValueError, match="affine_warp: images must have shape"):
        affine_warp(dx[0, 0], np.eye(2, 3))
    with pytest.raises(ValueError, match="affine_warp: padding_mode"):
        affine_warp(dx, np.eye(2, 3), padding_mode="mirror")
    with pytest.raises(ValueError, match="affine_warp: fill_value must be a scalar or 1 values"):
        affine_warp(dx, np.eye(2, 3), padding_mode="constant", fill_value=[1, 2])
    with pytest.raises(ValueError, match=r"perspective_warp: theta must have shape \(4, 3, 3\)"):
        perspective_warp(dx, da.zeros((4, 2, 3), chunks=1))


def test_dask_perspective_and_new_flags(rng):
    x = rng.integers(0, 65536, (5, 7, 8, 3)).astype(np.uint16)
    t = np.tile(np.eye(3), (5, 1, 1)) + rng.uniform(-0.1, 0.1, (5, 3, 3))
    kw = dict(mode="bicubic", padding_mode="constant", fill_value=[1000, 2000, 3000])
    got = perspective_warp(da.from_array(x, chunks=(2, 7, 8, 3)), t, (6, 9), **kw).compute()
    np.testing.assert_array_equal(got, fastwarp.perspective_warp(x, t, (6, 9), **kw))
    got = affine_warp(da.from_array(x, chunks=2), t[:, :2], padding_mode="wrap").compute()
    np.testing.assert_array_equal(got, fastwarp.affine_warp(x, t[:, :2], padding_mode="wrap"))



def test_dask_antialias_is_passed_through(rng):
    from fastwarp.transforms import affine_theta

    x = rng.integers(1, 256, (5, 19, 23, 3)).astype(np.uint8)
    t = np.repeat(affine_theta((19, 23), (7, 9), rotation=25, scale=1 / 3)[None], 5, 0)
    dx = da.from_array(x, chunks=(2, 19, 23, 3))
    want = fastwarp.affine_warp(x, t, (7, 9), antialias=True)
    assert not np.array_equal(want, fastwarp.affine_warp(x, t, (7, 9)))
    np.testing.assert_array_equal(affine_warp(dx, t, (7, 9), antialias=True).compute(), want)
    p = np.concatenate([t, np.tile([[[0.1, -0.05, 1.0]]], (5, 1, 1))], 1)
    np.testing.assert_array_equal(perspective_warp(dx, p, (7, 9), antialias=True).compute(),
                                  fastwarp.perspective_warp(x, p, (7, 9), antialias=True))
    with pytest.raises(ValueError, match="^affine_warp: antialias=True needs mode"):
        affine_warp(dx, t, mode="nearest", antialias=True)


# ---------------------------------------------------------------- cluster

@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=40) as c:
        yield c


@pytest.fixture
def folder(tmp_path, rng):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (11, 14, 3), dtype=np.uint8)).save(d / f"p{i}.png")
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (9, 8), dtype=np.uint8)).save(d / "sub" / f"g{i}.jpg")
    Image.fromarray(rng.integers(0, 256, (7, 10, 4), dtype=np.uint8)).save(d / "sub" / "a.png")
    (d / "sub" / "bad.png").write_bytes(b"garbage")
    return d


def _tree(root):
    out = {}
    for r, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(r, f)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


RANDOM = ["--random-rotate", "-25", "25", "--random-scale", "0.8", "1.25", "--random-shift", "2", "2",
          "--copies", "2", "--seed", "11", "--padding", "border", "-q"]


def test_cli_on_cluster_writes_the_same_files(cluster, folder, tmp_path, capsys):
    local, dist = tmp_path / "local", tmp_path / "dist"
    assert main(["warp", str(folder), "-o", str(local), "--batch-size", "5"] + RANDOM) == 2
    assert main(["warp", str(folder), "-o", str(dist), "--batch-size", "3",
                 "--scheduler", cluster.scheduler_address] + RANDOM) == 2
    cap = capsys.readouterr()
    assert cap.out.count("20 written, 0 skipped (existing), 1 failed") == 2
    assert sum("failed:" in line and "bad.png" in line for line in cap.err.splitlines()) == 2
    a, b = _tree(local), _tree(dist)
    assert len(a) == 20 and a == b
    # resuming on the cluster skips what exists
    os.remove(dist / "sub" / "a_1.png")
    assert main(["warp", str(folder), "-o", str(dist), "--skip-existing",
                 "--scheduler", cluster.scheduler_address] + RANDOM) == 2
    assert _tree(dist) == a
    assert "1 written, 19 skipped (existing), 1 failed" in capsys.readouterr().out


def _dies_once(jobs, spec, opts, *, batch_size, io_threads, memory_budget, marker):
    """Task that, on its first attempt anywhere, kills its worker process in the middle of
    writing its second output (after some bytes reached the temporary file)."""
    import os

    import fastwarp.io as io_mod
    from fastwarp.folder import process_jobs

    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        first = True
    except FileExistsError:
        first = False
    if first:
        real_write = io_mod._write_all
        calls = [0]

        def write(fp, data):
            calls[0] += 1
            if calls[0] == 2:
                fp.write(b"".join(bytes(x) for x in data)[:100])
                fp.flush()
                with open(marker, "w") as f:
                    f.write(fp.name)
                os._exit(1)
            return real_write(fp, data)

        io_mod._write_all = write
    return process_jobs(jobs, spec, opts, batch_size=batch_size, io_threads=io_threads,
                        memory_budget=memory_budget)


def test_killed_worker_loses_and_corrupts_nothing(cluster, folder, tmp_path):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    spec = TransformSpec(rotate=(-30, 30), scale=(0.9, 1.1), seed=4, padding_mode="reflection")
    opts = OutputOptions()
    out_ref, out = tmp_path / "ref", tmp_path / "out"
    jobs_ref, _ = plan_jobs([str(folder)], str(out_ref), copies=2)
    ref = process_jobs(jobs_ref, spec, opts)
    jobs, _ = plan_jobs([str(folder)], str(out), copies=2)
    marker = str(tmp_path / "killed")
    failures = []
    report = run_distributed(jobs, spec, opts, cluster.scheduler_address, batch_size=4,
                             task=functools.partial(_dies_once, marker=marker),
                             on_failure=lambda p, r: failures.append(p))
    temp = open(marker).read()
    assert temp.endswith(".fwtmp") and os.path.dirname(temp).startswith(str(out))  # a worker did die
    assert not os.path.exists(temp)
    assert report.written == ref.written == 20
    assert [os.path.basename(p) for p in failures] == ["bad.png"]
    assert _tree(out) == _tree(out_ref)
    assert not any(name.endswith(".fwtmp") for name in _tree(out))
