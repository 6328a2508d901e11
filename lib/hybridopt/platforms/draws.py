"""Buffered random draws: fast scalar access to a numpy Generator, deterministic for its seed.

The platform model draws a few numbers per request (service time, RTT jitter, init duration, keep-alive
lifetime); pulling them one by one from numpy costs about a microsecond each, so they come from blocks.
"""

from __future__ import annotations

import math

import numpy as np

_BLOCK = 8192


class Draws:
    """Uniform(0, 1) and standard-normal numbers from `rng`, drawn in blocks of `block`."""

    __slots__ = ("_rng", "_block", "_u", "_z")

    def __init__(self, rng: np.random.Generator, block: int = _BLOCK) -> None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        self._rng = rng
        self._block = block
        self._u: list[float] = []
        self._z: list[float] = []

    def u(self) -> float:
        """One uniform draw in [0, 1)."""
        if not self._u:
            self._u = self._rng.random(self._block).tolist()
        return self._u.pop()

    def z(self) -> float:
        """One standard-normal draw."""
        if not self._z:
            self._z = self._rng.standard_normal(self._block).tolist()
        return self._z.pop()

    def z_many(self, n: int) -> list[float]:
        """The next n standard-normal draws: the very numbers n calls of `z` would return, in order."""
        out: list[float] = []
        buf = self._z
        while len(out) < n:
            if not buf:
                buf = self._z = self._rng.standard_normal(self._block).tolist()
            take = min(n - len(out), len(buf))
            out.extend(buf[len(buf) - take:][::-1])
            del buf[len(buf) - take:]
        return out

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.u()

    def lognormal(self, median: float, sigma: float) -> float:
        """A lognormal draw given its median and log-space sigma."""
        return median * math.exp(sigma * self.z()) if sigma > 0 else median

    def hex(self, n_chars: int) -> str:
        """A deterministic hex identifier of n_chars characters."""
        return "".join(f"{int(self.u() * 65536):04x}" for _ in range((n_chars + 3) // 4))[:n_chars]
