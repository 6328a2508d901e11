"""The client's side of a request: handshakes, upload under TCP slow start, one-way delays, the client's
request timeout (counted from the start of the request, as got's timeout.request that Artillery sets), a
load-dependent inflation that belongs to the measurement setup (a saturated load generator), not to a
platform, and (when the client preset has one) the generator's uplink shared by the uploads in flight
(`SharedUplink`)."""

from __future__ import annotations

import heapq
import math
from collections import deque

import numpy as np

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
        up = preset.uplink
        self.uplink = SharedUplink(up.capacity_mbps.value) if up is not None and up.enabled.value else None

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


class UplinkFlow:
    """One request body on the shared uplink: it starts at `start_s`, would take `alone_s` on an idle
    link (slow start and the per-connection bandwidth, `ClientNetwork.upload_s`), and is dropped at
    `deadline_s` (the client gave up). `end_s` is set once the flow has finished or was dropped;
    `complete` says which, `stretched` whether the link ever held it below its alone rate."""

    __slots__ = ("start_s", "n_bytes", "alone_s", "deadline_s", "cap_bps", "remaining", "rate", "end_s", "complete",
                 "stretched", "owner")

    def __init__(self, start_s: float, n_bytes: float, alone_s: float, deadline_s: float, owner: object) -> None:
        self.start_s = start_s
        self.n_bytes = float(n_bytes)
        self.alone_s = alone_s
        self.deadline_s = deadline_s
        self.cap_bps = self.n_bytes / alone_s if alone_s > 0 else math.inf
        self.remaining = self.n_bytes
        self.rate = 0.0
        self.end_s: float | None = None
        self.complete = False
        self.stretched = False
        self.owner = owner

    def upload_s(self) -> float:
        """Its upload time: `alone_s` when the link never held it back; else to its end when it finished;
        when it was dropped, to the deadline plus what was left at its alone rate (beyond the client's
        timeout either way)."""
        if self.end_s is None:
            raise ValueError("the flow has not ended yet")
        if not self.stretched:
            return self.alone_s
        if self.complete:
            return self.end_s - self.start_s
        return self.end_s - self.start_s + (self.remaining / self.cap_bps if self.cap_bps < math.inf else 0.0)


