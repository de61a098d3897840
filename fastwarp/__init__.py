"""fastwarp: fast, exact affine warps of NHWC image batches on the CPU.

The sampler of a Spatial Transformer Network (Jaderberg et al., 2015) as Numba
kernels: :func:`affine_grid`, :func:`grid_sample` and the fused
:func:`affine_warp`, with PyTorch's conventions in NHWC (see
:mod:`fastwarp.api` for the convention, stated once).  Importing fastwarp
compiles nothing; each kernel compiles on first use and is cached on disk.
"""

from .api import affine_grid, affine_warp, grid_sample, perspective_grid, perspective_warp
from .core import runtime as _runtime  # noqa: F401  (threading layer and OpenMP policy, before any kernel runs)
from .grad import affine_warp_backward, grid_sample_backward, perspective_warp_backward

__version__ = "0.1.0"
__all__ = ["affine_grid", "affine_warp", "grid_sample", "perspective_grid", "perspective_warp",
           "affine_warp_backward", "grid_sample_backward", "perspective_warp_backward", "__version__"]
