"""The bill's numpy and plain-Python paths give the numbers pandas' groupby formulations gave (the
crossover map bills hundreds of one-minute runs, where pandas' fixed cost per call dominated).
Each reference below is the pandas formulation the bill used before, on inputs small (the plain
Python path) and large (the pandas path), with several sessions, NaN and ties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hybridopt.decision import bill as billing
from hybridopt.decision import capacity as cap

SESSIONS = ["run-b", "run-a", "run-c-2", "run-c-10"]
WORKLOADS = ["thumbnail_processing", "lightweight_api", "heavy_processing"]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = pd.Timestamp("2025-11-24T10:40:00Z")
    offset_s = np.round(rng.uniform(0, 7200, n), 1)          # rounded: ties in start times
    sent = pd.Series(base + pd.to_timedelta(offset_s, unit="s")).dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    total = rng.uniform(5, 9000, n)
    total[rng.random(n) < 0.1] = np.nan                      # no response: completes at the timeout
    return pd.DataFrame({"run_id": rng.choice(SESSIONS, n), "workload_type": rng.choice(WORKLOADS, n),
                         "sent_at": sent, "total_ms": total})


def _spans_reference(requests: pd.DataFrame, missing_completion_s: float) -> list[cap.Span]:
    t0 = cap.seconds(requests["sent_at"])
    total_s = requests["total_ms"].astype("float64").to_numpy() / 1000.0
    t1 = t0 + np.where(np.isfinite(total_s), total_s, missing_completion_s)
    g = pd.DataFrame({"s": requests["run_id"].astype(str).to_numpy(), "t0": t0, "t1": t1}).groupby("s")
    agg = g.agg(a=("t0", "min"), b=("t1", "max")).sort_values(["a", "b"])
    return [cap.Span(str(s), float(r.a), float(r.b)) for s, r in agg.iterrows()]


@pytest.mark.parametrize("n,seed", [(1, 0), (40, 1), (1500, 2), (6000, 3)])
def test_session_spans_match_pandas_groupby(n: int, seed: int) -> None:
    df = _frame(n, seed)
    assert cap.session_spans(df, 10.0) == _spans_reference(df, 10.0)


def test_session_spans_order_ties_by_name() -> None:
    df = pd.DataFrame({"run_id": ["z", "m", "a"], "sent_at": ["2025-11-24T10:00:00.000+00:00"] * 3,
                       "total_ms": [1000.0, 1000.0, 1000.0]})
    assert [s.session for s in cap.session_spans(df, 10.0)] == ["a", "m", "z"] == \
        [s.session for s in _spans_reference(df, 10.0)]


@pytest.mark.parametrize("n,seed", [(1, 0), (50, 4), (1999, 5), (2001, 6), (9000, 7)])
def test_groups_and_sums_match_pandas_groupby(n: int, seed: int) -> None:
    df = _frame(n, seed)
    rng = np.random.default_rng(seed)
    values = rng.exponential(0.3, n)
    values[rng.random(n) < 0.05] = np.nan
    flags = rng.random(n) < 0.7
    ref = pd.DataFrame({"session": df["run_id"], "workload": df["workload_type"], "v": values, "f": flags}
                       ).groupby(["session", "workload"], sort=True)
    got = billing._groups(df["run_id"], df["workload_type"])
    assert [k for k, _ in got] == [k for k, _ in ref]
    for (key, at), (_, part) in zip(got, ref):
        assert billing._nansum(values, at) == part["v"].sum(), key
        assert billing._nansum(flags, at) == part["f"].sum(), key


def _alb_reference(t0: np.ndarray, t1: np.ndarray, gb: np.ndarray, hours: list[int], gb_per_lcu: float) -> pd.DataFrame:
    t1 = np.maximum(t1, t0)
    h = np.floor(t0 / 3600.0).astype(np.int64)
    out = pd.DataFrame({"hour": np.asarray(sorted(hours), dtype=np.int64)}).set_index("hour")
    out["new_connections"] = pd.Series(h).value_counts().reindex(out.index, fill_value=0).astype(float)
    out["processed_gb"] = pd.Series(gb).groupby(h).sum().reindex(out.index, fill_value=0.0)
    m0, m1 = np.floor(t0 / 60.0).astype(np.int64), np.floor(t1 / 60.0).astype(np.int64)
    lo, hi = int(m0.min()), int(m1.max())
    diff = np.zeros(hi - lo + 2, dtype=np.int64)
    np.add.at(diff, m0 - lo, 1)
    np.add.at(diff, m1 - lo + 1, -1)
    sums = pd.Series(np.cumsum(diff)[:-1]).groupby(np.arange(lo, hi + 1) // 60).sum()
    out["active_connections_per_min"] = sums.reindex(out.index, fill_value=0).to_numpy(dtype=np.float64) / 60.0
    out["lcu_new_connections"] = out["new_connections"] / 3600.0 / billing.LCU_NEW_CONNECTIONS_PER_S
    out["lcu_active_connections"] = out["active_connections_per_min"] / billing.LCU_ACTIVE_CONNECTIONS_PER_MIN
    out["lcu_processed_bytes"] = out["processed_gb"] / gb_per_lcu
    extra = max(0, billing.ALB_RULES_PER_REQUEST - billing.ALB_FREE_RULES)
    out["lcu_rule_evaluations"] = out["new_connections"] * extra / 3600.0 / billing.LCU_RULE_EVALUATIONS_PER_S
    dims = ["lcu_new_connections", "lcu_active_connections", "lcu_processed_bytes", "lcu_rule_evaluations"]
    out["lcu"] = out[dims].max(axis=1)
    out["binding"] = out[dims].idxmax(axis=1).str.removeprefix("lcu_")
    return out.reset_index()


@pytest.mark.parametrize("n,seed", [(1, 0), (300, 8), (1999, 9), (2500, 10), (20000, 11)])
def test_alb_hourly_matches_the_pandas_formulation(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t0 = 1_764_000_000.0 + rng.uniform(0, 3 * 3600, n)
    t1 = t0 + rng.uniform(-1, 40, n)                                  # a few end before they start
    gb = rng.exponential(1e-3, n)
    gb[rng.random(n) < 0.05] = np.nan                                 # NaN: skipped by the sum
    hours = sorted(set(np.floor(t0 / 3600.0).astype(int).tolist()) | {int(t0.min() // 3600) + 5})
    got = billing.alb_hourly(t0, t1, gb, hours, 1.0)
    ref = _alb_reference(t0, t1, gb, hours, 1.0)
    assert list(got.columns) == list(ref.columns)
    assert got.to_dict(orient="records") == ref.to_dict(orient="records")
