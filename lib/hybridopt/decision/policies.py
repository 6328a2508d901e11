"""Routing policies on pairs: each gives one boolean per pair (True = send to Lambda).

- `always_lambda`, `always_ecs`;
- `workload_rule`: per workload, the platform with the better measured objective on the training
  pairs (`policy_score` of sending all of them there); `lookup_table`: the same per (workload,
  payload size), falling back to the workload rule for a cell the training pairs lack;
- `classifier@0.5`, `classifier@best`: the plan's served classifier family (04_train's choice and
  settings, else LightGBM with the plan's settings) fitted on the training pairs' label, routing at
  P(lambda) >= 0.5, or at the threshold whose routing of the training pairs (out-of-fold
  probabilities, leave one training session out) scores best under the objective;
- `objective` and `objective:<setting>`: the outcome models' predictions and the marginal cost at the
  pair's load state, chosen by `Objective.choose` (the router's own code);
- `oracle` and `oracle:<setting>`: `Objective.oracle` on the pair's two measured outcomes.

Measured marginal cost of an attempt (`PairOutcomes.cost_usd`): Lambda, the attempt's billed cost
(its billed duration x memory, request and API Gateway charges, the pair table's
`lambda_cost_usd`); ECS, `MarginalCost.ecs_usd` at the pair's logged load state (the ALB bytes,
plus task-seconds above capacity when the service autoscales).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Final, Mapping, Protocol

import numpy as np
import pandas as pd

from hybridopt.data.contract import PLATFORMS
from hybridopt.decision.objective import MarginalCost, Measured, Objective, Prediction
from hybridopt.decision.outcomes import OutcomeModels, fit_outcomes
from hybridopt.errors import InputError
from hybridopt.params import Params

STATIC: Final = ("always_lambda", "always_ecs", "workload_rule", "lookup_table")
CLASSIFIER: Final = ("classifier@0.5", "classifier@best")
THRESHOLDS: Final = tuple(round(float(t), 2) for t in np.linspace(0.05, 0.95, 19))
P95_SHARE: Final = 0.05       # p95 <= SLO  <=>  at most 5 % of the successful attempts are slower
#: slo_cheapest scores compare the excess at this resolution (a tenth of a percent of the pairs, a
#: tenth of the finest allowance): smaller differences are ties, decided by the cost.
EXCESS_RESOLUTION: Final = 0.001


class PolicyError(InputError):
    """A policy cannot be built from these inputs (an SLO missing for a workload, ...)."""


# ------------------------------------------------------------------------------------ objectives
def objectives(params: Params) -> dict[str, Objective]:
    """The default objective and one per params decision.settings entry (name -> Objective)."""
    o = params.decision.objective
    default = Objective(kind=o.kind, slo_p95_ms=dict(o.slo_p95_ms), max_failure=o.max_failure,
                        value_of_time_usd_per_s=o.value_of_time_usd_per_s, failure_penalty_s=o.failure_penalty_s,
                        latency_quantile=o.latency_quantile, name="default")
    out = {"default": default}
    for s in params.decision.settings:
        if s.name in out:
            raise PolicyError(f"params decision.settings: the name {s.name!r} is used twice (or is 'default')")
        out[s.name] = replace(default, name=s.name, kind=s.kind or default.kind,
                              slo_p95_ms={w: v * s.slo_scale for w, v in default.slo_p95_ms.items()},
                              max_failure=default.max_failure if s.max_failure is None else s.max_failure,
                              value_of_time_usd_per_s=(default.value_of_time_usd_per_s
                                                       if s.value_of_time_usd_per_s is None else s.value_of_time_usd_per_s),
                              latency_quantile=s.latency_quantile or default.latency_quantile)
    return out


def check_slos(objective: Objective, workloads: np.ndarray) -> None:
    missing = sorted(set(map(str, workloads)) - set(objective.slo_p95_ms))
    if missing:
        raise PolicyError(f"params decision.objective.slo_p95_ms has no SLO for workloads {missing} "
                          f"(it has {sorted(objective.slo_p95_ms)})")


# ------------------------------------------------------------------------------ measured outcomes
@dataclass(frozen=True)
class PairOutcomes:
    """What each pair measured on both platforms (arrays row-aligned with the pairs)."""
    workload: np.ndarray
    payload_kb: np.ndarray
    latency_ms: Mapping[str, np.ndarray]     # NaN: no response
    ok: Mapping[str, np.ndarray]
    cost_usd: Mapping[str, np.ndarray]       # marginal cost of the attempt

    def __len__(self) -> int:
        return len(self.workload)

    def subset(self, mask: np.ndarray) -> "PairOutcomes":
        return PairOutcomes(self.workload[mask], self.payload_kb[mask],
                            {p: v[mask] for p, v in self.latency_ms.items()}, {p: v[mask] for p, v in self.ok.items()},
                            {p: v[mask] for p, v in self.cost_usd.items()})

    def chosen(self, to_lambda: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(latency_ms, ok, cost_usd) of the attempts a policy chose."""
        t = np.asarray(to_lambda, dtype=bool)
        return (np.where(t, self.latency_ms["lambda"], self.latency_ms["ecs"]),
                np.where(t, self.ok["lambda"], self.ok["ecs"]),
                np.where(t, self.cost_usd["lambda"], self.cost_usd["ecs"]))


