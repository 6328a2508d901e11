"""The index's findings panel: sentences built from the run's own outputs."""

from __future__ import annotations

import json
from pathlib import Path

from hybridopt.params import load_params
from hybridopt.report import findings

DOC = {
    "open_loop": "OPEN LOOP: judged under the logged load.",
    "summary": {"objective_kind": "slo_cheapest", "best_static": "workload_rule",
                "objective_scores_better_than_best_static": True},
    "wins": [
        {"workload_type": "api", "payload_size_kb": 1.0, "ecs_load": "below capacity", "n_pairs": 30,
         "objective_prefers": "ecs"},
        {"workload_type": "api", "payload_size_kb": 1.0, "ecs_load": "over 2x capacity", "n_pairs": 10,
         "objective_prefers": "lambda"},
        {"workload_type": "heavy", "payload_size_kb": 5120.0, "ecs_load": "below capacity", "n_pairs": 5,
         "objective_prefers": "lambda"},
    ],
    "policies": [
        {"policy": "objective", "kind": "objective", "bill_avg_usd_per_1k_requests": 0.0123,
         "bill_avg_usd_per_1k_requests_ci_low": 0.011, "bill_avg_usd_per_1k_requests_ci_high": 0.013,
         "latency_p95_ms": 900.0, "latency_p95_ms_ci_low": 850.0, "latency_p95_ms_ci_high": 950.0,
         "failure_rate": 0.01, "regret_usd_per_1k_requests": 0.0001, "regret_ms_per_request": 12.0},
        {"policy": "workload_rule", "kind": "static", "bill_avg_usd_per_1k_requests": 0.0150,
         "latency_p95_ms": 1400.0, "failure_rate": 0.02, "regret_usd_per_1k_requests": 0.0002,
         "regret_ms_per_request": 80.0},
        {"policy": "oracle", "kind": "oracle", "bill_avg_usd_per_1k_requests": 0.001, "latency_p95_ms": 100.0},
    ],
}


def test_wins_are_told_per_workload_with_the_cells() -> None:
    f = findings.wins_finding(DOC, "decisions.json")
    assert "api: Lambda in 1 of 2 cells (25% of 40 pairs) [ECS over 2x capacity: 1 KB], ECS in the others" in f.text
    assert "heavy: Lambda in every cell (1 cells, 5 pairs)" in f.text
    assert f.html.count("<table") == 2 and "λ" in f.html


def test_best_policy_against_best_static_with_cis_and_no_oracle_as_winner() -> None:
    f = findings.policy_finding(DOC, "decisions.json")
    assert f.text.startswith("The objective policy scores better than the best static policy (workload_rule)")
    assert "bill $0.0123 [0.0110, 0.0130] per 1,000 requests, p95 900 [850, 950] ms" in f.text
    assert "the lowest bill: objective ($0.0123 per 1,000)" in f.text and "OPEN LOOP" in f.text


def test_verdicts_in_one_line() -> None:
    meta = {"serving": {"model": "lightgbm", "label": "balanced_optimal"},
            "verdicts": {"lightgbm": {"outcome": "accepted", "accept_criteria": [
                {"criterion": "test accuracy in range", "value": 0.885}]}}}
    f = findings.verdicts_finding(meta, "model_metadata.json")
    assert f.text == "The plan's verdicts on balanced_optimal: lightgbm accepted (test accuracy 0.885). Served: lightgbm."


def test_missing_outputs_name_the_stage_that_writes_them(tmp_path: Path) -> None:
    params = load_params("smoke", overrides={"data": {"reports_dir": str(tmp_path / "r"),
                                                      "models_dir": str(tmp_path / "m")}})
    items = findings.findings(params)
    assert [i.title for i in items] == ["Where each platform wins", "The best policy against the best static policy",
                                        "Closed loop against open loop", "The plan's verdicts"]
    assert "stage 06" in items[0].text and "stage 09" in items[2].text and "stage 04" in items[3].text
    d = tmp_path / "r" / "decide"
    d.mkdir(parents=True)
    (d / "decisions.json").write_text(json.dumps(DOC))
    assert "api: Lambda in 1 of 2 cells" in findings.findings(params)[0].text
    assert "Findings" in findings.panel_html(findings.findings(params))


def test_closed_loop_against_open_loop_in_one_finding() -> None:
    def row(p: str, bill: float, p95: float, fail: float) -> dict:
        return {"policy": p, "bill_usd_per_1k": bill, "bill_usd_per_1k_ci_low": bill - 0.001,
                "bill_usd_per_1k_ci_high": bill + 0.001, "p95_ms": p95, "p95_ms_ci_low": p95 - 10,
                "p95_ms_ci_high": p95 + 10, "failure_rate": fail, "failure_rate_ci_low": fail, "failure_rate_ci_high": fail}

    doc = {"arrivals": 1000, "seeds": [1, 2], "closed": [row("a", 0.02, 900, 0.1), row("b", 0.01, 950, 0.2)],
           "open": [{"policy": "a", "kind": "static", "bill_avg_usd_per_1k_requests": 0.005, "latency_p95_ms": 800,
                     "failure_rate": 0.1},
                    {"policy": "oracle", "kind": "oracle", "bill_avg_usd_per_1k_requests": 0.001, "latency_p95_ms": 1,
                     "failure_rate": 0.0}],
           "comparison": [{"policy": "a", "metric": "bill_usd_per_1k", "disagree": True},
                          {"policy": "a", "metric": "p95_ms", "disagree": False}]}
    f = findings.closed_loop_finding(doc, "closed_loop.json")
    assert "lowest bill ($/1k): b 0.0100 [0.0090, 0.0110] (open loop: a 0.0050)" in f.text
    assert "lowest p95 (ms): a 900 [890, 910] (open loop: a 800)" in f.text
    assert "apart for 1 of 2 policy x metric pairs (a)" in f.text and "1,000 logged pairs" in f.text
