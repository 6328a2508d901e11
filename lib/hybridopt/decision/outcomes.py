"""Outcome models per platform: what one request would measure on Lambda and on ECS, predicted from
what a router knows before it sends (the 14 FeatureSpec columns plus the load state at the pair's
decision time, `hybridopt.decision.load_frame`).

Per platform, three LightGBM boosters:
- `p50`, `p95`: quantile regression (alpha 0.5, 0.95) of log latency of the platform's SUCCESSFUL
  attempts (quantiles commute with monotone maps, so exp(prediction) is the latency quantile in ms;
  a predicted p95 below the predicted p50 is raised to it);
- `fail`: binary, P(the attempt does not succeed: timeout, 5xx, 413, connection, ... any non-ok).
Fixed settings (`BOOSTER_SETTINGS`, `N_TREES`), seeded and deterministic; they are not searched. Tail
quantile boosters overfit with small leaves (held-out p95 coverage falls below 0.95): on synthetic
pairs with known quantiles (tests/decision/test_outcomes.py) 31 leaves of >= 50 rows covered 0.91,
15 leaves of >= 200 rows 0.93-0.94, hence the latter.

Held-out coverage (`coverage`): the share of successful held-out attempts at or below the predicted
p50 (target 0.5) and p95 (target 0.95), and the mean predicted P(fail) beside the observed failure
rate, per platform and workload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Mapping

import hybridopt.modeling  # noqa: F401  (first: the OpenMP wait policy before LightGBM loads)
import lightgbm as lgb
import numpy as np
import pandas as pd

from hybridopt.data.contract import PLATFORMS
from hybridopt.data.features import FeatureSpec, LeakError, assert_leak_free
from hybridopt.decision.load_frame import pair_load_features
from hybridopt.decision.load_state import feature_names
from hybridopt.errors import InputError
from hybridopt.modeling.models import threads

QUANTITIES: Final = ("p50", "p95", "fail")
LATENCY_ALPHA: Final = {"p50": 0.5, "p95": 0.95}
LATENCY_TRANSFORM: Final = "log"
CONTEXT: Final = ("workload_type", "payload_size_kb", "sent_at", "time_window", "load_pattern")
#: The boosters' fixed settings (not searched; the same for every platform and quantity).
BOOSTER_SETTINGS: Final = {"learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 200,
                           "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1,
                           "lambda_l2": 1.0, "deterministic": True, "force_row_wise": True, "verbose": -1}
N_TREES: Final = 200

class OutcomeDataError(InputError):
    """The pairs cannot train an outcome model (no successful attempt of a platform, bad columns)."""


def load_columns(windows_s: tuple[float, ...]) -> list[str]:
    return list(feature_names(tuple(float(w) for w in windows_s)))


def load_requests(requests: pd.DataFrame) -> pd.DataFrame:
    """The request frame as the load-state code reads it: an unpaired attempt (no pair_id) gets an
    id of its own (it is one arrival by itself, as without one; pandas' string columns keep a
    missing id as NaN, which the load code cannot prefix), timestamps in nanoseconds (the leak
    guard shifts sends by fractions of a microsecond)."""
    out = requests.copy()
    rid = out["request_id"].astype(str)
    pid = out["pair_id"].astype(object) if "pair_id" in out else pd.Series(None, index=out.index, dtype=object)
    out["pair_id"] = pid.where(pid.notna(), "unpaired:" + rid).astype(str).to_numpy(dtype=object)
    out["sent_at"] = pd.to_datetime(out["sent_at"], utc=True).astype("datetime64[ns, UTC]")
    return out


def decision_features(pairs: pd.DataFrame, requests: pd.DataFrame, spec: FeatureSpec,
                      windows_s: tuple[float, ...], missing_completion_s: float) -> pd.DataFrame:
    """The outcome models' feature matrix, row-aligned with `pairs`: the 14 FeatureSpec columns
    (leak-guarded) followed by the load features at each pair's decision time (computed per run,
    strictly before it)."""
    missing = [c for c in (*CONTEXT, "run_id") if c not in pairs.columns]
    if missing:
        raise OutcomeDataError(f"decision features: the pairs lack columns {missing}")
    X14 = spec.frame(pairs[list(CONTEXT)])
    assert_leak_free(X14, spec)
    load = pair_load_features(pairs, load_requests(requests), tuple(float(w) for w in windows_s), missing_completion_s)
    if list(load.columns) != load_columns(windows_s):
        raise LeakError(f"load features {list(load.columns)} differ from the declared {load_columns(windows_s)}")
    X = pd.concat([X14, load.astype(np.float64)], axis=1)
    bad = [c for c in X.columns if not np.isfinite(X[c].to_numpy(dtype=np.float64)).all()]
    if bad:
        raise OutcomeDataError(f"decision features {bad} hold NaN or infinite values")
    return X.reset_index(drop=True)


def targets(pairs: pd.DataFrame, platform: str) -> tuple[np.ndarray, np.ndarray]:
    """(latency_ms, ok) of the pairs' attempts on one platform."""
    lat = pairs[f"{platform}_latency_ms"].to_numpy(dtype=np.float64)
    ok = pairs[f"{platform}_ok"].to_numpy(dtype=bool)
    return lat, ok


