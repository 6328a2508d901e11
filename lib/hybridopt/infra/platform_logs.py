"""What AWS itself logged about a collection, joined to the request log: `platform-logs`.

Sources (CloudWatch Logs of the platforms stack, read with FilterLogEvents over the collection's
time range plus `infra.platform_logs.fetch_margin_s`):

- Lambda: each function's log group holds one REPORT line per invocation, in the format AWS
  documents (`REPORT RequestId: <id>\tDuration: <ms> ms\tBilled Duration: <ms> ms\tMemory Size: <MB>
  MB\tMax Memory Used: <MB> MB[\tInit Duration: <ms> ms][\tStatus: timeout]`), and the line our
  handler prints first (`HYBRIDOPT_REQUEST {"aws_request_id": ..., "request_id": ...}`, see
  `entry`), which names the request log's request_id (header x-request-id) for Lambda's request id.
- ECS: the cluster's task state changes (EventBridge "ECS Task State Change" events, one JSON
  message each, in `/aws/events/<prefix>-ecs-tasks`): per task its service, size, and when its
  image pull started, it started, began stopping and stopped. Fargate bills a task from the start of
  its image pull to its end, per second with a one-minute minimum (AWS Fargate pricing), which is
  what `billed_s` holds. The task count over time is rebuilt from these intervals (not from
  CloudWatch metrics, which only sample per minute and do not see tasks that were never healthy).

Join to the request log (the contract lines under data.raw_dir, read by `ingest`):
- Lambda by id: REPORT RequestId -> request-id line -> contract request_id (`lambda_join = "id"`);
  a REPORT line without a usable request-id line is matched by time (`"time"`) to the unmatched
  contract line of the same workload whose sent_at is nearest the invocation's start
  (REPORT time - duration - init), within `infra.platform_logs.time_match_window_s`, one to one.
- ECS by time: the service's tasks running and billed at each ECS line's sent_at.

Written to `<data.raw_dir>/platform/` (beside the raw logs; `paths.platform_logs`), read back with
`load_platform_logs`. Files and columns (times are UTC timestamps):

- `lambda_reports.parquet`, one row per REPORT line: aws_request_id, function_name, workload_type,
  report_at, duration_ms, billed_duration_ms, memory_size_mb, max_memory_used_mb, init_duration_ms
  (NaN without INIT), status (null, timeout, error...), log_stream, request_id (contract; null when
  unmatched), lambda_join (id | time | none), join_gap_s (time joins).
- `ecs_tasks.parquet`, one row per task: task_arn, service_name, workload_type, cpu_units, memory_mib,
  created_at, pull_started_at, started_at, stopping_at, stopped_at, stop_code, billed_from,
  billed_to, billed_s, still_running (no stop seen: billed to the end of the fetched range).
- `ecs_task_count.parquet`, per service and minute: minute, service_name, workload_type,
  tasks_billed_max, tasks_running_max.
- `requests_billed.parquet`, one row per contract line: request_id, platform, workload_type, sent_at,
  and for Lambda lines the joined REPORT fields (aws_request_id, billed_duration_ms, duration_ms,
  memory_size_mb, max_memory_used_mb, init_duration_ms, lambda_join); for ECS lines
  ecs_tasks_running and ecs_tasks_billed at sent_at.
- `platform_logs.json`: what was read (log groups, time range, counts) and the join's match rates.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hybridopt.errors import InputError
from hybridopt.infra.entry import REQUEST_LINE_TAG
from hybridopt.infra.settings import InfraSettings

if TYPE_CHECKING:
    from hybridopt.params import Params

REPORT_PREFIX = "REPORT RequestId:"
_KEYS = ("RequestId", "Init Duration", "Billed Restore Duration", "Restore Duration", "Billed Duration",
         "Duration", "Memory Size", "Max Memory Used", "Status", "Error Type", "XRAY TraceId", "SegmentId",
         "Sampled")
_KEY_RE = "|".join(re.escape(k) for k in _KEYS)
_FIELD = re.compile(rf"(?:^|\t| )({_KEY_RE}): *(.*?)\s*(?=\t|$| (?:{_KEY_RE}):)")
_NUMBER = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(?: (?:ms|MB))?$")
FARGATE_MIN_BILLED_S = 60
FILES = {"lambda": "lambda_reports.parquet", "tasks": "ecs_tasks.parquet", "count": "ecs_task_count.parquet",
         "requests": "requests_billed.parquet", "summary": "platform_logs.json"}


class PlatformLogsError(InputError):
    """The platform logs cannot be read or joined (no contract lines, unreadable files...)."""


# ------------------------------------------------------------------------------------------ parsing
def parse_report(message: str) -> dict[str, Any] | None:
    """The fields of one REPORT line (None when the message is not one or lacks a required field)."""
    text = message.strip()
    if not text.startswith(REPORT_PREFIX):
        return None
    fields = {k: v for k, v in _FIELD.findall(text[len("REPORT "):])}

    def num(key: str) -> float | None:
        m = _NUMBER.match(fields.get(key, ""))
        return float(m.group(1)) if m else None

    rid, duration, billed = fields.get("RequestId"), num("Duration"), num("Billed Duration")
    memory, used = num("Memory Size"), num("Max Memory Used")
    if not rid or duration is None or billed is None or memory is None or used is None:
        return None
    init = num("Init Duration")
    return {"aws_request_id": rid, "duration_ms": duration, "billed_duration_ms": billed, "memory_size_mb": memory,
            "max_memory_used_mb": used, "init_duration_ms": math.nan if init is None else init,
            "status": fields.get("Status") or None}


def parse_request_line(message: str) -> dict[str, Any] | None:
    """The ids of our handler's request-id line (None when the message is not one)."""
    text = message.strip()
    if not text.startswith(REQUEST_LINE_TAG + " "):
        return None
    try:
        obj = json.loads(text[len(REQUEST_LINE_TAG) + 1:])
    except ValueError:
        return None
    if not isinstance(obj, dict) or not obj.get("aws_request_id"):
        return None
    return {"aws_request_id": str(obj["aws_request_id"]),
            "request_id": None if obj.get("request_id") is None else str(obj["request_id"])}


