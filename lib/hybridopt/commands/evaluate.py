"""python -m hybridopt evaluate: score the saved best model on another folder of logs."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hybridopt.commands._common import table
from hybridopt.data.table import LABEL_COLUMNS
from hybridopt.errors import InputError
from hybridopt.params import load_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", required=True,
                        help="params profile that reads the logs (layout, prices, labels, timezone)")
    parser.add_argument("--data", type=Path, default=None, help="folder of logs (default: the profile's)")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: models/<profile>)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for evaluation.json (default: reports/<profile>/evaluate)")


def run(args: argparse.Namespace) -> int:
    from hybridopt.modeling.artifacts import jsonable, load_serving

    params = load_params(args.profile)
    t0 = time.perf_counter()
    model_dir = args.model or params.path("models_dir")
    model = load_serving(model_dir)  # first: a wrong model folder is told before the scoring libraries load
    from hybridopt.modeling.evaluate import (
        pairs_from_logs,
        score_pairs,
        training_overlap,
    )

    pairs, info = pairs_from_logs(params, args.data)
    label = model.meta["serving"].get("label")
    if label not in pairs.columns:
        raise InputError(f"{model_dir}: the model predicts {label!r}, a label the logs' pairs do not have "
                         f"(labels: {', '.join(LABEL_COLUMNS)}): evaluate a model trained on one of them")
    res = score_pairs(model, pairs, label, params.training.ceiling_min_group, params.training.ceiling_folds,
                      params.training.seed)
    res = {"profile": params.profile, "model_dir": str(model_dir), "model_profile": model.meta.get("profile"),
           "model": model.meta["serving"].get("model"), **info, **res,
           "overlap_with_training": training_overlap(model_dir, pairs)}
    out_dir = args.out or params.path("reports_dir") / "evaluate"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "evaluation.json"
    path.write_text(json.dumps(jsonable(res), indent=2, allow_nan=False))

    m, c = res.get("metrics") or {}, res.get("ceiling") or {}
    rows = [("model", f"{res['model']} ({res['model_dir']})"), ("data", res["data_dir"]),
            ("pairs (scored)", f"{res['n_pairs']:,} ({res['n_scored']:,})"),
            ("accuracy", f"{m['accuracy']:.3f}" if m else "n/a"),
            ("ROC-AUC", f"{m['roc_auc']:.3f}" if m.get("roc_auc") is not None else "n/a"),
            ("noise ceiling", f"{c['accuracy']:.3f} (coverage {c.get('coverage', 0):.2f})"
             if c.get("accuracy") is not None else "n/a")]
    for key, what in (("unknown_to_model", "not encodable (left out)"), ("unseen_in_training", "unseen in training")):
        for col, vals in (res.get(key) or {}).items():
            rows.append((f"{what}: {col}", ", ".join(f"{k} ({v:,})" for k, v in vals.items())))
    if "decision" in res:
        d = res["decision"]
        for pol in ("model", "static_rule", "always_lambda", "always_ecs", "oracle"):
            r = d.loc[pol]
            rows.append((f"policy {pol}", f"${r['total_cost_usd']:.4f}, p50 {r['latency_p50_ms']:.0f} ms, "
                                          f"p95 {r['latency_p95_ms']:.0f} ms, regret ${r['regret_cost_usd']:.4f}"))
    ov = res["overlap_with_training"]
    if ov.get("train_or_validation"):
        rows.append(("WARNING", f"{ov['train_or_validation']:,} of these pairs were used to train/select the model: "
                                "this is not a held-out evaluation"))
    rows += [("seconds", f"{time.perf_counter() - t0:.1f}"), ("wrote", path)]
    print(f"evaluate {params.profile}")
    print(table(rows))
    return 0 if res["n_scored"] else 1
