"""models/<profile>/: what the router serves and what the reports cite.

Serving (no pickle): `model.txt` (LightGBM text) or `model.json` (XGBoost JSON), with
`feature_columns.json`, `feature_spec.json`, `static_rule.json` and `model_metadata.json`
(its "serving" block names the file, format, label, threshold and positive class).
Analysis only: `analysis/<family>.joblib` (every base model, sklearn wrappers) and `splits.parquet`
(pair_id -> train/validation/test) so 05_shap and evaluate use exactly the training split."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hybridopt import model_dir as layout
from hybridopt import provenance
from hybridopt.data.features import FeatureSpec
from hybridopt.errors import InputError
from hybridopt.params import Params
from hybridopt.router.trees import load_model

if TYPE_CHECKING:  # training's modules load the model libraries: imported where used (a fast load_serving)
    import lightgbm
    import xgboost

    from hybridopt.modeling.train import TrainingRun


class ArtifactError(InputError):
    """A model folder is missing a file or holds one that does not fit the others."""


def jsonable(obj: object) -> Any:
    """Plain JSON types; NaN and infinities become null."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, pd.DataFrame):
        return jsonable(obj.reset_index().to_dict(orient="records"))
    return obj


def metadata(run: TrainingRun, params: Params) -> dict[str, Any]:
    from hybridopt.modeling.models import SERVING_FORMAT

    tp = params.training
    fmt, file = SERVING_FORMAT[run.best]
    return {
        "profile": params.profile,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "serving": {"format": fmt, "file": file, "label": run.target, "threshold": tp.threshold,
                    "positive_class": "lambda", "model": run.best},
        "selection": {**run.selection, "rule_text": (
            "highest validation ROC-AUC among the models with a pickle-free serving format "
            f"({', '.join(tp.selection.portable)}); within {tp.selection.tie_tolerance} of it, "
            f"{tp.selection.prefer} (faster single-row prediction)")},
        "data": {"table_hash": run.data_hash, "n_rows": run.n_rows, "split_sizes": run.split_sizes,
                 "split_label_lambda_share": run.split_label_share, "training_categories": run.categories},
        "params_hash": params.hash,
        "git": {"commit": provenance.git_commit()},
        "library_versions": provenance.library_versions(),
        "feature_columns": list(run.spec.columns),
        "chosen_settings": {m: s.best_settings for m, s in run.searches.items()},
        "search": {m: {"candidates": s.candidates, "best_candidate": s.best_index + 1,
                       "stopped_by_budget": s.stopped_by_budget, "budget_s": s.budget_s,
                       "seconds": round(s.seconds, 3), "notes": s.notes} for m, s in run.searches.items()},
        "cv": {"folds": tp.cv_folds, "max_rows": tp.cv_max_rows, "scoring": "roc_auc"},
        "ensemble": {"members": run.ensemble_members, "cv": run.ensemble_cv},
        "metrics": run.metrics, "baselines": run.baselines, "calibration_test": run.calibration,
        "ceiling": run.ceiling, "importance": run.importance, "verdicts": run.verdicts,
        "static_rule": run.static_rule, "decision_test": run.decision, "temporal": run.temporal,
        "timings_s": run.timings_s,
    }


def save_artifacts(run: TrainingRun, params: Params, out_dir: Path | None = None,
                   table: pd.DataFrame | None = None) -> Path:
    """Write the model folder; returns it. `table` (the training table) adds splits.parquet."""
    import joblib

    from hybridopt.modeling.models import BASE_MODELS, SERVING_FORMAT

    out = Path(out_dir) if out_dir is not None else params.path("models_dir")
    out.mkdir(parents=True, exist_ok=True)
    for stale in layout.SERVING_FILES.values():
        (out / stale).unlink(missing_ok=True)
    best = run.models[run.best]
    fmt, file = SERVING_FORMAT[run.best]
    if fmt == "lightgbm_text":
        best.booster_.save_model(str(out / file))
    else:
        best.get_booster().save_model(str(out / file))
    (out / layout.FEATURE_COLUMNS).write_text(json.dumps(list(run.spec.columns), indent=2))
    (out / layout.FEATURE_SPEC).write_text(run.spec.to_json())
    (out / layout.STATIC_RULE).write_text(json.dumps(run.static_rule, indent=2, sort_keys=True))
    (out / layout.METADATA).write_text(json.dumps(jsonable(metadata(run, params)), indent=2, allow_nan=False))
    analysis = layout.analysis_dir(out)
    analysis.mkdir(exist_ok=True)
    for name in BASE_MODELS:
        joblib.dump(run.models[name], analysis / f"{name}.joblib", compress=3)
    if table is not None:
        split = np.full(len(table), "", dtype=object)
        ids = table["pair_id"].astype(str).to_numpy()
        for name, idx in run.splits.items():
            split[idx] = name
        pd.DataFrame({"pair_id": ids, "split": split}).to_parquet(layout.splits_path(out), index=False)
    return out


