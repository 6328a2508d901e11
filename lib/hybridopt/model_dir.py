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
SPLITS: Final = "splits.parquet"


def metadata_path(model_dir: Path) -> Path:
    return Path(model_dir) / METADATA


def analysis_dir(model_dir: Path) -> Path:
    return Path(model_dir) / ANALYSIS_DIR


def splits_path(model_dir: Path) -> Path:
    return analysis_dir(model_dir) / SPLITS