_TASK_TIMES = ("createdAt", "pullStartedAt", "pullStoppedAt", "startedAt", "stoppingAt", "stoppedAt")


def parse_task_event(message: str) -> dict[str, Any] | None:
    """The fields of one ECS Task State Change event (None for anything else)."""
    try:
        ev = json.loads(message)
    except ValueError:
        return None
    if not isinstance(ev, dict) or ev.get("detail-type") != "ECS Task State Change":
        return None
    d = ev.get("detail") or {}
    if not d.get("taskArn"):
        return None
    out = {"task_arn": d["taskArn"], "group": d.get("group"), "cpu": d.get("cpu"), "memory": d.get("memory"),
           "last_status": d.get("lastStatus"), "stop_code": d.get("stopCode"), "version": d.get("version", 0)}
    for key in _TASK_TIMES:
        out[key] = _ts(d.get(key))
    return out


def _ns(times: pd.Series) -> np.ndarray:
    """UTC times as int64 nanoseconds since the epoch, whatever the column's resolution."""
    return pd.to_datetime(times, utc=True).astype("datetime64[ns, UTC]").astype("int64").to_numpy()


def _ts(value: Any) -> pd.Timestamp | None:
    if not value:
        return None
    t = pd.Timestamp(value)
    return t.tz_convert("UTC") if t.tzinfo else t.tz_localize("UTC")


# ----------------------------------------------------------------------------------------- fetching
@dataclass
class Fetched:
    reports: pd.DataFrame
    request_lines: pd.DataFrame
    task_events: list[dict[str, Any]]
    log_groups: list[str]
    start_ms: int
    end_ms: int
    events_read: int