def _per_cell(keys: pd.DataFrame, fn: Callable[..., float]) -> np.ndarray:
    """fn(*row) evaluated once per distinct row of `keys`, broadcast back to every row."""
    uniq = keys.drop_duplicates()
    vals = {tuple(r): float(fn(*r)) for r in uniq.itertuples(index=False, name=None)}
    return np.fromiter((vals[tuple(r)] for r in keys.itertuples(index=False, name=None)), dtype=np.float64,
                       count=len(keys))


def marginal_costs(mc: MarginalCost, workload: np.ndarray, payload_kb: np.ndarray,
                   workload_in_flight_ecs: np.ndarray) -> dict[str, np.ndarray]:
    """MarginalCost per platform for each request (Lambda from its fitted billed-ms table)."""
    keys = pd.DataFrame({"w": workload.astype(str), "p": payload_kb.astype(float)})
    cap = np.array([mc.ecs_capacity.get(w, 0) for w in keys["w"]], dtype=np.float64)
    full = pd.DataFrame({"w": keys["w"], "p": keys["p"], "f": np.where(workload_in_flight_ecs >= cap, cap, 0.0)})
    return {"lambda": _per_cell(keys, mc.lambda_usd), "ecs": _per_cell(full, mc.ecs_usd)}


def measured_outcomes(pairs: pd.DataFrame, workload_in_flight_ecs: np.ndarray, mc: MarginalCost) -> PairOutcomes:
    work = pairs["workload_type"].astype(str).to_numpy(dtype=object)
    payload = pairs["payload_size_kb"].to_numpy(dtype=np.float64)
    lam_billed = pairs["lambda_cost_usd"].to_numpy(dtype=np.float64)
    ecs = marginal_costs(mc, work, payload, np.asarray(workload_in_flight_ecs, dtype=np.float64))["ecs"]
    return PairOutcomes(work, payload,
                        {p: pairs[f"{p}_latency_ms"].to_numpy(dtype=np.float64) for p in PLATFORMS},
                        {p: pairs[f"{p}_ok"].to_numpy(dtype=bool) for p in PLATFORMS},
                        {"lambda": np.nan_to_num(lam_billed, nan=0.0), "ecs": ecs})


# ---------------------------------------------------------------------------- objective and oracle
def objective_choice(objective: Objective, workload: np.ndarray, preds: Mapping[str, pd.DataFrame],
                     pred_cost: Mapping[str, np.ndarray]) -> np.ndarray:
    """Objective.choose per pair from predicted outcomes and marginal costs."""
    cols = {p: (preds[p]["p50_ms"].to_numpy(), preds[p]["p95_ms"].to_numpy(), preds[p]["p_fail"].to_numpy(),
                pred_cost[p]) for p in PLATFORMS}
    lam, ecs = cols["lambda"], cols["ecs"]
    out = np.empty(len(workload), dtype=bool)
    for i, w in enumerate(workload):
        out[i] = objective.choose(w, {"lambda": Prediction(lam[0][i], lam[1][i], lam[2][i], lam[3][i]),
                                      "ecs": Prediction(ecs[0][i], ecs[1][i], ecs[2][i], ecs[3][i])}) == "lambda"
    return out


