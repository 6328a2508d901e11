"""Stage 06's evaluation: every policy judged on pairs it was not fitted on, by an explicit
objective against the SAME objective's oracle, OPEN LOOP.

Leave-session-out (a session = one run): for each run, the marginal cost tables, the outcome models,
the rules and the classifier are fitted on the OTHER runs and every policy routes the held-out
run's pairs; the held-out results are pooled. Per policy (`summarize`):
- the bill of the routed held-out pairs (`hybridopt.decision.bill.policy_bill`, every session as it
  ran in the log) and its average per 1,000 requests; the average marginal cost per 1,000;
- latency p50/p95/p99 of the chosen attempts that have a latency (the others counted), failure
  rate, SLO-miss share (failed, or slower than the default objective's SLO of its workload);
- regret against the oracle of the objective the policy is judged by: per 1,000 requests in
  marginal dollars, per request in ms (an attempt without a latency counts the client's timeout)
  and, for a weighted objective, per 1,000 in objective dollars; agreement with that oracle.
95 % CIs: bootstrap over minute blocks (params decision.bootstrap_block_s) resampled within each
session. The bill's CI resamples its per-request charges; the fixed charges each session billed
(task-seconds, ALB hours) stay as billed. Latency quantiles (point and CI) are read from per-block
histograms on a log grid (relative bin width `QUANTILE_BIN_REL`), so the point estimate is the
bootstrap's statistic on the full sample. When every session is one block, or the resamples do not
vary, no CI is given: its bounds are NaN and `<metric>_ci_na` says why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Final, Mapping

import numpy as np
import pandas as pd

from hybridopt.data.features import FeatureSpec
from hybridopt.decision.bill import Bill
from hybridopt.decision.load_frame import check_causal, seconds
from hybridopt.decision.objective import MarginalCost, Objective
from hybridopt.decision.outcomes import coverage, decision_features, load_requests
from hybridopt.decision.policies import (
    ClassifierFamily,
    PairOutcomes,
    best_constant,
    fit_policies,
    measured_objective_usd,
    measured_outcomes,
    oracle_choice,
)
from hybridopt.errors import InputError
from hybridopt.params import Params

OPEN_LOOP: Final = ("OPEN LOOP: every policy is judged on the outcomes the log measured on both platforms, under "
                    "the load that was logged. Routing would change that load (other ECS queues, other Lambda cold "
                    "starts, other autoscaling), which these numbers leave out; the closed-loop stage removes "
                    "that assumption.")
QUANTILE_BIN_REL: Final = 0.005
#: The ECS load bins of `wins`, in order (requests in flight over the service's worker capacity).
LOAD_BINS: Final = ("below capacity", "1-2x capacity", "over 2x capacity")
#: A `wins` cell with fewer pairs than this is flagged low-confidence.
WIN_MIN_PAIRS: Final = 10
#: The `winner` of a cell where most pairs failed on both platforms.
NEITHER: Final = "neither"
CAUSAL_PROBES: Final = 100
KINDS: Final = {"always_lambda": "static", "always_ecs": "static", "workload_rule": "static",
                "lookup_table": "static", "classifier@0.5": "classifier", "classifier@best": "classifier"}

MarginalFit = Callable[[pd.DataFrame, Params], MarginalCost]
#: (pairs, to_lambda, requests, params) -> a Bill (hybridopt.decision.bill.policy_bill with its timeline)
BillFn = Callable[[pd.DataFrame, np.ndarray, pd.DataFrame, Params], Bill]


class DecisionInputError(InputError):
    """The data cannot be evaluated as asked (too few sessions, missing columns, ...)."""


@dataclass
class Inputs:
    """Pairs, their requests and the decision features, row-aligned with the pairs."""
    pairs: pd.DataFrame
    requests: pd.DataFrame
    X: pd.DataFrame
    workload: np.ndarray
    sessions: np.ndarray
    t_s: np.ndarray
    missing_completion_s: float
    leak_guard: dict[str, Any]


def prepare(params: Params, pairs: pd.DataFrame, requests: pd.DataFrame, spec: FeatureSpec,
            windows: tuple[float, ...], missing_completion_s: float) -> Inputs:
    """Decision features of every pair and the leak guard's record (raises if it fails)."""
    if not len(pairs):
        raise DecisionInputError("there are no pairs to decide on")
    pairs = pairs.reset_index(drop=True)
    X = decision_features(pairs, requests, spec, windows, missing_completion_s)
    guard = check_causal(load_requests(requests), CAUSAL_PROBES, params.decision.seed, windows, missing_completion_s)
    leak = {"check_causal": {**guard, "passed": True, "seed": params.decision.seed},
            "feature_guard": (f"assert_leak_free passed on the {len(spec.columns)} plan features; the other "
                              f"{X.shape[1] - len(spec.columns)} columns are load features, computed strictly "
                              "before each pair (check_causal)"),
            "plan_features": len(spec.columns), "load_features": int(X.shape[1] - len(spec.columns)),
            "feature_columns": list(X.columns), "missing_completion_s": missing_completion_s}
    return Inputs(pairs, requests, X, pairs["workload_type"].astype(str).to_numpy(dtype=object),
                  pairs["run_id"].astype(str).to_numpy(dtype=object), seconds(pairs["sent_at"]),
                  missing_completion_s, leak)


