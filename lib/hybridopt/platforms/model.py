"""`PlatformModel`: the client's network, Lambda behind API Gateway and Fargate behind an ALB, driven by
whichever clock the caller has (the testbed: the wall clock; the simulator: a virtual one).

Two steps per request, because a platform acts on a request only once it has arrived (after the
client's handshakes and upload, which depend on the payload size):

    p = model.submit(t_send_s, "lambda", "thumbnail_processing", payload_bytes)   # client side
    ...                                                                             # until p.dispatch_at_s
    outcome = model.dispatch(p)                                                     # platform side

`submit` must be called in non-decreasing t_send_s and `dispatch` in non-decreasing p.dispatch_at_s
per platform (the simulator sorts; the testbed waits on a timer); violations are counted in
`out_of_order`. `handle` does both at once for callers that send
one request at a time.

With a shared uplink (the client preset's `uplink`), a body sent later can stretch an upload already in
flight: the simulator calls `settle()` after its last `submit` (every upload then has its final
length), the testbed asks `due_s(p, now)` until the request is due (what is known by `now`). An ECS body
that waits for a worker stops sending once queued_receive_bytes of it are on the way (TCP flow control)
and leaves the uplink to the others until a worker reads it: the simulator runs a second pass with those
bodies held (`ecs_holds` of the first pass, `with_ecs_holds`); the testbed keeps them on the link. Nothing here reads a clock, sleeps or starts a thread; all randomness comes from
the numpy Generator given at construction.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hybridopt.data.contract import PLATFORMS
from hybridopt.params import Params, ParamsError, TestbedParams, Workload
from hybridopt.platforms.draws import Draws
from hybridopt.platforms.fargate import RESTART_AFTER_S, FargatePlatform
from hybridopt.platforms.lambda_ import LambdaPlatform
from hybridopt.platforms.network import ClientNetwork, UplinkFlow
from hybridopt.platforms.outcome import Outcome, Pending, client_timeout


def check_presets(testbed: TestbedParams, workloads: Mapping[str, Workload]) -> None:
    """Every workload needs a service time on both platforms in the chosen preset."""
    preset = testbed.service
    for w in workloads:
        have = preset.workloads.get(w)
        missing = [pl for pl in PLATFORMS if not have or pl not in have]
        if missing:
            raise ParamsError(f"params/testbed.yaml: key 'testbed.service_presets.{testbed.service_preset}."
                              f"workloads.{w}' needs entries for {missing} (workload {w!r} is in params.workloads)")


class PlatformModel:
    """The whole platform model for one client preset and one service-time preset."""

    def __init__(self, testbed: TestbedParams, workloads: Mapping[str, Workload],
                 rng: np.random.Generator, ecs_resume_s: Mapping[int, float | None] | None = None) -> None:
        check_presets(testbed, workloads)
        # submit index -> when the body of an ECS request that waited for a worker goes back on the shared
        # uplink (None: never); only its first queued_receive_bytes are sent before (`with_ecs_holds`)
        self._ecs_resume_s = dict(ecs_resume_s) if ecs_resume_s is not None else None
        self._rest_s: dict[int, float] = {}     # id(Pending) -> alone time of the held rest of its body
        self.testbed = testbed
        self.workloads = dict(workloads)
        self.draws = Draws(rng)                  # checks rng
        self._rng_state = copy.deepcopy(rng.bit_generator.state)
        self.client = ClientNetwork(testbed.client, self.draws)
        self.lambda_ = LambdaPlatform(testbed.lambda_, workloads, testbed.service, self.draws, self.client)
        self.ecs = FargatePlatform(testbed.fargate, workloads, testbed.service, self.draws, self.client)
        self._platforms = {"lambda": self.lambda_, "ecs": self.ecs}
        self.last_submit_s = -float("inf")
        self.last_dispatch_s = {pl: -float("inf") for pl in PLATFORMS}
        self.out_of_order = 0
        self.submitted = 0
        self.dispatched = 0
        self._flows: dict[int, UplinkFlow] = {}   # id(Pending) -> its body on the shared uplink

    @classmethod
    def from_params(cls, params: Params, seed: int | None = None) -> "PlatformModel":
        """The model of a profile, seeded with `seed` (default: params.testbed.seed)."""
        return cls(params.testbed, params.workloads,
                   np.random.default_rng(params.testbed.seed if seed is None else seed))

    # ---------------------------------------------------------------------------------- requests
    def submit(self, t_send_s: float, platform: str, workload_type: str, payload_bytes: int, *,
               new_connection: bool = True) -> Pending:
        """The client sends a request at t_send_s: its network timings and when it reaches the platform."""
        front = self._platforms.get(platform)
        if front is None:
            raise ValueError(f"platform must be one of {PLATFORMS}, got {platform!r}")
        if workload_type not in self.workloads:
            raise ValueError(f"workload_type {workload_type!r} is not one of {sorted(self.workloads)}")
        if payload_bytes < 0:
            raise ValueError(f"payload_bytes must be >= 0, got {payload_bytes}")
        if t_send_s < self.last_submit_s:
            self.out_of_order += 1
        self.last_submit_s = t_send_s
        self.submitted += 1
        c = self.client
        rtt = c.rtt_s * math.exp(c.jitter_sigma * self.draws.z()) if c.jitter_sigma > 0 else c.rtt_s
        q = c.inflation_s(t_send_s)              # the measurement setup's load-dependent delay
        if q > 0.0 and c.inflation_form == "round_trip":
            rtt += q                             # every round trip of this request takes q longer
        connect = c.connect_s(rtt, front.tls, new_connection)
        upload = c.upload_s(payload_bytes, rtt)
        if c.inflation_form == "additive":
            inflation = q
        elif c.inflation_form == "multiplicative":
            inflation = q * (connect + upload + rtt)
        else:
            inflation = 0.0
        headers_at = t_send_s + connect + rtt / 2.0
        body_at = headers_at + upload
        dispatch_at = body_at if platform == "lambda" else headers_at
        p = Pending(platform, workload_type, payload_bytes, t_send_s, rtt, connect, upload, inflation,
                    dispatch_at, body_at, new_connection)
        p.outcome = front.door(p)
        if c.uplink is not None:
            n_bytes, deadline = payload_bytes + c.header_bytes, t_send_s + c.request_timeout_s
            window = self.ecs._window_bytes
            held = self._ecs_resume_s
            if platform == "ecs" and held is not None and (self.submitted - 1) in held and n_bytes > window:
                # the receiver's window fills while the request waits for a worker: the client stops
                # sending, and the rest of the body leaves the uplink until the worker reads
                first_s = c.wire_s(window, rtt)
                self._flows[id(p)] = c.uplink.add(t_send_s + connect, window, first_s, deadline, owner=p)
                self._rest_s[id(p)] = upload - first_s
                resume = held[self.submitted - 1]
                if resume is not None and resume < deadline:
                    c.uplink.add(resume, n_bytes - window, c.wire_s(n_bytes - window, rtt), deadline)
            else:
                self._flows[id(p)] = c.uplink.add(t_send_s + connect, n_bytes, upload, deadline, owner=p)
        return p

    def ecs_holds(self, done: Sequence[tuple[int, Pending, Outcome]]) -> dict[int, float | None]:
        """From a run's ECS requests (submit index, request, outcome as dispatched, before the client's
        timeout is applied): those whose body stalled behind the worker queue, with when the rest of the
        body goes back on the uplink (the worker's start, one round trip later after a restart from the
        initial window, as FargatePlatform.dispatch times the stall). Input of `with_ecs_holds`."""
        out: dict[int, float | None] = {}
        half, window = self.ecs._alb_half_s, self.ecs._window_bytes
        for k, p, o in done:
            if p.platform != "ecs" or not o.queue_wait_ms or p.payload_bytes + self.client.header_bytes <= window:
                continue
            t_target = p.dispatch_at_s + half
            start = t_target + o.queue_wait_ms / 1000.0
            t_full = t_target + self.client.wire_s(window, p.rtt_s)
            if start <= t_full:
                continue
            # a worker that starts after the client left reads nothing: submit drops a resume past the deadline
            out[k] = start + (p.rtt_s if start - t_full > RESTART_AFTER_S else 0.0)
        return out

    def with_ecs_holds(self, holds: Mapping[int, float | None]) -> None:
        """Start again from the construction state (same seed, nothing submitted) with the ECS bodies in
        `holds` off the shared uplink while they wait for a worker (`ecs_holds` of a first run)."""
        rng = np.random.default_rng()
        rng.bit_generator.state = copy.deepcopy(self._rng_state)
        self.__init__(self.testbed, self.workloads, rng, holds)  # type: ignore[misc]

    @property
    def holds_ecs_bodies(self) -> bool:
        return self._ecs_resume_s is not None

    @property
    def held_ecs_bodies(self) -> int:
        """How many ECS bodies this run holds off the shared uplink (0: none, or no hold set given)."""
        return len(self._ecs_resume_s or {})

    # ------------------------------------------------------------------------------ shared uplink
    def _stretch(self) -> None:
        """Give every pending request whose body has left the shared uplink its final upload time."""
        up = self.client.uplink
        if up is None:
            return
        for f in up.finished:
            p = f.owner
            if isinstance(p, Pending) and f.stretched:
                self._set_upload(p, f.upload_s() + self._rest_s.get(id(p), 0.0))
        up.finished.clear()

    @staticmethod
    def _set_upload(p: Pending, upload_s: float) -> None:
        headers_at = p.body_at_s - p.upload_s
        p.upload_s = upload_s
        p.body_at_s = headers_at + upload_s
        if p.platform == "lambda":
            p.dispatch_at_s = p.body_at_s

    def settle(self) -> None:
        """Run the shared uplink to the end: call after the last submit, before dispatching by
        `dispatch_at_s` (no-op without a shared uplink)."""
        if self.client.uplink is not None:
            self.client.uplink.settle()
            self._stretch()

    def due_s(self, p: Pending, now_s: float) -> float:
        """When `p` is due for `dispatch` as far as is known at model time `now_s` (every request sent by
        then submitted): its dispatch time, with the upload projected on the shared uplink if any."""
        up = self.client.uplink
        f = self._flows.get(id(p))
        if up is None or f is None:
            return p.dispatch_at_s
        up.advance(now_s)
        self._stretch()
        if f.end_s is None and p.platform == "lambda":
            return p.body_at_s - p.upload_s + (up.projected_end_s(f) - f.start_s)
        return p.dispatch_at_s

    def dispatch(self, p: Pending) -> Outcome:
        """The platform acts on a submitted request (call in non-decreasing p.dispatch_at_s)."""
        f = self._flows.pop(id(p), None)
        if p.outcome is not None:
            return p.outcome
        if f is not None:
            # the body's upload as known now (final after settle); a stretched Lambda upload may now
            # outlast the client's timeout
            up = self.client.uplink
            assert up is not None
            if f.end_s is None:
                self._set_upload(p, up.projected_end_s(f) - f.start_s)
            p.outcome = self._platforms[p.platform].door(p)
            if p.outcome is not None:
                return p.outcome
        if p.dispatch_at_s < self.last_dispatch_s[p.platform]:
            self.out_of_order += 1     # tolerated (state stays consistent), counted for the drivers' tests
        else:
            self.last_dispatch_s[p.platform] = p.dispatch_at_s
        self.dispatched += 1
        return self._platforms[p.platform].dispatch(p)

    def handle(self, t_send_s: float, platform: str, workload_type: str, payload_bytes: int, *,
               new_connection: bool = True) -> Outcome:
        """submit + dispatch of one request (for callers whose requests do not overlap in flight)."""
        return self.dispatch(self.submit(t_send_s, platform, workload_type, payload_bytes,
                                         new_connection=new_connection))

    def apply_client_timeout(self, o: Outcome) -> Outcome:
        """What the client logs: a response that is not complete within the client's request timeout,
        counted from the START of the request (connect + upload + wait + response: got's timeout.request,
        which Artillery sets from http.timeout), becomes error=timeout with no status or metrics and
        total_ms = the timeout. The platforms already acted on the client's departure (a Lambda request
        whose upload outlasts the timeout is never invoked; an ECS worker whose body never completes is
        freed); this only decides what the client logs."""
        limit_ms = self.client.request_timeout_s * 1000.0
        if o.error == "timeout" or o.total_ms <= limit_ms:
            return o
        return client_timeout(o.platform, o.workload_type, o.t_send_s, o.connect_ms, o.upload_ms, limit_ms,
                              f"client_timeout({o.reason or o.http_status})")

    # ------------------------------------------------------------------------------------- clock
    def advance(self, t_s: float) -> None:
        """Run time-driven events up to t_s (keep-alive reclaim, autoscaling) without a request."""
        for f in self.lambda_.functions.values():
            f.release(t_s)
            f.purge(t_s)
        self.ecs.advance(t_s)

    def stats(self, t_s: float) -> dict[str, Any]:
        """Counters and state at model time t_s."""
        out = {"model_time_s": t_s, "submitted": self.submitted, "dispatched": self.dispatched,
               "out_of_order": self.out_of_order, "client_preset": self.testbed.client_preset,
               "service_preset": self.testbed.service_preset,
               "lambda": self.lambda_.counts(t_s), "ecs": self.ecs.counts(t_s)}
        if self.client.uplink is not None:
            out["uplink_peak_flows"] = self.client.uplink.peak_flows
        return out
