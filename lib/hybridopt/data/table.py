"""The columns of the pair table that preprocessing writes and training, SHAP, routing and A/B read
(its files are named in `hybridopt.paths.Processed`): `pairs.parquet` holds PAIR_COLUMNS,
`training_table.parquet` PAIR_COLUMNS plus the feature columns of params.features.columns.

A pair is one generated payload sent to both platforms (pair_id from the collector), or for legacy
logs a Lambda and an ECS request matched in time (pairing.py).
"""

from __future__ import annotations

from typing import Final

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

