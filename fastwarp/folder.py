"""Warping many image files: discovery, per-file transforms, batching and the local runner.

Used by ``fastwarp warp`` (see docs/cli.md) and by :mod:`fastwarp.dask`.

* :func:`plan_jobs` turns files, folders and globs into :class:`Job` objects
  (one per input file, with the outputs still to write).
* :class:`TransformSpec` gives each (file, copy) its theta; random draws depend
  only on the seed, the file's relative path and the copy index, so every run
  writes the same pixels whatever the batching, order or number of workers.
* :func:`warp_items` warps a group of equal-shape images in one batched call
  of :func:`fastwarp.affine_warp`; :func:`process_jobs` does read, warp and
  write for a list of jobs in one thread (a Dask task); :func:`run_local`
  streams a whole job list through decode threads, the kernel and encode
  threads with bounded queues.
"""

from __future__ import annotations

import glob
import hashlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .io import (
    ImageInfo,
    format_extension,
    from_warp_dtype,
    is_image_name,
    read_image,
    remove_stale_temps,
    to_warp_dtype,
    write_image,
)

__all__ = ["TransformSpec", "OutputOptions", "Job", "Report", "as_range", "plan_jobs",
           "warp_items", "process_jobs", "run_local"]


def as_range(name: str, value) -> tuple[float, float]:
    """A number or a (lo, hi) pair as a (lo, hi) tuple of floats."""
    if np.ndim(value) == 0:
        v = float(value)
        return v, v
    lo, hi = (float(v) for v in value)
    if not lo <= hi:
        raise ValueError(f"{name} range must have lo <= hi; got ({lo}, {hi})")
    return lo, hi


def _key_words(key: str) -> list[int]:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]


@dataclass(frozen=True)
class TransformSpec:
    """What to do to every image: geometry (fixed values or random ranges) and kernel flags.

    Ranges are ``(lo, hi)``; ``lo == hi`` is a fixed value.  The geometric
    transform is the one of :func:`fastwarp.transforms.affine_matrix` (about
    the image centre: scale, shear, rotation counter-clockwise in degrees,
    shift in output pixels).  ``matrix`` (6 numbers, OpenCV's source ->
    destination pixel matrix, or destination -> source with ``inverse_map``)
    replaces the geometric parameters.

    ``size`` is the output (H, W) (default: the input's).  With ``resize``
    (default) the whole input is mapped onto the output before the geometric
    transform (a resize, which may change the aspect ratio); without it the
    output is a window of that size centred on the input's centre.  With
    ``matrix``, ``size`` is the output canvas (as OpenCV's ``dsize``).
    """

    rotate: tuple[float, float] = (0.0, 0.0)
    scale: tuple[float, float] = (1.0, 1.0)
    shear: tuple[float, float] = (0.0, 0.0)
    shift_x: tuple[float, float] = (0.0, 0.0)
    shift_y: tuple[float, float] = (0.0, 0.0)
    matrix: tuple[float, ...] | None = None
    inverse_map: bool = False
    size: tuple[int, int] | None = None
    resize: bool = True
    mode: str = "bilinear"
    padding_mode: str = "zeros"
    align_corners: bool = False
    seed: int = 0

    @property
    def is_random(self) -> bool:
        return self.matrix is None and any(
            lo != hi for lo, hi in (self.rotate, self.scale, self.shear, self.shift_x, self.shift_y))

    def out_size(self, in_size) -> tuple[int, int]:
        return tuple(int(v) for v in (self.size or in_size[:2]))

    def params(self, key: str, copy: int) -> dict:
        """Geometric parameters for the file with relative path ``key`` and copy index ``copy``.

        Five uniforms are always drawn, in a fixed order, from a generator
        seeded by ``(seed, sha256(key), copy)``.
        """
        u = np.random.default_rng(np.random.SeedSequence([self.seed, *_key_words(key), copy])).random(5)

        def pick(r, x):
            return r[0] + (r[1] - r[0]) * x

        return {
            "rotation": pick(self.rotate, u[0]),
            "scale": pick(self.scale, u[1]),
            "shear": pick(self.shear, u[2]),
            "translation": (pick(self.shift_x, u[3]), pick(self.shift_y, u[4])),
        }

    def theta(self, in_size, key: str, copy: int) -> np.ndarray:
        """(2, 3) theta for an input of (H, W) ``in_size``."""
        from .transforms import affine_theta, theta_from_cv2

        in_size = tuple(int(v) for v in in_size[:2])
        out = self.out_size(in_size)
        if self.matrix is not None:
            m = np.asarray(self.matrix, dtype=np.float64).reshape(2, 3)
            return theta_from_cv2(m, in_size, out, align_corners=self.align_corners,
                                  inverse_map=self.inverse_map)
        frame = out if (self.resize and self.size is not None) else in_size
        return affine_theta(frame, out, align_corners=self.align_corners, **self.params(key, copy))


