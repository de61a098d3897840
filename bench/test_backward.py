"""Forward + backward (gradients for the images and theta), float32, one group per workload:
fastwarp.affine_warp + fastwarp.grad.affine_warp_backward against PyTorch autograd through
affine_grid + grid_sample and TF GradientTape through the pure-TF gather sampler.
Workloads seed, gtsrb and augment, as in `fastwarp bench`."""

from __future__ import annotations

import pytest

from fastwarp.experiments import benchmark as B

from .conftest import run_benchmark, selected_cases

LIBRARIES = [name for name, b in B.BASELINES.items() if "backward" in b.ops]
WORKLOADS = [w for w, d in selected_cases() if d == "float32" and w in B.Config().backward_workloads]


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("workload", WORKLOADS)
def test_forward_backward(benchmark, inputs, workload, library):
    if not B.backward_available():
        pytest.skip("fastwarp.grad.affine_warp_backward is not available in this checkout")
    run_benchmark(benchmark, library, inputs(workload, "float32", backward=True), "backward")
