"""Warping many image files: discovery, per-file transforms and the local runner.

Used by ``fastwarp warp`` (see docs/cli.md) and by :mod:`fastwarp.dask`.

* :func:`plan_jobs` turns files, folders and globs into :class:`Job` objects
  (one per input file, with the outputs still to write).
* :class:`TransformSpec` (from :mod:`fastwarp._augment_spec`) gives each
  (file, copy) its theta; random draws depend only on the seed, the file's
  relative path and the copy index, so every run writes the same pixels
  whatever the order or number of workers.
* :func:`run_local` runs the jobs file by file in a pool of I/O threads, each
  doing probe -> decode -> warp (the kernel single-threaded in that thread) ->
  encode -> atomic write (:func:`fastwarp.batch.filework.run_job`), with the pixels
  in flight bounded in bytes (:class:`fastwarp.batch.budget.ByteBudget`).  While
  the calling thread loads the run's kernel (Numba's start-up, the first time in a
  process), the I/O threads decode ahead as far as the budget allows.
  :func:`process_jobs` is the same for one Dask task.

Why file by file: with one kernel call per batch, the kernel's own threads
and the decode/encode threads fought for the cores and the main thread
waited for decoded images; per-file tasks keep every core busy with whole
files, need no grouping by size, and hold at most one image per thread once the
kernel is loaded (decoding ahead before that stays within the byte budget).
"""

from __future__ import annotations

import glob
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

from ._augment_spec import TransformSpec, as_range
from .batch.budget import ByteBudget
from .batch.filework import finish_job, open_job, run_job, warp_pixels
from .batch.filework import reason as _reason
from .core.threads import cpu_count, set_kernel_threads
from .io import format_extension, is_image_name, probe_image, remove_stale_temps

__all__ = ["TransformSpec", "OutputOptions", "Job", "Report", "as_range", "plan_jobs",
           "process_jobs", "run_local", "DEFAULT_MEMORY_BUDGET"]

DEFAULT_MEMORY_BUDGET = 512 * 2**20  # bytes of decoded and warped pixels in flight


@dataclass(frozen=True)
class OutputOptions:
    """How outputs are encoded: format (None keeps the input's), JPEG/WebP quality, PNG level, fsync."""

    format: str | None = None
    quality: int = 95
    png_level: int = 1
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

class _RealPaths:
    """``os.path.realpath`` with the folders' real paths cached: one ``lstat`` per file, not one
    per path component (planning 1,500 files took 0.18 s of realpath calls)."""

    def __init__(self):
        self._dirs: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        folder, name = os.path.split(os.path.abspath(path))
        real_dir = self._dirs.get(folder)
        if real_dir is None:
            real_dir = self._dirs[folder] = os.path.realpath(folder)
        candidate = os.path.join(real_dir, name)
        return os.path.realpath(candidate) if os.path.islink(candidate) else candidate


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
    realpath = _RealPaths()

    def add(path, rel):
        real = realpath(path)
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
    realpath = _RealPaths()
    real_inputs = {realpath(p) for p, _ in found}
    claimed: dict[str, str] = {}
    jobs = []
    for path, rel in found:
        outs = []
        for k, out in enumerate(output_paths(rel, outdir, copies, format)):
            real = realpath(out)
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


# ---------------------------------------------------------------- running

def _ignore(*_args) -> None:
    return None


# kernel combinations this process has loaded by a warm-up (see :func:`_warm_up`)
_WARMED: set = set()


def _first_probe(jobs: list):
    """The first of the first eight inputs whose header reads, as (job, probe), or None."""
    for job in jobs[:8]:
        try:
            return job, probe_image(job.src)
        except Exception:  # noqa: BLE001 - the run itself reports unreadable files
            continue
    return None


def _warm_key(job, probe, spec) -> tuple:
    theta = spec.theta((8, 8), job.key, job.outputs[0][0])
    return probe.dtype.str, probe.shape[2], np.shape(theta), tuple(sorted(map(str, spec.flags.items())))


def _warm_up(job, probe, spec) -> None:
    """Load (or compile) the kernel the run will use: an 8 x 8 image of the input's dtype
    and channel count warped to 8 x 8 as the run warps, on the calling thread with one
    kernel thread (its own thread count is restored)."""
    import numba

    threads = numba.get_num_threads()
    set_kernel_threads(1)
    try:
        tiny = np.zeros((8, 8, probe.shape[2]), probe.dtype)
        warp_pixels(tiny, spec.theta(tiny.shape[:2], job.key, job.outputs[0][0]), spec, size=(8, 8))
        _WARMED.add(_warm_key(job, probe, spec))
    except Exception:  # noqa: BLE001 - a real file's warp reports its own failure
        pass
    finally:
        numba.set_num_threads(threads)


