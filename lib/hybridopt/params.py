"""Parameters: `params/base.yaml` + `params/testbed.yaml` + `params/<profile>.yaml`, deep-merged in
that order and validated. Any unknown key, wrong type or missing file raises `ParamsError` naming the
file, the dotted key and what was expected."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import paths

BASE_FILES = ("base.yaml", "testbed.yaml")


class ParamsError(ValueError):
    """A parameter file is missing, malformed, or holds a key or value that is not allowed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------------------- experiment
class DataPaths(_Strict):
    raw_dir: str = Field(description="contract JSONL written by collect/simulate, read by ingest")
    legacy_dir: str | None = Field(None, description="a folder in the legacy thesis layout to ingest")
    processed_dir: str
    reports_dir: str
    models_dir: str


class FargateTask(_Strict):
    vcpu: float = Field(gt=0)
    memory_gb: float = Field(gt=0)
    min_tasks: int = Field(1, ge=1)
    max_tasks: int = Field(1, ge=1)


class Workload(_Strict):
    code: int = Field(ge=0, description="workload_type_encoded")
    payload_sizes_kb: list[float] = Field(min_length=1)
    lambda_memory_mb: int = Field(ge=128, le=10240)
    fargate: FargateTask
    lambda_route: str
    ecs_route: str

    @field_validator("payload_sizes_kb")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(x <= 0 for x in v):
            raise ValueError("payload sizes must be > 0 KB")
        return v


class Phase(_Strict):
    name: str
    duration_s: float = Field(gt=0)
    arrival_rate_rps: float = Field(ge=0, description="generated payloads (pairs) per second")
    ramp_to_rps: float | None = Field(None, ge=0)


class LoadPattern(_Strict):
    code: int = Field(ge=0, description="load_pattern_encoded")
    phases: list[Phase] = Field(min_length=1)

    @property
    def duration_s(self) -> float:
        return sum(p.duration_s for p in self.phases)

    @property
    def expected_arrivals(self) -> float:
        return self.arrivals_until(self.duration_s)

    def arrivals_until(self, t_s: float) -> float:
        """Scheduled arrivals in [0, t_s) from the pattern's start (linear ramps integrated)."""
        total, start = 0.0, 0.0
        for p in self.phases:
            if t_s <= start:
                break
            d = min(t_s - start, p.duration_s)
            end_rate = p.ramp_to_rps if p.ramp_to_rps is not None else p.arrival_rate_rps
            rate_at_d = p.arrival_rate_rps + (end_rate - p.arrival_rate_rps) * d / p.duration_s
            total += d * (p.arrival_rate_rps + rate_at_d) / 2
            start += p.duration_s
        return total


class TimeWindow(_Strict):
    code: int = Field(ge=0, description="time_window_encoded")
    start_hour: int = Field(ge=0, le=23, description="local hour (profile timezone) the window starts")
    end_hour: int = Field(ge=0, le=24, description="local hour it ends (exclusive)")
    load_pattern: str = Field(description="the load pattern the schedule runs in this window")


# --------------------------------------------------------------------------------------------- prices
class Price(_Strict):
    value: float = Field(ge=0)
    source: str = Field(min_length=5, description="where the number comes from")


class Prices(_Strict):
    region: str
    lambda_gb_s_usd: Price
    lambda_request_usd: Price
    api_gateway_rest_request_usd: Price
    api_gateway_http_request_usd: Price
    fargate_vcpu_hour_usd: Price
    fargate_gb_hour_usd: Price
    alb_hour_usd: Price
    alb_lcu_hour_usd: Price
    alb_gb_per_lcu_hour: Price


class CostOptions(_Strict):
    fargate_mode: Literal["amortised", "marginal"] = "amortised"
    bill_lambda_init: bool = True
    api_gateway: Literal["rest", "http"] = "rest"
    include_alb: bool = True


class Pairing(_Strict):
    window_s: float = Field(gt=0, description="legacy time matching: max gap between the two platforms")


