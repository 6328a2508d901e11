"""Gates: the pass/fail checks a training table must meet before anyone trusts a model on it.
A failing gate never stops the pipeline or hides a report: it is the first thing a supervisor reads.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from hybridopt.data.features import FeatureSpec, LeakError, assert_leak_free
from hybridopt.params import Params


def _gate(name: str, scope: str, value: float | str | list[int] | None, threshold: str,
          passed: bool) -> dict[str, Any]:
    return {"gate": name, "scope": scope, "value": value, "threshold": threshold, "pass": bool(passed)}


def evaluate(table: pd.DataFrame, params: Params, spec: FeatureSpec) -> list[dict[str, Any]]:
    g = params.gates
    label = params.labels.target
    rows: list[dict[str, Any]] = []
    if table.empty:
        return [_gate("training table has rows", "all", 0, "> 0", False)]
    y = table[label].astype("float64")
    for w in params.workloads:
        s = y[table["workload_type"] == w]
        if s.empty:
            rows.append(_gate(f"{label} mean", w, None, f"{g.label_mean_min}-{g.label_mean_max}", False))
            rows.append(_gate(f"{label} std", w, None, f"> {g.label_std_min}", False))
            continue
        mean, std = float(s.mean()), float(s.std(ddof=0))
        rows.append(_gate(f"{label} mean", w, round(mean, 4), f"{g.label_mean_min}-{g.label_mean_max}",
                          g.label_mean_min <= mean <= g.label_mean_max))
        rows.append(_gate(f"{label} std", w, round(std, 4), f"> {g.label_std_min}", std > g.label_std_min))
    classes = sorted(int(c) for c in y.dropna().unique())
    rows.append(_gate("both classes present", "all", classes, "[0, 1]", classes == [0, 1]))
    for w in params.workloads:
        n = int(table.loc[table["workload_type"] == w, "payload_size_kb"].nunique())
        rows.append(_gate("unique payload sizes", w, n, f"{g.payload_sizes_min}-{g.payload_sizes_max}",
                          g.payload_sizes_min <= n <= g.payload_sizes_max))
    for col, section in (("time_window", params.time_windows), ("load_pattern", params.load_patterns)):
        present = set(table[col].astype(str).unique())
        missing = sorted(set(section) - present)
        rows.append(_gate(f"all {col}s present", "all", f"missing: {missing}" if missing else "all",
                          f"{len(section)} of {len(section)}", not missing))
    used = list(spec.columns) + [label]
    n_missing = int(table[used].isna().sum().sum())
    rows.append(_gate("no missing values (features + label)", "all", n_missing, "0", n_missing == 0))
    try:
        assert_leak_free(table[list(spec.columns)], spec)
        leak, ok = "none", True
    except (LeakError, KeyError) as exc:
        leak, ok = str(exc), False
    rows.append(_gate("no forbidden features", "all", leak, "none", ok))
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    failed = [f"{r['gate']} ({r['scope']}): {r['value']}" for r in rows if not r["pass"]]
    return {"passed": len(rows) - len(failed), "failed": len(failed), "total": len(rows), "failing": failed}
