"""The experiment's sections of params/base.yaml: data paths, workloads, load patterns, time windows,
prices, cost options, pairing, labels, features, gates, audit, split and training."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from hybridopt.params.common import _Strict


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
    temporal_max_folds: int = Field(6, ge=2, description="more runs are held out in this many time blocks")
    ceiling_min_group: int = Field(ge=1, description="training samples a feature vector needs to count")
    ceiling_folds: int = Field(5, ge=2)
    explain_rows: int = Field(ge=10, description="rows whose SHAP values give the verdict importance")
    agnostic_explain_rows: int = Field(ge=10, description="rows explained for the MLP and the ensemble "
                                       "(permutation SHAP, far slower than TreeSHAP)")
    background_rows: int = Field(ge=10, description="background of the model-agnostic explainer")
    interaction_rows: int = Field(ge=10, description="rows for SHAP interaction values")
    surrogate_max_depth: int = Field(ge=1, le=6)
    surrogate_min_leaf_share: float = Field(gt=0, lt=0.5)
    verdict: Verdict
