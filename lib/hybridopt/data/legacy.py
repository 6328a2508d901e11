"""The student's first collection layout (November 2025), converted into the contract.

Layout: `<time_window>_<load_pattern>/<platform>_<workload>_<YYYY-MM-DD>.jsonl`, one line per
logged response:
    {request_id, platform, workload_type, timestamp, http_status, response_time_ms,
     target_payload_size_kb, actual_payload_size_kb, time_window, load_pattern,
     metrics: {execution_time_ms, memory_used_mb, memory_limit_mb, cold_start, cpu_percent,
               payload_size_kb}}
`unknown_*.jsonl` files hold HTTP 500 rows whose body named no platform: they stay in the data as
platform "unknown" (counted in the audit, never paired).

Mapping: response_time_ms (Artillery's phases.total) -> total_ms; timestamp -> sent_at (UTC; the
README says naive ones are UTC: repaired and counted); the folder name is the run_id. Fields with
no contract meaning are dropped and counted (cpu_percent, memory_used_mb: the Lambda one is the
memory limit as a string, metrics.payload_size_kb duplicates actual_payload_size_kb).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hybridopt.data import contract
from hybridopt.data.reader import Converter, Reject

FILE_RE = re.compile(r"^(?P<platform>lambda|ecs|unknown)_(?P<workload>[a-z_]+?)_(?P<date>\d{4}-\d{2}-\d{2})\.jsonl$")

_TOP = frozenset({"request_id", "platform", "workload_type", "timestamp", "http_status", "response_time_ms",
                  "target_payload_size_kb", "actual_payload_size_kb", "time_window", "load_pattern", "metrics"})
_METRICS_MAPPED = {"execution_time_ms": "execution_time_ms", "memory_limit_mb": "memory_limit_mb",
                   "cold_start": "cold_start"}
_METRICS_DROPPED = frozenset({"memory_used_mb", "cpu_percent", "payload_size_kb"})


def is_legacy_file(path: Path) -> bool:
    return FILE_RE.match(path.name) is not None


def make_converter(run_id: str, experiment: str, file_platform: str, file_workload: str) -> Converter:
    """A converter for the lines of one legacy file."""

    def convert(obj: dict[str, Any]) -> dict[str, Any]:
        unknown = obj.keys() - _TOP
        if unknown:
            raise Reject(f"unknown_field:{sorted(unknown)[0]}")
        metrics = obj.get("metrics")
        if metrics is None:
            metrics = {}
        elif type(metrics) is not dict:
            raise Reject("wrong_type:metrics")
        m_unknown = metrics.keys() - _METRICS_MAPPED.keys() - _METRICS_DROPPED
        if m_unknown:
            raise Reject(f"unknown_field:metrics.{sorted(m_unknown)[0]}")
        platform = obj.get("platform")
        if platform != file_platform:
            raise Reject(f"platform_differs_from_file_name:{platform}")
        if obj.get("workload_type") != file_workload:
            raise Reject(f"workload_differs_from_file_name:{obj.get('workload_type')}")
        status = obj.get("http_status")
        out: dict[str, Any] = {
            "schema_version": contract.SCHEMA_VERSION,
            "request_id": obj.get("request_id"),
            "pair_id": None,
            "experiment": experiment,
            "run_id": run_id,
            "source": "legacy",
            "platform": platform,
            "workload_type": obj.get("workload_type"),
            "target_payload_size_kb": obj.get("target_payload_size_kb"),
            "time_window": obj.get("time_window"),
            "load_pattern": obj.get("load_pattern"),
            "sent_at": obj.get("timestamp"),
            "http_status": status,
            "total_ms": obj.get("response_time_ms"),
            "actual_payload_size_kb": obj.get("actual_payload_size_kb"),
        }
        for src, dst in _METRICS_MAPPED.items():
            if src in metrics:
                out[dst] = metrics[src]
        return out

    return convert


def run_id_for(path: Path) -> str:
    """The run a legacy file belongs to: its folder (`<time_window>_<load_pattern>`)."""
    return path.parent.name
