"""The core every backend shares: coordinate math (``coords``), argument checks and
dtype rules (``validate``), CPU/GPU dispatch (``dispatch``), runtime settings
(``runtime``, ``threads``) and optional imports (``optional``).  Internal: the
public API is ``fastwarp``'s top level."""