@dataclass(frozen=True)
class OutputOptions:
    """How outputs are encoded: format (None keeps the input's), JPEG/WebP quality, fsync."""

    format: str | None = None
    quality: int = 95
    fsync: bool = False


@dataclass(frozen=True)
class Job:
    """One input file and the (copy index, output path) pairs still to write for it."""

    src: str
    key: str
    outputs: tuple[tuple[int, str], ...]


@dataclass
class Report:
    """Counts of a run and the failures as (path, reason)."""

    written: int = 0
    skipped: int = 0
    failures: list = field(default_factory=list)
    seconds: float = 0.0

    def merge(self, other: Report) -> None:
        self.written += other.written
        self.skipped += other.skipped
        self.failures.extend(other.failures)


# ---------------------------------------------------------------- discovery

def _walk(top: str, exclude: set[str]) -> Iterator[str]:
    """Image files under ``top`` (sorted, hidden files and folders and ``exclude`` skipped)."""
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and os.path.realpath(os.path.join(root, d)) not in exclude)
        for f in sorted(files):
            if not f.startswith(".") and is_image_name(f):
                yield os.path.join(root, f)


def _glob_base(pattern: str) -> str:
    parts = []
    for part in os.path.normpath(pattern).split(os.sep):
        if glob.has_magic(part):
            break
        parts.append(part)
    base = os.sep.join(parts)
    return base if parts and parts != [""] else (os.sep if pattern.startswith(os.sep) else ".")


def discover(inputs: Iterable[str], exclude: Iterable[str] = ()) -> tuple[list, list]:
    """Files named by ``inputs`` (files, folders searched recursively, glob patterns).

    Returns ``(found, missing)``: ``found`` lists ``(path, relative path)``
    (relative to the folder given, or to the fixed part of a glob, or the
    file's name), duplicates removed; ``missing`` lists ``(input, reason)``.
    """
    excl = {os.path.realpath(p) for p in exclude}
    found, missing, seen = [], [], set()

    def add(path, rel):
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            found.append((path, rel.replace(os.sep, "/")))

    for arg in inputs:
        if os.path.isdir(arg):
            for p in _walk(arg, excl):
                add(p, os.path.relpath(p, arg))
        elif os.path.isfile(arg):
            add(arg, os.path.basename(arg))
        elif glob.has_magic(arg):
            base = _glob_base(arg)
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                missing.append((arg, "pattern matched no file"))
            # like a folder walk, skip what lies in an excluded folder below the glob's base
            below = [e for e in excl if e != os.path.realpath(base)]
            for m in matches:
                if any(os.path.realpath(m).startswith(e + os.sep) for e in below):
                    continue
                if os.path.isdir(m):
                    for p in _walk(m, excl):
                        add(p, os.path.relpath(p, base))
                elif os.path.isfile(m):
                    add(m, os.path.relpath(m, base))
        else:
            missing.append((arg, "no such file or folder"))
    return found, missing


def output_paths(rel: str, outdir: str, copies: int, fmt: str | None) -> list[str]:
    """Output path of each copy: OUTDIR/rel, with ``_k`` before the extension when copies > 1."""
    stem, ext = os.path.splitext(os.path.join(outdir, *rel.split("/")))
    if fmt is not None:
        ext = format_extension(fmt)
    if copies == 1:
        return [stem + ext]
    width = len(str(copies - 1))
    return [f"{stem}_{k:0{width}d}{ext}" for k in range(copies)]


