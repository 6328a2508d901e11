"""From request logs to the training table: the steps behind notebooks 02 and 03 and the CLI.

stage 02 (`ingest_and_audit`): logs -> requests.parquet, quarantine.jsonl, audit.json
stage 03 (`preprocess`):       requests.parquet -> cost -> pairs -> labels -> features -> gates
                               -> pairs.parquet, training_table.parquet, data_card.json
`build_table(params, data_dir)` does both in memory (scoring new data, benchmarks).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from hybridopt import paths
from hybridopt.data import audit as audit_mod
from hybridopt.data import contract
from hybridopt.data import gates as gates_mod
from hybridopt.data.cost import add_costs
from hybridopt.data.features import FeatureSpec, assert_leak_free
from hybridopt.data.ingest import IngestResult, ingest, require_usable, write_quarantine
from hybridopt.data.labels import add_labels
from hybridopt.data.pairing import pair
from hybridopt.data.table import LABEL_COLUMNS, PAIR_COLUMNS
from hybridopt.errors import InputError
from hybridopt.params import Params


def _out_dir(params: Params, out_dir: Path | None) -> paths.Processed:
    d = paths.processed(params, out_dir)
    d.dir.mkdir(parents=True, exist_ok=True)
    return d


def frame_hash(df: pd.DataFrame) -> str:
    """A content hash of a frame (independent of the file format's metadata)."""
    h = hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    h.update(",".join(map(str, df.columns)).encode())
    return h.hexdigest()


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str))


# --------------------------------------------------------------------------------------- stage 02
def ingest_and_audit(params: Params, data_dir: Path | None = None, out_dir: Path | None = None,
                     write: bool = True) -> tuple[IngestResult, dict[str, Any]]:
    """Stage 02: read and audit the logs; with `write`, write requests.parquet, quarantine.jsonl and
    audit.json. Raises InputError (after writing) when some log could not be read or no line is a
    usable request (`ingest.require_usable`)."""
    result = ingest(params, data_dir)
    a = audit_mod.audit(result, params)
    quarantine = None
    if write:
        d = _out_dir(params, out_dir)
        result.requests.to_parquet(d.requests, index=False)
        write_quarantine(result, d.quarantine)
        _write_json(d.audit, a)
        quarantine = d.quarantine
    require_usable(result, quarantine)
    return result, a


# --------------------------------------------------------------------------------------- stage 03
@dataclass
class TableResult:
    pairs: pd.DataFrame            # every pair, labels included (NA when both attempts failed)
    table: pd.DataFrame            # labelled pairs + the feature columns
    pairing_report: dict[str, Any]
    gates: list[dict[str, Any]]
    spec: FeatureSpec
    probe_requests: int = 0        # requests of the network probe, left out (audit.is_probe)


def table_from_requests(requests: pd.DataFrame, params: Params) -> TableResult:
    """Cost, pairs, labels, features and gates of the requests; the network probe's requests are left
    out (they stay in the requests table and the audit counts them)."""
    spec = FeatureSpec.from_params(params)
    probe = audit_mod.is_probe(requests)
    priced = add_costs(requests[~probe.to_numpy()], params)
    pairs, report = pair(priced, params)
    pairs = add_labels(pairs, params)[list(PAIR_COLUMNS)]
    labelled = pairs[pairs[params.labels.target].notna()].reset_index(drop=True)
    ctx = labelled[["workload_type", "payload_size_kb", "sent_at", "time_window", "load_pattern"]]
    X = spec.frame(ctx)
    assert_leak_free(X, spec)
    shared = [c for c in X.columns if c in labelled.columns]  # payload_size_kb is both context and feature
    for c in shared:
        if not X[c].equals(labelled[c].astype("float64")):
            raise AssertionError(f"feature {c} differs from the pair column of the same name")
    table = pd.concat([labelled, X.drop(columns=shared)], axis=1)
    return TableResult(pairs=pairs, table=table, pairing_report=report,
                       gates=gates_mod.evaluate(table, params, spec), spec=spec, probe_requests=int(probe.sum()))


