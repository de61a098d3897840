"""Shared pytest fixtures: a fresh random seed per test, printed so a failure can be replayed.

Set FASTWARP_TEST_SEED to replay a seed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    seed = int(os.environ.get("FASTWARP_TEST_SEED", np.random.SeedSequence().entropy % 2**63))
    print(f"[{request.node.name}] FASTWARP_TEST_SEED={seed}")
    return np.random.default_rng(seed)


def pytest_configure(config):
    """One seed per run for helpers.channels_for, inherited by the xdist workers."""
    os.environ.setdefault("FASTWARP_CLASS_SEED", str(np.random.SeedSequence().entropy % 2**32))


# The files that run longest, longest first (a run of 2026-12-02 on 2 cores: the GPU simulator
# and PTX subprocesses 228 s, antialias 168 s, backward 80 s, the per-combination kernels 74 s),
# so that the many short files fill the time beside them and both workers finish together.
# (xdist's default order, most tests per file first, would start the simulator file last and
# leave one worker idle at the end.)
LONG_FIRST = ("test_cuda_sim.py", "test_antialias.py", "test_backward.py", "test_generic.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: k for k, name in enumerate(LONG_FIRST)}
    # a stable sort: the other files keep their order
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FIRST)))


def pytest_report_header(config):
    return f"FASTWARP_CLASS_SEED={os.environ['FASTWARP_CLASS_SEED']} (channel classes; set it to replay)"


def pytest_sessionstart(session):
    """Under pytest-xdist, split the compilation of ``fastwarp precompile``'s kernels between the workers.

    The suite is compile-bound and every worker needs the same kernels: without
    this, two workers compile the same kernel at the same time.  Worker k of n
    compiles every n-th kernel of ``fastwarp precompile`` into Numba's on-disk
    cache, then waits until the others are done; tests then load all kernels
    from the cache.  Plain (non-xdist) runs compile lazily, as users do.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker or count < 2:
        return
    import tempfile
    import time

    from fastwarp.commands.precompile import DTYPES, PARTS, _tasks

    index = int(worker.removeprefix("gw"))
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID", "run")
    marks = os.path.join(tempfile.gettempdir(), f"fastwarp-precompile-{run_id}")
    os.makedirs(marks, exist_ok=True)
    for _label, fn in _tasks(DTYPES, PARTS)[index::count]:
        fn()
    open(os.path.join(marks, worker), "w").close()
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline and len(os.listdir(marks)) < count:
        time.sleep(0.5)