@dataclass
class Scored:
    """Per policy the routing of the evaluated pairs, with what they measured."""
    inputs: Inputs
    outcomes: PairOutcomes
    choices: dict[str, np.ndarray]
    judged: dict[str, str]                      # policy -> objective name
    kinds: dict[str, str]
    preds: dict[str, pd.DataFrame]
    ecs_capacity: Mapping[str, int]             # worker slots per workload service (load bins)
    folds: list[dict[str, Any]] = field(default_factory=list)


def oracle_key(name: str) -> str:
    return "oracle" if name == "default" else f"oracle:{name}"


def kind_of(policy: str) -> str:
    return KINDS.get(policy) or policy.split(":")[0]


def subset_inputs(inp: Inputs, rows: np.ndarray) -> Inputs:
    runs = set(inp.sessions[rows])
    req = inp.requests[inp.requests["run_id"].astype(str).isin(runs)]
    return Inputs(inp.pairs.iloc[rows].reset_index(drop=True), req, inp.X.iloc[rows].reset_index(drop=True),
                  inp.workload[rows], inp.sessions[rows], inp.t_s[rows], inp.missing_completion_s, inp.leak_guard)


def score(inp: Inputs, choices: dict[str, np.ndarray], judged: dict[str, str], preds: dict[str, pd.DataFrame],
          objs: Mapping[str, Objective], marginal: MarginalCost) -> Scored:
    """Add the oracles of every objective to a policy set's choices on `inp`."""
    out = measured_outcomes(inp.pairs, inp.X["workload_in_flight_ecs"].to_numpy(), marginal)
    choices, judged = dict(choices), dict(judged)
    for name, o in objs.items():
        choices[oracle_key(name)] = oracle_choice(o, out)
        judged[oracle_key(name)] = name
    return Scored(inp, out, choices, judged, {k: kind_of(k) for k in choices}, preds, dict(marginal.ecs_capacity))


