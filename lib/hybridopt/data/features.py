"""The 14 leak-free features: ONE definition, used by preprocessing (vectorised, numpy arrays) and by
the router (one request, Python scalars). Every feature declares the contract columns it is built
from; only columns known before a request is sent (`contract.PRE_SEND_COLUMNS`) are allowed, and
`assert_leak_free` guards the matrix that reaches a model."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Callable, Mapping
from zoneinfo import ZoneInfo

from hybridopt.data.contract import OUTCOME_COLUMNS, PRE_SEND_COLUMNS

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy as np
    import pandas as pd

    from hybridopt.params import Params

    #: a base value or feature: a Python number for one request (`row`), an array for a frame (`frame`)
    FeatureValue: TypeAlias = float | np.ndarray


class LeakError(ValueError):
    """A forbidden or outcome-derived column reached the feature matrix."""


def _log1p(x: FeatureValue) -> FeatureValue:
    if isinstance(x, (int, float)):
        return math.log1p(x)
    import numpy as np  # only for arrays: `row` (the Lambda router) must run without numpy

    return np.log1p(x)


# name -> (contract columns it derives from, function of the base values)
# Base values: w = workload code, p = payload KB, h = local hour, tw = time-window code,
# we = weekend flag, lp = load-pattern code, mem = configured Lambda memory MB.
FEATURE_DEFS: dict[str, tuple[tuple[str, ...], Callable[[Mapping[str, FeatureValue]], FeatureValue]]] = {
    "workload_type_encoded": (("workload_type",), lambda b: b["w"]),
    "payload_size_kb": (("target_payload_size_kb",), lambda b: b["p"]),
    "hour_of_day": (("sent_at",), lambda b: b["h"]),
    "time_window_encoded": (("time_window",), lambda b: b["tw"]),
    "is_weekend": (("sent_at",), lambda b: b["we"]),
    "load_pattern_encoded": (("load_pattern",), lambda b: b["lp"]),
    "lambda_memory_limit_mb": (("workload_type",), lambda b: b["mem"]),
    "payload_squared": (("target_payload_size_kb",), lambda b: b["p"] * b["p"]),
    "payload_log": (("target_payload_size_kb",), lambda b: _log1p(b["p"])),
    "payload_workload_interaction": (("target_payload_size_kb", "workload_type"), lambda b: b["p"] * b["w"]),
    "payload_hour_interaction": (("target_payload_size_kb", "sent_at"), lambda b: b["p"] * b["h"]),
    "payload_time_window_interaction": (("target_payload_size_kb", "time_window"), lambda b: b["p"] * b["tw"]),
    "workload_time_window_interaction": (("workload_type", "time_window"), lambda b: b["w"] * b["tw"]),
    "payload_load_pattern_interaction": (("target_payload_size_kb", "load_pattern"), lambda b: b["p"] * b["lp"]),
}

#: Column names that betray an outcome even when not listed as forbidden.
_OUTCOME_NAME = re.compile(r"latency|cost|cold_start|billed|duration|status|error|execution|"
                           r"_ok$|total_ms|first_byte|upload_ms|instance|optimal", re.I)


@dataclass(frozen=True)
class FeatureSpec:
    """Everything needed to turn a request's context into the feature row (serialisable: the
    router ships it as feature_spec.json)."""

    columns: list[str]
    workload_codes: dict[str, int]
    lambda_memory_mb: dict[str, int]
    time_window_codes: dict[str, int]
    time_window_hours: dict[str, list[int]]
    load_pattern_codes: dict[str, int]
    timezone: str
    forbidden: list[str] = field(default_factory=list)

    @classmethod
    def from_params(cls, params: "Params") -> "FeatureSpec":
        unknown = [c for c in params.features.columns if c not in FEATURE_DEFS]
        if unknown:
            raise LeakError(f"params features.columns: {unknown} have no definition in "
                            f"hybridopt.data.features.FEATURE_DEFS (expected some of {sorted(FEATURE_DEFS)})")
        return cls(
            columns=list(params.features.columns),
            workload_codes={k: w.code for k, w in params.workloads.items()},
            lambda_memory_mb={k: w.lambda_memory_mb for k, w in params.workloads.items()},
            time_window_codes={k: t.code for k, t in params.time_windows.items()},
            time_window_hours={k: [t.start_hour, t.end_hour] for k, t in params.time_windows.items()},
            load_pattern_codes={k: lp.code for k, lp in params.load_patterns.items()},
            timezone=params.timezone,
            forbidden=list(params.features.forbidden),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FeatureSpec":
        return cls(**json.loads(text))

    def time_window_for_hour(self, hour: int) -> str | None:
        """The configured window that contains a local hour, or None."""
        for name, (start, end) in self.time_window_hours.items():
            if start <= hour < end:
                return name
        return None

    # -- one request (router) --------------------------------------------------------------------
    def row(self, workload_type: str, payload_size_kb: float, sent_at: datetime,
            time_window: str, load_pattern: str) -> list[float]:
        """The feature row of one request. Raises KeyError naming an unknown category."""
        local = sent_at.astimezone(ZoneInfo(self.timezone))
        base = {
            "w": self._code(self.workload_codes, workload_type, "workload_type"),
            "p": float(payload_size_kb),
            "h": local.hour,
            "tw": self._code(self.time_window_codes, time_window, "time_window"),
            "we": 1 if local.weekday() >= 5 else 0,
            "lp": self._code(self.load_pattern_codes, load_pattern, "load_pattern"),
            "mem": self.lambda_memory_mb[workload_type],
        }
        return [float(FEATURE_DEFS[c][1](base)) for c in self.columns]

    @staticmethod
    def _code(codes: Mapping[str, int], value: str, name: str) -> int:
        try:
            return codes[value]
        except KeyError:
            raise KeyError(f"{name} {value!r} is not one of {sorted(codes)}") from None

    # -- many requests (preprocessing) -----------------------------------------------------------
    def frame(self, ctx: "pd.DataFrame") -> "pd.DataFrame":
        """Feature matrix for a frame with columns workload_type, payload_size_kb, sent_at
        (tz-aware), time_window, load_pattern. Unknown categories raise, naming the values."""
        import numpy as np
        import pandas as pd

        def codes(col: str, mapping: Mapping[str, int]) -> np.ndarray:
            s = ctx[col].astype("string")
            out = s.map(mapping)
            missing = sorted(set(s[out.isna()].dropna().unique()) | ({"<null>"} if s.isna().any() else set()))
            if missing:
                raise KeyError(f"{col}: values {missing} are not one of {sorted(mapping)}")
            return out.to_numpy(dtype=np.int64)

        local = pd.to_datetime(ctx["sent_at"], utc=True).dt.tz_convert(self.timezone)
        base = {
            "w": codes("workload_type", self.workload_codes),
            "p": ctx["payload_size_kb"].to_numpy(dtype=np.float64),
            "h": local.dt.hour.to_numpy(dtype=np.int64),
            "tw": codes("time_window", self.time_window_codes),
            "we": (local.dt.day_of_week >= 5).to_numpy(dtype=np.int64),
            "lp": codes("load_pattern", self.load_pattern_codes),
        }
        base["mem"] = ctx["workload_type"].astype("string").map(self.lambda_memory_mb).to_numpy(dtype=np.int64)
        out = pd.DataFrame({c: FEATURE_DEFS[c][1](base) for c in self.columns}, index=ctx.index)
        return out.astype(np.float64)


def assert_leak_free(X: "pd.DataFrame", spec: FeatureSpec) -> None:
    """Raise LeakError if the matrix holds anything but the declared, pre-send features."""
    cols = list(X.columns)
    forbidden = [c for c in cols if c in set(spec.forbidden)]
    if forbidden:
        raise LeakError(f"forbidden columns in the feature matrix: {forbidden} (params features.forbidden)")
    outcome = [c for c in cols if c in OUTCOME_COLUMNS or _OUTCOME_NAME.search(c)]
    if outcome:
        raise LeakError(f"outcome-derived columns in the feature matrix: {outcome}")
    undeclared = [c for c in cols if c not in FEATURE_DEFS]
    if undeclared:
        raise LeakError(f"columns with no declared lineage in the feature matrix: {undeclared}")
    for c in cols:
        bad_inputs = set(FEATURE_DEFS[c][0]) - PRE_SEND_COLUMNS
        if bad_inputs:
            raise LeakError(f"feature {c} is built from outcome columns {sorted(bad_inputs)}")
    if cols != list(spec.columns):
        raise LeakError(f"feature matrix columns {cols} differ from the declared list {spec.columns}")
