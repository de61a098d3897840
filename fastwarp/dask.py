"""fastwarp on Dask: lazy warps of Dask arrays, and file batches on a Dask cluster.

* :func:`affine_warp` warps a Dask array of images chunked along the batch
  axis: one :func:`fastwarp.affine_warp` call per chunk, lazily.
* :func:`run_distributed` runs the jobs of ``fastwarp warp`` as Dask tasks on
  an existing cluster (``fastwarp warp ... --scheduler ADDRESS``): each task
  gets a list of file paths, and the worker reads, warps and writes them
  itself, so no pixels travel through the scheduler.  Outputs are written
  atomically and the transforms depend only on (seed, file, copy), so a task
  retried after a worker died writes the same bytes again.

Needs ``dask[array]`` and, for :func:`run_distributed`, ``distributed``
(``pip install 'fastwarp[dask]'``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

import numpy as np

__all__ = ["affine_warp", "perspective_warp", "run_distributed"]


def _warp_block(block, theta_block, size, flags):
    from .api import affine_warp, perspective_warp

    warp = perspective_warp if theta_block.shape[1] == 3 else affine_warp
    return warp(block, theta_block, size, **flags)


def affine_warp(images, theta, size=None, *, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool = False, fill_value=0.0, antialias: bool = False):
    """Lazy :func:`fastwarp.affine_warp` of a Dask array, one kernel call per batch chunk.

    Parameters
    ----------
    images : dask.array.Array or ndarray, shape (N, H, W, C) or (H, W, C)
        uint8, uint16, float16, float32 or float64.  Chunks along H, W and C
        are merged into one (the warp needs whole images); the batch chunks are kept.
    theta : ndarray or dask.array.Array, shape (N, 2, 3) or (2, 3)
        One matrix per image, or one for all; a (N, 2, 3) theta is rechunked
        to the images' batch chunks.
    size : (int, int), optional
        Output (Ho, Wo); defaults to (H, W).
    mode, padding_mode, align_corners, fill_value, antialias
        As in :func:`fastwarp.affine_warp` (``antialias``: filter each output
        pixel's footprint where the warp shrinks; per image, so chunking does
        not change the result).

    Returns
    -------
    dask.array.Array, shape (N, Ho, Wo, C) (or (Ho, Wo, C)), the images' dtype,
    chunked like ``images`` along the batch axis.  Computing it equals
    ``fastwarp.affine_warp(images.compute(), theta, size, ...)``.

    Raises
    ------
    TypeError, ValueError
        As :func:`fastwarp.affine_warp`, raised when the graph is built
        (shapes, dtypes, flags, size), except non-finite values in a Dask theta,
        which raise when computed.
    """
    return _lazy_warp("affine_warp", 2, images, theta, size, mode, padding_mode, align_corners, fill_value,
                      antialias)


def perspective_warp(images, theta, size=None, *, mode: str = "bilinear", padding_mode: str = "zeros",
                     align_corners: bool = False, fill_value=0.0, antialias: bool = False):
    """Lazy :func:`fastwarp.perspective_warp` of a Dask array: :func:`affine_warp` with
    (N, 3, 3) or (3, 3) matrices."""
    return _lazy_warp("perspective_warp", 3, images, theta, size, mode, padding_mode, align_corners,
                      fill_value, antialias)


def _lazy_warp(fn, rows, images, theta, size, mode, padding_mode, align_corners, fill_value, antialias=False):
    import dask.array as da

    from .core.validate import IMAGE_DTYPES, check_antialias, check_fill, check_flags, check_size, check_theta

    x = images if isinstance(images, da.Array) else da.asarray(images)
    if x.dtype.newbyteorder("=") not in IMAGE_DTYPES:
        names = ", ".join(d.name for d in IMAGE_DTYPES)
        raise TypeError(f"{fn}: images must have dtype {names}; got {x.dtype}")
    if x.ndim == 3:
        single = True
        x = x[None]
    elif x.ndim == 4:
        single = False
    else:
        raise ValueError(f"{fn}: images must have shape (N, H, W, C) or (H, W, C); got shape {x.shape}")
    if any(np.isnan(s) for s in x.shape):
        raise ValueError(f"{fn}: images need a known shape; call compute_chunk_sizes() first")
    n, h, w, c = (int(s) for s in x.shape)
    if min(h, w, c) < 1:
        raise ValueError(f"{fn}: images need H, W and C of at least 1; got shape {x.shape}")
    m, _, _ = check_flags(fn, mode, padding_mode, align_corners)
    antialias = check_antialias(fn, antialias, m)
    check_fill(fn, fill_value, c)
    ho, wo = check_size(fn, size, (h, w))
    x = x.rechunk({1: -1, 2: -1, 3: -1})

    m = (rows, 3)
    if isinstance(theta, da.Array):
        if theta.shape == m:
            t = da.broadcast_to(theta, (n,) + m)
        elif theta.ndim == 3 and theta.shape[1:] == m and theta.shape[0] == n:
            t = theta
        else:
            raise ValueError(
                f"{fn}: theta must have shape ({n}, {rows}, 3) or ({rows}, 3); got {theta.shape}")
        if t.dtype.kind not in "fiu":
            raise TypeError(f"{fn}: theta must be a real float or integer array; got dtype {t.dtype}")
        t = t.astype(np.float64).rechunk((x.chunks[0],) + m)
    else:
        t = da.from_array(check_theta(fn, theta, n, not single, rows=rows), chunks=(x.chunks[0],) + m)

    flags = {"mode": mode, "padding_mode": padding_mode, "align_corners": bool(align_corners),
             "fill_value": fill_value, "antialias": antialias}
    # block n of the output = warp(block n of the images, block n of theta); the
    # matrix axes of theta are single chunks, concatenated into each call.
    out = da.blockwise(
        _warp_block, "nhwc", x, "nhwc", t, "nab", (ho, wo), None, flags, None,
        dtype=x.dtype, concatenate=True,
        adjust_chunks={"h": (ho,), "w": (wo,)}, meta=np.empty((0, 0, 0, 0), x.dtype))
    return out[0] if single else out


def _chunks(jobs, outputs_per_task: int):
    chunk, count = [], 0
    for job in jobs:
        chunk.append(job)
        count += len(job.outputs)
        if count >= outputs_per_task:
            yield chunk
            chunk, count = [], 0
    if chunk:
        yield chunk


def run_distributed(jobs, spec, opts, scheduler, *, batch_size: int = 32, io_threads: int = 2,
                    retries: int = 2, memory_budget: int | None = None,
                    max_pending: int | None = None, on_failure: Callable[[str, str], None] | None = None,
                    progress: Callable[[int], None] | None = None, task: Callable | None = None):
    """Run ``fastwarp warp`` jobs as Dask tasks on a cluster; return the merged :class:`Report`.

    Parameters
    ----------
    jobs : list of fastwarp.folder.Job
    spec, opts : fastwarp.folder.TransformSpec, fastwarp.folder.OutputOptions
    scheduler : str or distributed.Client
        Scheduler address (``tcp://host:8786``), or a connected client.
    batch_size : int
        Outputs per task.
    io_threads : int, default 2
        Files processed at a time inside each task (each thread decodes,
        warps with a kernel on ``CPUs // io_threads`` threads, and writes).
    memory_budget : int, optional
        Bytes of pixels in flight per task (default
        :data:`fastwarp.folder.DEFAULT_MEMORY_BUDGET`).
    retries : int
        Retries of a task that raised; a task whose worker died is
        rescheduled by Dask (up to ``distributed.scheduler.allowed-failures``).
    max_pending : int, optional
        Tasks submitted at a time (default: 4 per worker thread), so the
        scheduler never holds the whole job list.
    task : callable, optional
        ``task(jobs, spec, opts, batch_size=..., io_threads=..., memory_budget=...) -> Report``
        run on the workers;
        defaults to :func:`fastwarp.folder.process_jobs`.

    The workers must see the input and output paths (a shared filesystem) and
    have fastwarp installed.  A task that fails for good has all its outputs
    reported as failures; the other tasks still complete.
    """
    from distributed import Client, as_completed

    from .batch.filework import reason as _reason
    from .folder import DEFAULT_MEMORY_BUDGET, Report, process_jobs
    from .io import remove_stale_temps

    task = task or process_jobs
    memory_budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else int(memory_budget)
    on_failure = on_failure or (lambda p, r: None)
    progress = progress or (lambda n: None)
    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    report = Report()
    run_id = uuid.uuid4().hex[:8]
    try:
        if max_pending is None:
            threads = sum(client.nthreads().values()) or 1
            max_pending = 4 * threads
        chunks = _chunks(jobs, batch_size)
        submitted = {}

        def submit(i, chunk):
            fut = client.submit(task, chunk, spec, opts, batch_size=batch_size,
                                io_threads=io_threads, memory_budget=memory_budget, retries=retries,
                                pure=False, key=f"fastwarp-warp-{run_id}-{i}")
            submitted[fut.key] = chunk
            return fut

        ac = as_completed()
        index = 0
        for chunk in chunks:
            ac.add(submit(index, chunk))
            index += 1
            if index >= max_pending:
                break
        for fut in ac:
            chunk = submitted.pop(fut.key)
            try:
                part = fut.result()
            except Exception as e:  # noqa: BLE001 - e.g. KilledWorker after repeated deaths
                part = Report(failures=[(p, _reason(e)) for j in chunk for _, p in j.outputs])
            fut.release()
            for path, reason in part.failures:
                on_failure(path, reason)
            report.merge(part)
            progress(sum(len(j.outputs) for j in chunk))
            nxt = next(chunks, None)
            if nxt is not None:
                ac.add(submit(index, nxt))
                index += 1
    finally:
        if own:
            client.close()
    remove_stale_temps({os.path.dirname(out) for j in jobs for _, out in j.outputs})
    return report