def leave_session_out(params: Params, inp: Inputs, objs: Mapping[str, Objective], fam: ClassifierFamily,
                      fit_marginal: MarginalFit, log: Callable[[str], None] = print) -> Scored:
    """Fit on all sessions but one, route the held-out one; every session in turn; pooled."""
    uniq = sorted(set(inp.sessions))
    if len(uniq) < 2:
        raise DecisionInputError(f"leave-session-out needs at least 2 sessions (runs); the pairs hold {len(uniq)}: {uniq}")
    spec_cols = list(params.features.columns)
    parts: list[Scored] = []
    order: list[np.ndarray] = []
    folds: list[dict[str, Any]] = []
    for s in uniq:
        te = np.flatnonzero(inp.sessions == s)
        tr = np.flatnonzero(inp.sessions != s)
        train, test = subset_inputs(inp, tr), subset_inputs(inp, te)
        try:
            mc = fit_marginal(train.requests, params)
        except ValueError as exc:
            raise DecisionInputError(f"holding out session {s}: the other sessions cannot fit the marginal cost "
                                     f"tables: {exc}") from None
        fitted = fit_policies(train.pairs, train.X, train.sessions, objs, mc, fam, params.labels.target, spec_cols,
                              params.decision.seed, params.training.n_jobs, params.training.cv_max_rows)
        ch, judged, preds = fitted.choices(test.X, test.workload, objs)
        parts.append(score(test, ch, judged, preds, objs, mc))
        order.append(te)
        folds.append({"held_out": s, "n_test": int(len(te)), "n_train": int(len(tr)), "workload_rule": fitted.rule,
                      "lookup_table": fitted.table, "threshold_best": fitted.threshold_best,
                      "threshold_method": fitted.threshold_method, "outcome_rows": fitted.models.trained_rows})
        rule = ", ".join(f"{w} -> {p}" for w, p in sorted(fitted.rule.items()))
        log(f"  held out {s}: {len(te):,} pairs (fitted on {len(tr):,}); workload rule: {rule}; "
            f"classifier@best threshold {fitted.threshold_best:g}")
    idx = np.concatenate(order)
    pooled = subset_inputs(inp, idx)

    def pooled_field(f: str) -> dict[str, np.ndarray]:
        return {p: np.concatenate([getattr(x.outcomes, f)[p] for x in parts]) for p in ("lambda", "ecs")}

    out = PairOutcomes(pooled.workload, pooled.pairs["payload_size_kb"].to_numpy(dtype=np.float64),
                       pooled_field("latency_ms"), pooled_field("ok"), pooled_field("cost_usd"))
    choices = {k: np.concatenate([x.choices[k] for x in parts]) for k in parts[0].choices}
    preds = {p: pd.concat([x.preds[p] for x in parts], ignore_index=True) for p in parts[0].preds}
    return Scored(pooled, out, choices, parts[0].judged, parts[0].kinds, preds, parts[-1].ecs_capacity, folds)


# ------------------------------------------------------------------------------------ bootstrap
@dataclass(frozen=True)
class Blocks:
    index: np.ndarray        # block of every pair
    session: np.ndarray      # session of every block
    weights: np.ndarray      # (resamples, blocks) multiplicities, resampled within sessions

    def sums(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.index, weights=np.asarray(values, dtype=np.float64), minlength=len(self.session))

    def single_block(self) -> bool:
        """True when no session has two blocks: resampling within sessions then varies nothing."""
        return bool(pd.Series(self.session).value_counts().max() < 2) if len(self.session) else True

    def ci(self, num: np.ndarray, den: np.ndarray | None = None, offset: float = 0.0, scale: float = 1.0
           ) -> tuple[float, float]:
        """95 % interval of (offset + sum num) / sum den x scale over the resamples."""
        v = self.weights @ self.sums(num) + offset
        if den is not None:
            d = self.weights @ self.sums(den)
            with np.errstate(invalid="ignore", divide="ignore"):
                v = np.where(d > 0, v / d, np.nan)
        v = v[np.isfinite(v)] * scale
        return (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) if len(v) else (np.nan, np.nan)


def blocks(sessions: np.ndarray, t_s: np.ndarray, block_s: float, resamples: int, seed: int) -> Blocks:
    key = pd.DataFrame({"s": sessions.astype(str), "b": np.zeros(len(t_s), dtype=np.int64)})
    for s in np.unique(key["s"]):
        m = (key["s"] == s).to_numpy()
        key.loc[m, "b"] = np.floor((t_s[m] - t_s[m].min()) / block_s).astype(np.int64)
    codes, uniq = pd.MultiIndex.from_frame(key).factorize()
    block_session = np.array([u[0] for u in uniq], dtype=object)
    rng = np.random.default_rng(seed)
    W = np.zeros((resamples, len(uniq)))
    for s in sorted(set(block_session)):
        cols = np.flatnonzero(block_session == s)
        W[:, cols] = rng.multinomial(len(cols), np.full(len(cols), 1.0 / len(cols)), size=resamples)
    return Blocks(codes.astype(np.int64), block_session, W)