def _events(logs: Any, group: str, start_ms: int, end_ms: int, pattern: str | None) -> list[dict[str, Any]]:
    from botocore.exceptions import ClientError

    args: dict[str, Any] = {"logGroupName": group, "startTime": start_ms, "endTime": end_ms}
    if pattern:
        args["filterPattern"] = pattern
    out = []
    try:
        for page in logs.get_paginator("filter_log_events").paginate(**args):
            out += page.get("events", [])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise PlatformLogsError(f"log group {group} does not exist (is the platforms stack deployed in this "
                                    "account and region?)") from None
        raise
    return out


def fetch(logs: Any, cfg: InfraSettings, start_ms: int, end_ms: int) -> Fetched:
    """Read the REPORT and request-id lines of every function, and the ECS task events."""
    reports, lines, n = [], [], 0
    for w in cfg.workloads:
        for ev in _events(logs, w.lambda_log_group, start_ms, end_ms, f'?"{REPORT_PREFIX}" ?"{REQUEST_LINE_TAG}"'):
            n += 1
            rep = parse_report(ev["message"])
            if rep is not None:
                reports.append({**rep, "function_name": w.function_name, "workload_type": w.workload,
                                "report_at": pd.Timestamp(ev["timestamp"], unit="ms", tz="UTC"),
                                "log_stream": ev.get("logStreamName")})
                continue
            req = parse_request_line(ev["message"])
            if req is not None:
                lines.append({**req, "workload_type": w.workload})
    events = []
    for ev in _events(logs, cfg.ecs_events_log_group, start_ms, end_ms, None):
        n += 1
        parsed = parse_task_event(ev["message"])
        if parsed is not None:
            events.append(parsed)
    report_cols = ["aws_request_id", "function_name", "workload_type", "report_at", "duration_ms",
                   "billed_duration_ms", "memory_size_mb", "max_memory_used_mb", "init_duration_ms", "status",
                   "log_stream"]
    return Fetched(reports=pd.DataFrame(reports, columns=report_cols),
                   request_lines=pd.DataFrame(lines, columns=["aws_request_id", "request_id", "workload_type"]),
                   task_events=events, log_groups=cfg.log_groups[:len(cfg.workloads)] + [cfg.ecs_events_log_group],
                   start_ms=start_ms, end_ms=end_ms, events_read=n)


# -------------------------------------------------------------------------------------------- joins
def join_lambda(contract: pd.DataFrame, reports: pd.DataFrame, request_lines: pd.DataFrame,
                window_s: float) -> pd.DataFrame:
    """REPORT rows with `request_id`, `lambda_join` (id | time | none) and `join_gap_s`."""
    rep = reports.copy()
    lam = contract[contract["platform"] == "lambda"]
    known = set(lam["request_id"])
    ids = request_lines.dropna(subset=["request_id"]).drop_duplicates("aws_request_id")
    ids = ids[ids["request_id"].isin(known)]
    rep = rep.merge(ids[["aws_request_id", "request_id"]], on="aws_request_id", how="left")
    rep["lambda_join"] = np.where(rep["request_id"].notna(), "id", "none")
    rep["join_gap_s"] = np.nan
    taken = set(rep["request_id"].dropna())
    for workload, todo in rep[rep["request_id"].isna()].groupby("workload_type", observed=True):
        free = lam[(lam["workload_type"] == workload) & ~lam["request_id"].isin(taken)]
        if free.empty:
            continue
        upload_s = free["upload_ms"].fillna(0).to_numpy() / 1000.0
        arrive = _ns(free["sent_at"]) / 1e9 + upload_s
        order = np.argsort(arrive)
        arrive, free_ids = arrive[order], free["request_id"].to_numpy()[order]
        start = (_ns(todo["report_at"]) / 1e9
                 - (todo["duration_ms"] + todo["init_duration_ms"].fillna(0)).to_numpy() / 1000.0)
        pairs = []
        for i, t in enumerate(start):
            lo, hi = np.searchsorted(arrive, [t - window_s, t + window_s])
            pairs += [(abs(arrive[j] - t), i, j) for j in range(lo, hi)]
        used_i: set[int] = set()
        used_j: set[int] = set()
        index = todo.index.to_numpy()
        for gap, i, j in sorted(pairs):
            if i in used_i or j in used_j:
                continue
            used_i.add(i)
            used_j.add(j)
            rep.loc[index[i], ["request_id", "lambda_join", "join_gap_s"]] = [free_ids[j], "time", gap]
    return rep


