"""ECS on Fargate behind an Application Load Balancer, as a clock-free state machine.

Per workload service: tasks x worker slots (the student's gunicorn sync workers). The ALB routes each
request on arrival to a ready task (round robin by default); inside a task the request waits FIFO for
the first free worker. The ALB streams the body to the target, so a worker that picks a request up
before its upload has finished reads it inside the handler's timed region. While a request waits for a
worker nothing reads its connection: only `queued_receive_bytes` of it (held by the buffers between the
client and the worker) can arrive, then the client's upload stalls until a worker starts reading, and
after a stall longer than a retransmission timeout it restarts from its initial congestion window (RFC
5681 section 4.1). When the client gives up (its
request timeout, counted from the start of the request), the ALB closes the target connection: a worker
that has not received the whole body fails at once and is free again, one whose body was complete runs
the handler to its end (a sync worker does not notice the departure). The ALB answers 504 with its HTML
page when the target sends nothing for the idle timeout. Target-tracking autoscaling (optional)
evaluates its metric every period; scale-out needs `scale_out_datapoints` breaching periods in a row, a
new task serves only after start + health-check time, and cooldowns apply.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from typing import Any

from hybridopt.params import FargateModel, ServicePreset, Workload
from hybridopt.platforms.draws import Draws
from hybridopt.platforms.network import ClientNetwork
from hybridopt.platforms.outcome import (
    ALB_503,
    ALB_504,
    HTML,
    Outcome,
    Pending,
    client_timeout,
    error_for,
)
from hybridopt.platforms.service import MIB, ServiceTime

#: A sender idle for longer than its retransmission timeout restarts slow start from the initial window
#: (RFC 5681 section 4.1, RFC 2861); RFC 6298 (2.4) rounds the RTO up to at least 1 s.
RESTART_AFTER_S = 1.0


class _Task:
    __slots__ = ("id", "ready_at", "slots", "draining", "served", "created_at", "drain_at")

    def __init__(self, task_id: str, ready_at: float, n_slots: int, created_at: float = -math.inf) -> None:
        self.id = task_id
        self.ready_at = ready_at
        self.slots = [-math.inf] * n_slots   # time each worker becomes free
        self.draining = False
        self.served = 0
        self.created_at = created_at         # -inf: deployed before the clock began
        self.drain_at = math.inf             # when the autoscaler chose it for scale-in


class FargateService:
    """One ECS service (one workload): its tasks, queue and autoscaler."""

    def __init__(self, name: str, workload: Workload, service: ServiceTime, model: FargateModel,
                 draws: Draws) -> None:
        self.name = name
        self.vcpu = workload.fargate.vcpu
        self.memory_mb = workload.fargate.memory_gb * 1024.0
        self.min_tasks = workload.fargate.min_tasks
        self.max_tasks = max(workload.fargate.max_tasks, self.min_tasks)
        self.service = service
        self._draws = draws
        self._slots = model.worker_slots_per_task.value
        self._lor = model.routing.value == "least_outstanding_requests"
        a = model.autoscaling
        self.autoscaling = a.enabled.value and self.max_tasks > self.min_tasks
        self._metric = a.metric.value
        self._target = a.target_value.value
        self._period = a.metric_period_s.value
        self._n_out = a.scale_out_datapoints.value
        self._n_in = a.scale_in_datapoints.value
        self._in_ratio = a.scale_in_ratio.value
        self._cool_out = a.scale_out_cooldown_s.value
        self._cool_in = a.scale_in_cooldown_s.value
        self._start_delay = a.task_start_s.value + a.health_check_s.value
        self._seq = 0
        self.history: list[_Task] = []           # every task ever started, in start order
        self.tasks: list[_Task] = [self._new_task(-math.inf) for _ in range(self.min_tasks)]
        self._rr = 0
        self._queued: list[float] = []          # start times of requests that had to wait
        # autoscaler state
        self._next_eval = math.nan               # first boundary set on first use
        self._bins: dict[int, list[float]] = {}  # period index -> [cpu seconds, requests]
        self._datapoints: list[float] = []
        self._last_out = -math.inf
        self._last_in = -math.inf
        # counters
        self.scale_outs = 0
        self.scale_ins = 0
        self.served = 0
        self.unavailable = 0
        self.abandoned = 0          # the client gave up before the whole body reached the worker

    def _new_task(self, ready_at: float, created_at: float = -math.inf) -> _Task:
        self._seq += 1
        task = _Task(f"{self._seq:04d}{self._draws.hex(28)}", ready_at, self._slots, created_at)
        self.history.append(task)
        return task

    def task_intervals(self) -> list[dict[str, float | str]]:
        """Every task the service had, in model seconds: `start_s` (created: the scale-out decision;
        -inf for the tasks deployed before the clock began), `ready_s` (serving), `drain_s` (chosen for
        scale-in; inf if never), `end_s` (stopped: drained and its last worker free; inf while it runs),
        `last_busy_s` (its last worker's free time; -inf if it never served)."""
        out: list[dict[str, float | str]] = []
        for k in self.history:
            last_busy = max(k.slots)
            end = max(k.drain_at, last_busy) if k.draining else math.inf
            out.append({"task_id": k.id, "start_s": k.created_at, "ready_s": k.ready_at, "drain_s": k.drain_at,
                        "end_s": end, "last_busy_s": last_busy})
        return out

    # ------------------------------------------------------------------------------- autoscaler
    def advance(self, t: float) -> None:
        """Run the autoscaler's evaluations due by t and retire drained tasks."""
        if not self.autoscaling:
            return
        if math.isnan(self._next_eval):
            self._next_eval = (math.floor(t / self._period) + 1) * self._period
            return
        while self._next_eval <= t:
            self._evaluate(self._next_eval)
            self._next_eval += self._period
        self.tasks = [k for k in self.tasks if not (k.draining and max(k.slots) <= t)]

    def _evaluate(self, b: float) -> None:
        period = self._period
        idx = int(round(b / period)) - 1
        cpu_s, requests = self._bins.pop(idx, (0.0, 0.0))
        for old in [k for k in self._bins if k < idx]:
            del self._bins[old]
        ready = [k for k in self.tasks if not k.draining and k.ready_at <= b]
        n_ready = max(len(ready), 1)
        if self._metric == "cpu":
            value = 100.0 * cpu_s / (self.vcpu * period * n_ready)
        else:   # ALBRequestCountPerTarget, per minute
            value = requests / n_ready * (60.0 / period)
        dp = self._datapoints
        dp.append(value)
        if len(dp) > max(self._n_out, self._n_in):
            del dp[0]
        active = [k for k in self.tasks if not k.draining]
        n = len(active)
        if len(dp) >= self._n_out and all(v > self._target for v in dp[-self._n_out:]):
            desired = min(self.max_tasks, math.ceil(n * value / self._target))
            if desired > n and b - self._last_out >= self._cool_out:
                for _ in range(desired - n):
                    self.tasks.append(self._new_task(b + self._start_delay, b))
                self._last_out = b
                self.scale_outs += 1
        elif len(dp) >= self._n_in and all(v < self._target * self._in_ratio for v in dp[-self._n_in:]):
            desired = max(self.min_tasks, math.ceil(n * value / self._target))
            if desired < n and b - self._last_in >= self._cool_in and b - self._last_out >= self._cool_out:
                for k in sorted(active, key=lambda k: k.ready_at)[desired:]:   # newest first out
                    k.draining = True
                    k.drain_at = b
                self._last_in = b
                self.scale_ins += 1

    def _record(self, t_arrive: float, t_start: float, cpu_ms: float) -> None:
        if not self.autoscaling:
            return
        per = self._period
        b = self._bins.setdefault(int(t_arrive // per), [0.0, 0.0])
        b[1] += 1
        b2 = self._bins.setdefault(int(t_start // per), [0.0, 0.0])
        b2[0] += cpu_ms / 1000.0

    # ---------------------------------------------------------------------------------- routing
    def route(self, t: float) -> _Task | None:
        tasks = self.tasks
        n = len(tasks)
        if self._lor:
            best, best_load = None, math.inf
            for k in tasks:
                if k.draining or k.ready_at > t:
                    continue
                load = sum(1 for s in k.slots if s > t)
                if load < best_load:
                    best, best_load = k, load
            return best
        for _ in range(n):
            self._rr = (self._rr + 1) % n
            k = tasks[self._rr]
            if not k.draining and k.ready_at <= t:
                return k
        return None

    def counts(self, t: float) -> dict[str, Any]:
        self.advance(t)
        q = self._queued
        while q and q[0] <= t:
            heapq.heappop(q)
        active = [k for k in self.tasks if not k.draining]
        return {"tasks_ready": sum(1 for k in active if k.ready_at <= t),
                "tasks_pending": sum(1 for k in active if k.ready_at > t),
                "tasks_draining": sum(1 for k in self.tasks if k.draining),
                "queue_length": len(q),
                "workers_busy": sum(1 for k in self.tasks for s in k.slots if s > t),
                "served": self.served, "unavailable": self.unavailable, "abandoned": self.abandoned,
                "scale_outs": self.scale_outs, "scale_ins": self.scale_ins}


class FargatePlatform:
    """The ALB in front of one ECS service per workload."""

    platform = "ecs"
    tls = False   # the student's ALB listened on plain HTTP port 80

    def __init__(self, model: FargateModel, workloads: Mapping[str, Workload], preset: ServicePreset,
                 draws: Draws, client: ClientNetwork) -> None:
        self.model = model
        self.services: dict[str, FargateService] = {}
        for name, w in workloads.items():
            entry = preset.workloads[name]["ecs"]
            share = min(1.0, w.fargate.vcpu)
            self.services[name] = FargateService(name, w, ServiceTime(entry, share, draws), model, draws)
        self._client = client
        self._alb_half_s = model.alb_overhead_ms.value / 2000.0
        self._idle_s = model.alb_idle_timeout_s.value
        self._buffers = model.alb_buffers_request_body.value
        self._window_bytes = model.queued_receive_bytes.value
        self._closes_on_client_close = model.alb_closes_target_on_client_close.value
        self._sample_s = model.cpu_sample_ms.value / 1000.0
        self._mem_base = model.memory_used_base_mb.value
        self._mem_per_mb = model.memory_used_per_mb.value

    def door(self, p: Pending) -> Outcome | None:
        return None   # no body limit for container targets

    def advance(self, t: float) -> None:
        for s in self.services.values():
            s.advance(t)

    def dispatch(self, p: Pending) -> Outcome:
        svc = self.services[p.workload_type]
        half = self._alb_half_s
        t_body = p.body_at_s + half                 # the whole request at the target, if it never stalls
        # the client gives up request_timeout_s after it started; its close reaches the target after the
        # one-way delay and the ALB's hop
        t_gone = p.t_send_s + self._client.request_timeout_s + p.rtt_s / 2.0 + half
        if self._buffers:
            if t_body > t_gone:                     # never forwarded: the client left during its upload
                svc.abandoned += 1
                return self._gave_up(p, 0.0, "client_timeout(upload)", None)
            t_target = t_body
        else:
            t_target = p.dispatch_at_s + half
        svc.advance(t_target)
        task = svc.route(t_target)
        if task is None:
            svc.unavailable += 1
            return self._finish(p, 503, "alb_no_healthy_target", t_target + half, body=ALB_503,
                                content_type=HTML)
        slots = task.slots
        if len(slots) == 2:
            i = 0 if slots[0] <= slots[1] else 1
        else:
            i = min(range(len(slots)), key=slots.__getitem__)
        start = max(t_target, slots[i])
        pause_s = 0.0
        if start > t_target:
            heapq.heappush(svc._queued, start)
            n_bytes = p.payload_bytes + self._client.header_bytes
            if not self._buffers and n_bytes > self._window_bytes:
                # nothing reads a queued connection: the upload stalls once the buffers on the way are
                # full and resumes when the worker starts reading
                t_full = t_target + self._client.wire_s(self._window_bytes, p.rtt_s)
                stall_s = start - t_full
                if stall_s > RESTART_AFTER_S:
                    # the client sent nothing for longer than a retransmission timeout: it restarts from
                    # its initial window (RFC 5681 section 4.1), one round trip after the window opened
                    t_done = start + p.rtt_s + self._client.wire_s(n_bytes - self._window_bytes, p.rtt_s)
                    pause_s = max(0.0, t_done - t_body)
                else:
                    pause_s = max(0.0, stall_s)
                t_body += pause_s
        queue_wait_ms = (start - t_target) * 1000.0
        if t_body > t_gone:
            # the body never completes: the worker reads until the connection closes (at once, if the
            # client had already left when the worker took it) and fails before the handler's work
            free_at = max(start, t_gone)
            if not self._closes_on_client_close:
                free_at += self._idle_s          # the ALB closes the idle target connection only then
            slots[i] = free_at
            task.served += 1
            svc.abandoned += 1
            svc._record(t_target, start, 0.0)
            return self._gave_up(p, pause_s, "client_timeout(body_incomplete)", queue_wait_ms)
        read_wait_s = max(0.0, t_body - start)
        service_ms = svc.service.sample_ms(p.payload_bytes)
        exec_ms = read_wait_s * 1000.0 + service_ms
        ready = start + exec_ms / 1000.0 + self._sample_s
        slots[i] = ready
        task.served += 1
        svc.served += 1
        svc._record(t_target, start, svc.service.cpu_work_ms(p.payload_bytes))
        if ready - t_body > self._idle_s:
            return self._finish(p, 504, "alb_idle_timeout", t_body + self._idle_s + half, body=ALB_504,
                                content_type=HTML, queue_wait_ms=queue_wait_ms, pause_s=pause_s)
        metrics = {"execution_time_ms": exec_ms, "memory_limit_mb": svc.memory_mb,
                   "memory_used_mb": self._mem_base + self._mem_per_mb * p.payload_bytes / MIB,
                   "instance_id": task.id}
        return self._finish(p, 200, None, ready + half, metrics=metrics, queue_wait_ms=queue_wait_ms,
                            pause_s=pause_s)

    def _gave_up(self, p: Pending, pause_s: float, reason: str, queue_wait_ms: float | None) -> Outcome:
        out = client_timeout("ecs", p.workload_type, p.t_send_s, p.connect_s * 1000.0,
                             (p.upload_s + pause_s) * 1000.0, self._client.request_timeout_s * 1000.0, reason)
        out.queue_wait_ms = queue_wait_ms
        return out

    def _finish(self, p: Pending, status: int, reason: str | None, response_at_s: float, *,
                body: str | None = None, content_type: str = "application/json",
                metrics: dict[str, Any] | None = None, queue_wait_ms: float | None = None,
                pause_s: float = 0.0) -> Outcome:
        first_byte_at = response_at_s + p.rtt_s / 2.0 + p.inflation_s
        upload_s = p.upload_s + pause_s         # the client's upload, including a stall behind the queue
        upload_end = p.t_send_s + p.connect_s + upload_s
        # the ALB streams: a response can start before the client finished uploading only in theory
        first_byte_at = max(first_byte_at, upload_end)
        out = Outcome(
            platform="ecs", workload_type=p.workload_type, http_status=status, error=error_for(status),
            reason=reason, t_send_s=p.t_send_s, connect_ms=p.connect_s * 1000.0, upload_ms=upload_s * 1000.0,
            first_byte_ms=(first_byte_at - upload_end) * 1000.0, total_ms=(first_byte_at - p.t_send_s) * 1000.0,
            completes_at_s=first_byte_at, body=body, content_type=content_type,
            actual_payload_size_kb=p.payload_bytes / 1024.0, queue_wait_ms=queue_wait_ms)
        if metrics is not None:
            out.execution_time_ms = metrics["execution_time_ms"]
            out.memory_limit_mb = metrics["memory_limit_mb"]
            out.memory_used_mb = metrics["memory_used_mb"]
            out.instance_id = metrics["instance_id"]
        return out

    def counts(self, t: float) -> dict[str, dict[str, Any]]:
        return {name: s.counts(t) for name, s in self.services.items()}
