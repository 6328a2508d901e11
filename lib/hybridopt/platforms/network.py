"""The client's side of a request: handshakes, upload under TCP slow start, one-way delays, the client's
request timeout (counted from the start of the request, as got's timeout.request that Artillery sets), and a
load-dependent inflation that belongs to the measurement setup (a saturated load generator), not to a
platform."""

from __future__ import annotations

import math
from collections import deque

from hybridopt.params import ClientPreset
from hybridopt.platforms.draws import Draws


class ClientNetwork:
    """Network timings of one client preset (params.testbed.clients[...])."""

    def __init__(self, preset: ClientPreset, draws: Draws) -> None:
        self.preset = preset
        self._draws = draws
        self.rtt_s = preset.rtt_ms.value / 1000.0
        self.jitter_sigma = preset.rtt_jitter_sigma.value
        self.dns_s = preset.dns_ms.value / 1000.0
        self.tcp_rtts = preset.tcp_handshake_rtts.value
        self.tls_rtts = preset.tls_handshake_rtts.value
        self.bandwidth_bps = preset.upload_mbps.value * 1e6 / 8.0     # bytes per second
        self.initcwnd_bytes = preset.initcwnd_segments.value * preset.mss_bytes.value
        self.header_bytes = preset.request_header_bytes.value
        self.request_timeout_s = preset.request_timeout_s.value
        inf = preset.inflation
        self.inflation_on = inf.enabled.value
        self._window_s = inf.window_s.value
        self._threshold_rps = inf.threshold_rps.value
        self._ms_per_rps = inf.ms_per_rps.value
        self._exponent = inf.exponent.value
        self.inflation_form = inf.form.value
        self._recent: deque[float] = deque()

    # ------------------------------------------------------------------------------------- pieces
    def sample_rtt_s(self) -> float:
        return self._draws.lognormal(self.rtt_s, self.jitter_sigma)

    def connect_s(self, rtt_s: float, tls: bool, new_connection: bool) -> float:
        """DNS + TCP (+ TLS) handshakes of a new connection; zero on a kept-alive one."""
        if not new_connection:
            return 0.0
        return self.dns_s + rtt_s * (self.tcp_rtts + (self.tls_rtts if tls else 0.0))

    def upload_s(self, body_bytes: int, rtt_s: float) -> float:
        """Time to put the request (headers + body) on the wire under TCP slow start: the congestion
        window starts at initcwnd and doubles every round trip until it covers the bandwidth-delay
        product, after which the rest streams at the upload bandwidth. Excludes the one-way delay."""
        return self.wire_s(body_bytes + self.header_bytes, rtt_s)

    def wire_s(self, n_bytes: float, rtt_s: float) -> float:
        """Time to put the first n_bytes of the request (headers count) on the wire (see upload_s)."""
        remaining = float(n_bytes)
        bw = self.bandwidth_bps
        bdp = bw * rtt_s
        cwnd = float(self.initcwnd_bytes)
        t = 0.0
        while True:
            if cwnd >= bdp:
                return t + remaining / bw
            if remaining <= cwnd:
                return t + remaining / bw
            remaining -= cwnd
            t += rtt_s
            cwnd *= 2.0

    def inflation_s(self, t_s: float) -> float:
        """Record a request sent at t_s and return the measurement setup's q for it (seconds; see
        params.ClientInflation: per request, per round trip or per second of client-side time)."""
        if not self.inflation_on:
            return 0.0
        recent = self._recent
        recent.append(t_s)
        cutoff = t_s - self._window_s
        while recent and recent[0] < cutoff:
            recent.popleft()
        rate = len(recent) / self._window_s
        excess = rate - self._threshold_rps
        if excess <= 0:
            return 0.0
        return self._ms_per_rps * math.pow(excess, self._exponent) / 1000.0
