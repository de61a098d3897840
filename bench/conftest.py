"""Shared set-up of the pytest-benchmark suites: workloads, cached inputs, baselines, warm-up.

The baselines and inputs are fastwarp.experiments.benchmark's, the same code ``fastwarp bench``
times.  Environment variables:

* ``FASTWARP_BENCH_THREADS=N``: threads for every library (default: their own defaults).
* ``FASTWARP_BENCH_WORKLOADS=seed,gtsrb``: only these workloads (default: all).
"""

from __future__ import annotations

import os

import pytest

from fastwarp.experiments import benchmark as B

WARMUP_CALLS = 2  # untimed calls before timing: JIT compilation, tf.function tracing, page faults


def selected_cases() -> list[tuple[str, str]]:
    names = [n for n in os.environ.get("FASTWARP_BENCH_WORKLOADS", "").split(",") if n] or list(B.WORKLOADS)
    unknown = set(names) - set(B.WORKLOADS)
    if unknown:
        raise pytest.UsageError(f"FASTWARP_BENCH_WORKLOADS: unknown {sorted(unknown)}; "
                                f"choose from {', '.join(B.WORKLOADS)}")
    return [(n, d) for n in names for d in B.WORKLOADS[n].dtypes]


def pytest_configure(config):
    threads = os.environ.get("FASTWARP_BENCH_THREADS")
    if threads:
        for name in B.BASELINES:
            B.missing_modules(name)  # imports what is installed, so the setting reaches it
        B.set_threads(int(threads))


_inputs: dict = {}


@pytest.fixture(scope="session")
def inputs():
    """inputs(workload, dtype, backward=False) -> benchmark Inputs, made once per session."""
    def get(workload: str, dtype: str, backward: bool = False) -> B.Inputs:
        key = (workload, dtype, backward)
        if key not in _inputs:
            _inputs[key] = B.make_inputs(B.WORKLOADS[workload], dtype, backward=backward)
        return _inputs[key]
    return get


def run_benchmark(benchmark, library: str, x: B.Inputs, op: str) -> None:
    """Build the baseline (skipping it with the install hint when missing), warm it up, time it."""
    if B.missing_modules(library):
        pytest.skip(B.install_hint(library))
    fn = B.build(library, x, op)
    for _ in range(WARMUP_CALLS):
        fn()
    w = x.workload
    benchmark.group = f"{op} {w.name} {x.dtype} {'x'.join(map(str, w.shape))}"
    benchmark.extra_info.update(library=B.BASELINES[library].label, what=B.BASELINES[library].note,
                                target=B.target(op, w.name, x.dtype, library))
    benchmark(fn)
