"""Benchmark runner shared by ``fastwarp bench`` and ``bench/``: timing, memory floor,
scaling, cold start, targets.

The workloads and the baselines (what one timed call of each library does)
live in :mod:`fastwarp.experiments.baselines` and are re-exported here.

Times are per call, in seconds: the median of ``repeat`` repeats, each the mean
of ``number`` back-to-back calls (timeit-style), after warm-up calls that
absorb JIT compilation and first-touch page faults.
"""

from __future__ import annotations

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

from .baselines import (  # noqa: F401  (re-exported: the benchmark's public surface)
    BASELINES,
    REFERENCE,
    ROTATION,
    SCALE,
    SHIFT,
    WORKLOADS,
    Baseline,
    Inputs,
    Workload,
    _import,
    as_numpy,
    backward_available,
    build,
    install_hint,
    ipt_transforms,
    make_inputs,
    missing_modules,
    set_threads,
    tf_gather_sampler,
    transform_matrix,
)

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
    ``budget_s`` (never below ``min_repeats``).  :func:`time_calls` with one
    function and no pause between repeats.
    """
    return time_calls({"fn": fn}, warmup=warmup, repeat=repeat, min_repeat_s=min_repeat_s,
                      budget_s=budget_s, min_repeats=min_repeats, settle_s=0.0)["fn"]


def time_calls(fns: dict[str, Callable[[], object]], *, warmup: int = 2, repeat: int = 7,
               min_repeat_s: float = 0.05, budget_s: float = 2.0, min_repeats: int = 3,
               settle_s: float = 0.02, blocks: int = 3) -> dict[str, Timing]:
    """Time several functions, each in its own blocks of calls (see :func:`time_call`).

    Every function runs ``blocks`` blocks; a block is one untimed call, then
    about ``repeat / blocks`` timed repeats back to back, so each library is
    measured in its own steady loop and no cell pays the wake-up of another
    library's threads.  The blocks of the functions alternate (starting at a
    different one each round), so a slow spell of a shared machine falls on
    all of them alike.  Before each block the caller sleeps ``settle_s``, which
    lets the previous library's spinning worker threads (TensorFlow's,
    OpenMP's) park.  ``budget_s`` is per function.
    """
    number, per_repeat = {}, {}
    for name, fn in fns.items():
        for _ in range(max(warmup, 1)):
            fn()
        t0 = time.perf_counter()
        fn()
        one = max(time.perf_counter() - t0, 1e-7)
        number[name] = max(1, math.ceil(min_repeat_s / one))
        per_repeat[name] = one * number[name]
    repeats = max(min_repeats, min([repeat] + [int(budget_s / t) for t in per_repeat.values()]))
    blocks = max(1, min(blocks, repeats))
    per_block = math.ceil(repeats / blocks)
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(blocks):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn, k = fns[name], number[name]
            if settle_s:
                time.sleep(settle_s)
            fn()  # the block's first call wakes the library's threads; not timed
            for _ in range(per_block):
                t0 = time.perf_counter()
                for _ in range(k):
                    fn()
                times[name].append((time.perf_counter() - t0) / k)
    return {name: Timing(times[name], number[name]) for name in fns}


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


def _cpuinfo() -> dict:
    info: dict = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


# AMD's family numbers (family 25 is shared by Zen 3 and Zen 4: the model tells them apart)
_AMD_FAMILIES = {23: "Zen/Zen 2", 26: "Zen 5"}
_ZEN4_MODELS = (0x10, 0x11, 0x18, 0x60, 0x61, 0x70, 0x74, 0x75, 0x78, 0xA0)


def cpu_family(info: dict | None = None) -> str:
    """The CPU's vendor family and micro-architecture as far as /proc/cpuinfo tells them,
    e.g. ``"AMD family 25 model 1 (Zen 3), AVX2"``; ``""`` where it is not readable."""
    info = _cpuinfo() if info is None else info
    if "cpu family" not in info:
        return ""
    fam, model = int(info["cpu family"]), int(info.get("model", "0"))
    vendor = info.get("vendor_id", "")
    arch = ""
    if vendor == "AuthenticAMD":
        arch = _AMD_FAMILIES.get(fam, "")
        if fam == 25:
            arch = "Zen 4" if model in _ZEN4_MODELS else "Zen 3"
    flags = set(info.get("flags", "").split())
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    name = {"AuthenticAMD": "AMD", "GenuineIntel": "Intel"}.get(vendor, vendor)
    return f"{name} family {fam} model {model}" + (f" ({arch})" if arch else "") + f", {simd}"


def cpu_model() -> str:
    """The CPU's model name, followed by its family (see :func:`cpu_family`)."""
    info = _cpuinfo()
    name = info.get("model name") or platform.processor() or platform.machine()
    fam = cpu_family(info)
    return f"{name}, {fam}" if fam else name


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

    from ..core.runtime import threading_layer

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
        return {"torch": 2.5, "tf_gather": 15.0, "tf_xla": 15.0}.get(library)
    if library == "opencv":
        return 1.3 if workload == "large" else 1.5
    if library == "fastwarp_out":
        return 1 / ALLOC_TARGET
    return {"torch": 3.0, "torch_nhwc": 3.0, "tf_ipt": 5.0, "numpy": 30.0}.get(library)