def plan_jobs(inputs: Iterable[str], outdir: str, *, copies: int = 1, format: str | None = None,
              skip_existing: bool = False, overwrite_inputs: bool = False) -> tuple[list[Job], Report]:
    """Discover the inputs and decide every output path.

    Returns the jobs (inputs with at least one output to write) and a
    :class:`Report` holding the skipped count and the inputs that do not exist.

    Raises
    ------
    ValueError
        When two inputs map to the same output path, or an output path is an
        input file (unless ``overwrite_inputs``).
    """
    found, missing = discover(inputs, exclude=[outdir])
    report = Report(failures=list(missing))
    real_inputs = {os.path.realpath(p) for p, _ in found}
    claimed: dict[str, str] = {}
    jobs = []
    for path, rel in found:
        outs = []
        for k, out in enumerate(output_paths(rel, outdir, copies, format)):
            real = os.path.realpath(out)
            if real in claimed:
                raise ValueError(f"{path} and {claimed[real]} would both be written to {out}; "
                                 "warp them in separate runs or to separate folders")
            claimed[real] = path
            if real in real_inputs and not overwrite_inputs:
                raise ValueError(f"output {out} is an input file; choose another output folder "
                                 "(or pass --overwrite-inputs)")
            if skip_existing and os.path.exists(out):
                report.skipped += 1
            else:
                outs.append((k, out))
        if outs:
            jobs.append(Job(path, rel, tuple(outs)))
    return jobs, report


# ---------------------------------------------------------------- warping

@dataclass
class _Item:
    """One output to produce: its job, copy index, path, and the decoded input."""

    job: Job
    copy: int
    out: str
    pixels: np.ndarray
    info: ImageInfo


def _reason(e: BaseException) -> str:
    msg = str(e)
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def load_job(job: Job):
    """Decode a job's input: ``(job, pixels, info)``, or ``(job, exception)`` on failure."""
    try:
        pixels, info = read_image(job.src)
    except Exception as e:  # noqa: BLE001 - every decode failure is reported per file
        return job, e
    return job, pixels, info


def _expand(decoded: Iterable, on_failure, advance) -> Iterator[_Item]:
    """One item per output of each decoded job; decode failures go to ``on_failure``."""
    for res in decoded:
        if len(res) == 2:
            job, exc = res
            on_failure(job.src, _reason(exc))
            advance(len(job.outputs))
            continue
        job, pixels, info = res
        for k, out in job.outputs:
            yield _Item(job, k, out, pixels, info)


def group_batches(items: Iterable[_Item], batch_size: int, max_buffered: int) -> Iterator[list[_Item]]:
    """Group items of equal shape and dtype into batches of at most ``batch_size``.

    At most ``max_buffered`` items wait in partial groups; beyond that the
    largest group is released early, so memory stays bounded whatever the mix
    of sizes.
    """
    groups: dict = {}
    buffered = 0
    for it in items:
        key = (it.pixels.shape, it.pixels.dtype.str)
        g = groups.setdefault(key, [])
        g.append(it)
        buffered += 1
        if len(g) >= batch_size:
            buffered -= len(g)
            yield groups.pop(key)
        elif buffered > max_buffered:
            key = max(groups, key=lambda k: len(groups[k]))
            buffered -= len(groups[key])
            yield groups.pop(key)
    yield from groups.values()


def warp_items(items: list[_Item], spec: TransformSpec) -> list[np.ndarray]:
    """Warp equal-shape items in one batched :func:`fastwarp.affine_warp` call.

    uint8 and float32 pixels are warped as they are; uint16 in float32 and
    int32 in float64, rounded (nearest, ties up) and saturated back.
    """
    from .api import affine_warp

    first = items[0].pixels
    in_size = first.shape[:2]
    images = np.stack([to_warp_dtype(it.pixels) for it in items])
    theta = np.stack([spec.theta(in_size, it.job.key, it.copy) for it in items])
    warped = affine_warp(images, theta, spec.out_size(in_size), mode=spec.mode,
                         padding_mode=spec.padding_mode, align_corners=spec.align_corners)
    return [from_warp_dtype(w, first.dtype) for w in warped]


