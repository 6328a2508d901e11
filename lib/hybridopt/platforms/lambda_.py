"""AWS Lambda behind an API Gateway REST API (Lambda proxy integration), as a clock-free state machine.

Per function (one per workload): execution environments serving one request each. A dispatched request
takes the most recently used idle environment (SimFaaS's choice, which lets older ones expire); without
one it starts a new environment (a cold start: provisioning overhead + INIT duration), if the account's
concurrency and the function's scaling-rate token bucket allow, otherwise it is throttled. Idle
environments are reclaimed by the keep-alive policy. API Gateway rejects bodies over 10 MB, the Lambda
invoke rejects events over 6 MB, and the integration gives up after 29 s.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Mapping
from typing import Any

from hybridopt.params import LambdaModel, ServicePreset, Workload
from hybridopt.platforms.draws import Draws
from hybridopt.platforms.network import ClientNetwork
from hybridopt.platforms.outcome import (
    APIGW_ENDPOINT_TIMEOUT,
    APIGW_INTERNAL_ERROR,
    APIGW_REQUEST_TOO_LONG,
    APIGW_TEXT,
    APIGW_TOO_MANY_REQUESTS,
    Outcome,
    Pending,
    client_timeout,
    error_for,
)
from hybridopt.platforms.service import MIB, ServiceTime

_Z99 = 2.3263478740408408   # standard-normal 99th percentile


class _Env:
    __slots__ = ("id", "created_at", "idle_since", "expires_at", "requests")

    def __init__(self, env_id: str, created_at: float) -> None:
        self.id = env_id
        self.created_at = created_at
        self.idle_since = created_at
        self.expires_at = math.inf
        self.requests = 0


class LambdaFunction:
    """One function: its environments, keep-alive and scaling bucket."""

    def __init__(self, name: str, memory_mb: int, service: ServiceTime, model: LambdaModel,
                 draws: Draws, platform: "LambdaPlatform") -> None:
        self.name = name
        self.memory_mb = memory_mb
        self.cpu_share = min(1.0, memory_mb / model.full_vcpu_memory_mb.value)
        self.service = service
        self._draws = draws
        self._platform = platform
        ka = model.keep_alive
        self._halving = ka.policy.value == "halving"
        self._idle_timeout_s = ka.idle_timeout_s.value
        self._halving_s = ka.halving_period_s.value
        self._max_life_s = ka.max_env_lifetime_s.value
        self._burst = float(model.scaling_burst_envs.value)
        self._refill = model.scaling_refill_envs_per_s.value
        self._tokens = self._burst
        self._tokens_t = -math.inf
        self.idle: deque[_Env] = deque()
        self.busy: list[tuple[float, int, _Env]] = []
        self._seq = 0
        self._push_seq = 0
        # counters
        self.cold_starts = 0
        self.warm_starts = 0
        self.throttled = 0
        self.reclaimed = 0

    # ------------------------------------------------------------------------------------ state
    def release(self, t: float) -> None:
        """Environments whose request ended by t become idle (in end-time order)."""
        busy = self.busy
        if not busy or busy[0][0] > t:
            return
        pop, draws, idle = heapq.heappop, self._draws, self.idle
        halving, period, timeout = self._halving, self._halving_s, self._idle_timeout_s
        while busy and busy[0][0] <= t:
            end, _, env = pop(busy)
            env.idle_since = end
            if halving:
                k = 1
                buf = draws._u                   # Draws.u without the call (refilled by it when empty)
                while (buf.pop() if buf else draws.u()) < 0.5:
                    k += 1
                    buf = draws._u
                env.expires_at = end + k * period
            else:
                env.expires_at = end + timeout
            idle.append(env)

    def purge(self, t: float) -> None:
        """Drop every idle environment already reclaimed at t (only needed for counts)."""
        keep = deque(e for e in self.idle if not self._dead(e, t))
        self.reclaimed += len(self.idle) - len(keep)
        self.idle = keep

    def _dead(self, env: _Env, t: float) -> bool:
        return env.expires_at < t or (self._max_life_s is not None and env.created_at + self._max_life_s < t)

    def take_idle(self, t: float) -> _Env | None:
        """The most recently used live idle environment at t, or None."""
        idle = self.idle
        while idle:
            env = idle.pop()
            if self._dead(env, t):
                self.reclaimed += 1
                continue
            return env
        return None

    def take_token(self, t: float) -> bool:
        """Scaling rate: a token bucket of new environments refilled continuously."""
        if t > self._tokens_t:
            if self._tokens_t != -math.inf:
                self._tokens = min(self._burst, self._tokens + (t - self._tokens_t) * self._refill)
            self._tokens_t = t
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def new_env(self, t: float) -> _Env:
        self._seq += 1
        return _Env(f"{self.name}-{self._seq:05d}-{self._draws.hex(16)}", t)

    def occupy(self, env: _Env, end: float) -> None:
        env.requests += 1
        self._push_seq += 1
        heapq.heappush(self.busy, (end, self._push_seq, env))

    def counts(self, t: float) -> dict[str, int]:
        self.release(t)
        self.purge(t)
        return {"cold_starts": self.cold_starts, "warm_starts": self.warm_starts,
                "throttled": self.throttled, "envs_busy": len(self.busy), "envs_idle": len(self.idle),
                "reclaimed": self.reclaimed}


class LambdaPlatform:
    """API Gateway + one Lambda function per workload, sharing the account's concurrency."""

    platform = "lambda"
    tls = True   # API Gateway endpoints are HTTPS

    def __init__(self, model: LambdaModel, workloads: Mapping[str, Workload], preset: ServicePreset,
                 draws: Draws, client: ClientNetwork) -> None:
        self.model = model
        self._draws = draws
        self._client = client
        self.functions: dict[str, LambdaFunction] = {}
        full = model.full_vcpu_memory_mb.value
        for name, w in workloads.items():
            entry = preset.workloads[name]["lambda"]
            share = min(1.0, w.lambda_memory_mb / full)
            self.functions[name] = LambdaFunction(name, w.lambda_memory_mb, ServiceTime(entry, share, draws),
                                                  model, draws, self)
        self._apigw_max = model.api_gateway_max_request_bytes.value
        self._apigw_too_large = model.api_gateway_too_large_body.value
        self._gw_half_s = model.api_gateway_overhead_ms.value / 2000.0
        self._timeout_s = model.api_gateway_integration_timeout_s.value
        self._invoke_max = model.invoke_payload_limit_bytes.value
        self._event_overhead = model.event_overhead_bytes.value
        self._concurrency = model.account_concurrency.value
        self._throttle_status = model.throttle_status.value
        self._throttle_body = APIGW_TOO_MANY_REQUESTS if self._throttle_status == 429 else APIGW_INTERNAL_ERROR
        self._init_median = model.init_p50_ms.value
        self._init_sigma = math.log(model.init_p99_ms.value / model.init_p50_ms.value) / _Z99
        self._cold_overhead_ms = model.cold_start_overhead_ms.value
        self._runtime_ms = model.runtime_overhead_ms.value
        self._fn_timeout_ms = model.function_timeout_s.value * 1000.0
        self._bill_init = model.billed_duration_includes_init.value
        self._mem_base = model.memory_used_base_mb.value

    # ------------------------------------------------------------------------------- front door
    def door(self, p: Pending) -> Outcome | None:
        """API Gateway's own check before any invoke: the 10 MB request limit (a plain-text 413). The
        gateway invokes only once the whole request arrived: a client whose upload outlasts its request
        timeout has given up before that, and the function never runs."""
        if p.payload_bytes > self._apigw_max:
            return self._finish(p, 413, "apigw_payload_limit", p.dispatch_at_s + 2 * self._gw_half_s,
                                body=self._apigw_too_large, content_type=APIGW_TEXT)
        limit_s = self._client.request_timeout_s
        if p.connect_s + p.upload_s > limit_s:
            return client_timeout("lambda", p.workload_type, p.t_send_s, p.connect_s * 1000.0, p.upload_s * 1000.0,
                                  limit_s * 1000.0, "client_timeout(upload)")
        return None

    def in_flight(self, t: float) -> int:
        n = 0
        for f in self.functions.values():
            f.release(t)
            n += len(f.busy)
        return n

    # --------------------------------------------------------------------------------- dispatch
    def dispatch(self, p: Pending) -> Outcome:
        fn = self.functions[p.workload_type]
        t_inv = p.dispatch_at_s + self._gw_half_s
        if p.payload_bytes + self._event_overhead > self._invoke_max:
            return self._finish(p, 413, "lambda_payload_limit", t_inv + self._gw_half_s,
                                body=APIGW_REQUEST_TOO_LONG)
        fn.release(t_inv)
        env = fn.take_idle(t_inv)
        cold = env is None
        init_ms = 0.0
        start_ms = 0.0
        if env is None:
            if self.in_flight(t_inv) >= self._concurrency or not fn.take_token(t_inv):
                fn.throttled += 1
                return self._finish(p, self._throttle_status, "lambda_throttled", t_inv + self._gw_half_s,
                                    body=self._throttle_body)
            env = fn.new_env(t_inv)
            fn.cold_starts += 1
            init_ms = self._draws.lognormal(self._init_median, self._init_sigma) + fn.service.init_extra_ms
            start_ms = self._cold_overhead_ms + init_ms
        else:
            fn.warm_starts += 1
        exec_ms = fn.service.sample_ms(p.payload_bytes)
        duration_ms = exec_ms + self._runtime_ms
        status, reason, body = 200, None, None
        if duration_ms > self._fn_timeout_ms:
            duration_ms = exec_ms = self._fn_timeout_ms
            status, reason, body = 502, "lambda_function_timeout", APIGW_INTERNAL_ERROR
        lambda_ms = start_ms + duration_ms
        fn.occupy(env, t_inv + lambda_ms / 1000.0)
        billed = math.ceil(duration_ms + (init_ms if (cold and self._bill_init) else 0.0))
        metrics: dict[str, Any] = {
            "execution_time_ms": exec_ms, "cold_start": cold, "init_duration_ms": init_ms if cold else None,
            "billed_duration_ms": float(billed), "memory_limit_mb": float(fn.memory_mb),
            "memory_used_mb": min(float(fn.memory_mb), self._mem_base + p.payload_bytes / MIB),
            "instance_id": env.id,
        }
        if lambda_ms > self._timeout_s * 1000.0:
            return self._finish(p, 504, "apigw_integration_timeout", t_inv + self._timeout_s + self._gw_half_s,
                                body=APIGW_ENDPOINT_TIMEOUT, metrics=metrics)
        return self._finish(p, status, reason, t_inv + lambda_ms / 1000.0 + self._gw_half_s, body=body,
                            metrics=metrics)

    # ----------------------------------------------------------------------------------- result
    def _finish(self, p: Pending, status: int, reason: str | None, response_at_s: float, *,
                body: str | None = None, content_type: str = "application/json",
                metrics: dict[str, Any] | None = None) -> Outcome:
        first_byte_at = response_at_s + p.rtt_s / 2.0 + p.inflation_s
        upload_end = p.t_send_s + p.connect_s + p.upload_s
        out = Outcome(
            platform="lambda", workload_type=p.workload_type, http_status=status, error=error_for(status),
            reason=reason, t_send_s=p.t_send_s, connect_ms=p.connect_s * 1000.0, upload_ms=p.upload_s * 1000.0,
            first_byte_ms=(first_byte_at - upload_end) * 1000.0, total_ms=(first_byte_at - p.t_send_s) * 1000.0,
            completes_at_s=first_byte_at, body=body, content_type=content_type,
            actual_payload_size_kb=p.payload_bytes / 1024.0)
        if metrics is not None and 200 <= status < 300:
            out.execution_time_ms = metrics["execution_time_ms"]
            out.cold_start = metrics["cold_start"]
            out.init_duration_ms = metrics["init_duration_ms"]
            out.billed_duration_ms = metrics["billed_duration_ms"]
            out.memory_limit_mb = metrics["memory_limit_mb"]
            out.memory_used_mb = metrics["memory_used_mb"]
            out.instance_id = metrics["instance_id"]
        return out

    def counts(self, t: float) -> dict[str, dict[str, int]]:
        return {name: f.counts(t) for name, f in self.functions.items()}
