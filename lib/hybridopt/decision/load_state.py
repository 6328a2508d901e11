"""The load state a deployed router can observe before it sends a request: its own recent arrivals
and its requests in flight per platform (standard library only: the router's zip ships it).

Definitions, for a request that arrives at time t (seconds):
- `arrivals_<W>s_rps`           arrivals strictly before t and at or after t - W, divided by W;
- `workload_arrivals_<W>s_rps`  the same over arrivals of the request's own workload;
- `in_flight_<platform>`        requests sent to that platform strictly before t whose response had
                                not arrived by t (completed at or before t: no longer in flight);
- `workload_in_flight_<platform>` the same over the request's own workload (ECS runs one service
                                per workload: its queue is the workload's own).
A request never sees itself, nor anything that arrives at the same instant or later.
`hybridopt.decision.load_frame` computes the same numbers on logs; a test checks the two agree.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from hybridopt.data.contract import PLATFORMS
#: The arrival windows (seconds) of the load features; params `decision.load_windows_s` must match.
DEFAULT_WINDOWS_S: Final = (10.0, 60.0)


def feature_names(windows_s: tuple[float, ...] = DEFAULT_WINDOWS_S) -> tuple[str, ...]:
    """The load features in their fixed order."""
    names = [f"arrivals_{w:g}s_rps" for w in windows_s]
    names += [f"workload_arrivals_{w:g}s_rps" for w in windows_s]
    names += [f"in_flight_{p}" for p in PLATFORMS]
    names += [f"workload_in_flight_{p}" for p in PLATFORMS]
    return tuple(names)


class LoadTracker:
    """What one router (one execution environment, or one proxy process) has seen.

    Call `features(t, workload)` before `arrived(t, workload)` for the same request; call
    `sent(platform, workload)` when it leaves and `completed(platform, workload)` when its response
    (or its failure) comes back. Times are non-decreasing seconds on any clock."""

    def __init__(self, windows_s: tuple[float, ...] = DEFAULT_WINDOWS_S) -> None:
        if not windows_s or any(w <= 0 for w in windows_s):
            raise ValueError(f"windows_s must be positive seconds, got {windows_s}")
        self.windows_s = tuple(float(w) for w in windows_s)
        # per window: the arrivals inside it (oldest first) and their counts, total and per workload
        self._windows = [_Window(w) for w in self.windows_s]
        self._last_t = -float("inf")
        self._at_last_t: dict[str, int] = {}      # arrivals recorded at exactly _last_t, per workload
        self._in_flight: dict[str, int] = {p: 0 for p in PLATFORMS}
        self._workload_in_flight: dict[tuple[str, str], int] = {}
        self.names = feature_names(self.windows_s)

    def features(self, t_s: float, workload: str) -> dict[str, float]:
        """The load features of a request arriving at t_s (before it is recorded)."""
        if t_s < self._last_t:
            raise ValueError(f"request at {t_s} s before the previous arrival at {self._last_t} s")
        same_instant = t_s == self._last_t
        tied_all = sum(self._at_last_t.values()) if same_instant else 0
        tied_same = self._at_last_t.get(workload, 0) if same_instant else 0
        out: dict[str, float] = {}
        for win in self._windows:
            win.expire(t_s)
            out[f"arrivals_{win.width_s:g}s_rps"] = (win.total - tied_all) / win.width_s
        for win in self._windows:
            out[f"workload_arrivals_{win.width_s:g}s_rps"] = (win.by_workload.get(workload, 0) - tied_same) / win.width_s
        for p in PLATFORMS:
            out[f"in_flight_{p}"] = float(self._in_flight[p])
        for p in PLATFORMS:
            out[f"workload_in_flight_{p}"] = float(self._workload_in_flight.get((p, workload), 0))
        return out

    def arrived(self, t_s: float, workload: str) -> None:
        """Record an arrival (after its features were read)."""
        if t_s < self._last_t:
            raise ValueError(f"arrival at {t_s} s before the previous one at {self._last_t} s")
        if t_s != self._last_t:
            self._last_t = float(t_s)
            self._at_last_t = {}
        self._at_last_t[workload] = self._at_last_t.get(workload, 0) + 1
        for win in self._windows:
            win.add(float(t_s), workload)

    def sent(self, platform: str, workload: str) -> None:
        self._check(platform)
        self._in_flight[platform] += 1
        key = (platform, workload)
        self._workload_in_flight[key] = self._workload_in_flight.get(key, 0) + 1

    def completed(self, platform: str, workload: str) -> None:
        self._check(platform)
        key = (platform, workload)
        if self._workload_in_flight.get(key, 0) <= 0:
            raise ValueError(f"completion of a {workload} request on {platform} that was never sent")
        self._in_flight[platform] -= 1
        self._workload_in_flight[key] -= 1

    @staticmethod
    def _check(platform: str) -> None:
        if platform not in PLATFORMS:
            raise ValueError(f"platform must be one of {PLATFORMS}, got {platform!r}")


class _Window:
    """The arrivals of the last `width_s` seconds, with running counts."""

    __slots__ = ("width_s", "items", "total", "by_workload")

    def __init__(self, width_s: float) -> None:
        self.width_s = width_s
        self.items: deque[tuple[float, str]] = deque()
        self.total = 0
        self.by_workload: dict[str, int] = {}

    def add(self, t_s: float, workload: str) -> None:
        self.items.append((t_s, workload))
        self.total += 1
        self.by_workload[workload] = self.by_workload.get(workload, 0) + 1

    def expire(self, t_s: float) -> None:
        """Drop arrivals before t_s - width_s (those at exactly t_s - width_s stay in)."""
        lo = t_s - self.width_s
        items = self.items
        while items and items[0][0] < lo:
            _, w = items.popleft()
            self.total -= 1
            self.by_workload[w] -= 1
