"""The bill of a run as AWS would send it, from its request log, params.prices (each line carries its
price's source) and the ECS capacity timeline (`hybridopt.decision.capacity`).

Lines, per session (run_id) and workload:
- `lambda_duration` (GB-s): billed ms x memory GB of every invoked attempt; billed ms = the reported
  billed_duration_ms rounded up to 1 ms, else ceil(execution_time_ms) (+ ceil(init_duration_ms) on a
  cold start); params.cost.bill_lambda_init = false takes INIT out again (the rule before Aug 2025).
  An attempt the front door rejected (413, 429) or that never connected invoked nothing.
- `lambda_requests`: invoked attempts.
- `api_gateway_requests`: every attempt that reached API Gateway (not throttled, connected); REST
  per request, HTTP API per started 512 KB (params.cost.api_gateway).
- `fargate_vcpu` (vCPU-hours) and `fargate_memory` (GB-hours): the task-seconds the service ran in
  the session (capacity.session_task_seconds: per second, the 1-minute minimum for tasks the
  autoscaler started) x the task's vCPU / memory.
- `alb_hours`: each clock hour (UTC) a session's span touches, once per hour (an hour two sessions
  share belongs to the one that started first).
- `alb_lcu` (LCU-hours): per clock hour the LARGEST of four dimensions averaged over the hour: new
  connections/s / 25, active connections per minute / 3,000, processed GB / 1 (per LCU-hour, container
  targets; params.prices.alb_gb_per_lcu_hour), rule evaluations/s beyond the 10 free rules / 1,000.
  One connection per request (the load generator opens one per virtual user, one request each);
  processed bytes are the request payloads (responses are a few hundred bytes); a connection is
  active in every clock minute from its send to its completion.
A workload service (Fargate lines) is billed in a session when it received at least one ECS attempt
there, the ALB when any did: a service nobody sent to could be switched off. Lines with a zero
quantity are left out. Not modelled: the free tier, tiered prices, data transfer out.

`policy_bill` bills the pairs a policy routed: OPEN LOOP, each ECS service as it ran in the log (the
logged load, not the routed one, drove its tasks). Per-request figures are averages of the bill:
`avg_usd_per_request`, `avg_usd_per_1k_requests`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Final

import numpy as np
import pandas as pd

from hybridopt.data.contract import PLATFORMS
from hybridopt.data.cost import FRONT_DOOR_REJECTIONS
from hybridopt.decision import capacity as cap
from hybridopt.decision.load_frame import seconds
from hybridopt.params import Params

ITEMS: Final = ("lambda_duration", "lambda_requests", "api_gateway_requests", "fargate_vcpu", "fargate_memory",
                "alb_hours", "alb_lcu")
UNCONNECTED: Final = ("connection", "client_error")
#: LCU dimensions (platform-facts.md 1.1, LCU definition); the bytes dimension is params.prices.
LCU_NEW_CONNECTIONS_PER_S: Final = 25.0
LCU_ACTIVE_CONNECTIONS_PER_MIN: Final = 3000.0
LCU_RULE_EVALUATIONS_PER_S: Final = 1000.0
ALB_FREE_RULES: Final = 10
#: Rules a request can meet: the four path-pattern rules of the deployed listener.
ALB_RULES_PER_REQUEST: Final = 4
LCU_SOURCE: Final = ("platform-facts.md 1.1: one LCU = 25 new connections/s, 3,000 active connections/min, "
                     "1 GB/h processed (container targets), 1,000 rule evaluations/s (first 10 rules free); "
                     "billed on the max dimension (aws.amazon.com/elasticloadbalancing/pricing)")
RULES_SOURCE: Final = ("deployed: four path-pattern listener rules, /lightweight* /thumbnail* /medium* /heavy* "
                       "(robyspace/ahamed-thesis ecs-app/setup-alb-and-services.sh)")
OPEN_LOOP: Final = ("open loop: each ECS service and the ALB are billed as they ran in the log (the logged load, "
                    "not the routed one, drove the tasks); routing would change the load")


@dataclass(frozen=True)
class BillLine:
    item: str
    platform: str
    workload: str | None            # None: shared by the workloads (the ALB)
    session: str
    quantity: float
    unit: str
    unit_price_usd: float
    usd: float
    source: str
    note: str = ""


@dataclass
class Bill:
    """A bill: its lines, the requests it served and per-request averages derived from it."""
    lines: list[BillLine]
    requests: int                               # requests served (a policy: routed pairs; a log: attempts)
    requests_by_platform: dict[str, int]
    capacity_basis: str
    kind: str                                   # "log" | "policy"
    alb_hourly: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        cols = [f for f in BillLine.__dataclass_fields__]
        return pd.DataFrame([asdict(line) for line in self.lines], columns=cols)

    @property
    def total_usd(self) -> float:
        return float(math.fsum(line.usd for line in self.lines))

    def usd_by(self, key: str) -> dict[str, float]:
        """Dollars per item, platform, workload or session."""
        out: dict[str, float] = {}
        for line in self.lines:
            k = str(getattr(line, key))
            out[k] = out.get(k, 0.0) + line.usd
        return out

    @property
    def avg_usd_per_request(self) -> float:
        return self.total_usd / self.requests if self.requests else math.nan

    @property
    def avg_usd_per_1k_requests(self) -> float:
        return 1000.0 * self.avg_usd_per_request

    def avg_usd_per_1k_requests_by_platform(self) -> dict[str, float]:
        """A platform's lines over its own requests (the ALB counts to ECS)."""
        usd = self.usd_by("platform")
        return {p: (1000.0 * usd.get(p, 0.0) / n if n else math.nan) for p, n in self.requests_by_platform.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "capacity_basis": self.capacity_basis, "total_usd": self.total_usd,
                "requests": self.requests, "requests_by_platform": dict(self.requests_by_platform),
                "avg_usd_per_request": self.avg_usd_per_request,
                "avg_usd_per_1k_requests": self.avg_usd_per_1k_requests,
                "avg_usd_per_1k_requests_by_platform": self.avg_usd_per_1k_requests_by_platform(),
                "usd_by_item": self.usd_by("item"), "usd_by_session": self.usd_by("session"),
                "usd_by_platform": self.usd_by("platform"), "lines": [asdict(x) for x in self.lines],
                "alb_hourly": self.alb_hourly, "notes": list(self.notes)}