def _log_histograms(b: Blocks, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-block counts of the finite positive latencies on a log grid, and the bins' mid points."""
    fin = np.isfinite(lat) & (lat > 0)
    if not fin.any():
        return None
    lo, hi = np.log(lat[fin].min()), np.log(lat[fin].max()) + 1e-9
    nb = max(1, int(np.ceil((hi - lo) / np.log1p(QUANTILE_BIN_REL))))
    edges = np.exp(np.linspace(lo, hi, nb + 1))
    bins = np.clip(np.searchsorted(edges, lat[fin], side="right") - 1, 0, nb - 1)
    H = np.bincount(b.index[fin] * nb + bins, minlength=len(b.session) * nb).reshape(len(b.session), nb)
    # the mid points stay inside the observed range (the top bin's mid could exceed the largest value)
    mids = np.clip(np.sqrt(edges[:-1] * edges[1:]), lat[fin].min(), lat[fin].max())
    return H.astype(np.float64), mids


def _hist_quantile(counts: np.ndarray, mids: np.ndarray, q: float) -> np.ndarray:
    """The q-quantile of every row of (weighted) histogram counts: the first bin reaching q of the total."""
    cum = np.cumsum(counts, axis=1)
    return mids[np.argmax(cum >= q * cum[:, -1:], axis=1)]


def quantiles(b: Blocks, lat: np.ndarray, qs: tuple[float, ...]) -> list[tuple[float, tuple[float, float]]]:
    """Latency quantiles with 95 % intervals. The point estimate is the bootstrap's statistic (the
    quantile of the log-grid histogram, within `QUANTILE_BIN_REL` of the exact one) on the full
    sample, so the interval and the point describe the same quantity."""
    hist = _log_histograms(b, lat)
    if hist is None:
        return [(np.nan, (np.nan, np.nan))] * len(qs)
    H, mids = hist
    full, boot = H.sum(axis=0, keepdims=True), b.weights @ H
    out = []
    for q in qs:
        at = _hist_quantile(boot, mids, q)
        out.append((float(_hist_quantile(full, mids, q)[0]),
                    (float(np.percentile(at, 2.5)), float(np.percentile(at, 97.5)))))
    return out


def quantile_cis(b: Blocks, lat: np.ndarray, qs: tuple[float, ...]) -> list[tuple[float, float]]:
    """95 % intervals of latency quantiles from per-block histograms on a log grid."""
    return [ci for _, ci in quantiles(b, lat, qs)]


# ------------------------------------------------------------------------------------- summaries
#: Why a CI is not given (in `<metric>_ci_na`; empty when the CI is given).
CI_ONE_BLOCK: Final = "n/a: one block per session"
CI_NO_VARIATION: Final = "n/a: no variation across resamples"


def ci_reason(single_block: bool, value: float, ci: tuple[float, float]) -> str:
    """Empty when the interval can be reported, else why not: every session is one block (nothing to
    resample), the resamples never varied (a zero-width interval), or there is no value."""
    if single_block:
        return CI_ONE_BLOCK
    lo, hi = ci
    if not (np.isfinite(lo) and np.isfinite(hi)) or not np.isfinite(value):
        return "n/a: no finite resamples"
    if hi - lo <= 1e-12 * max(1.0, abs(value)):
        return CI_NO_VARIATION
    return ""


def _with_ci(row: dict[str, Any], name: str, value: float, ci: tuple[float, float], single_block: bool) -> None:
    """The value with its 95 % CI, or with NaN bounds and the reason in `<name>_ci_na`."""
    why = ci_reason(single_block, value, ci)
    row[name] = value
    row[f"{name}_ci_low"], row[f"{name}_ci_high"] = (np.nan, np.nan) if why else ci
    row[f"{name}_ci_na"] = why


def summarize(params: Params, sc: Scored, objs: Mapping[str, Objective], policy_bill: BillFn
              ) -> dict[str, pd.DataFrame]:
    """Per policy the bill, latency, failures, SLO misses and regret with CIs; the frontier; the
    outcome models' coverage; which platform wins where."""
    inp, out = sc.inputs, sc.outcomes
    d = params.decision
    b = blocks(inp.sessions, inp.t_s, d.bootstrap_block_s, d.bootstrap_resamples, d.seed)
    n = len(out)
    ones = np.ones(n)
    one = b.single_block()
    timeout_ms = inp.missing_completion_s * 1000.0
    slo = np.array([objs["default"].slo_ms(w) for w in out.workload], dtype=np.float64)
    rows, bill_lines, bill_notes, by_workload = [], [], [], []
    for name, ch in sc.choices.items():
        lat, ok, cost = out.chosen(ch)
        o = objs[sc.judged[name]]
        lat_o, ok_o, cost_o = out.chosen(sc.choices[oracle_key(sc.judged[name])])
        bill = policy_bill(inp.pairs, ch, inp.requests, params)
        bill_total = float(bill.total_usd)
        fixed = bill_total - float(cost.sum())
        bill_lines += [{"policy": name, **line} for line in _lines(bill)]
        bill_notes += [n for n in bill.notes if n not in bill_notes]
        row: dict[str, Any] = {"policy": name, "kind": sc.kinds[name], "judged_by": o.name, "objective_kind": o.kind,
                               "n_pairs": n, "lambda_share": float(ch.mean()), "bill_usd": bill_total}
        _with_ci(row, "bill_avg_usd_per_1k_requests", bill_total / n * 1000, b.ci(cost, ones, fixed, 1000), one)
        _with_ci(row, "marginal_avg_usd_per_1k_requests", float(cost.mean() * 1000), b.ci(cost, ones, 0, 1000), one)
        fin = np.isfinite(lat)
        for q, (v, ci) in zip((50, 95, 99), quantiles(b, lat, (0.5, 0.95, 0.99))):
            _with_ci(row, f"latency_p{q}_ms", v, ci, one)
        row["latency_missing"] = int((~fin).sum())
        _with_ci(row, "failure_rate", float((~ok).mean()), b.ci(~ok, ones), one)
        with np.errstate(invalid="ignore"):
            miss = ~ok | ~(lat <= slo)
        _with_ci(row, "slo_miss_share", float(miss.mean()), b.ci(miss, ones), one)
        d_usd = cost - cost_o
        d_ms = np.where(np.isfinite(lat), lat, timeout_ms) - np.where(np.isfinite(lat_o), lat_o, timeout_ms)
        _with_ci(row, "regret_usd_per_1k_requests", float(d_usd.mean() * 1000), b.ci(d_usd, ones, 0, 1000), one)
        _with_ci(row, "regret_ms_per_request", float(d_ms.mean()), b.ci(d_ms, ones), one)
        if o.kind == "weighted":
            d_obj = measured_objective_usd(o, lat, ok, cost) - measured_objective_usd(o, lat_o, ok_o, cost_o)
            _with_ci(row, "regret_objective_usd_per_1k_requests", float(d_obj.mean() * 1000), b.ci(d_obj, ones, 0, 1000), one)
        row["oracle_agreement"] = float((ch == sc.choices[oracle_key(sc.judged[name])]).mean())
        rows.append(row)
        by_workload += _by_workload(name, out.workload, ch, lat, ok, cost, miss, d_usd, d_ms)
    policies = pd.DataFrame(rows)
    return {"policies": policies, "by_workload": pd.DataFrame(by_workload), "frontier": frontier(policies), "coverage": coverage(inp.pairs, sc.preds),
            "wins": wins(sc, objs["default"]), "bill_lines": pd.DataFrame(bill_lines),
            "bill_notes": pd.DataFrame({"note": bill_notes}),
            "blocks": pd.DataFrame({"session": s, "pairs": int((inp.sessions == s).sum()),
                                    "blocks": int((b.session == s).sum()), "block_s": d.bootstrap_block_s,
                                    "resamples": d.bootstrap_resamples} for s in sorted(set(b.session)))}


def _by_workload(name: str, work: np.ndarray, ch: np.ndarray, lat: np.ndarray, ok: np.ndarray, cost: np.ndarray,
                 miss: np.ndarray, d_usd: np.ndarray, d_ms: np.ndarray) -> list[dict[str, Any]]:
    """A policy's routing per workload (point estimates)."""
    rows = []
    for w in sorted(set(work)):
        m = work == w
        fin = m & np.isfinite(lat)
        rows.append({"policy": name, "workload_type": w, "n_pairs": int(m.sum()), "lambda_share": float(ch[m].mean()),
                     "marginal_avg_usd_per_1k_requests": float(cost[m].mean() * 1000),
                     "latency_p95_ms": float(np.percentile(lat[fin], 95)) if fin.any() else np.nan,
                     "failure_rate": float((~ok[m]).mean()), "slo_miss_share": float(miss[m].mean()),
                     "regret_usd_per_1k_requests": float(d_usd[m].mean() * 1000),
                     "regret_ms_per_request": float(d_ms[m].mean())})
    return rows


def _lines(bill: Bill) -> list[dict[str, Any]]:
    """A bill's lines as plain dicts."""
    return [asdict(x) for x in bill.lines]


def frontier(policies: pd.DataFrame) -> pd.DataFrame:
    """(bill per 1,000, p95) per policy with CIs; `pareto`: no other non-oracle policy is at least as
    good on both and better on one (oracles are reference points, never on the frontier)."""
    cols = ["policy", "kind", "judged_by", "bill_avg_usd_per_1k_requests", "bill_avg_usd_per_1k_requests_ci_low",
            "bill_avg_usd_per_1k_requests_ci_high", "latency_p95_ms", "latency_p95_ms_ci_low", "latency_p95_ms_ci_high"]
    f = policies[cols].copy()
    x, y = f["bill_avg_usd_per_1k_requests"].to_numpy(), f["latency_p95_ms"].to_numpy()
    real = (f["kind"] != "oracle").to_numpy() & np.isfinite(x) & np.isfinite(y)
    pareto = np.zeros(len(f), dtype=bool)
    for i in np.flatnonzero(real):
        dom = real & (x <= x[i]) & (y <= y[i]) & ((x < x[i]) | (y < y[i]))
        pareto[i] = not dom.any()
    f["pareto"] = pareto
    return f


def load_bins(in_flight: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """The ECS service's load when the pair was decided, relative to its worker capacity."""
    r = np.where(capacity > 0, in_flight / np.maximum(capacity, 1), np.inf)
    return np.select([r < 1, r < 2], list(LOAD_BINS[:2]), LOAD_BINS[2]).astype(object)


def wins(sc: Scored, objective: Objective) -> pd.DataFrame:
    """Per workload x payload x ECS load: pairs, the oracle's Lambda share, each platform's p95 of
    successful attempts, failure rate and mean marginal cost, the platform the objective prefers for
    the whole cell, the share of pairs that failed on both platforms, the `winner` (`NEITHER` when
    most pairs failed on both, else the preferred platform) and `low_confidence` (fewer than
    `WIN_MIN_PAIRS` pairs)."""
    out = sc.outcomes
    inflight = sc.inputs.X["workload_in_flight_ecs"].to_numpy(dtype=np.float64)
    capacity = np.array([sc.ecs_capacity.get(str(w), 0) for w in out.workload], dtype=np.float64)
    frame = pd.DataFrame({"workload_type": out.workload, "payload_size_kb": out.payload_kb,
                          "ecs_load": load_bins(inflight, capacity)})
    rows = []
    for key, idx in frame.groupby(["workload_type", "payload_size_kb", "ecs_load"], sort=True).indices.items():
        m = np.zeros(len(out), dtype=bool)
        m[idx] = True
        cell = out.subset(m)
        row: dict[str, Any] = dict(zip(("workload_type", "payload_size_kb", "ecs_load"), key))
        row["n_pairs"] = int(m.sum())
        row["oracle_lambda_share"] = float(sc.choices["oracle"][m].mean())
        for p in ("lambda", "ecs"):
            okp = cell.ok[p]
            row[f"{p}_p95_ms"] = float(np.percentile(cell.latency_ms[p][okp], 95)) if okp.any() else np.nan
            row[f"{p}_failure_rate"] = float((~okp).mean())
            row[f"{p}_marginal_usd_per_1k"] = float(cell.cost_usd[p].mean() * 1000)
        row["objective_prefers"] = best_constant(objective, cell)
        row["both_fail_share"] = float((~cell.ok["lambda"] & ~cell.ok["ecs"]).mean())
        row["winner"] = NEITHER if row["both_fail_share"] > 0.5 else row["objective_prefers"]
        row["low_confidence"] = bool(row["n_pairs"] < WIN_MIN_PAIRS)
        rows.append(row)
    return pd.DataFrame(rows)