FLOOR_TARGET = 0.25  # fastwarp out= on "large" reaches >= 25% of the memory floor
ALLOC_TARGET = 1.2  # the allocating call within 1.2x of the out= call


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
    patterns: bool = True  # call patterns on "seed" against OpenCV (needs OpenCV and TensorFlow)
    pattern_calls: int = 200
    breadth: bool = True  # perspective, bicubic, uint16 and wrap cells (needs OpenCV)
    breadth_batch: int = 32
    seed: int = 0


def _cases(cfg: Config) -> list[tuple[Workload, str]]:
    return [(w, d) for w in cfg.workloads for d in (cfg.dtypes or w.dtypes)]


def _record(op, inputs, library, timing: Timing) -> dict:
    w = inputs.workload
    return {"op": op, "workload": w.name, "dtype": inputs.dtype, "shape": list(w.shape), "library": library,
            "median_ms": timing.median * 1e3, "min_ms": min(timing.times) * 1e3,
            "times_ms": [t * 1e3 for t in timing.times],
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


def _timed_together(cfg: Config, fns: dict) -> dict[str, Timing]:
    return time_calls(fns, repeat=cfg.repeat, budget_s=cfg.budget_s, min_repeat_s=cfg.min_repeat_s)


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
            fns = {}
            for lib in libs:
                if lib == "numpy" and cfg.numpy_max_elements and x.images.size > cfg.numpy_max_elements:
                    report["notes"].append(f"NumPy not timed on {w.name} {dtype} (input above "
                                           f"{cfg.numpy_max_elements} elements in this mode)")
                    continue
                fns[lib] = build(lib, x, "forward")
            for lib, t in _timed_together(cfg, fns).items():
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
                fns = {lib: build(lib, x, "backward") for lib in blibs}
                for lib, t in _timed_together(cfg, fns).items():
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
    if cfg.patterns and {"opencv", "tf_ipt"} <= set(libs):
        from .patterns import measure

        log("call patterns: back to back, between Python work, after TF, after idle, tiny batch")
        report["patterns"] = measure("seed", "float32", cfg.pattern_calls)
    if cfg.breadth and "opencv" in libs:
        from .breadth import measure as measure_breadth

        log(f"breadth: perspective, bicubic, uint16, wrap ({cfg.breadth_batch}x224x224x3)")
        report["breadth"] = measure_breadth(batch=cfg.breadth_batch, seed=cfg.seed, repeat=cfg.repeat,
                                            budget_s=cfg.budget_s, min_repeat_s=cfg.min_repeat_s)
    if cfg.cold_start:
        log("cold start: fresh processes")
        report["cold_start"] = [cold_start(cached=True)]
        if cfg.cold_start_uncached:
            report["cold_start"].append(cold_start(cached=False))
    report["versions"] = library_versions()
    report["threads"] = thread_counts()
    return report