def _layout(n_outputs: int, workers: int | None) -> tuple[int, int]:
    """(I/O threads, kernel threads per I/O thread) for a run of ``n_outputs`` outputs.

    One whole-file task per core by default, each with a single-threaded
    kernel; with fewer files than threads, the spare cores go to the kernel.
    """
    cpus = cpu_count()
    threads = workers or cpus
    threads = max(1, min(threads, max(1, n_outputs)))
    return threads, max(1, cpus // threads)


def _decode_ahead(pool, threads: int, jobs: list, spec, budget, report_results, start=None) -> list:
    """While this thread loads the run's kernel (:func:`_warm_up`), the pool's threads
    decode inputs in order, as far as the byte budget allows without waiting.

    ``start`` (optional) runs on the calling thread first, in every case.  Returns the
    run's work in order: the jobs decoded ahead (as :func:`open_job` tuples, to
    finish), then the jobs a full budget stopped (in input order), then the jobs not
    started.  Inputs that failed to decode are reported through ``report_results``
    here.  No more jobs than threads, or a kernel this process warmed up already,
    skip the decoding ahead.
    """
    first = _first_probe(jobs) if len(jobs) > threads else None
    if first is None or _warm_key(*first, spec) in _WARMED:
        if start is not None:
            start()
        return list(jobs)
    ready = threading.Event()
    lock = threading.Lock()
    cursor = [0]
    left: list = []  # indices of the jobs a full budget left unstarted

    def prefetch():
        done = []
        while not ready.is_set():
            with lock:
                i = cursor[0]
                if i >= len(jobs):
                    break
                cursor[0] = i + 1
            try:
                opened, failed = open_job(jobs[i], spec, budget, wait=False)
            except Exception as e:  # noqa: BLE001 - a bug must not lose the other files
                opened, failed = None, [(jobs[i].src, _reason(e), len(jobs[i].outputs))]
            if opened is None and failed is None:
                with lock:
                    left.append(i)
                break
            done.append((i, opened, failed))
        return done

    futures = [pool.submit(prefetch) for _ in range(threads)]
    try:
        if start is not None:
            start()
        _warm_up(*first, spec)
    finally:
        ready.set()
    opened = []
    for fut in futures:
        for i, item, failed in fut.result():
            if item is None:
                report_results(failed)
            else:
                opened.append((i, item))
    opened.sort(key=lambda t: t[0])
    return [item for _, item in opened] + [jobs[i] for i in sorted(left)] + jobs[cursor[0]:]


def process_jobs(jobs: list[Job], spec: TransformSpec, opts: OutputOptions, *,
                 batch_size: int = 32, io_threads: int = 1,
                 memory_budget: int = DEFAULT_MEMORY_BUDGET) -> Report:
    """Read, warp and write a list of jobs (one Dask task); failures are reported, never raised.

    ``io_threads`` files are processed at a time (see :func:`run_local`);
    ``batch_size`` is accepted for the task signature and unused.
    """
    return run_local(jobs, spec, opts, workers=io_threads, memory_budget=memory_budget)


def run_local(jobs: list[Job], spec: TransformSpec, opts: OutputOptions, *, batch_size: int = 32,
              workers: int | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
              on_failure: Callable[[str, str], None] = _ignore,
              progress: Callable[[int], None] = _ignore,
              start: Callable[[], object] | None = None) -> Report:
    """Warp every job in this process, file by file in a pool of I/O threads.

    Parameters
    ----------
    jobs : list of Job
    spec : TransformSpec
    opts : OutputOptions
    batch_size : int
        Unused (kept for callers of the batched runner); every file is one task.
    workers : int, optional
        I/O threads, each doing whole files (default: the number of CPUs).
        Each runs the kernel on ``CPUs // workers`` threads (at least 1).
    memory_budget : int
        Bytes of compressed, decoded and warped data in flight at once
        (estimated from each file's header before it is decoded); a file
        larger than the budget is processed alone.
    on_failure : callable
        ``on_failure(path, reason)`` for every failure.
    progress : callable
        ``progress(n)`` as outputs complete (written or failed).
    start : callable, optional
        Run on the calling thread before the first warp, while the I/O threads
        decode ahead (``fastwarp warp`` starts Numba's CPU context there, see
        ``core.runtime.start_numba_without_blas``).

    Returns
    -------
    Report
        Written and failed counts (``seconds`` is the run's wall time).
    """
    report = Report()
    t0 = time.perf_counter()
    threads, kthreads = _layout(sum(len(j.outputs) for j in jobs), workers)
    budget = ByteBudget(int(memory_budget))
    stop = threading.Event()

    def task(group):
        # a group's items are jobs, or jobs decoded while the kernel loaded (open_job's tuples)
        set_kernel_threads(kthreads)
        results = []
        for item in group:
            if stop.is_set():
                break
            if isinstance(item, Job):
                results.extend(run_job(item, spec, opts, budget, stop))
            else:
                results.extend(finish_job(item, spec, opts, budget, stop))
        return results

    def report_results(results):
        for path, why, n in results:
            if why is None:
                report.written += n
            else:
                report.failures.append((path, why))
                on_failure(path, why)
            progress(n)

    def collect(fut):
        group = pending.pop(fut)
        try:
            results = fut.result()
        except Exception as e:  # noqa: BLE001 - a bug must not lose the other files
            jobs_ = [item if isinstance(item, Job) else item[0] for item in group]
            results = [(job.src, _reason(e), len(job.outputs)) for job in jobs_]
        report_results(results)

    def drain(keep: int):
        while len(pending) > keep:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                collect(fut)

    # a few files per task: fewer futures and wake-ups of this thread (each one takes the
    # interpreter lock from the workers); small enough to keep the threads evenly loaded
    per_task = max(1, min(8, len(jobs) // (8 * threads)))
    pool = ThreadPoolExecutor(threads, thread_name_prefix="fastwarp-warp")
    pending: dict = {}
    try:
        # the I/O threads decode ahead while this thread starts Numba and loads the kernel
        items = _decode_ahead(pool, threads, jobs, spec, budget, report_results, start)
        for i in range(0, len(items), per_task):
            # a short queue ahead of the threads: the order of files is kept
            # roughly, and nothing waits in memory but paths (and what was decoded ahead)
            drain(2 * threads - 1)
            group = items[i:i + per_task]
            pending[pool.submit(task, group)] = group
        drain(0)
    finally:
        stop.set()
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True)
        remove_stale_temps({os.path.dirname(out) for j in jobs for _, out in j.outputs})
    report.seconds = time.perf_counter() - t0
    return report
