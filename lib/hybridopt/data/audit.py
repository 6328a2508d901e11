"""Audit of ingested request logs: what arrived, what is missing, what cannot be trusted.

`audit(result, params)` returns a JSON-ready dict (written as audit.json); `tables(audit)` turns
its sections into DataFrames for the EDA notebook. Findings are plain sentences a supervisor reads
first."""

from __future__ import annotations

import math

from typing import Any

import numpy as np
import pandas as pd

from hybridopt.data import contract
from hybridopt.data.ingest import IngestResult
from hybridopt.params import Params

#: The legacy collection: one Artillery scenario per (platform, workload), 8 of equal weight.
LEGACY_DESIGN = "one platform per request: 8 equal-weight scenarios (platform x workload)"
PAIRED_DESIGN = "paired: every generated payload sent to both platforms"


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = df.replace({np.nan: None}).to_dict(orient="records")
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in out]


def _lines(result: IngestResult) -> dict[str, Any]:
    d = result.ledger.as_dict()
    d["files"] = result.files
    d["unreadable"] = result.unreadable
    return d


def _cells(df: pd.DataFrame) -> list[dict[str, Any]]:
    g = (df.groupby(["run_id", "platform", "workload_type", "target_payload_size_kb"], observed=True)
         .agg(rows=("ok", "size"), ok=("ok", "sum")).reset_index())
    g["failed"] = g["rows"] - g["ok"]
    return _records(g.rename(columns={"target_payload_size_kb": "payload_size_kb"}))


def _status(df: pd.DataFrame) -> list[dict[str, Any]]:
    s = df[["platform", "http_status", "error"]].copy()
    s["http_status"] = s["http_status"].astype("float64")
    s["error"] = s["error"].astype(object).fillna("none")
    g = s.groupby(["platform", "http_status", "error"], observed=True, dropna=False).size()
    return _records(g.rename("rows").reset_index())


def _coverage(df: pd.DataFrame, result: IngestResult, params: Params) -> dict[str, Any]:
    """Expected share of each platform under the collection design vs what arrived."""
    manifests = {m.get("run_id"): m for m in result.manifests if m.get("run_id")}
    runs: list[dict[str, Any]] = []
    cells: list[dict[str, Any]] = []
    n_workloads = len(params.workloads)
    for run_id, run in df.groupby("run_id", observed=True):
        paired = run["pair_id"].notna().any()
        known = run[run["platform"].isin(contract.PLATFORMS)]
        arrived = int(len(run))
        manifest = manifests.get(run_id, {})
        if paired:
            n_pairs = int(run["pair_id"].nunique())
            expected = 2 * n_pairs
            method = "2 attempts per logged pair_id"
            if manifest.get("attempts_made") is not None:
                expected = int(manifest["attempts_made"])
                method = "attempts Artillery made (collection manifest)"
            duration_s = None
        else:
            lp = params.load_patterns.get(str(run["load_pattern"].iloc[0]))
            t = run["sent_at"]
            duration_s = float((t.max() - t.min()).total_seconds())
            # every logged arrival marks one request; the schedule says how many were sent
            expected = lp.arrivals_until(duration_s) if lp is not None else float("nan")
            method = (f"load pattern schedule over the logged span ({duration_s:.0f} s): "
                      f"{expected:.0f} requests")
        shares = {"lambda": 0.5, "ecs": 0.5}
        for platform in sorted(contract.PLATFORMS):
            got = int((known["platform"] == platform).sum())
            exp = expected * shares[platform]
            runs.append({
                "run_id": run_id, "design": PAIRED_DESIGN if paired else LEGACY_DESIGN, "platform": platform,
                "expected_share": shares[platform], "arrived_share": got / arrived if arrived else None,
                "expected_attempts": round(exp, 1), "arrived": got,
                "unlogged_est": round(exp - got, 1),
                "unlogged_share_est": (1 - got / exp) if exp else None, "method": method,
                "unknown_platform_rows": int((run["platform"] == contract.LEGACY_UNKNOWN_PLATFORM).sum()),
                "logged_span_s": duration_s,
            })
            for workload in params.workloads:
                of_w = known["workload_type"] == workload
                got_c = int(((known["platform"] == platform) & of_w).sum())
                if paired:
                    # each logged pair of this workload should have one line on every platform
                    exp_c = float(known.loc[of_w, "pair_id"].nunique())
                else:
                    exp_c = exp / n_workloads
                # the design spreads a run's requests over the workloads at random: a deficit within three
                # binomial standard errors is the draw, not lost lines (exact for pairs: no noise)
                noise = 0.0 if paired else 3.0 * math.sqrt(exp_c * (1 - 1 / n_workloads))
                cells.append({"run_id": run_id, "platform": platform, "workload_type": workload,
                              "expected_attempts": round(exp_c, 1), "arrived": got_c,
                              "unlogged_share_est": (1 - got_c / exp_c) if exp_c else None,
                              "beyond_noise": bool(exp_c - got_c > noise)})
    return {"runs": runs, "cells": cells}