# ------------------------------------------------------------------------------------------- Lambda
def lambda_billing(df: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Per Lambda attempt: invoked, billed_ms (rounded up to 1 ms), memory_mb, gb_s and the API
    Gateway units it was billed (0 when it never reached API Gateway)."""
    err = df["error"].astype(object)
    unconnected = err.isin(UNCONNECTED).to_numpy()
    invoked = ~err.isin(FRONT_DOOR_REJECTIONS).to_numpy() & ~unconnected
    mem_cfg = df["workload_type"].astype(str).map({k: w.lambda_memory_mb for k, w in params.workloads.items()})
    mem_mb = df["memory_limit_mb"].astype("float64").fillna(mem_cfg.astype("float64")).to_numpy(dtype=np.float64)
    cold = df["cold_start"].astype("boolean").fillna(False).to_numpy(dtype=bool) & invoked
    init_ms = np.ceil(df["init_duration_ms"].astype("float64").fillna(0.0).to_numpy())
    reported = df["billed_duration_ms"].astype("float64").to_numpy()
    executed = np.ceil(df["execution_time_ms"].astype("float64").fillna(0.0).to_numpy())
    if params.cost.bill_lambda_init:
        billed = np.where(np.isnan(reported), executed + np.where(cold, init_ms, 0.0), np.ceil(reported))
    else:
        billed = np.where(np.isnan(reported), executed,
                          np.maximum(np.ceil(reported) - np.where(cold, init_ms, 0.0), 0.0))
    billed = np.where(invoked, billed, 0.0)
    gw_billed = ~unconnected & ~(err == "throttled").to_numpy()
    if params.cost.api_gateway == "rest":
        units = np.ones(len(df))
    else:
        kb = df["actual_payload_size_kb"].astype("float64").fillna(df["target_payload_size_kb"].astype("float64"))
        units = np.maximum(1.0, np.ceil(kb.to_numpy() / 512.0))
    return pd.DataFrame({"invoked": invoked, "billed_ms": billed, "memory_mb": mem_mb,
                         "gb_s": billed / 1000.0 * mem_mb / 1024.0, "gateway_units": np.where(gw_billed, units, 0.0)},
                        index=df.index)


#: Up to this many rows, groups are found and summed in plain Python (pandas' fixed cost per call,
#: about a millisecond, dominates small runs: the crossover map's); above it by pandas.
_SMALL: Final = 2000


# ---------------------------------------------------------------------------------------------- ALB
def alb_hourly(t0_s: np.ndarray, t1_s: np.ndarray, gb: np.ndarray, hours: list[int], gb_per_lcu: float,
               rules_per_request: int = ALB_RULES_PER_REQUEST) -> pd.DataFrame:
    """Per clock hour (hours since the epoch, UTC) the four LCU dimensions of the connections
    [t0_s, t1_s] carrying `gb` each, the LCUs (their max) and which dimension binds."""
    t0 = np.asarray(t0_s, dtype=np.float64)
    t1 = np.maximum(np.asarray(t1_s, dtype=np.float64), t0)
    gb = np.asarray(gb, dtype=np.float64)
    h = np.floor(t0 / 3600.0).astype(np.int64)
    extra = sorted(set(h.tolist()) - set(hours))
    if extra:
        raise ValueError(f"ALB traffic in clock hours {extra[:3]} outside the billed hours")
    hour = np.asarray(sorted(hours), dtype=np.int64)
    at = np.searchsorted(hour, h)                       # each connection's row (its hour is billed)
    new_conn = np.bincount(at, minlength=len(hour)).astype(np.float64)
    processed = _kahan_sums(gb, at, len(hour))
    active = np.zeros(len(hour))
    if len(t0):
        m0 = np.floor(t0 / 60.0).astype(np.int64)
        m1 = np.floor(t1 / 60.0).astype(np.int64)
        lo, hi = int(m0.min()), int(m1.max())
        if hi - lo > 10_000_000:
            raise ValueError(f"ALB traffic spans {hi - lo:,} minutes: timestamps look wrong")
        diff = np.zeros(hi - lo + 2, dtype=np.int64)
        np.add.at(diff, m0 - lo, 1)
        np.add.at(diff, m1 - lo + 1, -1)
        per_minute = np.cumsum(diff)[:-1]
        hour_of_minute = (np.arange(lo, hi + 1) // 60)
        hours_seen, first = np.unique(hour_of_minute, return_index=True)
        sums = np.add.reduceat(per_minute, first)
        billed = np.isin(hours_seen, hour)
        active[np.searchsorted(hour, hours_seen[billed])] = sums[billed]
    extra_rules = max(0, rules_per_request - ALB_FREE_RULES)
    per_min = active / 60.0
    cols = {"hour": hour, "new_connections": new_conn, "processed_gb": processed,
            "active_connections_per_min": per_min,
            "lcu_new_connections": new_conn / 3600.0 / LCU_NEW_CONNECTIONS_PER_S,
            "lcu_active_connections": per_min / LCU_ACTIVE_CONNECTIONS_PER_MIN,
            "lcu_processed_bytes": processed / gb_per_lcu,
            "lcu_rule_evaluations": new_conn * extra_rules / 3600.0 / LCU_RULE_EVALUATIONS_PER_S}
    dims = ["lcu_new_connections", "lcu_active_connections", "lcu_processed_bytes", "lcu_rule_evaluations"]
    lcu = np.column_stack([cols[d] for d in dims]) if len(hour) else np.zeros((0, len(dims)))
    cols["lcu"] = lcu.max(axis=1) if len(hour) else np.zeros(0)
    cols["binding"] = [dims[k].removeprefix("lcu_") for k in lcu.argmax(axis=1).tolist()] if len(hour) else []
    return pd.DataFrame(cols)


def _kahan_sums(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group the sum of its non-NaN values in order, Kahan-compensated as pandas' groupby sum
    adds them (the same numbers as `pd.Series(values).groupby(group).sum()`)."""
    if len(values) > _SMALL:
        return pd.Series(values).groupby(group).sum().reindex(range(n_groups), fill_value=0.0).to_numpy(np.float64)
    sums = [0.0] * n_groups
    comp = [0.0] * n_groups
    for g, v in zip(group.tolist(), values.tolist()):
        if v != v:
            continue
        y = v - comp[g]
        t = sums[g] + y
        comp[g] = t - sums[g] - y
        sums[g] = t
    return np.asarray(sums, dtype=np.float64)


# ---------------------------------------------------------------------------------------------- bill
def _line(item: str, platform: str, workload: str | None, session: str, qty: float, unit: str,
          price: Any, note: str = "") -> BillLine:
    return BillLine(item, platform, workload, session, float(qty), unit, float(price.value),
                    float(qty) * float(price.value), str(price.source), note)


def _lambda_lines(rows: pd.DataFrame, params: Params) -> list[BillLine]:
    pr = params.prices
    b = lambda_billing(rows, params)
    gw_price = pr.api_gateway_rest_request_usd if params.cost.api_gateway == "rest" else pr.api_gateway_http_request_usd
    gw_unit = "requests" if params.cost.api_gateway == "rest" else "requests (512 KB units)"
    out = []
    # per (session, workload) in sorted order, each sum over the group's rows in log order (numpy's
    # sum of the same values in the same order as pandas' Series.sum: the same numbers, faster)
    gb_s, invoked, units = (b[c].to_numpy() for c in ("gb_s", "invoked", "gateway_units"))
    for (session, w), at in _groups(rows["run_id"], rows["workload_type"]):
        for item, qty, unit, price in (("lambda_duration", _nansum(gb_s, at), "GB-s", pr.lambda_gb_s_usd),
                                       ("lambda_requests", _nansum(invoked, at), "requests", pr.lambda_request_usd),
                                       ("api_gateway_requests", _nansum(units, at), gw_unit, gw_price)):
            if qty > 0:
                out.append(_line(item, "lambda", str(w), str(session), float(qty), unit, price))
    return out


def _groups(session: pd.Series, workload: pd.Series) -> list[tuple[tuple[str, str], np.ndarray | slice]]:
    """((session, workload), the rows' positions) per group, sorted by key, positions ascending
    (pandas' groupby([session, workload], sort=True) order)."""
    s, w = session.astype(str), workload.astype(str)
    if len(s) > _SMALL:
        idx = pd.DataFrame({"s": s.to_numpy(), "w": w.to_numpy()}).groupby(["s", "w"], sort=True).indices
        return [((str(k[0]), str(k[1])), np.asarray(v)) for k, v in sorted(idx.items())]
    keys = list(zip(s.tolist(), w.tolist()))
    uniq = sorted(set(keys))
    if len(uniq) == 1:
        return [(uniq[0], slice(None))]
    return [(key, np.asarray([i for i, k in enumerate(keys) if k == key], dtype=np.int64)) for key in uniq]


def _nansum(values: np.ndarray, at: np.ndarray | slice) -> float:
    """pandas' Series.sum of values[at]: NaN counts as 0."""
    v = values[at]
    if v.dtype.kind == "f":
        v = np.where(np.isnan(v), 0.0, v)
    return v.sum()


def _ecs_lines(ecs: pd.DataFrame, spans: list[cap.Span], timeline: cap.CapacityTimeline, params: Params,
               missing_completion_s: float) -> tuple[list[BillLine], list[dict[str, Any]], list[str]]:
    pr = params.prices
    sessions = ecs["run_id"].astype(str).to_numpy()
    works = ecs["workload_type"].astype(str).to_numpy()
    billed = set(zip(sessions.tolist(), works.tolist()))
    missing = sorted({w for _, w in billed} - set(timeline.services))
    if missing:
        raise ValueError(f"capacity timeline ({timeline.basis}) has no service for workloads {missing}")
    secs = cap.session_task_seconds(timeline, spans, billed)
    lines, notes = [], []
    for (session, w), ts in sorted(secs.items()):
        svc = timeline.services[w]
        note = f"{timeline.basis}: deployed tasks {ts.deployed_s:,.0f} s"
        if ts.added_tasks:
            note += (f"; {ts.added_tasks} task(s) added by autoscaling, {ts.added_s:,.0f} s "
                     f"(1-minute minimum applied to {ts.minimum_applied}, {ts.open_end} still running at the end)")
        for item, per_task, unit, price in (("fargate_vcpu", svc.vcpu, "vCPU-hours", pr.fargate_vcpu_hour_usd),
                                            ("fargate_memory", svc.memory_gb, "GB-hours", pr.fargate_gb_hour_usd)):
            qty = ts.total_s * per_task / 3600.0
            if qty > 0:
                lines.append(BillLine(item, "ecs", w, session, qty, unit, float(price.value), qty * float(price.value),
                                      f"{price.source}; {cap.FARGATE_BILLING_SOURCE}", note))
    # the ALB: clock hours of the sessions that sent to ECS, each hour to the first such session
    ecs_sessions = set(sessions.tolist())
    owner: dict[int, str] = {}
    for sp in spans:
        if sp.session in ecs_sessions:
            for hr in range(int(math.floor(sp.start_s / 3600.0)), int(math.floor(sp.end_s / 3600.0)) + 1):
                owner.setdefault(hr, sp.session)
    shared = sorted({s for s in ecs_sessions} - set(owner.values()))
    if shared:
        notes.append(f"ALB hours of sessions {shared} are billed to earlier sessions that share their clock hours")
    reached = ~ecs["error"].astype(object).isin(UNCONNECTED).to_numpy()
    t0 = seconds(ecs["sent_at"])
    total_s = ecs["total_ms"].astype("float64").to_numpy() / 1000.0
    t1 = t0 + np.where(np.isfinite(total_s), total_s, missing_completion_s)
    kb = ecs["actual_payload_size_kb"].astype("float64").fillna(ecs["target_payload_size_kb"].astype("float64"))
    gb = kb.to_numpy() / 1024.0 / 1024.0
    hourly = alb_hourly(t0[reached], t1[reached], gb[reached], sorted(owner), pr.alb_gb_per_lcu_hour.value)
    hours = hourly["hour"].to_numpy(dtype=np.int64).tolist()
    session_of = [owner[hr] for hr in hours]
    lcu_of = hourly["lcu"].to_numpy(dtype=np.float64)
    binding_of = hourly["binding"].tolist()
    for session in sorted(set(session_of)):
        rows_at = [k for k, s in enumerate(session_of) if s == session]
        lines.append(_line("alb_hours", "ecs", None, str(session), float(len(rows_at)), "ALB-hours", pr.alb_hour_usd,
                           "each clock hour (UTC) the session's span touches"))
        lcu = float(_nansum(lcu_of, np.asarray(rows_at, dtype=np.int64)))
        if lcu > 0:
            binding = pd.Series([binding_of[k] for k in rows_at]).value_counts().to_dict()
            lines.append(BillLine("alb_lcu", "ecs", None, str(session), lcu, "LCU-hours",
                                  float(pr.alb_lcu_hour_usd.value), lcu * float(pr.alb_lcu_hour_usd.value),
                                  f"{pr.alb_lcu_hour_usd.source}; {LCU_SOURCE}; GB per LCU-hour: "
                                  f"{pr.alb_gb_per_lcu_hour.source}; rules: {RULES_SOURCE}",
                                  f"binding dimension per hour: {binding}"))
    # the hourly table as records of Python values (as DataFrame.to_dict(orient="records") gives them)
    names = list(hourly.columns)
    values = [hourly[c].tolist() for c in names]
    table = [{**dict(zip(names, row)), "session": s,
              "hour_start": datetime.fromtimestamp(hr * 3600, timezone.utc).isoformat(sep=" ")}
             for row, s, hr in zip(zip(*values), session_of, hours)]
    return lines, table, notes


def _bill(routed: pd.DataFrame, logged: pd.DataFrame, params: Params, timeline: cap.CapacityTimeline | None,
          kind: str, requests: int, notes: list[str]) -> Bill:
    missing = [c for c in ("request_id", "run_id", "platform", "workload_type", "sent_at", "total_ms", "error",
                           "billed_duration_ms", "execution_time_ms", "init_duration_ms", "cold_start",
                           "memory_limit_mb", "actual_payload_size_kb", "target_payload_size_kb") if c not in routed]
    if missing:
        raise ValueError(f"bill: the request frame lacks columns {missing}")
    timeline = timeline if timeline is not None else cap.deployed_count(params)
    missing_completion_s = float(params.audit.client_timeout_s)
    spans = cap.session_spans(logged, missing_completion_s)
    plat = routed["platform"].astype(str)
    lam = routed[(plat == "lambda").to_numpy()]
    ecs = routed[(plat == "ecs").to_numpy()]
    other = int(len(routed) - len(lam) - len(ecs))
    notes = list(notes)
    if other:
        notes.append(f"{other} attempts of no known platform are not billed")
    lines = _lambda_lines(lam, params) if len(lam) else []
    hourly: list[dict[str, Any]] = []
    if len(ecs):
        ecs_lines, hourly, ecs_notes = _ecs_lines(ecs, spans, timeline, params, missing_completion_s)
        lines += ecs_lines
        notes += ecs_notes
    if timeline.basis == "deployed_count":
        notes.append("capacity basis deployed_count: no recorded task timeline; min_tasks per workload for each "
                     "session's span (first send to last completion)")
    order = {it: i for i, it in enumerate(ITEMS)}
    lines.sort(key=lambda x: (x.session, PLATFORMS.index(x.platform), x.workload or "", order[x.item]))
    by_platform = {p: int(n) for p, n in ((p, (plat == p).sum()) for p in PLATFORMS)}
    return Bill(lines, requests, by_platform, timeline.basis, kind, hourly, notes)


def bill(requests: pd.DataFrame, params: Params, timeline: cap.CapacityTimeline | None = None) -> Bill:
    """The bill of a request log, every attempt as sent (`requests`: attempts of lambda or ecs)."""
    n = int(requests["platform"].astype(str).isin(PLATFORMS).sum())
    return _bill(requests, requests, params, timeline, "log", n, [])


def policy_bill(pairs: pd.DataFrame, to_lambda: np.ndarray | pd.Series, requests: pd.DataFrame, params: Params,
                timeline: cap.CapacityTimeline | None = None) -> Bill:
    """The bill of routing each pair to one platform (`to_lambda[i]`: pair i's Lambda attempt, else
    its ECS attempt), OPEN LOOP: ECS services and the ALB as they ran in `requests` (the logged
    attempts of the pairs' sessions). The averages count one request per pair."""
    route = np.asarray(to_lambda, dtype=bool)
    if route.shape != (len(pairs),):
        raise ValueError(f"policy_bill: to_lambda has shape {route.shape}, expected ({len(pairs)},) (one per pair)")
    ids = np.where(route, pairs["lambda_request_id"].to_numpy(dtype=object), pairs["ecs_request_id"].to_numpy(dtype=object))
    rid = requests["request_id"].astype(str)
    chosen = requests[rid.isin(pd.Index(ids.astype(str))).to_numpy()]
    if len(chosen) != len(ids):
        raise ValueError(f"policy_bill: {len(ids) - len(chosen)} routed attempts of the pairs are not in the "
                         f"request frame (by request_id), or request ids repeat")
    sessions = set(pairs["run_id"].astype(str))
    logged = requests[requests["run_id"].astype(str).isin(sessions).to_numpy()]
    return _bill(chosen, logged, params, timeline, "policy", int(len(pairs)), [OPEN_LOOP])
