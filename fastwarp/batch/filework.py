"""One file of ``fastwarp warp``: probe, reserve memory, decode, warp every copy, write.

:func:`run_job` is what each I/O thread of :func:`fastwarp.folder.run_local`
(and each Dask task) does for one input file; :func:`warp_pixels` warps one
decoded image in the dtype of its file (16-bit stays 16-bit).
"""

from __future__ import annotations

import threading

import numpy as np

from ..io import from_warp_dtype, probe_image, read_image, write_image

__all__ = ["warp_pixels", "job_bytes", "open_job", "finish_job", "run_job", "reason"]


def reason(e: BaseException) -> str:
    """``"TypeName: message"`` for a failure line."""
    msg = str(e)
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def warp_pixels(pixels: np.ndarray, theta: np.ndarray, spec,
                size: tuple[int, int] | None = None) -> np.ndarray:
    """Warp one decoded (H, W, C) image by ``theta`` as ``spec`` says, in the image's own dtype.

    uint8, uint16 (interpolated, rounded to nearest, saturated), float32 and
    float64 are warped directly; int32 (Pillow mode ``I``) in float64, rounded
    and saturated back.  A (3, 3) theta is a projective warp.  ``size``: the
    output (Ho, Wo) instead of the spec's.
    """
    from ..api import affine_warp, perspective_warp

    warp = perspective_warp if np.shape(theta) == (3, 3) else affine_warp
    size = spec.out_size(pixels.shape[:2]) if size is None else size
    flags = spec.flags
    if pixels.dtype == np.int32:
        return from_warp_dtype(warp(pixels.astype(np.float64), theta, size, **flags), np.int32)
    return warp(pixels, theta, size, **flags)


# Bytes held per decoded byte and per warped byte, by dtype: the decoded input
# (plus its float copy for integer types); the warped output, its float form,
# the big-endian copy and PNG filter rows, the encoded file and deflate's
# growing buffer (measured with tracemalloc: 6.5 units for an 8-bit PNG, 13.7
# for a 16-bit one).  Pillow's own image memory adds one of each.
_IN_FACTOR = {"u1": 1, "u2": 3, "i4": 3, "f4": 1, "f8": 1}
_OUT_FACTOR = {"u1": 5, "u2": 7, "i4": 7, "f4": 5, "f8": 5}


def job_bytes(probe, spec) -> int:
    """Memory one file needs while it is processed (its copies are written one after another)."""
    h, w, c = probe.shape
    item = probe.dtype.itemsize
    ho, wo = spec.out_size((h, w))
    kind = probe.dtype.str[1:]
    pil = probe.codec == "pil"
    return (probe.file_bytes + h * w * c * item * (_IN_FACTOR.get(kind, 4) + pil)
            + ho * wo * c * item * (_OUT_FACTOR.get(kind, 7) + pil))


def open_job(job, spec, budget, *, wait: bool = True):
    """Probe, reserve memory for and decode ``job``'s input (the first half of :func:`run_job`).

    Returns ``(opened, results)``: ``opened`` is ``(job, pixels, info, held)`` to pass to
    :func:`finish_job`, or None with ``results`` the failure entry (the input cannot be
    read).  With ``wait=False`` a reservation that would block returns ``(None, None)``
    (nothing held, nothing reported).
    """
    try:
        probe = probe_image(job.src)
    except Exception as e:  # noqa: BLE001 - every decode failure is reported per file
        return None, [(job.src, reason(e), len(job.outputs))]
    need = job_bytes(probe, spec)
    held = budget.acquire(need) if wait else budget.try_acquire(need)
    if held is None:
        return None, None
    try:
        pixels, info = read_image(job.src, probe)
    except BaseException as e:
        budget.release(held)
        if not isinstance(e, Exception):
            raise
        return None, [(job.src, reason(e), len(job.outputs))]
    return (job, pixels, info, held), []


def finish_job(opened, spec, opts, budget, stop: threading.Event | None = None) -> list:
    """Warp and write every output of an opened job (:func:`open_job`), then release its memory."""
    job, pixels, info, held = opened
    try:
        results = []
        for k, out in job.outputs:
            if stop is not None and stop.is_set():
                break
            try:
                warped = warp_pixels(pixels, spec.theta(pixels.shape[:2], job.key, k), spec)
            except Exception as e:  # noqa: BLE001
                results.append((job.src, reason(e), 1))
                continue
            try:
                write_image(out, warped, info, format=opts.format, quality=opts.quality,
                            png_level=opts.png_level, fsync=opts.fsync)
                results.append((out, None, 1))
            except Exception as e:  # noqa: BLE001
                results.append((out, reason(e), 1))
            del warped
        return results
    finally:
        budget.release(held)


def run_job(job, spec, opts, budget, stop: threading.Event | None = None) -> list:
    """Read, warp and write every output of ``job``; never raises for a bad file.

    Returns ``[(path, reason or None, outputs)]``: one entry per output
    written or failed (``outputs`` = 1), or a single entry for the input when
    it cannot be read (``outputs`` = the job's output count).  ``budget``
    (a :class:`fastwarp.batch.budget.ByteBudget`) is held while the pixels are in
    memory.  When ``stop`` is set, the remaining copies are left out.
    """
    opened, failed = open_job(job, spec, budget)
    if opened is None:
        return failed
    return finish_job(opened, spec, opts, budget, stop)