def _write(item: _Item, pixels: np.ndarray, opts: OutputOptions) -> None:
    write_image(item.out, pixels, item.info, format=opts.format, quality=opts.quality, fsync=opts.fsync)


def _ignore(*_args) -> None:
    return None


def process_jobs(jobs: list[Job], spec: TransformSpec, opts: OutputOptions, *,
                 batch_size: int = 32, io_threads: int = 1) -> Report:
    """Read, warp and write a list of jobs (one Dask task); failures are reported, never raised.

    With ``io_threads == 1`` everything runs in the calling thread; with more,
    decoding and encoding overlap the kernel as in :func:`run_local`.
    """
    if io_threads > 1:
        return run_local(jobs, spec, opts, batch_size=batch_size, workers=io_threads)
    report = Report()
    items = _expand(map(load_job, jobs), lambda p, r: report.failures.append((p, r)), _ignore)
    for batch in group_batches(items, batch_size, max_buffered=4 * batch_size):
        try:
            warped = warp_items(batch, spec)
        except Exception as e:  # noqa: BLE001
            report.failures.extend((it.job.src, _reason(e)) for it in batch)
            continue
        for it, px in zip(batch, warped):
            try:
                _write(it, px, opts)
                report.written += 1
            except Exception as e:  # noqa: BLE001
                report.failures.append((it.out, _reason(e)))
    remove_stale_temps({os.path.dirname(out) for j in jobs for _, out in j.outputs})
    return report


def run_local(jobs: list[Job], spec: TransformSpec, opts: OutputOptions, *, batch_size: int = 32,
              workers: int | None = None, on_failure: Callable[[str, str], None] = _ignore,
              progress: Callable[[int], None] = _ignore) -> Report:
    """Warp every job in this process: decode threads -> batched kernel -> encode threads.

    Decoding runs ``workers`` jobs ahead in a thread pool, equal-shape images
    are grouped into batches of ``batch_size`` outputs and warped in the
    calling thread (the kernel releases the GIL and is itself parallel), and
    encoding and atomic writes run in another pool.  Every queue is bounded,
    so memory does not grow with the number of files.  ``progress(n)`` is
    called as outputs complete (written or failed); ``on_failure(path,
    reason)`` for every failure.
    """
    from .pipeline import prefetch_map

    workers = workers or max(2, os.cpu_count() or 2)
    report = Report()
    t0 = time.perf_counter()

    def failed(path, reason):
        report.failures.append((path, reason))
        on_failure(path, reason)

    decoded = prefetch_map(load_job, jobs, workers=workers, prefetch=2 * workers)
    writer = ThreadPoolExecutor(workers, thread_name_prefix="fastwarp-write")
    pending: deque = deque()

    def finish_one():
        it, fut = pending.popleft()
        try:
            fut.result()
            report.written += 1
        except Exception as e:  # noqa: BLE001
            failed(it.out, _reason(e))
        progress(1)

    try:
        items = _expand(decoded, failed, progress)
        for batch in group_batches(items, batch_size, max_buffered=4 * batch_size):
            try:
                warped = warp_items(batch, spec)
            except Exception as e:  # noqa: BLE001
                for it in batch:
                    failed(it.job.src, _reason(e))
                progress(len(batch))
                continue
            for it, px in zip(batch, warped):
                pending.append((it, writer.submit(_write, it, px, opts)))
            while len(pending) > 2 * batch_size:
                finish_one()
        while pending:
            finish_one()
    finally:
        decoded.close()
        for _, fut in pending:
            fut.cancel()
        writer.shutdown(wait=True)
        remove_stale_temps({os.path.dirname(out) for j in jobs for _, out in j.outputs})
    report.seconds = time.perf_counter() - t0
    return report