class Labels(_Strict):
    target: Literal["balanced_optimal", "latency_optimal", "cost_optimal"] = "balanced_optimal"
    latency_margin: float = Field(0.10, ge=0, lt=1)
    cost_margin: float = Field(0.10, ge=0, lt=1)


class Features(_Strict):
    columns: list[str] = Field(min_length=1)
    forbidden: list[str]


class Gates(_Strict):
    label_mean_min: float = 0.2
    label_mean_max: float = 0.8
    label_std_min: float = 0.3
    payload_sizes_min: int = 4
    payload_sizes_max: int = 5


class Audit(_Strict):
    hour_slack_h: int = Field(1, ge=0, description="hours past a window's end still counted consistent")
    client_timeout_s: float = Field(10.0, gt=0, description="the load generator's response timeout "
                                    "(Artillery's default is 10 s): slower responses were never seen")
    min_consistent_share: float = Field(0.95, ge=0, le=1, description="clock check passes above this share")


class Split(_Strict):
    train: float = Field(0.6, gt=0, lt=1)
    validation: float = Field(0.2, gt=0, lt=1)
    test: float = Field(0.2, gt=0, lt=1)
    seed: int = 42

    @model_validator(mode="after")
    def _sum_to_one(self) -> "Split":
        if abs(self.train + self.validation + self.test - 1.0) > 1e-9:
            raise ValueError("train + validation + test must be 1.0")
        return self


# ------------------------------------------------------------------------------------------ training
SearchValue = int | float | str | bool | None | list[int]


class ModelSearch(_Strict):
    """5-fold CV search of one model family: the plan's settings first, then `n_iter - 1` settings
    drawn (seeded) from `space`, stopping early when `budget_s` would be exceeded."""
    n_iter: int = Field(ge=1, description="candidates at most, the plan's settings included")
    budget_s: float = Field(gt=0, description="wall-clock budget of this model's search")
    plan: dict[str, SearchValue] = Field(description="the thesis plan's settings (candidate 1)")
    space: dict[str, list[SearchValue]] = Field(default_factory=dict, description="values to draw from")


class Selection(_Strict):
    rule: Literal["val_roc_auc_portable"] = "val_roc_auc_portable"
    portable: list[Literal["lightgbm", "xgboost"]] = Field(min_length=1)
    tie_tolerance: float = Field(ge=0, description="ROC-AUC difference treated as a tie")
    prefer: Literal["lightgbm", "xgboost"] = Field(description="winner of a tie (faster serving)")


class Verdict(_Strict):
    """The thesis plan's success criteria (accept: all of the first six; fail: any flag)."""
    accuracy_min: float
    accuracy_max: float
    gap_max: float
    top_feature_max: float
    meaningful_share: float = Field(description="a feature 'contributes meaningfully' at this |SHAP| share")
    min_meaningful_features: int
    precision_gap_max: float
    fail_accuracy_above: float
    fail_accuracy_below: float
    fail_gap_above: float
    fail_top_feature_above: float


class Training(_Strict):
    seed: int = 42
    n_jobs: int = Field(2, description="threads per model fit")
    cv_folds: int = Field(5, ge=2)
    cv_max_rows: int = Field(ge=0, description="rows of the training split the CV search uses (0 = all)")
    threshold: float = Field(0.5, gt=0, lt=1)
    search: dict[Literal["random_forest", "xgboost", "lightgbm", "mlp"], ModelSearch]
    ensemble_size: int = Field(3, ge=2)
    selection: Selection
    temporal_min_runs: int = Field(3, ge=2, description="leave-one-run-out only with this many runs")
    ceiling_min_group: int = Field(ge=1, description="training samples a feature vector needs to count")
    ceiling_folds: int = Field(5, ge=2)
    explain_rows: int = Field(ge=10, description="rows whose SHAP values give the verdict importance")
    background_rows: int = Field(ge=10, description="background of the model-agnostic explainer")
    interaction_rows: int = Field(ge=10, description="rows for SHAP interaction values")
    surrogate_max_depth: int = Field(ge=1, le=6)
    surrogate_min_leaf_share: float = Field(gt=0, lt=0.5)
    verdict: Verdict


