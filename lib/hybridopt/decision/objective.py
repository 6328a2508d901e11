"""The decision's objective (params `decision:`), the marginal cost of one more request, and the
two choices judged against each other: the policy's, from predicted outcomes, and the oracle's,
from the outcomes the pair actually measured, under the SAME objective. Standard library only:
the router's Lambda package ships this module.

Objectives (`kind`):
- `slo_cheapest`: the cheapest platform whose predicted p95 latency meets the workload's SLO and
  whose predicted failure probability is at most `max_failure`. When neither does: the one with
  the lower p95 among those within `max_failure`; when neither is that reliable, the one less
  likely to fail, unless their failure probabilities are within `max_failure` of each other (both
  about equally doomed): then the cheaper, as the oracle does when both failed.
  Its oracle: the cheaper of the platforms that succeeded within the SLO; else the faster that
  succeeded; else (both failed) the cheaper.
- `weighted`: minimise cost + value_of_time x latency + value_of_time x failure_penalty_s x P(fail),
  in dollars (`latency_quantile` says which predicted quantile stands for the latency). Its oracle:
  the lower measured cost + value_of_time x latency + value_of_time x failure_penalty_s x failed.

Marginal cost (`MarginalCost`): what routing ONE more request to a platform adds to the bill.
- Lambda: its billed duration x memory x the GB-s price, plus the request price and the API Gateway
  request price (REST: per request; HTTP API: per started 512 KB). A payload above the invoke limit
  never reaches the function (a 413 from the gateway): only the gateway's request price.
- ECS on a provisioned service: the ALB's processed-bytes charge of its body (LCU price per GB,
  the binding LCU dimension for MB-sized bodies); below the service's worker capacity nothing
  else (the tasks are paid whatever is sent). At or above capacity, where that workload's service
  may scale out, also its share of a task for its service time (task price x service seconds /
  worker slots per task: the extra capacity it makes the autoscaler buy); a service that cannot
  scale only queues, which the latency and failure predictions carry.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Mapping

from hybridopt.data.contract import PLATFORMS

KINDS: Final = ("slo_cheapest", "weighted")
QUANTILES: Final = ("p50", "p95")


@dataclass(frozen=True)
class Prediction:
    """What the outcome models say about one request on one platform."""
    p50_ms: float
    p95_ms: float
    p_fail: float
    cost_usd: float


@dataclass(frozen=True)
class Measured:
    """What one attempt measured: latency (None when nothing arrived), success, marginal cost."""
    latency_ms: float | None
    ok: bool
    cost_usd: float


@dataclass(frozen=True)
class Objective:
    kind: str
    slo_p95_ms: Mapping[str, float]
    max_failure: float = 0.01
    value_of_time_usd_per_s: float = 0.0
    failure_penalty_s: float = 10.0
    latency_quantile: str = "p50"
    name: str = "default"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"objective kind {self.kind!r} is not one of {KINDS}")
        if self.latency_quantile not in QUANTILES:
            raise ValueError(f"latency_quantile {self.latency_quantile!r} is not one of {QUANTILES}")
        if not 0.0 <= self.max_failure <= 1.0:
            raise ValueError(f"max_failure must be within 0..1, got {self.max_failure}")
        if self.value_of_time_usd_per_s < 0 or self.failure_penalty_s < 0:
            raise ValueError("value_of_time_usd_per_s and failure_penalty_s must be >= 0")
        bad = {w: v for w, v in self.slo_p95_ms.items() if not v > 0}
        if bad:
            raise ValueError(f"slo_p95_ms must be > 0 ms, got {bad}")

    # -- serialisation (the router reads it from its package) -------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["slo_p95_ms"] = dict(self.slo_p95_ms)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Objective":
        return cls(kind=str(d["kind"]), slo_p95_ms={str(k): float(v) for k, v in dict(d["slo_p95_ms"]).items()},
                   max_failure=float(d.get("max_failure", 0.01)),
                   value_of_time_usd_per_s=float(d.get("value_of_time_usd_per_s", 0.0)),
                   failure_penalty_s=float(d.get("failure_penalty_s", 10.0)),
                   latency_quantile=str(d.get("latency_quantile", "p50")), name=str(d.get("name", "default")))

    def slo_ms(self, workload: str) -> float:
        try:
            return float(self.slo_p95_ms[workload])
        except KeyError:
            raise KeyError(f"objective {self.name!r} has no SLO for workload {workload!r} "
                           f"(slo_p95_ms has {sorted(self.slo_p95_ms)})") from None

    # -- the policy: from predictions -------------------------------------------------------------
    def predicted_usd(self, p: Prediction) -> float:
        """The weighted objective of a prediction, in dollars."""
        q = p.p50_ms if self.latency_quantile == "p50" else p.p95_ms
        vot = self.value_of_time_usd_per_s
        return p.cost_usd + vot * q / 1000.0 + vot * self.failure_penalty_s * p.p_fail

    def choose(self, workload: str, preds: Mapping[str, Prediction]) -> str:
        """The platform this objective picks from predicted outcomes."""
        order = {p: i for i, p in enumerate(PLATFORMS)}
        cands = [p for p in PLATFORMS if p in preds]
        if not cands:
            raise ValueError("no prediction for any platform")
        if self.kind == "weighted":
            return min(cands, key=lambda p: (self.predicted_usd(preds[p]), order[p]))
        slo = self.slo_ms(workload)
        reliable = [p for p in cands if preds[p].p_fail <= self.max_failure]
        feasible = [p for p in reliable if preds[p].p95_ms <= slo]
        if feasible:
            return min(feasible, key=lambda p: (preds[p].cost_usd, preds[p].p95_ms, order[p]))
        if reliable:
            return min(reliable, key=lambda p: (preds[p].p95_ms, preds[p].cost_usd, order[p]))
        best = min(preds[p].p_fail for p in cands)
        tied = [p for p in cands if preds[p].p_fail - best <= self.max_failure]
        return min(tied, key=lambda p: (preds[p].cost_usd, preds[p].p_fail, order[p]))

    # -- the oracle: from measured outcomes -------------------------------------------------------
    def measured_usd(self, m: Measured) -> float:
        """The weighted objective of a measured attempt, in dollars (a failure without a latency
        costs its penalty only)."""
        vot = self.value_of_time_usd_per_s
        lat = 0.0 if m.latency_ms is None or not math.isfinite(m.latency_ms) else m.latency_ms
        return m.cost_usd + vot * lat / 1000.0 + (0.0 if m.ok else vot * self.failure_penalty_s)

    def oracle(self, workload: str, measured: Mapping[str, Measured]) -> str:
        """The platform this objective picks knowing both measured outcomes."""
        order = {p: i for i, p in enumerate(PLATFORMS)}
        cands = [p for p in PLATFORMS if p in measured]
        if not cands:
            raise ValueError("no measured outcome for any platform")
        if self.kind == "weighted":
            return min(cands, key=lambda p: (self.measured_usd(measured[p]), order[p]))
        slo = self.slo_ms(workload)

        def lat(p: str) -> float:
            v = measured[p].latency_ms
            return math.inf if v is None or not math.isfinite(v) else v

        ok = [p for p in cands if measured[p].ok]
        feasible = [p for p in ok if lat(p) <= slo]
        if feasible:
            return min(feasible, key=lambda p: (measured[p].cost_usd, lat(p), order[p]))
        if ok:
            return min(ok, key=lambda p: (lat(p), measured[p].cost_usd, order[p]))
        return min(cands, key=lambda p: (measured[p].cost_usd, order[p]))


# ------------------------------------------------------------------------------------ marginal cost
def _interp(table: list[tuple[float, float]], x: float) -> float:
    """Piecewise-linear interpolation in a sorted (x, y) table, clamped at both ends."""
    if not table:
        raise ValueError("empty interpolation table")
    xs = [a for a, _ in table]
    i = bisect.bisect_left(xs, x)
    if i <= 0:
        return table[0][1]
    if i >= len(table):
        return table[-1][1]
    (x0, y0), (x1, y1) = table[i - 1], table[i]
    return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)


@dataclass(frozen=True)
class MarginalCost:
    """Prices and per-workload tables behind the marginal cost of one request (see the module
    docstring). Tables map payload KB to milliseconds, fitted on training logs."""
    lambda_gb_s_usd: float
    lambda_request_usd: float
    gateway_request_usd: float
    gateway: str                                          # rest | http
    lambda_memory_mb: Mapping[str, float]
    lambda_billed_ms: Mapping[str, list[tuple[float, float]]]
    alb_usd_per_gb: float
    ecs_task_usd_per_s: Mapping[str, float]
    ecs_capacity: Mapping[str, int]                       # worker slots of the provisioned tasks
    ecs_service_ms: Mapping[str, list[tuple[float, float]]]
    ecs_autoscaling: Mapping[str, bool]                   # per workload: its service may scale out
    ecs_slots_per_task: int = 1                           # worker slots one task holds
    lambda_max_payload_kb: float = math.inf               # larger payloads are rejected before Lambda
    sources: Mapping[str, str] = field(default_factory=dict)

    def lambda_usd(self, workload: str, payload_kb: float) -> float:
        units = max(1.0, math.ceil(payload_kb / 512.0)) if self.gateway == "http" else 1.0
        gateway = units * self.gateway_request_usd
        if payload_kb > self.lambda_max_payload_kb:
            return gateway
        billed_ms = math.ceil(_interp(list(self.lambda_billed_ms[workload]), payload_kb))
        gb = self.lambda_memory_mb[workload] / 1024.0
        return billed_ms / 1000.0 * gb * self.lambda_gb_s_usd + self.lambda_request_usd + gateway

    def ecs_usd(self, workload: str, payload_kb: float, workload_in_flight_ecs: float = 0.0) -> float:
        usd = payload_kb / 1024.0 / 1024.0 * self.alb_usd_per_gb
        if self.ecs_autoscaling.get(workload, False) and workload_in_flight_ecs >= self.ecs_capacity[workload]:
            service_s = _interp(list(self.ecs_service_ms[workload]), payload_kb) / 1000.0
            usd += self.ecs_task_usd_per_s[workload] * service_s / max(1, self.ecs_slots_per_task)
        return usd

    def usd(self, platform: str, workload: str, payload_kb: float, workload_in_flight_ecs: float = 0.0) -> float:
        if platform == "lambda":
            return self.lambda_usd(workload, payload_kb)
        if platform == "ecs":
            return self.ecs_usd(workload, payload_kb, workload_in_flight_ecs)
        raise ValueError(f"platform must be one of {PLATFORMS}, got {platform!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("lambda_billed_ms", "ecs_service_ms"):
            d[k] = {w: [list(p) for p in t] for w, t in getattr(self, k).items()}
        d["lambda_max_payload_kb"] = None if math.isinf(self.lambda_max_payload_kb) else self.lambda_max_payload_kb
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MarginalCost":
        def table(x: Mapping[str, Any]) -> dict[str, list[tuple[float, float]]]:
            return {str(w): sorted((float(a), float(b)) for a, b in t) for w, t in x.items()}

        return cls(lambda_gb_s_usd=float(d["lambda_gb_s_usd"]), lambda_request_usd=float(d["lambda_request_usd"]),
                   gateway_request_usd=float(d["gateway_request_usd"]), gateway=str(d["gateway"]),
                   lambda_memory_mb={str(k): float(v) for k, v in d["lambda_memory_mb"].items()},
                   lambda_billed_ms=table(d["lambda_billed_ms"]), alb_usd_per_gb=float(d["alb_usd_per_gb"]),
                   ecs_task_usd_per_s={str(k): float(v) for k, v in d["ecs_task_usd_per_s"].items()},
                   ecs_capacity={str(k): int(v) for k, v in d["ecs_capacity"].items()},
                   ecs_service_ms=table(d["ecs_service_ms"]),
                   ecs_autoscaling={str(k): bool(v) for k, v in dict(d["ecs_autoscaling"]).items()},
                   ecs_slots_per_task=int(d.get("ecs_slots_per_task", 1)),
                   lambda_max_payload_kb=(math.inf if d.get("lambda_max_payload_kb") is None
                                          else float(d["lambda_max_payload_kb"])),
                   sources={str(k): str(v) for k, v in dict(d.get("sources", {})).items()})
