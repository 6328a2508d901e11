"""The feature code shared by training and the router, and the leak guard."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from hybridopt.data.features import FeatureSpec, LeakError, assert_leak_free


@pytest.fixture(scope="module")
def spec(params):
    return FeatureSpec.from_params(params)


def _ctx():
    return pd.DataFrame({
        "workload_type": ["lightweight_api", "heavy_processing", "thumbnail_processing"],
        "payload_size_kb": [5.0, 5120.0, 200.0],
        "sent_at": pd.to_datetime(["2025-11-22T20:45:00Z", "2025-11-23T07:10:00Z", "2025-11-24T13:00:00Z"]),
        "time_window": ["early_morning", "midday", "evening"],
        "load_pattern": ["low_load", "medium_load", "burst_load"],
    })


def test_fourteen_features_by_hand(spec):
    X = spec.frame(_ctx())
    assert list(X.columns) == spec.columns and len(spec.columns) == 14
    r = X.iloc[1]  # heavy (code 3), 5120 KB, 12:40 IST on Sunday, midday (2), medium_load (1), 512 MB
    assert (r.workload_type_encoded, r.payload_size_kb, r.hour_of_day, r.time_window_encoded, r.is_weekend,
            r.load_pattern_encoded, r.lambda_memory_limit_mb) == (3, 5120, 12, 2, 1, 1, 512)
    assert r.payload_squared == 5120.0 ** 2 and r.payload_log == pytest.approx(np.log1p(5120.0))
    assert (r.payload_workload_interaction, r.payload_hour_interaction, r.payload_time_window_interaction,
            r.workload_time_window_interaction, r.payload_load_pattern_interaction) == (15360, 61440, 10240, 6, 5120)
    assert X.iloc[0].hour_of_day == 2 and X.iloc[0].is_weekend == 1  # 02:15 IST Sunday
    assert X.iloc[2].is_weekend == 0                                 # Monday


def test_row_and_frame_are_the_same_function(spec):
    ctx = _ctx()
    X = spec.frame(ctx)
    for i, r in ctx.iterrows():
        row = spec.row(r.workload_type, r.payload_size_kb, r.sent_at.to_pydatetime(), r.time_window, r.load_pattern)
        assert row == pytest.approx(X.iloc[i].tolist())


def test_unknown_category_names_value(spec):
    with pytest.raises(KeyError, match="video"):
        spec.row("video", 1.0, datetime.now(timezone.utc), "midday", "low_load")
    bad = _ctx().assign(load_pattern=["low_load", "tsunami", "burst_load"])
    with pytest.raises(KeyError, match="tsunami"):
        spec.frame(bad)


def test_spec_round_trips_json(spec):
    assert FeatureSpec.from_json(spec.to_json()) == spec
    assert spec.time_window_for_hour(12) == "midday" and spec.time_window_for_hour(15) is None


@pytest.mark.parametrize("extra", ["lambda_latency_ms", "ecs_cost_usd", "lambda_cold_start", "lambda_memory_mb",
                                   "total_ms", "execution_time_ms", "cold_start", "http_status",
                                   "lambda_latency_ms_rolling_mean", "cost_ratio", "balanced_optimal",
                                   "observed_billed_ms", "some_new_column"])
def test_guard_rejects_forbidden_outcome_and_undeclared_columns(spec, extra):
    X = spec.frame(_ctx())
    X[extra] = 1.0
    with pytest.raises(LeakError, match=extra):
        assert_leak_free(X, spec)


def test_guard_rejects_reordered_or_missing_features(spec):
    X = spec.frame(_ctx())
    assert_leak_free(X, spec)
    with pytest.raises(LeakError, match="differ"):
        assert_leak_free(X[list(reversed(X.columns))], spec)
    with pytest.raises(LeakError, match="differ"):
        assert_leak_free(X.drop(columns=["hour_of_day"]), spec)
