"""Stage 06's files: the serving set in models/<profile>/decision/ (names in hybridopt.model_dir) that
the router reads, and decisions.json, the evaluation of every policy.

- `decide_profile`: leave-session-out evaluation on the profile's processed pairs, then every model
  refitted on all sessions and saved for serving; decisions.json written.
- `decide_unseen`: logs the models never saw, through the same audit, pairing and features, scored
  with the SAVED models, tables and thresholds (no refit); decisions.json written.
- `load_or_decide` (the notebook): the saved decisions.json when its params and inputs are those of
  now, else `decide_profile`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Final, Mapping

import hybridopt.modeling  # noqa: F401  (first: the OpenMP wait policy before the boosters load)
import lightgbm as lgb
import numpy as np
import pandas as pd

from hybridopt import model_dir as layout
from hybridopt import paths, provenance
from hybridopt.data.features import FeatureSpec
from hybridopt.data.preprocess import frame_hash
from hybridopt.decision.evaluate import (
    OPEN_LOOP,
    BillFn,
    DecisionInputError,
    Scored,
    leave_session_out,
    prepare,
    score,
    summarize,
)
from hybridopt.decision.objective import MarginalCost, Objective
from hybridopt.decision.outcomes import BOOSTER_SETTINGS, LATENCY_TRANSFORM, N_TREES, OutcomeModels
from hybridopt.decision.policies import (
    ClassifierFamily,
    ConstantClassifier,
    Fitted,
    ProbaModel,
    check_slos,
    fit_policies,
    objectives,
    policy_score,
    served_family,
)
from hybridopt.errors import InputError
from hybridopt.modeling.artifacts import jsonable
from hybridopt.params import Params

if TYPE_CHECKING:
    import xgboost as xgb

SPEC_VERSION: Final = 1
DECISIONS_FILE: Final = "decisions.json"
Log = Callable[[str], None]


class DecisionArtifactError(InputError):
    """A decision folder is missing a file or holds one that does not fit the others."""


# ------------------------------------------------------------------------------- serving files
@dataclass(frozen=True)
class BoosterClassifier:
    """A saved classifier booster (LightGBM text or XGBoost JSON) with predict_proba."""
    booster: "lgb.Booster | xgb.Booster"
    fmt: str

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        a = np.ascontiguousarray(X.to_numpy(dtype=np.float64))
        p = self.booster.predict(a) if self.fmt == "lightgbm_text" else self.booster.inplace_predict(a)
        p = np.asarray(p, dtype=np.float64)
        return np.column_stack([1.0 - p, p])


def _save_classifier(d: Path, fitted: Fitted) -> dict[str, Any]:
    c = fitted.classifier
    info: dict[str, Any] = {"family": fitted.family.name, "settings": dict(fitted.family.settings),
                            "source": fitted.family.source, "threshold_default": 0.5,
                            "threshold_best": fitted.threshold_best, "threshold_method": fitted.threshold_method,
                            "columns": fitted.feature_columns}
    for f in layout.DECISION_CLASSIFIER_FILES.values():
        (d / f).unlink(missing_ok=True)
    if isinstance(c, ConstantClassifier):
        return {**info, "format": "constant", "file": None, "p_lambda": c.p_lambda}
    fmt = "lightgbm_text" if fitted.family.name == "lightgbm" else "xgboost_json"
    file = layout.DECISION_CLASSIFIER_FILES[fmt]
    (c.booster_ if fmt == "lightgbm_text" else c.get_booster()).save_model(str(d / file))
    return {**info, "format": fmt, "file": file}


def save_decision(model_dir: Path, fitted: Fitted, spec: FeatureSpec, objs: Mapping[str, Objective],
                  windows_s: tuple[float, ...], missing_completion_s: float, training: dict[str, Any]) -> Path:
    """Write models/<profile>/decision/: the outcome models, the classifier and decision_spec.json."""
    d = layout.decision_dir(model_dir)
    d.mkdir(parents=True, exist_ok=True)
    for p, qs in layout.DECISION_MODEL_FILES.items():
        for q, file in qs.items():
            fitted.models.boosters[p][q].save_model(str(d / file))
    doc = {
        "version": SPEC_VERSION,
        "feature_columns": fitted.models.columns,
        "feature_spec": asdict(spec),
        "load_windows_s": list(windows_s),
        "missing_completion_s": missing_completion_s,
        "latency_transform": LATENCY_TRANSFORM,
        "p95_at_least_p50": True,
        "models": layout.DECISION_MODEL_FILES,
        "objective": objs["default"].to_dict(),
        "settings": {k: o.to_dict() for k, o in objs.items() if k != "default"},
        "marginal_cost": fitted.marginal.to_dict(),
        "workload_rule": fitted.rule,
        "lookup_table": fitted.table,
        "classifier": _save_classifier(d, fitted),
        "training": {**training, "outcome_rows": fitted.models.trained_rows, "booster_settings": dict(BOOSTER_SETTINGS),
                     "n_trees": N_TREES, "threshold_scores": fitted.threshold_scores},
    }
    path = layout.decision_spec_path(model_dir)
    path.write_text(json.dumps(jsonable(doc), indent=2, allow_nan=False))
    return path


REDECIDE: Final = "run `python -m hybridopt decide --profile NAME` again, or give --model another model folder"


def _booster(path: Path, what: str) -> lgb.Booster:
    """A LightGBM text model, checked for its frame before LightGBM reads it (a broken file is
    named here instead of failing inside the native library)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DecisionArtifactError(f"{path}: the {what} is missing: {REDECIDE}") from None
    except UnicodeDecodeError:
        raise DecisionArtifactError(f"{path}: the {what} is not a LightGBM text model: {REDECIDE}") from None
    if not text.startswith("tree\n") or "\nend of trees" not in text:
        raise DecisionArtifactError(f"{path}: the {what} is not a complete LightGBM text model: {REDECIDE}")
    try:
        return lgb.Booster(model_str=text)
    except (lgb.basic.LightGBMError, ValueError) as exc:
        raise DecisionArtifactError(f"{path}: the {what} cannot be read ({exc}): {REDECIDE}") from None