def ecs_tasks(events: list[dict[str, Any]], cfg: InfraSettings, end: pd.Timestamp) -> pd.DataFrame:
    """One row per task: its times merged over all its events, and its billed interval."""
    by_service = cfg.by_service()
    rows: dict[str, dict[str, Any]] = {}
    for ev in sorted(events, key=lambda e: e["version"] or 0):
        r = rows.setdefault(ev["task_arn"], {"task_arn": ev["task_arn"]})
        for k in ("group", "cpu", "memory", "stop_code"):
            if ev.get(k) is not None:
                r[k] = ev[k]
        for k in _TASK_TIMES:
            if ev.get(k) is not None and r.get(k) is None:
                r[k] = ev[k]
    out = []
    for r in rows.values():
        service = str(r.get("group") or "").removeprefix("service:")
        w = by_service.get(service)
        begin = r.get("pullStartedAt") or r.get("startedAt") or r.get("createdAt")
        stop = r.get("stoppedAt")
        billed_to = stop if stop is not None else end
        billed_s = None if begin is None else max(FARGATE_MIN_BILLED_S,
                                                  math.ceil((billed_to - begin).total_seconds()))
        out.append({"task_arn": r["task_arn"], "service_name": service or None,
                    "workload_type": w.workload if w else None,
                    "cpu_units": float(r["cpu"]) if r.get("cpu") else math.nan,
                    "memory_mib": float(r["memory"]) if r.get("memory") else math.nan,
                    "created_at": r.get("createdAt"), "pull_started_at": r.get("pullStartedAt"),
                    "started_at": r.get("startedAt"), "stopping_at": r.get("stoppingAt"), "stopped_at": stop,
                    "stop_code": r.get("stop_code"), "billed_from": begin, "billed_to": billed_to,
                    "billed_s": billed_s, "still_running": stop is None})
    cols = ["task_arn", "service_name", "workload_type", "cpu_units", "memory_mib", "created_at", "pull_started_at",
            "started_at", "stopping_at", "stopped_at", "stop_code", "billed_from", "billed_to", "billed_s",
            "still_running"]
    df = pd.DataFrame(out, columns=cols)
    for c in ("created_at", "pull_started_at", "started_at", "stopping_at", "stopped_at", "billed_from", "billed_to"):
        df[c] = pd.to_datetime(df[c], utc=True)
    return df


def _count_at(starts: np.ndarray, ends: np.ndarray, t: np.ndarray) -> np.ndarray:
    """How many [start, end) intervals contain each time in t (all int64 ns)."""
    return (np.searchsorted(np.sort(starts), t, side="right")
            - np.searchsorted(np.sort(ends), t, side="right")).astype(np.int64)


def _intervals(tasks: pd.DataFrame, kind: str) -> tuple[np.ndarray, np.ndarray]:
    if kind == "billed":
        s, e = tasks["billed_from"], tasks["billed_to"]
    else:
        s, e = tasks["started_at"], tasks["stopping_at"].fillna(tasks["stopped_at"]).fillna(tasks["billed_to"])
    ok = s.notna() & e.notna()
    return _ns(s[ok]), _ns(e[ok])