# ------------------------------------------------------------------------------ router, deploy, A/B
class Router(_Strict):
    """The inference handler's settings (written into the package's router_config.json)."""
    outside_window: Literal["nearest", "reject"] = Field(
        "nearest", description="no time_window given and the local hour is outside every window: "
        "use the nearest window (answer says so) or answer 400")
    max_payload_size_kb: float = Field(10240.0, gt=0, description="larger sizes are a 400 "
                                       "(API Gateway's 10 MB payload limit, platform-facts.md 1.3)")
    package_dir: str = Field("dist/{profile}", description="where `package` writes the Lambda zip")
    max_package_mb: float = Field(50.0, gt=0, description="Lambda's direct-upload zip limit: larger fails")
    target_package_mb: float = Field(10.0, gt=0, description="the aim: larger warns")


class Deploy(_Strict):
    """`python -m hybridopt deploy`: the router function and its weighted alias (boto3)."""
    region: str = "eu-west-1"
    function_name: str = "hybrid-thesis-ml-router"
    runtime: str = "python3.12"
    architecture: Literal["x86_64", "arm64"] = "x86_64"
    memory_mb: int = Field(256, ge=128, le=10240)
    timeout_s: int = Field(10, ge=1, le=900)
    role_arn: str | None = Field(None, description="execution role; None: the deploy refuses to run")
    alias: str = "live"
    treatment_weight: float = Field(0.5, description="share of alias traffic to the model version "
                                    "(the rest runs the static rule); validated 0-1 by the deploy code")
    description: str = "Lambda-vs-Fargate router (hybridopt)"
    tags: dict[str, str] = Field(default_factory=lambda: {"project": "hybridopt"})


class AB(_Strict):
    """Online A/B test and offline policy evaluation."""
    seed: int = 7
    treatment_share: float = Field(0.5, gt=0, lt=1, description="share of requests in the model arm")
    confidence: float = Field(0.95, gt=0.5, lt=1)
    alpha: float = Field(0.05, gt=0, lt=0.5, description="significance level of the per-metric tests")
    power: float = Field(0.8, gt=0.5, lt=1, description="power for the minimum detectable effect")
    bootstrap_resamples: int = Field(2000, ge=200)
    plan_requests: int = Field(500_000, ge=1000, description="the plan's one-week test (thesis "
                               "requirements 6.2: ~500K requests minimum)")
    plan_days: float = Field(7.0, gt=0)
    testbed_requests: int = Field(400, ge=20, description="A/B requests sent to the local testbed")
    testbed_rate_rps: float = Field(20.0, gt=0, description="their arrival rate")
    simulate_requests: int = Field(500_000, ge=1000, description="requests of the virtual-time A/B")
    heldout_split: Literal["test", "validation"] = Field("test", description="offline evaluation rows")


