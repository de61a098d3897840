"""The core every backend shares: coordinate math (``coords``), argument checks and
dtype rules (``validate``), CPU/GPU dispatch (``dispatch``), runtime settings
(``runtime``, ``threads``), the kernels' cache stamps (``cache``) and optional
imports (``optional``).  Internal: the public API is ``fastwarp``'s top level."""

from . import cache as _cache

# before any kernel module decorates its functions: Numba picks a function's cache
# locator, and computes its stamp, when the decorator runs
_cache.install()
