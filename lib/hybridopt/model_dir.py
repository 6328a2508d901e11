"""The model directory (models/<profile>/), defined once: every writer (training, the synthetic
model of the tests) and every reader (evaluation, SHAP, the A/B test, the router and its Lambda
package) takes the file names from here. Standard library only: the router's zip ships it.

    <model file>             the serving model: model.txt (LightGBM text) or model.json (XGBoost JSON)
    feature_columns.json     the feature order the model was trained on
    feature_spec.json        hybridopt.data.features.FeatureSpec (codes, timezone, windows)
    static_rule.json         the per-workload rule: {workload: platform}
    model_metadata.json      what was trained, how, its scores; `serving` names format and file
    router_config.json       the router's own settings (written into the Lambda package only)
    analysis/<family>.joblib every base model (sklearn wrappers; analysis only, never served)
    analysis/splits.parquet  pair_id -> train | validation | test
    decision/                stage 06 (decide), what the router's objective policy serves:
      decision_spec.json     feature columns (14 + load), load windows, latency transform, model
                             files, objective and settings, marginal cost, workload rule, lookup
                             table, classifier, version, training provenance
      <platform>_<q>.txt     LightGBM text outcome models: q = p50, p95 (log latency), fail
      classifier.txt|.json   the decide stage's refit of the served classifier family
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

FEATURE_COLUMNS: Final = "feature_columns.json"
FEATURE_SPEC: Final = "feature_spec.json"
STATIC_RULE: Final = "static_rule.json"
METADATA: Final = "model_metadata.json"
ROUTER_CONFIG: Final = "router_config.json"
#: serving format -> file name
SERVING_FILES: Final = {"lightgbm_text": "model.txt", "xgboost_json": "model.json"}
#: What every model directory holds besides the serving model itself.
REQUIRED_FILES: Final = (FEATURE_COLUMNS, FEATURE_SPEC, STATIC_RULE, METADATA)
ANALYSIS_DIR: Final = "analysis"
DECISION_DIR: Final = "decision"
DECISION_SPEC: Final = "decision_spec.json"
#: platform -> quantity -> LightGBM text file of the outcome models
DECISION_MODEL_FILES: Final = {p: {q: f"{p}_{q}.txt" for q in ("p50", "p95", "fail")} for p in ("lambda", "ecs")}
#: serving format -> file name of the decide stage's classifier
DECISION_CLASSIFIER_FILES: Final = {"lightgbm_text": "classifier.txt", "xgboost_json": "classifier.json"}
SPLITS: Final = "splits.parquet"


def metadata_path(model_dir: Path) -> Path:
    return Path(model_dir) / METADATA


def analysis_dir(model_dir: Path) -> Path:
    return Path(model_dir) / ANALYSIS_DIR


def splits_path(model_dir: Path) -> Path:
    return analysis_dir(model_dir) / SPLITS


def decision_dir(model_dir: Path) -> Path:
    return Path(model_dir) / DECISION_DIR


def decision_spec_path(model_dir: Path) -> Path:
    return decision_dir(model_dir) / DECISION_SPEC