class SharedUplink:
    """The load generator's uplink, shared by every request body in flight (a fluid model of TCP flows
    on one bottleneck): the capacity is divided max-min fairly among the flows, each capped at the rate
    it would have alone (its bytes over its idle-link upload time), so a flow on an unsaturated link
    takes exactly what `ClientNetwork.upload_s` says, and a saturated link stretches every upload in
    flight. Flows are registered as they are sent (`add`); `advance(t)` runs the link to t (callers add
    every flow sent by t first: a flow never starts before it is sent), `settle()` to the end once no
    more flows will come. `finished` collects the flows that ended since it was last emptied. A flow
    added with a start the link has already passed starts now (counted in `late_starts`). Pure: no clock."""

    def __init__(self, capacity_mbps: float) -> None:
        if not capacity_mbps > 0:
            raise ValueError(f"uplink capacity must be > 0 Mbit/s, got {capacity_mbps}")
        self.capacity_mbps = capacity_mbps
        self.capacity_bps = capacity_mbps * 1e6 / 8.0
        self.t_s = -math.inf
        self._waiting: list[tuple[float, int, UplinkFlow]] = []   # not started yet (heap by start)
        self._active: list[UplinkFlow] = []
        # the active flows' state, aligned with _active
        self._rem = np.empty(0)
        self._cap = np.empty(0)
        self._deadline = np.empty(0)
        self._rate = np.empty(0)
        self._stretched = np.empty(0, dtype=bool)
        self._seq = 0
        self._dirty = True
        self.finished: list[UplinkFlow] = []
        self.peak_flows = 0
        self.late_starts = 0

    def add(self, start_s: float, n_bytes: float, alone_s: float, deadline_s: float, owner: object = None) -> UplinkFlow:
        if start_s < self.t_s:
            self.late_starts += 1
            start_s = self.t_s
        f = UplinkFlow(start_s, n_bytes, alone_s, deadline_s, owner)
        self._seq += 1
        heapq.heappush(self._waiting, (start_s, self._seq, f))
        return f

    def _rates(self) -> None:
        """Max-min fair shares of the capacity, each flow capped at its alone rate (water filling)."""
        cap = self._cap
        n = len(cap)
        even = self.capacity_bps / n
        if float(cap.min()) >= even:                            # every flow could take more than an even share
            self._rate = np.full(n, even)
            self._stretched |= cap > even
        elif float(cap.sum()) <= self.capacity_bps:            # the link is not saturated
            self._rate = cap
        else:
            order = np.argsort(cap, kind="stable")
            c = cap[order]
            before = np.cumsum(c) - c                           # what the slower flows take
            share = (self.capacity_bps - before) / (n - np.arange(n))
            over = c > share
            level = share[int(np.argmax(over))]                 # some flow is over: the sum exceeds the capacity
            self._rate = np.minimum(cap, level)
            self._stretched |= self._rate < cap
        self._dirty = False

    def advance(self, t_s: float) -> None:
        """Run the link to t_s: start the flows due, drain bytes, end the flows that finish or are dropped."""
        waiting, active = self._waiting, self._active
        while True:
            if not active:
                if not waiting or waiting[0][0] > t_s:
                    if math.isfinite(t_s):
                        self.t_s = max(self.t_s, t_s)
                    return
                self.t_s = max(self.t_s, waiting[0][0])
            changed = False
            if active:
                if self._dirty:
                    self._rates()
                rate = self._rate
                left = np.minimum(self._deadline - self.t_s, self._rem / rate)   # time to each flow's end
                dt = min(waiting[0][0] - self.t_s if waiting else math.inf, t_s - self.t_s, float(left.min()))
                if dt > 0:
                    self._rem -= rate * dt
                    self.t_s += dt
                # a flow whose end falls within a microsecond ends now (model times are large: a remainder
                # that no longer moves the clock must not keep the flow alive)
                gone = left <= dt + 1e-6
                if gone.any():
                    idx = np.flatnonzero(gone).tolist()
                    for i in idx:
                        f = active[i]
                        f.complete = bool(self._rem[i] <= rate[i] * 1e-6)
                        f.remaining = max(0.0, float(self._rem[i]))
                        f.stretched, f.end_s = bool(self._stretched[i]), self.t_s
                        self.finished.append(f)
                    for i in reversed(idx):
                        del active[i]
                    keep = ~gone
                    self._rem, self._cap = self._rem[keep], self._cap[keep]
                    self._deadline, self._stretched = self._deadline[keep], self._stretched[keep]
                    changed = True
            if waiting and waiting[0][0] <= self.t_s:
                new = []
                while waiting and waiting[0][0] <= self.t_s:
                    new.append(heapq.heappop(waiting)[2])
                active.extend(new)
                self._rem = np.concatenate([self._rem, [f.remaining for f in new]])
                self._cap = np.concatenate([self._cap, [f.cap_bps for f in new]])
                self._deadline = np.concatenate([self._deadline, [f.deadline_s for f in new]])
                self._stretched = np.concatenate([self._stretched, [f.stretched for f in new]])
                if len(active) > self.peak_flows:
                    self.peak_flows = len(active)
                changed = True
            if changed:
                self._dirty = True
            elif self.t_s >= t_s:
                return

    def settle(self) -> None:
        """Run every known flow to its end (no more flows will be added)."""
        self.advance(math.inf)

    def projected_end_s(self, flow: UplinkFlow) -> float:
        """When `flow` ends if no other flow is added: its end once ended, else the end on a copy of the
        link run to the end."""
        if flow.end_s is not None:
            return flow.start_s + flow.upload_s()
        twin = SharedUplink(self.capacity_mbps)
        twin.t_s = self.t_s
        mine: UplinkFlow | None = None
        for i, f in enumerate([*self._active, *(w[2] for w in self._waiting)]):
            c = UplinkFlow(f.start_s, f.n_bytes, f.alone_s, f.deadline_s, None)
            if i < len(self._active):
                c.remaining, c.stretched = float(self._rem[i]), bool(self._stretched[i])
            twin._seq += 1
            heapq.heappush(twin._waiting, (max(c.start_s, twin.t_s), twin._seq, c))
            if f is flow:
                mine = c
        if mine is None:
            raise ValueError("the flow is not on this link")
        twin.settle()
        return mine.start_s + mine.upload_s()