# ------------------------------------------------------------------------------------------- the whole
class Params(_Strict):
    profile: str
    experiment: str
    source: Literal["testbed", "simulator", "aws", "legacy"]
    timezone: str
    data: DataPaths
    workloads: dict[str, Workload] = Field(min_length=1)
    load_patterns: dict[str, LoadPattern] = Field(min_length=1)
    time_windows: dict[str, TimeWindow] = Field(min_length=1)
    prices: Prices
    cost: CostOptions
    pairing: Pairing
    labels: Labels
    features: Features
    gates: Gates
    audit: Audit
    split: Split
    training: Training
    testbed: dict[str, Any] = Field(default_factory=dict, description="platform model; see testbed.yaml")
    router: Router = Field(default_factory=Router)
    deploy: Deploy = Field(default_factory=Deploy)
    ab: AB = Field(default_factory=AB)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {v!r}") from exc
        return v

    @model_validator(mode="after")
    def _cross_refs(self) -> "Params":
        for name, tw in self.time_windows.items():
            if tw.load_pattern not in self.load_patterns:
                raise ValueError(f"time_windows.{name}.load_pattern {tw.load_pattern!r} is not one of "
                                 f"load_patterns {sorted(self.load_patterns)}")
        for section in ("workloads", "load_patterns", "time_windows"):
            codes = [v.code for v in getattr(self, section).values()]
            if sorted(codes) != list(range(len(codes))):
                raise ValueError(f"{section} codes must be 0..{len(codes) - 1} without gaps, got {codes}")
        bad = set(self.features.columns) & set(self.features.forbidden)
        if bad:
            raise ValueError(f"features.columns holds forbidden columns {sorted(bad)}")
        return self

    # conveniences -------------------------------------------------------------------------------
    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def path(self, key: str) -> Path:
        """A data path from `data.<key>`, resolved (None becomes a ParamsError)."""
        value = getattr(self.data, key)
        if value is None:
            raise ParamsError(f"profile {self.profile!r}: data.{key} is not set")
        return paths.resolve(value, self.profile)

    @property
    def hash(self) -> str:
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------- loading
def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ParamsError(f"{path}: parameter file is missing")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _merge(dst: dict[str, Any], src: dict[str, Any], origin: dict[tuple[str, ...], str], file: str,
           prefix: tuple[str, ...] = ()) -> None:
    """Deep-merge src into dst (dicts merge, everything else replaces) and record which file set
    each key path."""
    for key, value in src.items():
        loc = prefix + (str(key),)
        origin[loc] = file
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _merge(dst[key], value, origin, file, loc)
        else:
            dst[key] = copy.deepcopy(value)
            if isinstance(value, dict):
                _mark(value, origin, file, loc)


def _mark(value: dict[str, Any], origin: dict[tuple[str, ...], str], file: str,
          prefix: tuple[str, ...]) -> None:
    for key, sub in value.items():
        origin[prefix + (str(key),)] = file
        if isinstance(sub, dict):
            _mark(sub, origin, file, prefix + (str(key),))


def _explain(exc: ValidationError, origin: dict[tuple[str, ...], str], files: list[str]) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(str(p) for p in err["loc"])
        file = next((origin[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in origin), None)
        dotted = ".".join(loc) or "(top level)"
        if err["type"] == "missing":
            where = f"{file or files[-1]}: key '{dotted}'"
            what = "is required but missing in every parameter file"
        elif err["type"] == "extra_forbidden":
            where = f"{file}: key '{dotted}'"
            what = "is not a known parameter (typo?)"
        else:
            where = f"{file}: key '{dotted}'"
            what = f"{err['msg']}; got {err.get('input')!r}"
        lines.append(f"{where} {what}")
    return "invalid parameters:\n  " + "\n  ".join(lines)


def profile_files(profile: str, params_dir: Path | None = None) -> list[Path]:
    d = params_dir or paths.PARAMS_DIR
    return [d / f for f in BASE_FILES] + [d / f"{profile}.yaml"]


def load_params(profile: str, params_dir: Path | None = None,
                overrides: dict[str, Any] | None = None) -> Params:
    """Load and validate the merged parameters of a profile."""
    if not profile or "/" in profile or profile in ("base", "testbed"):
        raise ParamsError(f"profile name {profile!r} is not a profile (expected e.g. quick, full, aws)")
    merged: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    files = profile_files(profile, params_dir)
    for f in files:
        if not f.is_file() and f.name == f"{profile}.yaml":
            known = sorted(p.stem for p in f.parent.glob("*.yaml") if p.name not in BASE_FILES)
            raise ParamsError(f"{f}: parameter file is missing: profile {profile!r} does not exist "
                              f"(known profiles: {', '.join(known)})")
        _merge(merged, _read_yaml(f), origin, str(f))
    if overrides:
        _merge(merged, overrides, origin, "overrides")
    merged["profile"] = profile
    try:
        return Params.model_validate(merged)
    except ValidationError as exc:
        raise ParamsError(_explain(exc, origin, [str(f) for f in files])) from None


def known_profiles(params_dir: Path | None = None) -> list[str]:
    d = params_dir or paths.PARAMS_DIR
    return sorted(p.stem for p in d.glob("*.yaml") if p.name not in BASE_FILES)
