"""The processed tables preprocessing writes and training, SHAP, routing and A/B read.

`data/<profile>/processed/`:
- `audit.json`            every input line accounted for (see audit.py)
- `requests.parquet`      the validated contract rows (kept + repaired)
- `pairs.parquet`         one row per pair (PAIR_COLUMNS), labels included
- `training_table.parquet` PAIR_COLUMNS + the feature columns of params.features.columns
- `data_card.json`        row counts, label shares, gates, hashes of inputs and output

A pair is one generated payload sent to both platforms (pair_id from the collector), or for legacy
logs a Lambda and an ECS request matched in time (pairing.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .params import Params

LABEL_COLUMNS: Final = ("latency_optimal", "cost_optimal", "balanced_optimal")

#: Pair metadata. Everything from `lambda_latency_ms` on is an OUTCOME: allowed in the table (for
#: labels, decision quality and A/B), never in the feature matrix.
PAIR_COLUMNS: Final = (
    "pair_id",              # str
    "pairing",              # "paired" (shared pair_id) | "matched" (legacy time matching)
    "gap_s",                # seconds between the two attempts (0 for paired)
    "run_id", "source", "experiment",
    "workload_type", "payload_size_kb", "time_window", "load_pattern", "phase",
    "scheduled_rate_rps",
    "sent_at",              # decision time: the earlier attempt's sent_at (UTC, tz-aware)
    "lambda_request_id", "ecs_request_id",
    "lambda_ok", "ecs_ok",  # bool: the attempt succeeded (2xx and no error)
    "lambda_error", "ecs_error",
    "lambda_latency_ms", "ecs_latency_ms",    # client-observed end-to-end (total_ms)
    "lambda_cost_usd", "ecs_cost_usd",        # cost.py
    "lambda_cold_start",
    *LABEL_COLUMNS,
)


def processed_dir(params: "Params") -> Path:
    return params.path("processed_dir")


def training_table_path(params: "Params") -> Path:
    return processed_dir(params) / "training_table.parquet"


def pairs_path(params: "Params") -> Path:
    return processed_dir(params) / "pairs.parquet"


def data_card_path(params: "Params") -> Path:
    return processed_dir(params) / "data_card.json"


def audit_path(params: "Params") -> Path:
    return processed_dir(params) / "audit.json"
