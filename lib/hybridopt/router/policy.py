"""The objective policy as the router serves it: the decide stage's serving set
(`models/<profile>/decision/`, read exactly as `hybridopt.decision.artifacts.save_decision` writes
it) evaluated per request with the standard library only (the Lambda zip ships this module).

Per request, at the router's time t (seconds on its own clock):
1. requests this router sent whose completion it was told of, or whose `missing_completion_s` (the
   client's timeout: the rule the training logs use for an attempt without a response) has passed,
   leave the in-flight counts;
2. the load features (`hybridopt.decision.load_state.LoadTracker`: arrivals strictly before t, in
   flight per platform) are read, then the arrival is recorded;
3. per platform the six LightGBM boosters give p50 and p95 latency (exp of the quantile models' raw
   output: they were fitted on log latency; p95 raised to at least p50) and P(fail), from the 14
   FeatureSpec columns followed by the load features in `decision_spec.json`'s order;
4. `MarginalCost` gives the marginal cost per platform (ECS at the workload's in-flight count);
5. `Objective.choose` (the default objective, or a named setting) picks the objective's platform;
   the decide stage's `workload_rule` gives the control arm's platform;
6. the platform the arm chose is counted as sent (in flight) under a new `decision_id`, until the
   caller reports it completed (`completed`) or `missing_completion_s` passes.

One `DecisionPolicy` holds one LoadTracker: one per execution environment in Lambda (each sees only
the requests AWS routed to it), one per process in the testbed proxy. Thread-safe (the proxy serves
requests on several threads).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from hybridopt import model_dir as layout
from hybridopt.data.contract import PLATFORMS
from hybridopt.data.features import FeatureSpec
from hybridopt.decision.load_state import LoadTracker, feature_names
from hybridopt.decision.objective import MarginalCost, Objective, Prediction
from hybridopt.errors import InputError
from hybridopt.router.trees import LightGBMTextModel, ModelFormatError

SPEC_VERSION = 1
QUANTITIES = ("p50", "p95", "fail")
DEFAULT_OBJECTIVE = "default"
#: A load provider returns feature values that replace the in-process ones (e.g. ECS in flight
#: from the ALB's CloudWatch metrics); called with the router's time and the workload.
LoadProvider = Callable[[float, str], Mapping[str, float]]


class DecisionSpecError(InputError):
    """decision/ is missing a file or holds one that does not fit the others (a server-side error)."""


@dataclass(frozen=True)
class PolicyAnswer:
    """One request's objective-policy decision."""
    decision_id: str
    platform: str                           # the arm's choice (objective or workload_rule)
    objective_platform: str
    rule_platform: str
    objective: str                          # the objective's name (default or a setting)
    predictions: Mapping[str, Prediction] | None   # None: not computed (a simulator's control arm)
    marginal_usd: Mapping[str, float]
    load: Mapping[str, float]
    t_s: float


def _booster(path: Path, what: str) -> LightGBMTextModel:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DecisionSpecError(f"{path}: the {what} is missing: run `python -m hybridopt decide` again") from None
    except ValueError:
        raise DecisionSpecError(f"{path}: the {what} is not text: run `python -m hybridopt decide` again") from None
    try:
        return LightGBMTextModel.from_text(text, str(path))
    except ModelFormatError as exc:
        raise DecisionSpecError(str(exc)) from None


class _Flights:
    """Requests sent and not yet seen complete: by decision id, and in deadline order."""

    __slots__ = ("by_id", "deadlines")

    def __init__(self) -> None:
        self.by_id: dict[str, tuple[str, str]] = {}
        self.deadlines: deque[tuple[float, str]] = deque()

    def add(self, decision_id: str, platform: str, workload: str, deadline_s: float) -> None:
        self.by_id[decision_id] = (platform, workload)
        self.deadlines.append((deadline_s, decision_id))

    def expire(self, t_s: float) -> list[tuple[str, str]]:
        out = []
        dl = self.deadlines
        while dl and dl[0][0] <= t_s:
            _, k = dl.popleft()
            got = self.by_id.pop(k, None)
            if got is not None:
                out.append(got)
        return out

    def pop(self, decision_id: str) -> tuple[str, str] | None:
        return self.by_id.pop(decision_id, None)