def data_card(params: Params, tr: TableResult, a: dict[str, Any], requests_hash: str) -> dict[str, Any]:
    t, p = tr.table, tr.pairs
    labels: dict[str, Any] = {"overall": {}, "by_workload": {}}
    for lab in LABEL_COLUMNS:
        labels["overall"][lab] = float(t[lab].astype("float64").mean()) if len(t) else None
    for w, g in t.groupby("workload_type"):
        labels["by_workload"][str(w)] = {lab: float(g[lab].astype("float64").mean()) for lab in LABEL_COLUMNS}
    lines = a["lines"]
    matched = p["pairing"].eq("matched").sum()
    notes = []
    if matched:
        notes.append(f"{matched:,} pairs were matched in time (legacy logs): their two requests carried different "
                     f"payloads of the same size sent up to {params.pairing.window_s:g} s apart, so the label "
                     "compares two similar requests, not the same one.")
    if any(c["censored_at_client_timeout"] for c in a["latency_ceiling"]):
        notes.append("Some latency distributions are censored at the client timeout: requests slower than it were "
                     "never logged, so the slow platform's failures are missing, not counted as losses.")
    return {
        "profile": params.profile,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "label_target": params.labels.target,
        "label_rule": params.labels.model_dump(),
        "cost_options": params.cost.model_dump(),
        "rows": {
            "input_lines": lines["lines_total"], "kept": lines["kept"], "repaired": lines["repaired"],
            "quarantined": lines["quarantined"], "requests": lines["kept"] + lines["repaired"],
            "probe_requests_excluded": tr.probe_requests,
            "pairs": int(len(p)), "pairs_direct": int((p["pairing"] == "paired").sum()),
            "pairs_matched": int(matched),
            "pairs_both_failed_excluded": int(p[params.labels.target].isna().sum()),
            "training_rows": int(len(t)),
        },
        "label_shares": labels,
        "features": list(tr.spec.columns),
        "gates": tr.gates,
        "gates_summary": gates_mod.summary(tr.gates),
        "pairing": tr.pairing_report,
        "hashes": {"input_sha256": a["input_hash"], "params": params.hash, "requests": requests_hash,
                   "training_table": frame_hash(t)},
        "notes": notes,
    }


def preprocess(params: Params, out_dir: Path | None = None) -> tuple[TableResult, dict[str, Any]]:
    """Stage 03: read stage 02's outputs, write pairs, the training table and the data card."""
    d = _out_dir(params, out_dir)
    req_path, audit_path = d.requests, d.audit
    stage02 = f"notebook 02_eda or `python -m hybridopt audit --profile {params.profile}`"
    for p in (req_path, audit_path):
        if not p.is_file():
            raise InputError(f"{p} is missing: run stage 02 first ({stage02})")
    try:
        requests = pd.read_parquet(req_path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(f"{req_path}: not a readable parquet file ({exc}): run stage 02 again ({stage02})") from None
    try:
        a = json.loads(audit_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(f"{audit_path}: not a readable audit ({exc}): run stage 02 again ({stage02})") from None
    missing = [c for c in (*contract.COLUMNS, "ok") if c not in requests.columns]
    if missing:
        raise InputError(f"{req_path}: not a requests table of stage 02 (no column {missing[0]}): run stage 02 "
                         f"again ({stage02})")
    if requests.empty:
        raise InputError(f"{req_path} holds no request: stage 02 found no usable line (see {audit_path}); "
                         "point it at request logs and run it again")
    tr = table_from_requests(requests, params)
    tr.pairs.to_parquet(d.pairs, index=False)
    tr.table.to_parquet(d.training_table, index=False)
    card = data_card(params, tr, a, frame_hash(requests))
    _write_json(d.data_card, card)
    return tr, card


def build_table(params: Params, data_dir: Path | None = None) -> tuple[TableResult, dict[str, Any],
                                                                        dict[str, Any]]:
    """Both stages in memory, nothing written: (table result, audit, data card)."""
    result, a = ingest_and_audit(params, data_dir, write=False)
    tr = table_from_requests(result.requests, params)
    return tr, a, data_card(params, tr, a, frame_hash(result.requests))
