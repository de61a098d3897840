"""Numba's on-disk cache for fastwarp's kernels, keyed on all of their sources.

Numba stamps a cached function with its own source file only.  fastwarp's
kernels carry code from other modules: a kernel in ``cpu.generic`` inlines or
links ``cpu.bilinear``'s rows, ``cpu.span``'s loops, ``cpu.simd``'s intrinsics
and ``core.coords``'s helpers.  Were one of those edited (a development
checkout, a patched install whose other files kept their contents), the
kernel's cache entry would still match its own file, and the old machine code
would run.  So every function defined under ``fastwarp/cpu`` or
``fastwarp/core`` is stamped with a digest of all the source files there as
well: a change to any of them recompiles every kernel on its next call.

Where the cache lives is Numba's choice as before (``NUMBA_CACHE_DIR``,
``__pycache__`` next to the module, the per-user folder), in Numba's order;
only the stamp differs.  A user's ``NUMBA_CACHE_LOCATOR_CLASSES`` replaces
Numba's locators, these included.
"""

from __future__ import annotations

import hashlib
import os

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNEL_DIRS = tuple(os.path.join(_PACKAGE, d) for d in ("cpu", "core"))

_digest: bytes | None = None


def sources_digest(dirs: tuple[str, ...] = KERNEL_DIRS) -> bytes:
    """SHA-256 of the ``.py`` files directly in ``dirs`` (names and contents, in name order)."""
    h = hashlib.sha256()
    for d in dirs:
        for name in sorted(os.listdir(d)):
            if name.endswith(".py"):
                with open(os.path.join(d, name), "rb") as f:
                    h.update(f"{os.path.basename(d)}/{name}\0".encode())
                    h.update(f.read())
                    h.update(b"\0")
    return h.digest()


def _kernel_digest() -> bytes:
    """:func:`sources_digest` of the kernel folders, computed once per process (when the
    first kernel is decorated: Numba stamps a cached function then)."""
    global _digest
    if _digest is None:
        _digest = sources_digest()
    return _digest


def _stamped(base: type) -> type:
    """``base`` (one of Numba's source-file locators), for fastwarp's kernel files only,
    with the kernel sources' digest added to the stamp."""

    class Locator(base):
        _fastwarp = True

        @classmethod
        def from_function(cls, py_func, py_file):
            if os.path.dirname(os.path.abspath(py_file)) not in KERNEL_DIRS:
                return None
            return super().from_function(py_func, py_file)

        def get_source_stamp(self):
            return super().get_source_stamp(), _kernel_digest()

    Locator.__name__ = Locator.__qualname__ = f"Fastwarp{base.__name__}"
    return Locator


def install() -> None:
    """Put the stamped locators ahead of Numba's own (once per process)."""
    from numba.core import caching

    classes = getattr(getattr(caching, "CacheImpl", None), "_locator_classes", None)
    mixin = getattr(caching, "_SourceFileBackedLocatorMixin", None)
    if not isinstance(classes, list) or mixin is None:
        return  # a Numba without these internals: its own per-file stamps apply
    if any(getattr(c, "_fastwarp", False) for c in classes):
        return
    classes[:0] = [_stamped(c) for c in classes if issubclass(c, mixin)]
