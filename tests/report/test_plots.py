"""Figures and tables the notebooks show (moved out of notebook cells)."""

from __future__ import annotations

import pandas as pd
from hybridopt.report import collect as plots
from hybridopt.report import preprocess as preprocess_report


def test_outcomes_by_window_and_table():
    outcomes = pd.DataFrame([
        {"time_window": "midday", "platform": "lambda", "outcome": "ok", "lines": 5},
        {"time_window": "midday", "platform": "ecs", "outcome": "timeout", "lines": 2},
        {"time_window": "early_morning", "platform": "ecs", "outcome": "ok", "lines": 3}])
    fig = plots.outcomes_by_window(outcomes, ["early_morning", "morning_peak", "midday"])
    assert len(fig.axes) == 2  # one panel per platform
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["early_morning", "midday"]
    table = plots.outcomes_table(outcomes)
    assert table.loc[("midday", "ecs"), "timeout"] == 2 and table.loc[("midday", "lambda"), "timeout"] == 0
    empty = outcomes.iloc[:0]
    assert plots.outcomes_by_window(empty, []) is None and plots.outcomes_table(empty).empty


def test_generator_health_against_limits():
    summary = pd.DataFrame([
        {"time_window": "midday", "cpu_pct_p95": 30.0, "event_loop_lag_ms_p99": 2.0, "saturated": False,
         "saturation_reason": None, "attempts": 10},
        {"time_window": "evening", "cpu_pct_p95": None, "event_loop_lag_ms_p99": None, "saturated": None,
         "saturation_reason": None, "attempts": 0}])
    health, fig = plots.generator_health(summary, 85.0, 50.0)
    assert health["time_window"].tolist() == ["midday"] and "attempts" not in health
    assert [ax.lines[-1].get_ydata()[0] for ax in fig.axes] == [85.0, 50.0]  # the dashed limits
    assert plots.generator_health(summary.iloc[1:], 85.0, 50.0)[1] is None


def test_gates_table_colours_pass_and_fail():
    table = preprocess_report.gates_table([{"gate": "a", "scope": "all", "value": 1, "threshold": "1", "pass": True},
                                           {"gate": "b", "scope": "all", "value": 0, "threshold": "1", "pass": False}])
    assert list(table.columns) == ["gate", "scope", "value", "threshold", "pass"]
    html = preprocess_report.colour_pass(table.style).to_html()
    assert "color: green" in html and "color: red" in html and "font-weight: bold" in html
