"""Tables of what was collected: one flat row per window's manifest, and the legacy logs on disk."""

from __future__ import annotations

from typing import Sequence

from hybridopt.collection.manifest import Manifest
from hybridopt.params import Params

#: One table row: column name -> a number, text, flag or None.
Row = dict[str, str | int | float | bool | None]


def summary_rows(manifests: Sequence[Manifest]) -> list[Row]:
    """One flat row per window for tables: attempts, lines, errors by kind, generator health."""
    rows = []
    for m in manifests:
        g = m.get("generator") or {}
        kinds: dict[str, int] = {}
        for per in ((m.get("outcomes") or {}).get("by_platform") or {}).values():
            for k, v in per.items():
                kinds[k] = kinds.get(k, 0) + v
        row: Row = {"run_id": m.get("run_id"), "time_window": m.get("time_window"),
                    "load_pattern": m.get("load_pattern"), "status": m.get("status"),
                    "wall_s": m.get("wall_s"), "scheduled_pairs": m.get("scheduled_pairs"),
                    "attempts_made": m.get("attempts_made"), "lines_written": m.get("lines_written"),
                    "lines_equal_attempts": (m.get("checks") or {}).get("lines_equal_attempts"),
                    "ok": kinds.pop("ok", 0) if kinds else None,
                    "cpu_pct_p95": g.get("cpu_pct_p95"), "event_loop_lag_ms_p99": g.get("event_loop_lag_ms_p99"),
                    "saturated": g.get("saturated"), "saturation_reason": g.get("reason")}
        for k in sorted(kinds):
            row[f"error_{k}"] = kinds[k]
        rows.append(row)
    return rows


def legacy_summary(params: Params) -> list[Row]:
    """Legacy logs already on disk (source legacy): files, lines and bytes per collection folder."""
    root = params.path("legacy_dir")
    if not root.is_dir():
        raise FileNotFoundError(f"profile {params.profile!r}: data.legacy_dir {root} does not exist")
    rows: list[Row] = []
    for folder in sorted({p.parent for p in root.rglob("*.jsonl")}):
        files = sorted(folder.glob("*.jsonl"))
        n_lines = 0
        for f in files:
            with open(f, "rb") as fh:
                n_lines += sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
        rows.append({"folder": str(folder.relative_to(root)), "files": len(files), "lines": n_lines,
                     "bytes": sum(f.stat().st_size for f in files)})
    return rows