def _payload_sizes(df: pd.DataFrame, params: Params) -> list[dict[str, Any]]:
    out = []
    for w, cfg in params.workloads.items():
        seen = sorted(df.loc[df["workload_type"] == w, "target_payload_size_kb"].dropna().unique().tolist())
        out.append({"workload_type": w, "unique_sizes": len(seen), "sizes_kb": seen,
                    "configured_kb": cfg.payload_sizes_kb,
                    "missing_kb": sorted(set(cfg.payload_sizes_kb) - set(seen)),
                    "unexpected_kb": sorted(set(seen) - set(cfg.payload_sizes_kb))})
    return out


def _clock(df: pd.DataFrame, params: Params) -> list[dict[str, Any]]:
    """hour_of_day (profile timezone) vs the time window each row claims."""
    local_hour = df["sent_at"].dt.tz_convert(params.timezone).dt.hour
    out = []
    frame = pd.DataFrame({"run_id": df["run_id"], "time_window": df["time_window"], "hour": local_hour})
    for (run_id, tw), g in frame.groupby(["run_id", "time_window"], observed=True):
        win = params.time_windows[str(tw)]
        end = win.end_hour + params.audit.hour_slack_h
        hours = g["hour"].to_numpy()
        ok = ((hours >= win.start_hour) & (hours < end)) | ((end > 24) & (hours < end - 24))
        share = float(ok.mean())
        out.append({"run_id": run_id, "time_window": str(tw),
                    "window_local_hours": f"{win.start_hour:02d}:00-{win.end_hour:02d}:00 {params.timezone}",
                    "observed_local_hours": {int(h): int(c) for h, c in
                                             pd.Series(hours).value_counts().sort_index().items()},
                    "consistent_share": share,
                    "pass": share >= params.audit.min_consistent_share})
    return out


def _constant_columns(df: pd.DataFrame) -> list[dict[str, Any]]:
    cols = list(contract.COLUMNS)
    known = df[df["platform"].isin(contract.PLATFORMS)]
    counts = {"all": df[cols].nunique(dropna=True)}
    if len(known):
        per = known.groupby("platform", observed=True)[cols].nunique(dropna=True)
        counts.update({str(p): row for p, row in per.iterrows()})
    out = []
    for scope, n_unique in counts.items():
        g = df if scope == "all" else known[known["platform"] == scope]
        for c in cols:
            if n_unique[c] <= 1:
                value = None if n_unique[c] == 0 else g[c].dropna().iloc[0]
                out.append({"scope": scope, "column": c,
                            "value": value.item() if isinstance(value, np.generic) else
                            (str(value) if value is not None else None),
                            "all_null": bool(n_unique[c] == 0)})
    return out


