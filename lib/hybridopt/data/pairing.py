"""Pairs: one generated payload's Lambda attempt and ECS attempt.

- Records sharing a `pair_id` (the paired collector) pair directly: exactly one Lambda and one ECS
  attempt with the same workload, payload size, run, window and load pattern; anything else is
  counted as an anomaly and left out.
- Records without a pair_id (the legacy logs) are matched in time: a Lambda request and the ECS
  request of the same run, workload and payload size nearest in time, within params.pairing.window_s,
  each request used at most once (greedy by smallest gap).

Input: the requests frame with `cost_usd` (cost.add_costs). Output: one row per pair in the
columns of table.PAIR_COLUMNS (labels are added by labels.py) and a report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hybridopt.params import Params

_CONTEXT = ["run_id", "source", "experiment", "workload_type", "target_payload_size_kb", "time_window",
            "load_pattern", "phase", "scheduled_rate_rps"]
_SIDE = ["request_id", "sent_at", "ok", "error", "total_ms", "cost_usd", "cold_start"]
_MAX_ROUNDS = 50


def _side_frame(df: pd.DataFrame, platform: str) -> pd.DataFrame:
    return df.loc[df["platform"] == platform, _CONTEXT + _SIDE + ["pair_id"]]


def _assemble(lam: pd.DataFrame, ecs: pd.DataFrame, pairing: str, pair_ids: pd.Series) -> pd.DataFrame:
    """Pair rows from aligned Lambda and ECS frames (same length, row i pairs with row i)."""
    lam = lam.reset_index(drop=True)
    ecs = ecs.reset_index(drop=True)
    gap = (lam["sent_at"] - ecs["sent_at"]).dt.total_seconds().abs()
    def cat(col: str) -> pd.Categorical:
        return pd.Categorical(lam[col])

    def obj(side: pd.DataFrame, col: str) -> pd.Series:
        s = side[col].astype(object)
        return pd.Series(s.where(s.notna(), None).to_numpy(), dtype=object)

    out = pd.DataFrame({
        "pair_id": pd.Series(pair_ids.reset_index(drop=True).to_numpy(), dtype=object),
        "pairing": pd.Categorical([pairing] * len(lam), categories=["paired", "matched"]),
        "gap_s": gap.to_numpy(dtype=np.float64),
        "run_id": cat("run_id"),
        "source": cat("source"),
        "experiment": cat("experiment"),
        "workload_type": cat("workload_type"),
        "payload_size_kb": lam["target_payload_size_kb"].to_numpy(dtype=np.float64),
        "time_window": cat("time_window"),
        "load_pattern": cat("load_pattern"),
        "phase": cat("phase"),
        "scheduled_rate_rps": lam["scheduled_rate_rps"].to_numpy(dtype=np.float64),
        "sent_at": lam["sent_at"].where(lam["sent_at"] <= ecs["sent_at"], ecs["sent_at"]),
        "lambda_request_id": obj(lam, "request_id"),
        "ecs_request_id": obj(ecs, "request_id"),
        "lambda_ok": lam["ok"].to_numpy(dtype=bool),
        "ecs_ok": ecs["ok"].to_numpy(dtype=bool),
        "lambda_error": obj(lam, "error"),
        "ecs_error": obj(ecs, "error"),
        "lambda_latency_ms": lam["total_ms"].to_numpy(dtype=np.float64),
        "ecs_latency_ms": ecs["total_ms"].to_numpy(dtype=np.float64),
        "lambda_cost_usd": lam["cost_usd"].to_numpy(dtype=np.float64),
        "ecs_cost_usd": ecs["cost_usd"].to_numpy(dtype=np.float64),
        "lambda_cold_start": lam["cold_start"].astype("boolean").reset_index(drop=True),
    })
    return out


def _direct(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    d = df[df["pair_id"].notna()]
    lam, ecs = _side_frame(d, "lambda"), _side_frame(d, "ecs")
    counts = (d.assign(_lam=(d["platform"] == "lambda").to_numpy())
              .groupby("pair_id", sort=False).agg(n=("_lam", "size"), lam=("_lam", "sum")))
    good_ids = counts.index[(counts["n"] == 2) & (counts["lam"] == 1)]
    lam = lam[lam["pair_id"].isin(good_ids)].set_index("pair_id")
    ecs = ecs[ecs["pair_id"].isin(good_ids)].set_index("pair_id")
    ecs = ecs.loc[lam.index]
    same = lam["target_payload_size_kb"].to_numpy() == ecs["target_payload_size_kb"].to_numpy()
    for c in ("run_id", "workload_type", "time_window", "load_pattern"):  # same categories: compare codes
        same &= lam[c].cat.codes.to_numpy() == ecs[c].cat.codes.to_numpy()
    report = {
        "attempts_with_pair_id": int(len(d)),
        "pair_ids": int(len(counts)),
        "pairs": int(same.sum()),
        "pair_ids_with_one_attempt": int((counts["n"] == 1).sum()),
        "pair_ids_malformed": int(((counts["n"] == 2) & (counts["lam"] != 1)).sum() + (counts["n"] > 2).sum()),
        "pairs_with_mismatched_context": int((~same).sum()),
    }
    pairs = _assemble(lam[same], ecs[same], "paired", pd.Series(lam.index[same]))
    return pairs, report


def _matched(df: pd.DataFrame, window_s: float) -> tuple[pd.DataFrame, dict[str, Any]]:
    d = df[df["pair_id"].isna() & df["platform"].isin(("lambda", "ecs"))]
    key_cols = ["run_id", "workload_type", "target_payload_size_kb"]
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    d = d.assign(_key=d.groupby(key_cols, observed=True, sort=False).ngroup().to_numpy(),
                 _t=(d["sent_at"] - epoch).dt.total_seconds().to_numpy())
    lam_all = d[d["platform"] == "lambda"][["_key", "_t"]].reset_index().rename(columns={"index": "_li"})
    ecs_all = d[d["platform"] == "ecs"][["_key", "_t"]].reset_index().rename(columns={"index": "_ei"})
    lam_left, ecs_left = lam_all, ecs_all
    chosen_l: list[np.ndarray] = []
    chosen_e: list[np.ndarray] = []
    for _ in range(_MAX_ROUNDS):
        if lam_left.empty or ecs_left.empty:
            break
        right = ecs_left.sort_values("_t").assign(_te=lambda x: x["_t"])
        m = pd.merge_asof(lam_left.sort_values("_t"), right, on="_t", by="_key", direction="nearest",
                          tolerance=window_s)
        m = m.dropna(subset=["_ei"])
        if m.empty:
            break
        m["_gap"] = (m["_t"] - m["_te"]).abs()
        m = m.sort_values(["_gap", "_li"]).drop_duplicates("_ei", keep="first")
        chosen_l.append(m["_li"].to_numpy())
        chosen_e.append(m["_ei"].to_numpy().astype(lam_all["_li"].dtype))
        lam_left = lam_left[~lam_left["_li"].isin(m["_li"])]
        ecs_left = ecs_left[~ecs_left["_ei"].isin(m["_ei"])]
    li = np.concatenate(chosen_l) if chosen_l else np.array([], dtype=np.int64)
    ei = np.concatenate(chosen_e) if chosen_e else np.array([], dtype=np.int64)
    lam = _side_frame(d.loc[li], "lambda")
    ecs = _side_frame(d.loc[ei], "ecs")
    ids = pd.Series(["m:" + a + "|" + b for a, b in zip(lam["request_id"], ecs["request_id"])], dtype=object)
    pairs = _assemble(lam, ecs, "matched", ids)
    n_l, n_e = len(lam_all), len(ecs_all)
    gaps = pairs["gap_s"]
    report: dict[str, Any] = {
        "window_s": window_s,
        "eligible_lambda": int(n_l), "eligible_ecs": int(n_e),
        "pairs": int(len(pairs)),
        "match_rate": (2 * len(pairs) / (n_l + n_e)) if (n_l + n_e) else None,
        "match_rate_of_smaller_side": (len(pairs) / min(n_l, n_e)) if min(n_l, n_e) else None,
        "unmatched_lambda": int(n_l - len(pairs)), "unmatched_ecs": int(n_e - len(pairs)),
        "gap_s_quantiles": ({q: float(gaps.quantile(q)) for q in (0.5, 0.9, 0.99, 1.0)} if len(gaps) else {}),
        "gap_s_histogram": (np.histogram(gaps, bins=np.linspace(0, window_s, 11))[0].tolist() if len(gaps) else []),
    }
    by_cell = (pd.DataFrame({"workload_type": d["workload_type"].astype(str), "platform": d["platform"].astype(str)})
               .value_counts().rename("eligible").reset_index())
    matched_cell = pairs.groupby("workload_type").size().rename("pairs").reset_index()
    report["per_workload"] = (by_cell.pivot_table(index="workload_type", columns="platform", values="eligible",
                                                  fill_value=0).reset_index()
                              .merge(matched_cell, on="workload_type", how="left").fillna({"pairs": 0})
                              .to_dict(orient="records")) if len(d) else []
    return pairs, report


def pair(requests: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, dict[str, Any]]:
    """All pairs (direct and time-matched) and a report of how they were formed."""
    direct, r_direct = _direct(requests)
    matched, r_matched = _matched(requests, params.pairing.window_s)
    pairs = pd.concat([direct, matched], ignore_index=True) if len(matched) else direct
    pairs = pairs.sort_values(["sent_at", "pair_id"], kind="stable").reset_index(drop=True)
    return pairs, {"direct": r_direct, "matched": r_matched, "pairs": int(len(pairs))}
