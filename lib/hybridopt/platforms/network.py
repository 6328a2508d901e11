"""The client's side of a request: handshakes, upload under TCP slow start, one-way delays, the client's
request timeout (counted from the start of the request, as got's timeout.request that Artillery sets), a
load-dependent inflation that belongs to the measurement setup (a saturated load generator), not to a
platform, and (when the client preset has one) the generator's uplink shared by the uploads in flight
(`SharedUplink`)."""

from __future__ import annotations

import heapq
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

    __slots__ = ("start_s", "n_bytes", "alone_s", "deadline_s", "cap_bps", "remaining", "end_s", "complete",
                 "stretched", "owner", "group", "ref_s", "tag", "ver")

    def __init__(self, start_s: float, n_bytes: float, alone_s: float, deadline_s: float, owner: object) -> None:
        self.start_s = start_s
        self.n_bytes = float(n_bytes)
        self.alone_s = alone_s
        self.deadline_s = deadline_s
        self.cap_bps = self.n_bytes / alone_s if alone_s > 0 else math.inf
        self.remaining = self.n_bytes      # bytes left at ref_s (group "own") or when it left the link
        self.end_s: float | None = None
        self.complete = False
        self.stretched = False
        self.owner = owner
        self.group = ""                    # "own": at its alone rate; "fair": at the link's fair level
        self.ref_s = start_s
        self.tag = 0.0                     # group "fair": the link's fair service at which it is done
        self.ver = 0                       # bumped on every group change (stale heap entries are skipped)

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
    added with a start the link has already passed starts now (counted in `late_starts`). Pure: no clock.

    Max-min fairness with caps as two groups: flows whose alone rate is below the fair level run at it
    ("own"), the others share what is left equally ("fair", at `level` bytes/s each, tracked as one
    service counter so that an event costs O(log n))."""

    def __init__(self, capacity_mbps: float) -> None:
        if not capacity_mbps > 0:
            raise ValueError(f"uplink capacity must be > 0 Mbit/s, got {capacity_mbps}")
        self.capacity_mbps = capacity_mbps
        self.capacity_bps = capacity_mbps * 1e6 / 8.0
        self.t_s = -math.inf
        self._seq = 0
        self._waiting: list[tuple[float, int, UplinkFlow]] = []       # by start
        self._own_end: list[tuple[float, int, int, UplinkFlow]] = []  # "own" flows by end time
        self._own_cap: list[tuple[float, int, int, UplinkFlow]] = []  # "own" flows, largest alone rate first
        self._fair_tag: list[tuple[float, int, int, UplinkFlow]] = []  # "fair" flows by tag
        self._fair_cap: list[tuple[float, int, int, UplinkFlow]] = []  # "fair" flows, smallest alone rate first
        self._deadlines: list[tuple[float, int, UplinkFlow]] = []
        self._own_sum = 0.0                # sum of the "own" flows' alone rates
        self._n_own = 0
        self._n_fair = 0
        self._service = 0.0                # bytes each "fair" flow has received since the start
        self.level = math.inf              # the fair flows' rate (inf: none)
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

    # ----------------------------------------------------------------------------------- groups
    def _to_own(self, f: UplinkFlow, remaining: float) -> None:
        f.group, f.ver, f.ref_s, f.remaining = "own", f.ver + 1, self.t_s, remaining
        self._seq += 1
        heapq.heappush(self._own_end, (self.t_s + remaining / f.cap_bps, self._seq, f.ver, f))
        heapq.heappush(self._own_cap, (-f.cap_bps, self._seq, f.ver, f))
        self._own_sum += f.cap_bps
        self._n_own += 1

    def _to_fair(self, f: UplinkFlow, remaining: float) -> None:
        f.group, f.ver, f.tag, f.stretched = "fair", f.ver + 1, self._service + remaining, True
        self._seq += 1
        heapq.heappush(self._fair_tag, (f.tag, self._seq, f.ver, f))
        heapq.heappush(self._fair_cap, (f.cap_bps, self._seq, f.ver, f))
        self._n_fair += 1

    def _left(self, f: UplinkFlow) -> float:
        """Bytes `f` has left now."""
        if f.group == "own":
            return f.remaining - f.cap_bps * (self.t_s - f.ref_s)
        return f.tag - self._service

    def _leave(self, f: UplinkFlow) -> float:
        left = self._left(f)
        if f.group == "own":
            self._own_sum -= f.cap_bps
            self._n_own -= 1
            if self._n_own == 0:
                self._own_sum = 0.0
        else:
            self._n_fair -= 1
        f.group, f.ver = "", f.ver + 1
        return left

    @staticmethod
    def _top(heap: list[tuple[float, int, int, UplinkFlow]]) -> UplinkFlow | None:
        while heap and heap[0][2] != heap[0][3].ver:
            heapq.heappop(heap)
        return heap[0][3] if heap else None

    def _balance(self) -> None:
        """Move flows between the groups until every "own" flow's alone rate is at most the fair level
        and every "fair" flow's above it."""
        cap = self.capacity_bps
        while True:
            if self._n_fair == 0 and self._own_sum <= cap:
                self.level = math.inf
                return
            big = self._top(self._own_cap)
            level = (cap - self._own_sum) / self._n_fair if self._n_fair else -math.inf
            if big is not None and big.cap_bps > level:
                self._to_fair(big, self._leave(big))
                continue
            self.level = level
            small = self._top(self._fair_cap)
            if small is not None and small.cap_bps <= level:
                self._to_own(small, self._leave(small))
                continue
            return

    # ------------------------------------------------------------------------------------ time
    def advance(self, t_s: float) -> None:
        """Run the link to t_s: start the flows due, drain bytes, end the flows that finish or are dropped."""
        waiting = self._waiting
        while True:
            nxt = waiting[0][0] if waiting else math.inf
            own = self._top(self._own_end)
            fair = self._top(self._fair_tag)
            while self._deadlines and self._deadlines[0][2].group == "":
                heapq.heappop(self._deadlines)
            t_own = self._own_end[0][0] if own is not None else math.inf
            t_fair = self.t_s + (fair.tag - self._service) / self.level if fair is not None else math.inf
            t_dead = self._deadlines[0][0] if self._deadlines else math.inf
            t_next = min(nxt, t_own, t_fair, t_dead)
            if t_next == math.inf:
                return
            if t_next > t_s:
                if math.isfinite(t_s) and t_s > self.t_s:
                    self._run_to(t_s)
                return
            if t_next > self.t_s:
                self._run_to(t_next)
            if t_next == t_fair and fair is not None:
                self._end(fair, complete=True)
            elif t_next == t_own and own is not None:
                self._end(own, complete=True)
            elif t_next == t_dead:
                self._end(heapq.heappop(self._deadlines)[2], complete=False)
            else:
                f = heapq.heappop(waiting)[2]
                self._to_own(f, f.remaining)
                self._seq += 1
                heapq.heappush(self._deadlines, (f.deadline_s, self._seq, f))
                self.peak_flows = max(self.peak_flows, self._n_own + self._n_fair)
            self._balance()

    def _run_to(self, t: float) -> None:
        if self._n_fair and self.level < math.inf:
            self._service += self.level * (t - self.t_s)
        self.t_s = t

    def _end(self, f: UplinkFlow, complete: bool) -> None:
        left = self._leave(f)
        f.remaining = 0.0 if complete else max(0.0, left)
        f.complete, f.end_s = complete, self.t_s
        self.finished.append(f)

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
        active = [f for f in {id(e[3]): e[3] for e in (*self._own_end, *self._fair_tag) if e[2] == e[3].ver}.values()]
        for f in [*active, *(w[2] for w in self._waiting)]:
            c = UplinkFlow(f.start_s, f.n_bytes, f.alone_s, f.deadline_s, None)
            c.stretched = f.stretched
            if f.group:
                c.remaining = self._left(f)
                twin._to_own(c, c.remaining)
                twin._seq += 1
                heapq.heappush(twin._deadlines, (c.deadline_s, twin._seq, c))
            else:
                twin._seq += 1
                heapq.heappush(twin._waiting, (c.start_s, twin._seq, c))
            if f is flow:
                mine = c
        if mine is None:
            raise ValueError("the flow is not on this link")
        twin._balance()
        twin.settle()
        return mine.start_s + mine.upload_s()