class DecisionPolicy:
    """decision/ loaded: boosters, objectives, marginal cost, workload rule, and the load state."""

    def __init__(self, doc: Mapping[str, Any], boosters: Mapping[str, Mapping[str, LightGBMTextModel]],
                 version: str, source: str = "decision") -> None:
        where = f"{source}/{layout.DECISION_SPEC}"
        try:
            self.spec = FeatureSpec(**doc["feature_spec"])
            self.windows_s = tuple(float(w) for w in doc["load_windows_s"])
            self.load_names = feature_names(self.windows_s)
            self.columns = list(doc["feature_columns"])
            self.missing_completion_s = float(doc["missing_completion_s"])
            self.p95_at_least_p50 = bool(doc.get("p95_at_least_p50", True))
            self.objectives = {DEFAULT_OBJECTIVE: Objective.from_dict(doc["objective"]),
                               **{str(k): Objective.from_dict(v) for k, v in dict(doc.get("settings") or {}).items()}}
            self.marginal = MarginalCost.from_dict(doc["marginal_cost"])
            self.rule = {str(w): str(p) for w, p in dict(doc["workload_rule"]).items()}
            transform = doc["latency_transform"]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DecisionSpecError(f"{where}: not a decision spec ({exc!r} missing or wrong): run "
                                    "`python -m hybridopt decide` again") from None
        if transform != "log":
            raise DecisionSpecError(f"{where}: latency_transform {transform!r} is not supported (log)")
        expected = [*self.spec.columns, *self.load_names]
        if self.columns != expected:
            raise DecisionSpecError(f"{where}: feature_columns {self.columns} are not the 14 FeatureSpec columns "
                                    f"followed by the load features {list(self.load_names)}")
        bad_rule = {w: p for w, p in self.rule.items() if p not in PLATFORMS}
        missing = sorted(set(self.spec.workload_codes) - set(self.rule))
        if bad_rule or missing:
            raise DecisionSpecError(f"{where}: workload_rule {self.rule} must map every workload "
                                    f"{sorted(self.spec.workload_codes)} to lambda or ecs")
        for name, o in self.objectives.items():
            lacking = sorted(set(self.spec.workload_codes) - set(o.slo_p95_ms))
            if o.kind == "slo_cheapest" and lacking:
                raise DecisionSpecError(f"{where}: objective {name!r} has no SLO for workloads {lacking}")
        for w in self.spec.workload_codes:
            if w not in self.marginal.lambda_billed_ms or w not in self.marginal.ecs_capacity:
                raise DecisionSpecError(f"{where}: marginal_cost has no table for workload {w!r}")
        for p in PLATFORMS:
            for q in QUANTITIES:
                m = boosters[p][q]
                if m.feature_names and m.feature_names != self.columns:
                    raise DecisionSpecError(f"{source}: the {p} {q} model's features differ from feature_columns")
                want = "binary" if q == "fail" else "regression"
                if m.kind != want:
                    raise DecisionSpecError(f"{source}: the {p} {q} model is a {m.objective!r} model, expected {want}")
        self._models = tuple((p, boosters[p]["p50"].raw_score, boosters[p]["p95"].raw_score,
                              boosters[p]["fail"].predict) for p in PLATFORMS)
        self.boosters = boosters
        self.version = version
        self.doc = doc
        self._described = {(k, w): _describe(o, w) for k, o in self.objectives.items() for w in self.spec.workload_codes}
        self.tracker = LoadTracker(self.windows_s)
        self._flights = _Flights()
        self._lock = threading.Lock()
        self._last_t = -math.inf
        self._token = os.urandom(4).hex()
        self._count = 0
        self.load_provider: LoadProvider | None = None
        self.completions = {"reported": 0, "unknown": 0, "expired": 0}

    # -- loading --------------------------------------------------------------------------------
    @classmethod
    def from_dir(cls, decision_dir: str | os.PathLike[str]) -> "DecisionPolicy":
        d = Path(decision_dir)
        spec_path = d / layout.DECISION_SPEC
        try:
            raw = spec_path.read_bytes()
            doc = json.loads(raw)
        except FileNotFoundError:
            raise DecisionSpecError(f"{spec_path}: missing") from None
        except ValueError as exc:
            raise DecisionSpecError(f"{spec_path}: not valid JSON ({exc}): run `python -m hybridopt decide` "
                                    "again") from None
        if not isinstance(doc, dict) or doc.get("version") != SPEC_VERSION:
            got = doc.get("version") if isinstance(doc, dict) else type(doc).__name__
            raise DecisionSpecError(f"{spec_path}: version {got!r}, expected {SPEC_VERSION}: run "
                                    "`python -m hybridopt decide` again")
        files = model_files(doc, spec_path)
        digest = hashlib.sha256(raw)
        boosters: dict[str, dict[str, LightGBMTextModel]] = {}
        for p in PLATFORMS:
            boosters[p] = {}
            for q in QUANTITIES:
                path = d / files[p][q]
                boosters[p][q] = _booster(path, f"{p} {q} model named in {spec_path}")
                digest.update(path.read_bytes())
        return cls(doc, boosters, f"decision-{digest.hexdigest()[:12]}", str(d))

    # -- the decision ---------------------------------------------------------------------------
    def _begin(self, t_s: float, workload: str, completed: Sequence[str]) -> tuple[float, dict[str, float]]:
        """Under the lock: completions and expiries, then the load features, then the arrival."""
        tr = self.tracker
        t = t_s if t_s > self._last_t else self._last_t      # the tracker's clock never runs back
        self._last_t = t
        for k in completed:
            got = self._flights.pop(k)
            if got is None:
                self.completions["unknown"] += 1
            else:
                self.completions["reported"] += 1
                tr.completed(*got)
        for got in self._flights.expire(t):
            self.completions["expired"] += 1
            tr.completed(*got)
        load = tr.features(t, workload)
        tr.arrived(t, workload)
        return t, load

    def complete(self, decision_ids: Sequence[str]) -> dict[str, int]:
        """Requests reported completed (by the proxy, or a caller's `completed` field): they leave
        the in-flight counts now. Unknown ids (already expired, or recorded by another execution
        environment) are counted and ignored."""
        known = 0
        with self._lock:
            for k in decision_ids:
                got = self._flights.pop(k)
                if got is None:
                    self.completions["unknown"] += 1
                else:
                    known += 1
                    self.completions["reported"] += 1
                    self.tracker.completed(*got)
        return {"completed": known, "unknown": len(decision_ids) - known}

    def in_flight(self) -> dict[str, int]:
        with self._lock:
            out = {p: 0 for p in PLATFORMS}
            for p, _ in self._flights.by_id.values():
                out[p] += 1
            return out

    def predict(self, row: Sequence[float]) -> dict[str, tuple[float, float, float]]:
        """Per platform (p50_ms, p95_ms, p_fail) for one feature row (14 + load)."""
        out = {}
        for p, f50, f95, ffail in self._models:
            p50 = math.exp(f50(row))
            p95 = math.exp(f95(row))
            if self.p95_at_least_p50 and p95 < p50:
                p95 = p50
            out[p] = (p50, p95, min(1.0, max(0.0, ffail(row))))
        return out

    def decide(self, workload: str, payload_kb: float, row14: Sequence[float], t_s: float, arm: str,
               objective: str = DEFAULT_OBJECTIVE, completed: Sequence[str] = (), predict: bool = True
               ) -> PolicyAnswer:
        """One request: load state, predictions, marginal costs, the objective's and the rule's
        platform, and the arm's choice counted as sent. `predict=False` (only for a control arm that
        needs no predictions, e.g. in the simulator) skips the boosters."""
        obj = self.objectives[objective]
        with self._lock:
            t, load = self._begin(t_s, workload, completed)
        if self.load_provider is not None:
            load = {**load, **self.load_provider(t, workload)}
        mc = self.marginal
        wif = load["workload_in_flight_ecs"]
        marginal = {"lambda": mc.lambda_usd(workload, payload_kb), "ecs": mc.ecs_usd(workload, payload_kb, wif)}
        rule = self.rule[workload]
        preds: dict[str, Prediction] | None = None
        chosen_obj = rule
        if predict or arm == "treatment":
            row = [*row14, *(load[n] for n in self.load_names)]
            raw = self.predict(row)
            preds = {p: Prediction(a, b, c, marginal[p]) for p, (a, b, c) in raw.items()}
            chosen_obj = obj.choose(workload, preds)
        platform = chosen_obj if arm == "treatment" else rule
        with self._lock:
            self._count += 1
            decision_id = f"{self._token}-{self._count}"
            self.tracker.sent(platform, workload)
            self._flights.add(decision_id, platform, workload, t + self.missing_completion_s)
        return PolicyAnswer(decision_id, platform, chosen_obj if preds is not None else "", rule, objective, preds,
                            marginal, load, t)

    def describe(self, objective: str, workload: str) -> dict[str, Any]:
        """What the answer says about the objective used (its kind and this workload's SLO)."""
        return self._described[(objective, workload)]


