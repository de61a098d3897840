"""Where a call runs: NumPy arrays on the CPU, GPU arrays on the GPU.

An array exposing ``__cuda_array_interface__`` (Numba device arrays, CuPy
arrays, PyTorch CUDA tensors) or ``__cuda_ndarray__`` (Numba's CUDA simulator)
runs on the GPU and stays there; ``device="cuda"`` forces the GPU path for host
arrays, ``device="cpu"`` refuses GPU arrays rather than copy them silently.
"""

from __future__ import annotations

import numpy as np

DEVICES = (None, "cpu", "cuda")
# argument types that certainly live on the host
_HOST = (np.ndarray, type(None))


def is_device_array(a) -> bool:
    """True for arrays that live on a GPU (or in Numba's CUDA simulator)."""
    return hasattr(a, "__cuda_array_interface__") or hasattr(a, "__cuda_ndarray__")


def wants_gpu(fn: str, device, *arrays) -> bool:
    """Decide the target of a call from ``device`` and where the arrays live."""
    if device is None and all(type(a) in _HOST for a in arrays):
        return False  # the common call: NumPy arrays (or no ``out``), no device asked
    if device not in DEVICES:
        raise ValueError(f"{fn}: device must be None, 'cpu' or 'cuda'; got {device!r}")
    on_gpu = any(is_device_array(a) for a in arrays)
    if device == "cpu" and on_gpu:
        raise ValueError(f"{fn}: device='cpu' but an input lives on the GPU; copy it to the host first")
    return device == "cuda" or on_gpu


def gpu_backend(fn: str):
    """The ``fastwarp.cuda`` module, or a clear error when it cannot run here."""
    try:
        from .. import cuda
    except ImportError as e:
        raise RuntimeError(
            f"{fn}: the GPU path needs numba-cuda (pip install 'fastwarp[cuda]'): {e}") from e
    return cuda