def _missing(df: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for platform, g in df.groupby("platform", observed=True):
        na = g[list(contract.COLUMNS)].isna().mean()
        rows += [{"platform": str(platform), "column": c, "missing_share": float(v)} for c, v in na.items()]
    return rows


def _duplicates(df: pd.DataFrame, result: IngestResult) -> dict[str, Any]:
    dup_ids = int(result.ledger.quarantine_reasons.get("duplicate_request_id", 0))
    with_pair = df[df["pair_id"].notna()]
    counts = (with_pair.assign(_lam=(with_pair["platform"] == "lambda").to_numpy())
              .groupby("pair_id", sort=False).agg(n=("_lam", "size"), lam=("_lam", "sum")))
    counts["platforms"] = (counts["lam"] > 0).astype(int) + (counts["lam"] < counts["n"]).astype(int)
    return {"duplicate_request_ids_quarantined": dup_ids,
            "pair_ids_with_more_than_two_attempts": int((counts["n"] > 2).sum()),
            "pair_ids_with_one_platform_twice": int(((counts["n"] == 2) & (counts["platforms"] < 2)).sum()),
            "pair_ids_with_one_attempt": int((counts["n"] == 1).sum())}


def _client_timeouts_s(result: IngestResult, params: Params) -> dict[str, float]:
    """The load generator's response timeout per run: the collection manifest's `http_timeout_s`
    where one was written, else params.audit.client_timeout_s (legacy logs carry no manifest)."""
    return {str(m["run_id"]): float(m["http_timeout_s"]) for m in result.manifests
            if m.get("run_id") and isinstance(m.get("http_timeout_s"), (int, float))}


def _latency_ceiling(df: pd.DataFrame, result: IngestResult, params: Params) -> list[dict[str, Any]]:
    per_run = _client_timeouts_s(result, params)
    timeout_ms = (df["run_id"].astype(str).map(per_run).astype("float64")
                  .fillna(params.audit.client_timeout_s) * 1000.0)
    rows = []
    ok_mask = df["ok"] & df["platform"].isin(contract.PLATFORMS)
    ok = df[ok_mask].assign(_timeout_ms=timeout_ms[ok_mask])
    for (platform, w), g in ok.groupby(["platform", "workload_type"], observed=True):
        x = g["total_ms"].dropna()
        if x.empty:
            continue
        t_ms = float(g["_timeout_ms"].max())
        rows.append({"platform": str(platform), "workload_type": str(w), "rows": int(len(x)),
                     "client_timeout_s": t_ms / 1000.0,
                     "p50_ms": float(x.quantile(0.5)), "p99_ms": float(x.quantile(0.99)),
                     "max_ms": float(x.max()),
                     "share_above_90pct_of_timeout": float((x >= 0.9 * t_ms).mean()),
                     "censored_at_client_timeout": bool(x.max() >= 0.95 * t_ms)})
    return rows


def _generator(result: IngestResult) -> list[dict[str, Any]]:
    out = []
    for m in result.manifests:
        gen = m.get("generator") or {}
        out.append({"run_id": m.get("run_id"), "status": m.get("status"),
                    "attempts_made": m.get("attempts_made"), "lines_written": m.get("lines_written"),
                    "lines_match_attempts": (m.get("attempts_made") == m.get("lines_written")
                                             if m.get("attempts_made") is not None else None),
                    "cpu_pct_p95": gen.get("cpu_pct_p95"), "event_loop_lag_ms_p99": gen.get("event_loop_lag_ms_p99"),
                    "saturated": gen.get("saturated"), "reason": gen.get("reason")})
    return out


def is_probe(df: pd.DataFrame) -> pd.Series:
    """Rows of the network probe a collection sends before each window (phase `contract.PROBE_PHASE`)."""
    if "phase" not in df:
        return pd.Series(False, index=df.index)
    return df["phase"].astype("string").eq(contract.PROBE_PHASE).fillna(False).astype(bool)


def _probe(df: pd.DataFrame) -> dict[str, Any]:
    """The probe rows: kept in the requests table, left out of pairs, training table and gates."""
    probe = df[is_probe(df)]
    by_run = probe.groupby(probe["run_id"].astype(str)).size()
    return {"phase": contract.PROBE_PHASE, "requests": int(len(probe)),
            "by_run": {str(k): int(v) for k, v in by_run.items()},
            "by_platform": {str(k): int(v) for k, v in probe.groupby(probe["platform"].astype(str)).size().items()}}


def _findings(a: dict[str, Any], params: Params) -> list[str]:
    f: list[str] = []
    lines = a["lines"]
    f.append(f"{lines['lines_total']:,} input lines: {lines['kept']:,} kept, {lines['repaired']:,} repaired, "
             f"{lines['quarantined']:,} quarantined ({lines['accounted_for_pct']:.1f} % accounted for).")
    for r, n in list(lines["repairs"].items())[:5]:
        f.append(f"Repaired {n:,} lines: {r}.")
    for r, n in list(lines["quarantine_reasons"].items())[:5]:
        f.append(f"Quarantined {n:,} lines: {r}.")
    pr = a.get("probe") or {}
    if pr.get("requests"):
        f.append(f"{pr['requests']:,} requests of the network probe (phase {pr['phase']!r}, {len(pr['by_run'])} run(s)): "
                 "kept in the requests table, left out of the pairs, the training table and the gates.")
    if lines["unreadable"]:
        f.append(f"{len(lines['unreadable'])} log file(s) or folder(s) could not be read: "
                 + "; ".join(f"{u['file']} ({u['error']})" for u in lines["unreadable"][:5]) + ".")
    if not lines["files"]:
        f.append("No request log (*.jsonl) was found in the data folder.")
    elif lines["lines_total"] == 0:
        f.append("The request logs hold no line.")
    elif lines["kept"] + lines["repaired"] == 0:
        f.append("No line is a usable request: every line was quarantined.")
    legacy_runs = {r["run_id"] for r in a["coverage"]["runs"] if r["design"] == LEGACY_DESIGN}
    if legacy_runs:
        f.append(f"{len(legacy_runs)} run(s) sent each request to ONE platform: no pairs; labels need time matching.")
    worst = sorted((c for c in a["coverage"]["cells"]
                    if c["unlogged_share_est"] is not None and c.get("beyond_noise", True)),
                   key=lambda c: -c["unlogged_share_est"])[:3]
    for c in worst:
        if c["unlogged_share_est"] > 0.2:
            f.append(f"{c['run_id']}: {c['platform']} {c['workload_type']}: {c['arrived']:,} rows of "
                     f"~{c['expected_attempts']:,.0f} expected ({100 * c['unlogged_share_est']:.0f} % unlogged).")
    unknown = sum(r["unknown_platform_rows"] for r in a["coverage"]["runs"]) // 2
    if unknown:
        f.append(f"{unknown} failed rows name no platform (legacy unknown_* files): counted, never paired.")
    for c in a["clock"]:
        if not c["pass"]:
            f.append(f"{c['run_id']}: time_window {c['time_window']} ({c['window_local_hours']}) but local hours "
                     f"{sorted(c['observed_local_hours'])}: only {100 * c['consistent_share']:.0f} % consistent.")
    for p in a["payload_sizes"]:
        if p["missing_kb"] or p["unexpected_kb"]:
            f.append(f"{p['workload_type']}: payload sizes {p['sizes_kb']} vs configured {p['configured_kb']}.")
    missing_tw = sorted(set(params.time_windows) - set(a["present"]["time_windows"]))
    missing_lp = sorted(set(params.load_patterns) - set(a["present"]["load_patterns"]))
    if missing_tw:
        f.append(f"Time windows never collected: {missing_tw}.")
    if missing_lp:
        f.append(f"Load patterns never collected: {missing_lp}.")
    censored = [c for c in a["latency_ceiling"] if c["censored_at_client_timeout"]]
    if censored:
        timeouts = ", ".join(sorted({f"{c['client_timeout_s']:g} s" for c in censored}))
        f.append(f"{len(censored)} platform x workload cells reach the client timeout ({timeouts}): slower "
                 "responses end as timeouts (or were never logged), so successful latencies are censored there.")
    for g in a["generator"]:
        if g.get("saturated"):
            f.append(f"{g['run_id']}: load generator saturated ({g.get('reason')}).")
        if g.get("lines_match_attempts") is False:
            f.append(f"{g['run_id']}: {g['lines_written']} lines for {g['attempts_made']} attempts.")
    return f


def audit(result: IngestResult, params: Params) -> dict[str, Any]:
    df = result.requests
    a: dict[str, Any] = {
        "profile": params.profile,
        "data_dir": str(result.data_dir),
        "input_hash": result.input_hash,
        "timezone": params.timezone,
        "lines": _lines(result),
        "present": {
            "runs": sorted(df["run_id"].dropna().astype(str).unique().tolist()),
            "platforms": sorted(df["platform"].dropna().astype(str).unique().tolist()),
            "time_windows": sorted(df["time_window"].dropna().astype(str).unique().tolist()),
            "load_patterns": sorted(df["load_pattern"].dropna().astype(str).unique().tolist()),
            "sources": sorted(df["source"].dropna().astype(str).unique().tolist()),
        },
        "cells": _cells(df),
        "status": _status(df),
        "coverage": _coverage(df, result, params),
        "payload_sizes": _payload_sizes(df, params),
        "clock": _clock(df, params),
        "constant_columns": _constant_columns(df),
        "missing": _missing(df),
        "duplicates": _duplicates(df, result),
        "latency_ceiling": _latency_ceiling(df, result, params),
        "generator": _generator(result),
        "probe": _probe(df),
    }
    a["findings"] = _findings(a, params)
    return a