def model_files(doc: Mapping[str, Any], where: Path) -> dict[str, dict[str, str]]:
    """decision_spec.json's model file names per platform and quantity (checked)."""
    models = doc.get("models")
    try:
        files = {p: {q: str(models[p][q]) for q in QUANTITIES} for p in PLATFORMS}  # type: ignore[index]
    except (KeyError, TypeError):
        raise DecisionSpecError(f"{where}: `models` must name a file per platform {PLATFORMS} and quantity "
                                f"{QUANTITIES}: run `python -m hybridopt decide` again") from None
    bad = [f for fs in files.values() for f in fs.values() if "/" in f or "\\" in f or f.startswith(".")]
    if bad:
        raise DecisionSpecError(f"{where}: model file names {bad} must be plain names inside decision/")
    return files


def _describe(o: Objective, workload: str) -> dict[str, Any]:
    d = asdict(o)
    d.pop("slo_p95_ms")
    slo = o.slo_p95_ms.get(workload)
    return {"name": o.name, "kind": o.kind, "slo_p95_ms": None if slo is None else float(slo),
            **{k: v for k, v in d.items() if k not in ("name", "kind")}}


def answer_body(a: PolicyAnswer) -> dict[str, Any]:
    """The objective path's part of the router's answer."""
    per = {}
    for p in PLATFORMS:
        pr = a.predictions[p] if a.predictions is not None else None
        per[p] = {"p50_ms": None if pr is None else pr.p50_ms, "p95_ms": None if pr is None else pr.p95_ms,
                  "p_fail": None if pr is None else pr.p_fail, "marginal_usd": a.marginal_usd[p]}
    return {"decision_id": a.decision_id, "objective_platform": a.objective_platform or None,
            "workload_rule_platform": a.rule_platform, "platforms": per, "load": dict(a.load)}
