"""A budget of bytes shared by threads: how many decoded and warped pixels may be in flight."""

from __future__ import annotations

import threading

__all__ = ["ByteBudget", "parse_bytes"]

_UNITS = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_bytes(text) -> int:
    """``"512MB"``, ``"2GiB"``, ``"1e9"`` or an int as a number of bytes (ValueError otherwise)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        s = str(text).strip().upper().replace(" ", "")
        num = s.rstrip("KMGIB")
        unit = s[len(num):]
        if unit not in _UNITS:
            raise ValueError(f"memory budget: unknown unit in {text!r} (use B, KB, MB, GB, KiB, MiB, GiB)")
        try:
            value = int(float(num) * _UNITS[unit])
        except ValueError:
            raise ValueError(f"memory budget: not a size: {text!r}") from None
    if value < 1:
        raise ValueError(f"memory budget must be positive; got {text!r}")
    return value


class ByteBudget:
    """Blocking reservations of bytes out of ``limit``.

    ``acquire(n)`` waits until ``n`` bytes are free.  A reservation larger
    than the whole budget waits until nothing else is reserved and then runs
    alone, so one huge image never deadlocks the run (it is then the only one
    in memory).  ``peak`` is the largest total reserved at once.
    """

    def __init__(self, limit: int):
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"ByteBudget: limit must be a positive int; got {limit!r}")
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._cond = threading.Condition()

    def acquire(self, n: int) -> int:
        """Reserve ``n`` bytes (blocking); returns the amount to pass to :meth:`release`."""
        n = max(0, int(n))
        with self._cond:
            while self.used and self.used + n > self.limit:
                self._cond.wait()
            self.used += n
            self.peak = max(self.peak, self.used)
        return n

    def try_acquire(self, n: int) -> int | None:
        """As :meth:`acquire`, but None instead of waiting when ``n`` bytes are not free now."""
        n = max(0, int(n))
        with self._cond:
            if self.used and self.used + n > self.limit:
                return None
            self.used += n
            self.peak = max(self.peak, self.used)
        return n

    def release(self, n: int) -> None:
        """Give back a reservation made by :meth:`acquire` (its return value)."""
        with self._cond:
            self.used -= n
            self._cond.notify_all()
