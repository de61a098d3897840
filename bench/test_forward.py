"""Forward warp, one benchmark group per workload and dtype: fastwarp (allocating and out=)
against OpenCV, PyTorch (NCHW, and with the NHWC conversion), TF ImageProjectiveTransformV3,
the classic pure-TF gather sampler and the NumPy reference."""

from __future__ import annotations

import pytest

from fastwarp.experiments import benchmark as B

from .conftest import run_benchmark, selected_cases

LIBRARIES = [name for name, b in B.BASELINES.items() if "forward" in b.ops]


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("workload,dtype", selected_cases())
def test_forward(benchmark, inputs, workload, dtype, library):
    run_benchmark(benchmark, library, inputs(workload, dtype), "forward")
