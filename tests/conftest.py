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