def task_count(tasks: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Per service and minute: the most tasks billed / running at any moment of that minute."""
    rows = []
    minutes = pd.date_range(start.floor("min"), end.ceil("min"), freq="min", tz="UTC")
    for service, t in tasks.dropna(subset=["service_name"]).groupby("service_name"):
        cuts = {}
        for kind in ("billed", "running"):
            s, e = _intervals(t, kind)
            # the maximum within a minute is reached at a start inside it or at the minute's start
            probe = np.unique(np.concatenate([_ns(minutes.to_series()), s]))
            counts = _count_at(s, e, probe)
            bucket = pd.Series(counts, index=pd.to_datetime(probe, utc=True).floor("min"))
            cuts[kind] = bucket.groupby(level=0).max().reindex(minutes, fill_value=0)
        for m in minutes:
            rows.append({"minute": m, "service_name": service, "workload_type": t["workload_type"].iloc[0],
                         "tasks_billed_max": int(cuts["billed"][m]), "tasks_running_max": int(cuts["running"][m])})
    return pd.DataFrame(rows, columns=["minute", "service_name", "workload_type", "tasks_billed_max",
                                       "tasks_running_max"])


def requests_billed(contract: pd.DataFrame, lambda_rows: pd.DataFrame, tasks: pd.DataFrame) -> pd.DataFrame:
    """One row per contract line with what AWS billed for it (Lambda) or around it (ECS)."""
    base = contract[["request_id", "platform", "workload_type", "sent_at"]].copy()
    base["platform"] = base["platform"].astype(str)
    base["workload_type"] = base["workload_type"].astype(str)
    lam = lambda_rows.dropna(subset=["request_id"])[["request_id", "aws_request_id", "billed_duration_ms",
                                                     "duration_ms", "memory_size_mb", "max_memory_used_mb",
                                                     "init_duration_ms", "lambda_join"]]
    out = base.merge(lam, on="request_id", how="left")
    out["ecs_tasks_running"] = pd.array([pd.NA] * len(out), dtype="Int64")
    out["ecs_tasks_billed"] = pd.array([pd.NA] * len(out), dtype="Int64")
    for workload, t in tasks.dropna(subset=["workload_type"]).groupby("workload_type"):
        mask = (out["platform"] == "ecs") & (out["workload_type"] == workload)
        at = _ns(out.loc[mask, "sent_at"])
        for kind, col in (("running", "ecs_tasks_running"), ("billed", "ecs_tasks_billed")):
            s, e = _intervals(t, kind)
            out.loc[mask, col] = _count_at(s, e, at)
    return out


def match_rates(contract: pd.DataFrame, lambda_rows: pd.DataFrame) -> dict[str, Any]:
    """How much of each side the Lambda join accounts for."""
    from hybridopt.data.cost import FRONT_DOOR_REJECTIONS

    lam = contract[contract["platform"] == "lambda"]
    # attempts that can have invoked a function: not refused by API Gateway, not unconnected
    reached = lam[~lam["error"].astype(object).isin((*FRONT_DOOR_REJECTIONS, "connection", "client_error"))]
    matched = set(lambda_rows["request_id"].dropna())
    by = lambda_rows["lambda_join"].value_counts().to_dict()
    n_rep = len(lambda_rows)
    return {
        "contract_lambda_lines": int(len(lam)),
        "contract_lambda_lines_invoked": int(len(reached)),
        "contract_lambda_lines_matched": int(lam["request_id"].isin(matched).sum()),
        "contract_match_rate": round(float(lam["request_id"].isin(matched).mean()), 6) if len(lam) else None,
        "contract_invoked_match_rate": (round(float(reached["request_id"].isin(matched).mean()), 6)
                                        if len(reached) else None),
        "report_lines": int(n_rep),
        "report_lines_by_join": {k: int(v) for k, v in sorted(by.items())},
        "report_match_rate": round(float((lambda_rows["lambda_join"] != "none").mean()), 6) if n_rep else None,
    }


# ------------------------------------------------------------------------------------ run and load
@dataclass
class PlatformLogs:
    lambda_reports: pd.DataFrame
    ecs_tasks: pd.DataFrame
    ecs_task_count: pd.DataFrame
    requests_billed: pd.DataFrame
    summary: dict[str, Any]


def collect_platform_logs(params: "Params", logs_client: Any, data_dir: Path | None = None,
                          out_dir: Path | None = None) -> PlatformLogs:
    """Read the contract lines, fetch what CloudWatch holds for their time range, join, write."""
    from hybridopt import paths
    from hybridopt.data.ingest import ingest
    from hybridopt.infra.settings import settings

    cfg = settings(params)
    result = ingest(params, data_dir)
    contract = result.requests
    if contract.empty:
        raise PlatformLogsError(f"no request-log lines under {result.data_dir}: collect first")
    margin = pd.Timedelta(seconds=params.infra.platform_logs.fetch_margin_s)
    start, end = contract["sent_at"].min() - margin, contract["sent_at"].max() + margin
    got = fetch(logs_client, cfg, int(start.value // 1_000_000), int(end.value // 1_000_000))
    lam = join_lambda(contract, got.reports, got.request_lines, params.infra.platform_logs.time_match_window_s)
    tasks = ecs_tasks(got.task_events, cfg, end)
    count = task_count(tasks, start, end)
    billed = requests_billed(contract, lam, tasks)
    summary = {
        "written_at": datetime.now(timezone.utc).isoformat(), "profile": params.profile,
        "contract_dir": str(result.data_dir), "contract_lines": int(len(contract)),
        "fetched_from": start.isoformat(), "fetched_to": end.isoformat(), "log_groups": got.log_groups,
        "log_events_read": got.events_read, "lambda_request_id_lines": int(len(got.request_lines)),
        "ecs_task_events": len(got.task_events), "ecs_tasks": int(len(tasks)),
        "ecs_billed_task_s": {str(k): int(v) for k, v in tasks.groupby("service_name")["billed_s"].sum().items()},
        "lambda_join": match_rates(contract, lam),
        "ecs_join": {"contract_ecs_lines": int((billed["platform"] == "ecs").sum()),
                     "with_a_billed_task_at_send": int(((billed["platform"] == "ecs")
                                                        & (billed["ecs_tasks_billed"].fillna(0) > 0)).sum())},
    }
    out = PlatformLogs(lambda_reports=lam, ecs_tasks=tasks, ecs_task_count=count, requests_billed=billed,
                       summary=summary)
    write_platform_logs(out, out_dir or paths.platform_logs_dir(params))
    return out


def write_platform_logs(pl: PlatformLogs, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    pl.lambda_reports.to_parquet(out_dir / FILES["lambda"], index=False)
    pl.ecs_tasks.to_parquet(out_dir / FILES["tasks"], index=False)
    pl.ecs_task_count.to_parquet(out_dir / FILES["count"], index=False)
    pl.requests_billed.to_parquet(out_dir / FILES["requests"], index=False)
    (out_dir / FILES["summary"]).write_text(json.dumps(pl.summary, indent=2, default=str) + "\n")
    return out_dir


def load_platform_logs(source: "Params | Path") -> PlatformLogs:
    """The tables `platform-logs` wrote (a profile's params, or the folder itself)."""
    from hybridopt import paths

    d = source if isinstance(source, Path) else paths.platform_logs_dir(source)
    missing = [f for f in FILES.values() if not (d / f).is_file()]
    if missing:
        raise PlatformLogsError(f"{d}: missing {missing}: run `python -m hybridopt platform-logs --profile NAME`")
    return PlatformLogs(lambda_reports=pd.read_parquet(d / FILES["lambda"]),
                        ecs_tasks=pd.read_parquet(d / FILES["tasks"]),
                        ecs_task_count=pd.read_parquet(d / FILES["count"]),
                        requests_billed=pd.read_parquet(d / FILES["requests"]),
                        summary=json.loads((d / FILES["summary"]).read_text()))