def _spec_doc(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DecisionArtifactError(f"{path}: missing (run `python -m hybridopt decide --profile NAME` first, or "
                                    "give --model a folder that holds decision/)")
    try:
        doc = json.loads(path.read_bytes())
    except ValueError as exc:  # includes UnicodeDecodeError
        raise DecisionArtifactError(f"{path}: not valid JSON ({exc}): {REDECIDE}") from None
    if not isinstance(doc, dict) or doc.get("version") != SPEC_VERSION:
        got = doc.get("version") if isinstance(doc, dict) else type(doc).__name__
        raise DecisionArtifactError(f"{path}: version {got!r}, expected {SPEC_VERSION}: {REDECIDE}")
    return doc


@dataclass
class Loaded:
    fitted: Fitted
    spec: FeatureSpec
    objs: dict[str, Objective]
    windows_s: tuple[float, ...]
    missing_completion_s: float
    doc: dict[str, Any]


def load_decision(model_dir: Path) -> Loaded:
    """Read models/<profile>/decision/ back (the boosters from their text files)."""
    path = layout.decision_spec_path(model_dir)
    doc = _spec_doc(path)
    try:
        return _loaded(layout.decision_dir(model_dir), path, doc)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise DecisionArtifactError(f"{path}: not a decision spec ({exc!r} missing or wrong): {REDECIDE}") from None


def _loaded(d: Path, path: Path, doc: dict[str, Any]) -> Loaded:
    boosters: dict[str, dict[str, lgb.Booster]] = {}
    for p, qs in doc["models"].items():
        boosters[p] = {}
        for q, file in qs.items():
            boosters[p][q] = _booster(d / file, f"{p} {q} model named in {path}")
            if boosters[p][q].feature_name() != doc["feature_columns"]:
                raise DecisionArtifactError(f"{d / file}: its features differ from feature_columns in {path}")
    c = doc["classifier"]
    if c["format"] == "constant":
        clf: ProbaModel = ConstantClassifier(float(c["p_lambda"]))
    elif c["format"] == "lightgbm_text":
        clf = BoosterClassifier(_booster(d / c["file"], f"classifier named in {path}"), "lightgbm_text")
    else:
        import xgboost as xgb

        b = xgb.Booster()
        try:
            b.load_model(str(d / c["file"]))
        except xgb.core.XGBoostError as exc:
            raise DecisionArtifactError(f"{d / c['file']}: the classifier cannot be read "
                                        f"({' '.join(str(exc).split())[:200]}): {REDECIDE}") from None
        clf = BoosterClassifier(b, "xgboost_json")
    models = OutcomeModels(list(doc["feature_columns"]), boosters, doc["training"]["outcome_rows"])
    fitted = Fitted(models, MarginalCost.from_dict(doc["marginal_cost"]), dict(doc["workload_rule"]),
                    {w: dict(t) for w, t in doc["lookup_table"].items()},
                    ClassifierFamily(c["family"], c["settings"], c["source"]), clf, list(c["columns"]),
                    float(c["threshold_best"]), list(doc["training"]["threshold_scores"]), str(c["threshold_method"]))
    objs = {"default": Objective.from_dict(doc["objective"]),
            **{k: Objective.from_dict(v) for k, v in doc["settings"].items()}}
    return Loaded(fitted, FeatureSpec(**doc["feature_spec"]), objs, tuple(float(w) for w in doc["load_windows_s"]),
                  float(doc["missing_completion_s"]), doc)


# ---------------------------------------------------------------------------------- decisions.json
def summary(sc: Scored, tables: dict[str, pd.DataFrame], objs: Mapping[str, Objective]) -> dict[str, Any]:
    """The objective policy beside the static policy that best meets the default objective on these
    pairs (policy_score), each with its regret against the default objective's oracle."""
    pol = tables["policies"].set_index("policy")
    statics = [k for k, v in sc.kinds.items() if v == "static"]
    scores = {k: policy_score(objs["default"], sc.outcomes, sc.choices[k]) for k in [*statics, "objective"]}
    best = min(statics, key=lambda k: scores[k])
    keep = ["bill_avg_usd_per_1k_requests", "latency_p95_ms", "failure_rate", "slo_miss_share",
            "regret_usd_per_1k_requests", "regret_usd_per_1k_requests_ci_low", "regret_usd_per_1k_requests_ci_high",
            "regret_ms_per_request", "regret_ms_per_request_ci_low", "regret_ms_per_request_ci_high", "oracle_agreement"]
    keep += [f"{c}_ci_na" for c in ("regret_usd_per_1k_requests", "regret_ms_per_request") if f"{c}_ci_na" in pol]
    return {"objective": objs["default"].name, "objective_kind": objs["default"].kind, "best_static": best,
            "score_rule": ("policy_score: slo_cheapest (excess over the SLO and failure allowances at 0.001, mean "
                           "marginal USD), weighted (0, mean objective USD); lower is better"),
            "scores": {k: list(v) for k, v in scores.items()},
            "objective_scores_better_than_best_static": bool(scores["objective"] < scores[best]),
            "policies": {k: {"score": list(scores[k]), **{c: pol.loc[k, c] for c in keep}} for k in (best, "objective")}}


#: A session resampled from fewer blocks than this gives CIs that understate the uncertainty.
MIN_BLOCKS: Final = 10


def notes(tables: Mapping[str, pd.DataFrame]) -> list[str]:
    out = []
    few = tables["blocks"][tables["blocks"]["blocks"] < MIN_BLOCKS]
    if len(few):
        out.append(f"{len(few)} session(s) span fewer than {MIN_BLOCKS} bootstrap blocks of "
                   f"{few['block_s'].iloc[0]:g} s ({', '.join(f'{r.session}: {r.blocks}' for r in few.itertuples())}): "
                   "their confidence intervals understate the uncertainty (one block gives none).")
    return out + [str(n) for n in tables["bill_notes"]["note"]] if "note" in tables["bill_notes"] else out


def document(params: Params, mode: str, sc: Scored, tables: dict[str, pd.DataFrame], objs: Mapping[str, Objective],
             extra: dict[str, Any], first_notes: list[str] | None = None) -> dict[str, Any]:
    inp = sc.inputs
    per_session = pd.Series(inp.sessions).value_counts().sort_index()
    return {
        "open_loop": OPEN_LOOP,
        "profile": params.profile, "mode": mode,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": {"pairs": int(len(inp.pairs)), "sessions": {str(k): int(v) for k, v in per_session.items()},
                 "pairs_paired": int((inp.pairs["pairing"].astype(str) == "paired").sum()),
                 "pairs_matched": int((inp.pairs["pairing"].astype(str) == "matched").sum())},
        "objectives": {k: o.to_dict() for k, o in objs.items()},
        "summary": summary(sc, tables, objs), "notes": [*(first_notes or []), *notes(tables)],
        **{k: v.to_dict(orient="records") for k, v in tables.items()},
        "folds": sc.folds, "leak_guard": inp.leak_guard,
        "provenance": {**provenance.collect(params), "params_hash": params.hash}, **extra,
    }