def oracle_choice(objective: Objective, out: PairOutcomes) -> np.ndarray:
    """Objective.oracle per pair from the two measured outcomes."""
    def measured(p: str) -> list[Measured]:
        lat, ok, c = out.latency_ms[p], out.ok[p], out.cost_usd[p]
        return [Measured(None if not np.isfinite(a) else float(a), bool(b), float(x)) for a, b, x in zip(lat, ok, c)]

    lam, ecs = measured("lambda"), measured("ecs")
    return np.fromiter((objective.oracle(w, {"lambda": a, "ecs": b}) == "lambda"
                        for w, a, b in zip(out.workload, lam, ecs)), dtype=bool, count=len(out))


def measured_objective_usd(objective: Objective, lat: np.ndarray, ok: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Objective.measured_usd of each chosen attempt, vectorised (a missing latency counts 0 ms)."""
    vot = objective.value_of_time_usd_per_s
    return cost + vot * np.nan_to_num(lat, nan=0.0) / 1000.0 + np.where(ok, 0.0, vot * objective.failure_penalty_s)


def policy_score(objective: Objective, out: PairOutcomes, to_lambda: np.ndarray) -> tuple[float, float]:
    """How well routing these pairs by `to_lambda` meets the objective (lower is better, compared as
    a tuple). weighted: (0, mean measured objective dollars). slo_cheapest: (excess, mean marginal
    cost), excess = sum over workloads of their pair share x (share of successful attempts slower
    than the SLO beyond 5 % + failure rate beyond max_failure), at EXCESS_RESOLUTION: zero when
    every workload's p95 meets its SLO and its failures stay within the allowance, then the cheapest."""
    lat, ok, cost = out.chosen(to_lambda)
    if len(lat) == 0:
        return (0.0, 0.0)
    if objective.kind == "weighted":
        return (0.0, float(measured_objective_usd(objective, lat, ok, cost).mean()))
    excess = 0.0
    for w in np.unique(out.workload):
        m = out.workload == w
        okm = ok[m]
        fail = float((~okm).mean())
        with np.errstate(invalid="ignore"):
            slow = float((lat[m][okm] > objective.slo_ms(w)).mean()) if okm.any() else 0.0
        excess += m.mean() * (max(0.0, slow - P95_SHARE) + max(0.0, fail - objective.max_failure))
    return (round(excess / EXCESS_RESOLUTION) * EXCESS_RESOLUTION, float(cost.mean()))


# ------------------------------------------------------------------------------------ static rules
def best_constant(objective: Objective, out: PairOutcomes) -> str:
    """The platform whose all-in routing of these pairs scores better (ties: Lambda, as the objective)."""
    n = len(out)
    scores = {"lambda": policy_score(objective, out, np.ones(n, dtype=bool)),
              "ecs": policy_score(objective, out, np.zeros(n, dtype=bool))}
    return min(PLATFORMS, key=lambda p: scores[p])


def payload_key(payload_kb: float) -> str:
    return f"{float(payload_kb):g}"


def workload_rule(objective: Objective, out: PairOutcomes) -> dict[str, str]:
    """{workload: platform} learned on training pairs."""
    return {str(w): best_constant(objective, out.subset(out.workload == w)) for w in sorted(set(out.workload))}


def lookup_table(objective: Objective, out: PairOutcomes) -> dict[str, dict[str, str]]:
    """{workload: {payload KB: platform}} learned on training pairs."""
    table: dict[str, dict[str, str]] = {}
    keys = np.array([payload_key(p) for p in out.payload_kb], dtype=object)
    for w in sorted(set(out.workload)):
        mw = out.workload == w
        table[str(w)] = {str(k): best_constant(objective, out.subset(mw & (keys == k)))
                         for k in sorted(set(keys[mw]), key=float)}
    return table


def apply_rule(rule: Mapping[str, str], workload: np.ndarray, default: str = "ecs") -> np.ndarray:
    return np.fromiter((rule.get(str(w), default) == "lambda" for w in workload), dtype=bool, count=len(workload))


def apply_lookup(table: Mapping[str, Mapping[str, str]], rule: Mapping[str, str], workload: np.ndarray,
                 payload_kb: np.ndarray, default: str = "ecs") -> np.ndarray:
    """The lookup table's platform; a cell it lacks takes the workload rule's."""
    return np.fromiter(((table.get(str(w), {}).get(payload_key(p)) or rule.get(str(w), default)) == "lambda"
                        for w, p in zip(workload, payload_kb)), dtype=bool, count=len(workload))


# ------------------------------------------------------------------------------------- classifier
@dataclass(frozen=True)
class ClassifierFamily:
    name: str                         # lightgbm | xgboost (a pickle-free serving format)
    settings: Mapping[str, Any]
    source: str


def served_family(params: Params, meta: Mapping[str, Any] | None, meta_path: str = "model_metadata.json"
                  ) -> ClassifierFamily:
    """The family and settings 04_train chose for serving (its model_metadata.json at `meta_path`),
    else LightGBM with the plan's settings."""
    serving = (meta or {}).get("serving") or {}
    name = serving.get("model")
    if name in ("lightgbm", "xgboost") and name in (meta or {}).get("chosen_settings", {}):
        return ClassifierFamily(str(name), dict(meta["chosen_settings"][name]),  # type: ignore[index]
                                f"{meta_path}: serving.model and its chosen_settings")
    return ClassifierFamily("lightgbm", dict(params.training.search["lightgbm"].plan),
                            "params training.search.lightgbm.plan (no trained serving model found)")


class ProbaModel(Protocol):
    """A fitted classifier: column 1 of predict_proba is P(lambda)."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...


def fit_classifier(fam: ClassifierFamily, X: pd.DataFrame, y: np.ndarray, seed: int, n_jobs: int) -> ProbaModel:
    """The family fitted on X, y; a single-class y gives a constant model."""
    from hybridopt.modeling.models import make_model, threads

    if len(np.unique(y)) < 2:
        return ConstantClassifier(float(y[0]) if len(y) else 0.0)
    return make_model(fam.name, fam.settings, list(X.columns), seed, threads(len(X), n_jobs)).fit(X, y)


@dataclass(frozen=True)
class ConstantClassifier:
    """P(lambda) of a training set holding one class only."""
    p_lambda: float

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.column_stack([np.full(len(X), 1.0 - self.p_lambda), np.full(len(X), self.p_lambda)])


def proba(model: ProbaModel, X: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(X), dtype=np.float64)[:, 1]


def out_of_fold_proba(fam: ClassifierFamily, X: pd.DataFrame, y: np.ndarray, labelled: np.ndarray,
                      sessions: np.ndarray, seed: int, n_jobs: int, max_rows: int) -> tuple[np.ndarray, str]:
    """P(lambda) of every row from a model that did not see its session (leave one session out over
    the given sessions; fits on at most `max_rows` labelled rows, seeded). One session only: the
    in-sample probabilities, said so in the second value."""
    rng = np.random.default_rng(seed)
    uniq = sorted(set(sessions))
    out = np.full(len(X), np.nan)
    if len(uniq) < 2:
        fit = np.flatnonzero(labelled)
        return proba(fit_classifier(fam, X.iloc[fit], y[fit], seed, n_jobs), X), "in_sample (one session)"
    for s in uniq:
        held = sessions == s
        fit = np.flatnonzero(~held & labelled)
        if max_rows and len(fit) > max_rows:
            fit = np.sort(rng.choice(fit, max_rows, replace=False))
        out[held] = proba(fit_classifier(fam, X.iloc[fit], y[fit], seed, n_jobs), X[held])
    return out, "leave one session out"


def best_threshold(objective: Objective, out: PairOutcomes, p_lambda: np.ndarray) -> tuple[float, list[dict[str, float]]]:
    """The threshold of THRESHOLDS whose routing scores best under the objective (ties: nearest 0.5)."""
    rows = []
    for t in THRESHOLDS:
        s = policy_score(objective, out, p_lambda >= t)
        rows.append({"threshold": t, "excess": s[0], "score": s[1]})
    best = min(rows, key=lambda r: (r["excess"], r["score"], abs(r["threshold"] - 0.5)))
    return float(best["threshold"]), rows


# ------------------------------------------------------------------------------- the fitted set
@dataclass
class Fitted:
    """Everything the policies learned from training pairs (one fold, or all sessions for serving)."""
    models: OutcomeModels
    marginal: MarginalCost
    rule: dict[str, str]
    table: dict[str, dict[str, str]]
    family: ClassifierFamily
    classifier: ProbaModel            # reads the 14 feature columns
    feature_columns: list[str]        # the 14 the classifier reads (the first of the outcome models')
    threshold_best: float
    threshold_scores: list[dict[str, float]]
    threshold_method: str

    def choices(self, X: pd.DataFrame, work: np.ndarray, objs: Mapping[str, Objective]
                ) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, pd.DataFrame]]:
        """Per policy the to_lambda array for the pairs of X (workloads `work`; the oracles are added
        by the caller), the objective each policy is judged by, and the outcome predictions."""
        payload = X["payload_size_kb"].to_numpy(dtype=np.float64)
        n = len(X)
        p_lambda = proba(self.classifier, X[self.feature_columns])
        out = {"always_lambda": np.ones(n, dtype=bool), "always_ecs": np.zeros(n, dtype=bool),
               "workload_rule": apply_rule(self.rule, work), "lookup_table": apply_lookup(self.table, self.rule, work, payload),
               "classifier@0.5": p_lambda >= 0.5, "classifier@best": p_lambda >= self.threshold_best}
        judged = {k: "default" for k in out}
        preds = self.models.predict(X)
        cost = marginal_costs(self.marginal, work, payload, X["workload_in_flight_ecs"].to_numpy(dtype=np.float64))
        for name, o in objs.items():
            key = "objective" if name == "default" else f"objective:{name}"
            out[key] = objective_choice(o, work, preds, cost)
            judged[key] = name
        return out, judged, preds



def label_array(pairs: pd.DataFrame, label: str) -> np.ndarray:
    """The pairs' label as float (NaN where both attempts failed and there is none)."""
    return pd.to_numeric(pairs[label], errors="coerce").astype("float64").to_numpy(na_value=np.nan)


def fit_policies(pairs: pd.DataFrame, X: pd.DataFrame, sessions: np.ndarray, objs: Mapping[str, Objective],
                 marginal: MarginalCost, fam: ClassifierFamily, label: str, feature_columns: list[str],
                 seed: int, n_jobs: int, max_rows: int) -> Fitted:
    """Fit every learned policy on training pairs (X: their decision features)."""
    models = fit_outcomes(X, pairs, seed, n_jobs)
    out = measured_outcomes(pairs, X["workload_in_flight_ecs"].to_numpy(), marginal)
    default = objs["default"]
    check_slos(default, out.workload)
    y = label_array(pairs, label)
    labelled = np.isfinite(y)
    X14 = X[feature_columns]
    fit = np.flatnonzero(labelled)
    clf = fit_classifier(fam, X14.iloc[fit], y[fit].astype(np.int64), seed, n_jobs)
    oof, method = out_of_fold_proba(fam, X14, np.nan_to_num(y).astype(np.int64), labelled, sessions, seed,
                                    n_jobs, max_rows)
    t, rows = best_threshold(default, out, oof)
    return Fitted(models, marginal, workload_rule(default, out), lookup_table(default, out), fam, clf,
                  list(feature_columns), t, rows, method)
