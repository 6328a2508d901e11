"""The router's inference handler: one request's context in, the recommended platform out.

Runs in AWS Lambda (`hybridopt.router.handler.lambda_handler`) from the package that
`python -m hybridopt package` builds, and in-process on the testbed (`Router.from_dir`). It needs
the standard library, tzdata and these hybridopt modules: features.py (THE feature code, the same
`FeatureSpec.row` preprocessing's `FeatureSpec.frame` mirrors), contract.py, trees.py, events.py,
and for the objective policy policy.py with decision/load_state.py and decision/objective.py.

Two policies, by what the model directory holds
- `decision/decision_spec.json` present (the decide stage's serving set): treatment = the objective
  policy (`router.policy`: outcome models, marginal cost and load state -> `Objective.choose`),
  control = the decide stage's per-workload rule (`workload_rule`). The plan's classifier (the
  04_train model) still runs: its P(lambda) and platform are in every answer.
- otherwise: treatment = the plan's classifier, control = the static per-workload rule.

Accepted events
- API Gateway REST API proxy (payload v1: `httpMethod`, `body`, `queryStringParameters`,
  `pathParameters`, `isBase64Encoded`) and HTTP API proxy (payload v2: `version` "2.0",
  `requestContext.http.method`, `body`, `queryStringParameters`). POST takes a JSON object
  body; GET takes query-string parameters. A path parameter `workload` (route
  `/route/{workload}`) supplies workload_type.
- Direct invocation: the input object itself.

Input fields
- `workload_type` (required): one of the spec's workloads.
- `payload_size_kb` (required): a finite number 0 <= x <= router_config max_payload_size_kb
  (a string holding a number is accepted, since query strings are strings).
- `timestamp` (optional): ISO-8601; a timestamp without a zone is read in the spec's timezone;
  absent: now. (`sent_at` is accepted as an alias.) It sets the time features only: the load
  state runs on the router's own clock.
- `time_window` (optional): one of the spec's windows. Absent: the window holding the local hour.
  Outside every window (the schedule covers 5 of 24 hours), router_config `outside_window`
  decides: "nearest" (default) uses the window nearest in circular hours, the earlier one on a
  tie, and the answer says `time_window_source: "nearest"` so a caller sees the extrapolation
  (the model never saw those hours); "reject" answers 400.
- `load_pattern` (optional): one of the spec's load patterns. Absent: the pattern the schedule
  runs in that time window (params time_windows.<w>.load_pattern).
- `arm` (optional): "control" or "treatment". Absent: environment variable HYBRIDOPT_ARM (set per
  published Lambda version for the weighted-alias A/B), else "treatment".
- `objective` (optional, objective policy only): "default" or the name of one of the decide
  stage's objective settings (params decision.settings).
- `completed` (optional, objective policy only): the `decision_id`s of earlier answers whose
  requests have completed (one id, a list, or comma-separated in a query string): they leave the
  in-flight counts now. A request with `completed` and no workload_type only reports completions.

Answers: HTTP 200 with `recommended_platform`, `arm`, `decided_by`, `probability_lambda` (the plan's
classifier), `model_version`, the resolved inputs and, on the objective path, `decision_id`,
`objective` (name, kind, this workload's SLO), `objective_platform`, `workload_rule_platform`,
per platform the predicted p50/p95 latency, P(fail) and marginal cost (`platforms`), and the load
features (`load`); HTTP 400 with `{"error": {"field", "message"}}` for any client error (never a
500); HTTP 500 only for a broken package (model missing or malformed). Direct invocations get the
same object with a `statusCode` key instead of an HTTP envelope.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo

from hybridopt import model_dir as layout
from hybridopt.data.contract import ARMS, PLATFORMS
from hybridopt.data.features import FeatureSpec
from hybridopt.errors import InputError
from hybridopt.router.events import (
    BadRequest,
    category,
    decision_ids,
    event_kind,
    request_fields,
    respond,
    size_kb,
)
from hybridopt.router.policy import DEFAULT_OBJECTIVE, DecisionPolicy, DecisionSpecError, PolicyAnswer, answer_body
from hybridopt.router.trees import (
    LightGBMTextModel,
    ModelFormatError,
    XGBoostJSONModel,
    load_model,
)

__all__ = ["BadRequest", "PackageError", "Router", "RouterConfig", "lambda_handler", "nearest_time_window"]

#: The input fields a request may carry (anything else is a 400 naming the field).
INPUT_FIELDS = ("workload_type", "payload_size_kb", "timestamp", "sent_at", "time_window",
                "load_pattern", "arm", "objective", "completed")
#: Fields only the objective policy takes.
DECISION_FIELDS = ("objective", "completed")
MODEL_DIR_ENV = "HYBRIDOPT_MODEL_DIR"
ARM_ENV = "HYBRIDOPT_ARM"
MODEL_FILES = layout.REQUIRED_FILES
ROUTER_CONFIG = layout.ROUTER_CONFIG


class PackageError(InputError):
    """The model directory is incomplete or inconsistent (a server-side error)."""


@dataclass(frozen=True)
class RouteInput:
    workload_type: str
    payload_size_kb: float
    sent_at: datetime
    time_window: str
    time_window_source: str      # given | hour | nearest
    load_pattern: str
    load_pattern_source: str     # given | window
    arm: str
    arm_source: str              # given | environment | default
    objective: str = DEFAULT_OBJECTIVE
    completed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    platform: str
    probability_lambda: float
    model_platform: str
    static_platform: str
    decided_by: str              # model | static_rule (classifier path); objective | workload_rule
    arm: str
    model_version: str
    inference_ms: float
    inputs: RouteInput
    policy: PolicyAnswer | None = None
    objective: Mapping[str, Any] | None = None
    decision_version: str | None = None

    def body(self) -> dict[str, Any]:
        i = self.inputs
        out: dict[str, Any] = {
            "recommended_platform": self.platform,
            "probability_lambda": self.probability_lambda,
            "model_version": self.model_version,
            "arm": self.arm,
            "decided_by": self.decided_by,
            "model_platform": self.model_platform,
            "static_platform": self.static_platform,
            "inference_ms": round(self.inference_ms, 4),
            "inputs": {
                "workload_type": i.workload_type, "payload_size_kb": i.payload_size_kb,
                "sent_at": i.sent_at.isoformat(), "time_window": i.time_window,
                "time_window_source": i.time_window_source, "load_pattern": i.load_pattern,
                "load_pattern_source": i.load_pattern_source, "arm_source": i.arm_source,
            },
        }
        if self.policy is not None:
            out.update(answer_body(self.policy), objective=dict(self.objective or {}),
                       decision_version=self.decision_version)
        return out


@dataclass(frozen=True)
class RouterConfig:
    """router_config.json: what the handler needs beyond the training artifacts."""

    window_load_patterns: dict[str, str]
    outside_window: str = "nearest"          # nearest | reject
    max_payload_size_kb: float = 10240.0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RouterConfig":
        cfg = cls(window_load_patterns=dict(d["window_load_patterns"]),
                  outside_window=str(d.get("outside_window", "nearest")),
                  max_payload_size_kb=float(d.get("max_payload_size_kb", 10240.0)))
        if cfg.outside_window not in ("nearest", "reject"):
            raise PackageError(f"{ROUTER_CONFIG}: outside_window {cfg.outside_window!r} is not nearest|reject")
        return cfg


class Router:
    """A loaded model directory: feature spec, serving model, static rule, metadata, and the
    decide stage's objective policy when the directory has decision/."""

    def __init__(self, spec: FeatureSpec, model: LightGBMTextModel | XGBoostJSONModel,
                 static_rule: dict[str, str], metadata: dict[str, Any], config: RouterConfig,
                 model_version: str, decision: DecisionPolicy | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.spec = spec
        self.model = model
        self.static_rule = static_rule
        self.metadata = metadata
        self.config = config
        self.model_version = model_version
        self.decision = decision
        self.clock = clock            # the load state's clock (seconds); the simulator passes its own time
        serving = metadata.get("serving") or {}
        self.threshold = float(serving.get("threshold", 0.5))
        positive = str(serving.get("positive_class", "lambda"))
        if positive not in PLATFORMS:
            raise PackageError(f"model_metadata.json serving.positive_class {positive!r} is not lambda|ecs")
        if getattr(model, "kind", "binary") != "binary":
            raise PackageError(f"the serving model is a {getattr(model, 'objective', '?')!r} model, not a binary "
                               "classifier: retrain the model (notebook 04_train)")
        self.positive_class = positive
        self.tz = ZoneInfo(spec.timezone)
        missing = sorted(set(spec.workload_codes) - set(static_rule))
        if missing:
            raise PackageError(f"static_rule.json has no platform for workloads {missing}")
        bad = {w: p for w, p in static_rule.items() if p not in PLATFORMS}
        if bad:
            raise PackageError(f"static_rule.json: platforms {bad} are not lambda|ecs")
        unknown = {w: lp for w, lp in config.window_load_patterns.items()
                   if w not in spec.time_window_codes or lp not in spec.load_pattern_codes}
        if unknown or set(config.window_load_patterns) != set(spec.time_window_codes):
            raise PackageError(f"{ROUTER_CONFIG}: window_load_patterns {config.window_load_patterns} "
                               f"must map every time window {sorted(spec.time_window_codes)} to a load "
                               f"pattern {sorted(spec.load_pattern_codes)}")
        if decision is not None:
            mine = {k: v for k, v in asdict(spec).items() if k != "forbidden"}
            theirs = {k: v for k, v in asdict(decision.spec).items() if k != "forbidden"}
            if mine != theirs:
                diff = sorted(k for k in mine if mine[k] != theirs.get(k))
                raise PackageError(f"{layout.DECISION_DIR}/{layout.DECISION_SPEC}: its feature_spec differs from "
                                   f"{layout.FEATURE_SPEC} in {diff}: the decide stage ran on other params than "
                                   "the model (run `python -m hybridopt decide` again)")

    # -- loading --------------------------------------------------------------------------------
    @classmethod
    def from_dir(cls, model_dir: str | os.PathLike[str], config: RouterConfig | None = None) -> "Router":
        """Load a model directory (with decision/ when present). `config` None: read its
        router_config.json (the package's)."""
        d = Path(model_dir)
        if not d.is_dir():
            raise PackageError(f"{d}: no such model folder: train a model first (notebook 04_train)")
        names = MODEL_FILES + (() if config is not None else (ROUTER_CONFIG,))
        docs = {}
        for name in names:
            try:
                docs[name] = json.loads((d / name).read_bytes())
            except FileNotFoundError:
                raise PackageError(f"{d}: model file missing: {name}: train a model first (notebook 04_train)") from None
            except ValueError as exc:
                raise PackageError(f"{d / name}: not valid JSON ({exc}): retrain the model (notebook 04_train)") from None
        try:
            spec = FeatureSpec.from_json((d / layout.FEATURE_SPEC).read_text())
        except (KeyError, TypeError, ValueError) as exc:
            raise PackageError(f"{d / layout.FEATURE_SPEC}: not a feature spec ({exc!r}): retrain the model "
                               "(notebook 04_train)") from None
        if docs[layout.FEATURE_COLUMNS] != spec.columns:
            raise PackageError(f"{d}: feature_columns.json {docs['feature_columns.json']} differs from "
                               f"feature_spec.json columns {spec.columns}")
        serving = docs[layout.METADATA].get("serving")
        if not isinstance(serving, dict) or "format" not in serving or "file" not in serving:
            raise PackageError(f"{d}/model_metadata.json: 'serving' with 'format' and 'file' is required")
        model_path = d / str(serving["file"])
        try:
            text = model_path.read_text()
        except FileNotFoundError:
            raise PackageError(f"{model_path}: the serving model file is missing") from None
        except ValueError:
            raise PackageError(f"{model_path}: the serving model file is not text: retrain the model "
                               "(notebook 04_train)") from None
        try:
            model = load_model(str(serving["format"]), text, str(model_path))
        except ModelFormatError as exc:
            raise PackageError(str(exc)) from None
        if model.feature_names and model.feature_names != spec.columns and not _generic_names(model.feature_names):
            raise PackageError(f"{model_path}: model features {model.feature_names} differ from "
                               f"feature_columns.json {spec.columns}")
        meta = docs[layout.METADATA]
        version = str(meta.get("model_version") or
                      f"{serving['format']}-{hashlib.sha256(text.encode()).hexdigest()[:12]}")
        try:
            cfg = config or RouterConfig.from_dict(docs[ROUTER_CONFIG])
        except PackageError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise PackageError(f"{d}/{ROUTER_CONFIG}: {exc!r}") from None
        decision = None
        if layout.decision_spec_path(d).is_file():
            try:
                decision = DecisionPolicy.from_dir(layout.decision_dir(d))
            except DecisionSpecError as exc:
                raise PackageError(str(exc)) from None
        return cls(spec, model, docs[layout.STATIC_RULE], meta, cfg, version, decision)

    # -- one decision ---------------------------------------------------------------------------
    def parse(self, fields: Mapping[str, Any], now: datetime | None = None) -> RouteInput:
        """Validate a request's fields (BadRequest names the field)."""
        unknown = sorted(k for k in fields if k not in INPUT_FIELDS)
        if unknown:
            raise BadRequest(unknown[0], f"unknown field (allowed: {', '.join(INPUT_FIELDS)})")
        objective, completed = self._decision_fields(fields)
        workload = category(fields, "workload_type", self.spec.workload_codes, required=True)
        assert workload is not None
        size = size_kb(fields.get("payload_size_kb"), self.config.max_payload_size_kb)
        sent_at = self._timestamp(fields, now)
        local_hour = sent_at.astimezone(self.tz).hour
        window = category(fields, "time_window", self.spec.time_window_codes, required=False)
        window_source = "given"
        if window is None:
            window = self.spec.time_window_for_hour(local_hour)
            window_source = "hour"
            if window is None:
                if self.config.outside_window == "reject":
                    raise BadRequest("time_window", f"missing, and local hour {local_hour} "
                                     f"({self.spec.timezone}) is outside every window "
                                     f"{self.spec.time_window_hours}: give time_window")
                window = nearest_time_window(self.spec.time_window_hours, local_hour)
                window_source = "nearest"
        pattern = category(fields, "load_pattern", self.spec.load_pattern_codes, required=False)
        pattern_source = "given"
        if pattern is None:
            pattern = self.config.window_load_patterns[window]
            pattern_source = "window"
        arm = fields.get("arm")
        arm_source = "given"
        if arm is None:
            arm, arm_source = os.environ.get(ARM_ENV), "environment"
            if not arm:
                arm, arm_source = "treatment", "default"
            elif arm not in ARMS:
                raise PackageError(f"environment {ARM_ENV}={arm!r} is not one of {ARMS}")
        elif not isinstance(arm, str) or arm not in ARMS:
            raise BadRequest("arm", f"{arm!r} is not one of {list(ARMS)}")
        return RouteInput(workload, size, sent_at, window, window_source, pattern, pattern_source,
                          arm, arm_source, objective, completed)

    def _decision_fields(self, fields: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        """`objective` and `completed`, which only the objective policy takes."""
        if self.decision is None:
            for name in DECISION_FIELDS:
                if name in fields:
                    raise BadRequest(name, "this router serves the plan's classifier only (its model folder "
                                     "has no decision/: run the decide stage and package again)")
            return DEFAULT_OBJECTIVE, ()
        objective = fields.get("objective")
        if objective is None:
            objective = DEFAULT_OBJECTIVE
        elif not isinstance(objective, str) or objective not in self.decision.objectives:
            raise BadRequest("objective", f"{objective!r} is not one of {sorted(self.decision.objectives)}")
        return objective, decision_ids(fields.get("completed"))

    def _timestamp(self, fields: Mapping[str, Any], now: datetime | None) -> datetime:
        name = "timestamp" if "timestamp" in fields else "sent_at"
        value = fields.get(name)
        if "timestamp" in fields and "sent_at" in fields:
            raise BadRequest("timestamp", "give timestamp or sent_at, not both")
        if value is None:
            return now or datetime.now(timezone.utc)
        if isinstance(value, bool) or not isinstance(value, str):
            raise BadRequest(name, f"{value!r} is not an ISO-8601 string (e.g. 2025-11-20T08:15:00+05:30)")
        try:
            ts = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(name, f"{value!r} is not an ISO-8601 timestamp "
                             "(e.g. 2025-11-20T08:15:00+05:30)") from None
        return ts if ts.tzinfo is not None else ts.replace(tzinfo=self.tz)

    def decide(self, inp: RouteInput, t_s: float | None = None) -> Decision:
        """The decision for validated inputs; `t_s` is the load state's time (default: the clock)."""
        t0 = time.perf_counter()
        row = self.spec.row(inp.workload_type, inp.payload_size_kb, inp.sent_at, inp.time_window,
                            inp.load_pattern)
        p_pos = self.model.predict_proba(row)
        p_lambda = p_pos if self.positive_class == "lambda" else 1.0 - p_pos
        model_platform = self.positive_class if p_pos >= self.threshold else _other(self.positive_class)
        static_platform = self.static_rule[inp.workload_type]
        treatment = inp.arm == "treatment"
        if self.decision is None:
            elapsed_ms = (time.perf_counter() - t0) * 1000.0
            return Decision(model_platform if treatment else static_platform, p_lambda, model_platform,
                            static_platform, "model" if treatment else "static_rule", inp.arm,
                            self.model_version, elapsed_ms, inp)
        d = self.decision
        ans = d.decide(inp.workload_type, inp.payload_size_kb, row, self.clock() if t_s is None else t_s, inp.arm,
                       inp.objective, inp.completed)
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
        return Decision(ans.platform, p_lambda, model_platform, static_platform,
                        "objective" if treatment else "workload_rule", inp.arm, self.model_version, elapsed_ms,
                        inp, ans, d.describe(inp.objective, inp.workload_type), d.version)

    def route(self, fields: Mapping[str, Any], now: datetime | None = None, t_s: float | None = None) -> Decision:
        return self.decide(self.parse(fields, now), t_s)

    def handle(self, event: object, now: datetime | None = None) -> dict[str, Any]:
        """Answer one Lambda event (API Gateway v1/v2 proxy or direct invocation)."""
        kind = event_kind(event)
        try:
            fields = request_fields(event, kind)
            if self.decision is not None and "completed" in fields and "workload_type" not in fields:
                body = self._completions_only(fields)
            else:
                body = self.route(fields, now).body()
            status = 200
        except BadRequest as exc:
            status, body = 400, {"error": {"field": exc.field, "message": exc.message}}
        return respond(kind, status, body)

    def _completions_only(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A request that only reports completed decisions."""
        assert self.decision is not None
        extra = sorted(k for k in fields if k != "completed")
        if extra:
            raise BadRequest(extra[0], "a completion report (completed without workload_type) takes no other field")
        counts = self.decision.complete(decision_ids(fields["completed"]))
        return {**counts, "in_flight": self.decision.in_flight()}


# ------------------------------------------------------------------------------------------ helpers
def _generic_names(names: list[str]) -> bool:
    """Names a library makes up when trained on a bare array (Column_0 / f0 ...)."""
    return all(re.fullmatch(r"(Column_|f)\d+", n) for n in names) and len(names) > 0


def _other(platform: str) -> str:
    return "ecs" if platform == "lambda" else "lambda"


def nearest_time_window(hours: Mapping[str, list[int]], hour: int) -> str:
    """The window nearest to a local hour in circular hours (0 inside it); ties go to the window
    that ended before the hour (the earlier one)."""
    best: tuple[int, int, str] | None = None
    for name, (start, end) in hours.items():
        inside = range(start, end) if end > start else [*range(start, 24), *range(0, end)]
        after = min((hour - h) % 24 for h in inside)     # hours since the window's nearest hour
        before = min((h - hour) % 24 for h in inside)    # hours until it
        key = (min(after, before), 0 if after <= before else 1, name)
        if best is None or key < best:
            best = key
    assert best is not None
    return best[2]


# --------------------------------------------------------------------------------- Lambda entry point
_ROUTER: Router | None = None


def default_model_dir() -> Path:
    """HYBRIDOPT_MODEL_DIR, else `model/` at the package root (the Lambda zip's layout)."""
    env = os.environ.get(MODEL_DIR_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "model"


def get_router() -> Router:
    global _ROUTER
    if _ROUTER is None:
        _ROUTER = Router.from_dir(default_model_dir())
    return _ROUTER


def lambda_handler(event: object, context: object = None) -> dict[str, Any]:
    """AWS Lambda entry point: `hybridopt.router.handler.lambda_handler`."""
    kind = event_kind(event)
    try:
        return get_router().handle(event)
    except (PackageError, OSError) as exc:
        print(json.dumps({"level": "error", "message": f"router package broken: {exc}"}))
        return respond(kind, 500, {"error": {"field": None, "message": "router package is broken"}})
    except Exception:  # a bug: answer 500 (not a Lambda crash) and log the traceback, never the event
        print(json.dumps({"level": "error", "message": traceback.format_exc()}))
        return respond(kind, 500, {"error": {"field": None, "message": "internal error"}})


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):   # load during INIT (boosted CPU), not on the first request
    try:
        get_router()
    except (PackageError, OSError):
        pass                                     # every request then answers 500 with the reason logged
