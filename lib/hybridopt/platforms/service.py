"""Handler time of one (workload, platform): a wall-clock part (the deployed handlers slept) plus CPU
work that a smaller CPU share stretches."""

from __future__ import annotations

from hybridopt.params import ServiceEntry
from hybridopt.platforms.draws import Draws

MIB = 1_048_576.0


class ServiceTime:
    """Draws handler times for one workload on one platform with a given CPU share (1.0 = one vCPU)."""

    __slots__ = ("_draws", "_low_ms", "_span_ms", "_cpu_ms", "_cpu_ms_per_byte", "_share", "_sigma",
                 "init_extra_ms")

    def __init__(self, entry: ServiceEntry, cpu_share: float, draws: Draws) -> None:
        if not 0 < cpu_share:
            raise ValueError(f"cpu_share must be > 0, got {cpu_share}")
        low, high = entry.sleep_ms.value
        self._draws = draws
        self._low_ms = float(low)
        self._span_ms = float(high - low)
        self._share = cpu_share
        self._cpu_ms = entry.cpu_ms.value
        self._cpu_ms_per_byte = entry.cpu_ms_per_mb.value / MIB
        self._sigma = entry.noise_sigma.value if entry.noise_sigma is not None else 0.0
        self.init_extra_ms = (entry.init_extra_ms.value / cpu_share) if entry.init_extra_ms is not None else 0.0

    def cpu_work_ms(self, payload_bytes: int) -> float:
        """CPU time the request consumes (independent of the share: a smaller share takes longer)."""
        return self._cpu_ms + self._cpu_ms_per_byte * payload_bytes

    def sample_ms(self, payload_bytes: int) -> float:
        """One handler time in ms."""
        ms = self._low_ms + self._span_ms * self._draws.u() + self.cpu_work_ms(payload_bytes) / self._share
        if self._sigma > 0:
            ms = self._draws.lognormal(ms, self._sigma)
        return ms