def write_decisions(out_dir: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """Write decisions.json; returns the document as written (plain JSON types, NaN as null)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / DECISIONS_FILE
    text = json.dumps(jsonable({**doc, "path": str(path)}), indent=2, allow_nan=False)
    path.write_text(text)
    return dict(json.loads(text))


def default_out(params: Params) -> Path:
    return params.path("reports_dir") / "decide"


# ------------------------------------------------------------------------------------ orchestration
def _meta(model_dir: Path) -> dict[str, Any] | None:
    """04_train's model_metadata.json when there is one (a broken one is named)."""
    p = layout.metadata_path(model_dir)
    if not p.is_file():
        return None
    try:
        meta = json.loads(p.read_bytes())
    except ValueError as exc:  # includes UnicodeDecodeError
        raise DecisionInputError(f"{p}: not valid JSON ({exc}): retrain (notebook 04_train) or remove it (the "
                                 "classifier then takes the plan's LightGBM settings)") from None
    return meta if isinstance(meta, dict) else None


def _bill_fn(params: Params, data_dir: Path | None) -> BillFn:
    from hybridopt.data.ingest import default_data_dir
    from hybridopt.decision.bill import policy_bill
    from hybridopt.decision.capacity import capacity_for

    timeline = capacity_for(params, data_dir or default_data_dir(params))
    return lambda pairs, to_lambda, requests, p: policy_bill(pairs, to_lambda, requests, p, timeline)


def missing_completion_s(params: Params) -> float:
    """How long an attempt without a response counts as in flight: the client's timeout."""
    return float(params.audit.client_timeout_s)


def read_processed(params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    d = paths.processed(params)
    for p in (d.requests, d.pairs):
        if not p.is_file():
            raise DecisionInputError(f"{p} is missing: run stages 02-03 first (`python -m hybridopt preprocess "
                                     f"--profile {params.profile}`)")
    try:
        return pd.read_parquet(d.pairs), pd.read_parquet(d.requests)
    except (OSError, ValueError) as exc:  # pyarrow's errors are both
        if isinstance(exc, OSError) and getattr(exc, "filename", None):
            raise
        raise DecisionInputError(f"{d.dir}: pairs.parquet or requests.parquet is not a readable table ({exc}): "
                                 f"run stages 02-03 again (`python -m hybridopt preprocess --profile "
                                 f"{params.profile}`)") from None


def decide_profile(params: Params, out_dir: Path | None = None, model_dir: Path | None = None,
                   log: Log = print) -> dict[str, Any]:
    """Leave-session-out evaluation of every policy, the serving refit on all sessions, both written."""
    from hybridopt.decision.marginal_fit import fit_marginal

    t0 = time.perf_counter()
    model_dir = Path(model_dir) if model_dir is not None else params.path("models_dir")
    pairs, requests = read_processed(params)
    objs = objectives(params)
    windows = tuple(float(w) for w in params.decision.load_windows_s)
    mcs = missing_completion_s(params)
    spec = FeatureSpec.from_params(params)
    inp = prepare(params, pairs, requests, spec, windows, mcs)
    check_slos(objs["default"], inp.workload)
    fam = served_family(params, _meta(model_dir), str(layout.metadata_path(model_dir)))
    g = inp.leak_guard["check_causal"]
    log(f"{len(inp.pairs):,} pairs in {len(set(inp.sessions))} sessions.\n"
        f"Leak guard of the load features: {g['probes']} probes, largest change {g['max_abs_diff']:g}, "
        f"{'passed' if g['passed'] else 'FAILED'} (seed {g['seed']}).\n"
        f"Classifier: {fam.name}, settings from {fam.source}.\nLeave-session-out folds:")
    sc = leave_session_out(params, inp, objs, fam, fit_marginal, log)
    tables = summarize(params, sc, objs, _bill_fn(params, None))
    log("refitting on all sessions for serving")
    mc = fit_marginal(inp.requests, params)
    fitted = fit_policies(inp.pairs, inp.X, inp.sessions, objs, mc, fam, params.labels.target, list(spec.columns),
                          params.decision.seed, params.training.n_jobs, params.training.cv_max_rows)
    training = {"profile": params.profile, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "pairs": int(len(inp.pairs)), "sessions": sorted(set(inp.sessions)), "label": params.labels.target,
                "seed": params.decision.seed, "pairs_sha256": frame_hash(pairs), "params_hash": params.hash,
                "git_commit": provenance.git_commit(), "library_versions": provenance.library_versions()}
    spec_path = save_decision(model_dir, fitted, spec, objs, windows, mcs, training)
    doc = document(params, "leave_session_out", sc, tables, objs, {
        "inputs": {"pairs_sha256": training["pairs_sha256"]},
        "serving": {"decision_spec": str(spec_path), "workload_rule": fitted.rule, "lookup_table": fitted.table,
                    "classifier_threshold_best": fitted.threshold_best, "marginal_cost": mc.to_dict()},
        "classifier": {"family": fam.name, "settings": dict(fam.settings), "source": fam.source},
        "seconds": round(time.perf_counter() - t0, 1)})
    return write_decisions(Path(out_dir) if out_dir is not None else default_out(params), doc)


def decide_unseen(params: Params, data_dir: Path, out_dir: Path | None = None, model_dir: Path | None = None,
                  log: Log = print) -> dict[str, Any]:
    """Score logs the saved models never saw (no refit): same audit, pairing and features."""
    from hybridopt.data.preprocess import ingest_and_audit, table_from_requests
    from hybridopt.modeling.evaluate import encodable

    t0 = time.perf_counter()
    model_dir = Path(model_dir) if model_dir is not None else params.path("models_dir")
    saved = load_decision(model_dir)
    result, audit = ingest_and_audit(params, Path(data_dir), write=False)
    pairs = table_from_requests(result.requests, params).pairs
    if not len(pairs):
        raise DecisionInputError(f"{data_dir}: {len(result.requests):,} requests but no pair of a Lambda and an ECS "
                                 "attempt to score")
    ok, unknown = encodable(pairs, saved.spec)
    pairs = pairs[ok].reset_index(drop=True)
    if not len(pairs):
        raise DecisionInputError(f"{data_dir}: no pair the saved models can encode (unknown values: {unknown})")
    inp = prepare(params, pairs, result.requests, saved.spec, saved.windows_s, saved.missing_completion_s)
    check_slos(saved.objs["default"], inp.workload)
    ch, judged, preds = saved.fitted.choices(inp.X, inp.workload, saved.objs)
    sc = score(inp, ch, judged, preds, saved.objs, saved.fitted.marginal)
    log(f"{len(inp.pairs):,} pairs of {data_dir} scored with {layout.decision_dir(model_dir)}")
    tables = summarize(params, sc, saved.objs, _bill_fn(params, Path(data_dir)))
    trained = set(saved.doc.get("training", {}).get("sessions") or [])
    seen = sorted(trained & set(inp.sessions))
    first = [f"NOT UNSEEN: the saved models were trained on sessions {seen} of these logs; these numbers are "
             "in-sample for them"] if seen else []
    doc = document(params, "unseen_data", sc, tables, saved.objs, first_notes=first, extra={
        "inputs": {"data_dir": str(result.data_dir), "input_sha256": audit.get("input_hash"),
                   "lines": audit.get("lines"), "unknown_to_models": unknown},
        "serving": {"decision_spec": str(layout.decision_spec_path(model_dir)),
                    "trained_on": saved.doc.get("training", {}).get("profile"),
                    "trained_sessions": saved.doc.get("training", {}).get("sessions")},
        "seconds": round(time.perf_counter() - t0, 1)})
    return write_decisions(Path(out_dir) if out_dir is not None else default_out(params) / "unseen", doc)


def load_or_decide(params: Params, force: bool = False, log: Log = print) -> dict[str, Any]:
    """The profile's decisions.json when it was made with these params and pairs, else a new one."""
    path = default_out(params) / DECISIONS_FILE
    spec = layout.decision_spec_path(params.path("models_dir"))
    if not force and path.is_file() and spec.is_file():
        doc = json.loads(path.read_text())
        pairs_path = paths.processed(params).pairs
        if (doc.get("provenance", {}).get("params_hash") == params.hash and pairs_path.is_file()
                and doc.get("inputs", {}).get("pairs_sha256") == frame_hash(pd.read_parquet(pairs_path))):
            log(f"reusing {path} (same params and pairs; force=True recomputes)")
            return doc
    return decide_profile(params, log=log)


def frames(doc: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """The tables of a decisions document as frames."""
    return {k: pd.DataFrame(doc.get(k) or []) for k in ("policies", "by_workload", "frontier", "coverage", "wins",
                                                        "bill_lines")}


__all__ = ["DECISIONS_FILE", "decide_profile", "decide_unseen", "frames", "load_decision",
           "load_or_decide", "save_decision"]
