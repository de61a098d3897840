"""The Numba CPU kernels: the per-combination forward and backward (``generic``), the
bilinear span loop (``span``), the tuned backward (``backward``), the antialias
filter (``antialias``) and the dtype-dependent load/store helpers (``store``).
Internal: reached through ``fastwarp.api`` and ``fastwarp.grad``."""