@dataclass
class ServingModel:
    """The saved best model as the router loads it: no pickle, no sklearn."""
    booster: lightgbm.Booster | xgboost.Booster
    fmt: str
    columns: list[str]
    spec: FeatureSpec
    meta: dict[str, Any]
    static_rule: dict[str, str]

    @property
    def threshold(self) -> float:
        return float(self.meta["serving"]["threshold"])

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """P(lambda) for a (n, features) float array in `columns` order."""
        a = np.ascontiguousarray(rows, dtype=np.float64)
        if a.ndim == 1:
            a = a.reshape(1, -1)
        if a.shape[1] != len(self.columns):
            raise ArtifactError(f"rows have {a.shape[1]} columns, the model expects {len(self.columns)}")
        if self.fmt == "lightgbm_text":
            return np.asarray(self.booster.predict(a), dtype=np.float64)
        return np.asarray(self.booster.inplace_predict(a), dtype=np.float64)


def _json(path: Path) -> Any:
    """A JSON file of the model folder, or ArtifactError naming it."""
    retrain = "retrain the model (notebook 04_train) or give another model folder"
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing: {retrain}") from None
    except ValueError as exc:  # includes UnicodeDecodeError
        raise ArtifactError(f"{path}: not valid JSON ({exc}): {retrain}") from None


def load_serving(model_dir: Path) -> ServingModel:
    """Load models/<profile>/ through the serving format only (ArtifactError names a missing or
    broken file)."""
    d = Path(model_dir)
    retrain = "retrain the model (notebook 04_train) or give another model folder"
    if not d.is_dir():
        raise ArtifactError(f"{d}: no such model folder: train the profile first (notebook 04_train) or give "
                            "--model a trained model folder")
    meta_path = layout.metadata_path(d)
    if not meta_path.is_file():
        raise ArtifactError(f"{meta_path}: missing (train the profile first: notebook 04_train)")
    meta = _json(meta_path)
    serving = meta.get("serving") if isinstance(meta, dict) else None
    if not isinstance(serving, dict) or not {"file", "format"} <= serving.keys():
        raise ArtifactError(f"{meta_path}: no serving block with file and format: {retrain}")
    file = d / str(serving.get("file"))
    if not file.is_file():
        raise ArtifactError(f"{file}: the serving model named in {meta_path} is missing")
    columns = _json(d / layout.FEATURE_COLUMNS)
    try:
        spec = FeatureSpec.from_json((d / layout.FEATURE_SPEC).read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{d / layout.FEATURE_SPEC}: missing: {retrain}") from None
    except (KeyError, TypeError, ValueError) as exc:  # ValueError includes UnicodeDecodeError
        raise ArtifactError(f"{d / layout.FEATURE_SPEC}: not a feature spec ({exc!r}): {retrain}") from None
    if columns != spec.columns:
        raise ArtifactError(f"{d}: feature_columns.json and feature_spec.json disagree on the columns")
    fmt = serving["format"]
    if fmt not in layout.SERVING_FILES:
        raise ArtifactError(f"{meta_path}: serving.format {fmt!r} is not one of {', '.join(layout.SERVING_FILES)}")
    try:  # the router's own reading of the file first: a clear reason, and no native library's log line
        load_model(fmt, file.read_text(), str(file))
    except ValueError as exc:  # ModelFormatError, UnicodeDecodeError
        raise ArtifactError(f"{file}: not a {fmt} model ({' '.join(str(exc).split())[:200]}): {retrain}") from None
    broken = f"{file}: not a {fmt} model file: {retrain}"
    booster: lightgbm.Booster | xgboost.Booster
    if fmt == "lightgbm_text":
        import lightgbm as lgb
        try:
            booster = lgb.Booster(model_file=str(file))
        except lgb.basic.LightGBMError:
            raise ArtifactError(broken) from None
        names = booster.feature_name()
    else:
        import xgboost as xgb
        booster = xgb.Booster()
        try:
            booster.load_model(str(file))
        except xgb.core.XGBoostError:
            raise ArtifactError(broken) from None
        names = booster.feature_names
    if names is not None and list(names) != columns:
        raise ArtifactError(f"{file}: model features {list(names)} differ from feature_columns.json {columns}")
    rule = _json(d / layout.STATIC_RULE)
    if not isinstance(rule, dict):
        raise ArtifactError(f"{d / layout.STATIC_RULE}: expected an object {{workload: platform}}: {retrain}")
    return ServingModel(booster, fmt, columns, spec, meta, rule)
