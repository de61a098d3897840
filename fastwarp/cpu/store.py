"""dtype-dependent scalar helpers for the kernels, resolved at compile time.

``to_output(v, out)`` converts an interpolated value to ``out``'s element type:
floats pass through (cast to the output precision), unsigned integers are
rounded to nearest (ties up, ``floor(v + 0.5)``) and saturated to the type's range.
``acc_type(x, arr)`` casts a weight to the accumulation type of ``arr``:
float64 for float64 and uint16 images (float32 would blur 16-bit rounding),
float32 for float32 and uint8 images.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload


def to_output(v, out):  # pragma: no cover - replaced by the overload in jitted code
    raise NotImplementedError


def acc_type(x, arr):  # pragma: no cover - replaced by the overload in jitted code
    raise NotImplementedError


@overload(to_output, jit_options={"cache": True})
def _to_output(v, out):
    dt = out.dtype
    if isinstance(dt, types.Integer):
        ctor = np.dtype(str(dt)).type
        lo = float(np.iinfo(str(dt)).min)
        hi = float(np.iinfo(str(dt)).max)

        def impl(v, out):
            # floor(v + 0.5), saturated; after the clamp r >= 0, so truncation is floor
            r = v + 0.5
            if r < lo:
                r = lo
            elif r > hi:
                r = hi
            return ctor(int(r))

        return impl
    ctor = np.float32 if dt == types.float32 else np.float64
    return lambda v, out: ctor(v)


@overload(acc_type, jit_options={"cache": True})
def _acc_type(x, arr):
    ctor = np.float64 if arr.dtype in (types.float64, types.uint16) else np.float32
    return lambda x, arr: ctor(x)