def latency_rows(lat: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """The attempts a latency model learns from: successful, with a positive measured latency."""
    with np.errstate(invalid="ignore"):
        return ok & np.isfinite(lat) & (lat > 0)


@dataclass
class OutcomeModels:
    """Three boosters per platform over one feature order."""
    columns: list[str]
    boosters: dict[str, dict[str, lgb.Booster]]
    trained_rows: dict[str, dict[str, int]]

    def predict(self, X: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Per platform a frame (p50_ms, p95_ms, p_fail), row-aligned with X."""
        if list(X.columns) != self.columns:
            raise OutcomeDataError(f"feature columns {list(X.columns)} differ from the models' {self.columns}")
        a = np.ascontiguousarray(X.to_numpy(dtype=np.float64))
        out: dict[str, pd.DataFrame] = {}
        for p, b in self.boosters.items():
            p50 = np.exp(b["p50"].predict(a))
            p95 = np.maximum(np.exp(b["p95"].predict(a)), p50)
            out[p] = pd.DataFrame({"p50_ms": p50, "p95_ms": p95, "p_fail": np.clip(b["fail"].predict(a), 0.0, 1.0)},
                                  index=X.index)
        return out


def _train(params: Mapping[str, object], X: np.ndarray, y: np.ndarray, names: list[str]) -> lgb.Booster:
    return lgb.train(dict(params), lgb.Dataset(X, y, feature_name=names, free_raw_data=True), N_TREES)


def fit_outcomes(X: pd.DataFrame, pairs: pd.DataFrame, seed: int, n_jobs: int = 2) -> OutcomeModels:
    """Fit the three boosters of each platform on the pairs' measured outcomes."""
    if len(X) != len(pairs):
        raise OutcomeDataError(f"{len(X)} feature rows for {len(pairs)} pairs")
    names = list(X.columns)
    a = np.ascontiguousarray(X.to_numpy(dtype=np.float64))
    base = {**BOOSTER_SETTINGS, "seed": seed, "num_threads": threads(len(pairs), n_jobs)}
    boosters: dict[str, dict[str, lgb.Booster]] = {}
    rows: dict[str, dict[str, int]] = {}
    for p in PLATFORMS:
        lat, ok = targets(pairs, p)
        use = latency_rows(lat, ok)
        if not use.any():
            raise OutcomeDataError(f"no successful {p} attempt with a latency among {len(pairs):,} pairs: "
                                   "its latency models cannot be fitted")
        boosters[p] = {}
        for q, alpha in LATENCY_ALPHA.items():
            boosters[p][q] = _train({**base, "objective": "quantile", "alpha": alpha}, a[use], np.log(lat[use]), names)
        boosters[p]["fail"] = _train({**base, "objective": "binary"}, a, (~ok).astype(np.float64), names)
        rows[p] = {"latency": int(use.sum()), "fail": int(len(ok)), "failed": int((~ok).sum())}
    return OutcomeModels(names, boosters, rows)


def coverage(pairs: pd.DataFrame, preds: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per platform and workload (and 'all'): successful attempts with a latency, the share at or
    below the predicted p50 and p95, attempts, observed failure rate and mean predicted P(fail)."""
    work = pairs["workload_type"].astype(str).to_numpy(dtype=object)
    rows = []
    for p, pr in preds.items():
        lat, ok = targets(pairs, p)
        use = latency_rows(lat, ok)
        with np.errstate(invalid="ignore"):
            le50 = lat <= pr["p50_ms"].to_numpy()
            le95 = lat <= pr["p95_ms"].to_numpy()
        pf = pr["p_fail"].to_numpy()
        for w in [*sorted(set(work)), "all"]:
            m = np.ones(len(work), dtype=bool) if w == "all" else work == w
            mu = m & use
            rows.append({"platform": p, "workload_type": w, "n_attempts": int(m.sum()), "n_ok_with_latency": int(mu.sum()),
                         "p50_coverage": float(le50[mu].mean()) if mu.any() else np.nan,
                         "p95_coverage": float(le95[mu].mean()) if mu.any() else np.nan,
                         "failure_rate": float((~ok[m]).mean()) if m.any() else np.nan,
                         "mean_predicted_p_fail": float(pf[m].mean()) if m.any() else np.nan})
    return pd.DataFrame(rows)
