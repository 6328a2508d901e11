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
    assert ("api: Lambda wins 1 of 2 cells (25% of 40 pairs), Lambda's cells: ECS over 2x capacity: 1 KB; "
            "ECS wins the other 1") in f.text
    assert "heavy: Lambda wins every cell (1 cells, 5 pairs) (1 cell(s) with fewer than 10 pairs: low confidence)" in f.text
    assert f.html.count("<table") == 2 and "λ" in f.html and "n=5" in f.html


def test_cells_where_both_platforms_fail_are_nobody_s_win() -> None:
    cell = {"workload_type": "heavy", "ecs_load": "1-2x capacity", "objective_prefers": "lambda"}
    doc = {**DOC, "wins": [
        {**cell, "payload_size_kb": 3072.0, "n_pairs": 40, "both_fail_share": 0.1, "winner": "lambda",
         "low_confidence": False},
        {**cell, "payload_size_kb": 10240.0, "n_pairs": 30, "both_fail_share": 1.0, "winner": "neither",
         "low_confidence": False},
        {**cell, "payload_size_kb": 1024.0, "n_pairs": 20, "both_fail_share": 0.0, "winner": "ecs",
         "objective_prefers": "ecs", "low_confidence": False}]}
    f = findings.wins_finding(doc, "decisions.json")
    assert "Lambda wins 1 of 3 cells (44% of 90 pairs), Lambda's cells: ECS 1-2x capacity: 3 MB" in f.text
    assert "neither (most pairs fail on both platforms) in 1: ECS 1-2x capacity: 10 MB" in f.text
    assert "both fail" in f.html and findings.NEITHER_COLOUR in f.html


def test_best_policy_against_best_static_with_cis_and_no_oracle_as_winner() -> None:
    f = findings.policy_finding(DOC, "decisions.json")
    assert f.text.startswith("The objective policy scores better than the best static policy (workload_rule)")
    assert "bill $0.01230 [$0.01100, $0.01300] per 1,000 requests, p95 900 [850, 950] ms" in f.text
    assert "the lowest bill: objective ($0.01230 per 1,000)" in f.text and "OPEN LOOP" in f.text
    assert "It is not the bill" in f.text and "+" not in f.text


def _pol(name: str, kind: str, **v: float | str) -> dict:
    return {"policy": name, "kind": kind, "n_pairs": 2500, **v}


def test_a_lead_within_the_cis_or_without_cis_is_said_plainly() -> None:
    na = {f"{k}_ci_na": "n/a: one block per session" for k in (
        "bill_avg_usd_per_1k_requests", "latency_p95_ms", "failure_rate", "slo_miss_share",
        "regret_usd_per_1k_requests", "regret_ms_per_request")}
    base = {**DOC["summary"], "best_static": "always_lambda"}
    doc = {**DOC, "summary": base, "data": {"pairs": 2500}, "policies": [
        _pol("objective", "objective", bill_avg_usd_per_1k_requests=0.06489, latency_p95_ms=7434.0,
             failure_rate=0.1212, slo_miss_share=0.3528, regret_usd_per_1k_requests=0.00114,
             regret_ms_per_request=65.0, **na),
        _pol("always_lambda", "static", bill_avg_usd_per_1k_requests=0.01075, latency_p95_ms=7218.0,
             failure_rate=0.1224, slo_miss_share=0.3616, regret_usd_per_1k_requests=0.0013,
             regret_ms_per_request=60.0, **na)]}
    t = findings.policy_finding(doc, "d").text
    assert "but there is no CI to tell them apart (one block per session)" in t
    assert "the difference is 3 fewer failures of 2,500 requests and 22 fewer SLO misses" in t
    assert "always_lambda's bill is lower ($0.01075 against $0.06489 per 1,000 requests)" in t
    assert "regret $0.00114 per 1,000 requests" in t and "(CI" not in t
    ci = {"failure_rate_ci_low": 0.11, "failure_rate_ci_high": 0.13, "slo_miss_share_ci_low": 0.34,
          "slo_miss_share_ci_high": 0.37}
    doc["policies"] = [{**p, **{k: "" for k in na}, **ci} for p in doc["policies"]]
    assert "but it is no better than always_lambda within the CIs" in findings.policy_finding(doc, "d").text


def test_zero_width_intervals_are_never_shown_as_intervals() -> None:
    r = {"x": 0.0649, "x_ci_low": 0.0649, "x_ci_high": 0.0649}
    assert findings._ci(r, "x", ".4f") == "0.0649 (CI n/a: zero-width interval)"
    assert findings._ci({**r, "x_ci_low": None, "x_ci_na": "n/a: one block per session"}, "x", ".4f") == \
        "0.0649 (CI n/a: one block per session)"


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
    from hybridopt.report.crossover import CROSSOVER_TITLE

    assert [i.title for i in items] == ["Where each platform wins", "The best policy against the best static policy",
                                        "Closed loop against open loop", CROSSOVER_TITLE, "The plan's verdicts"]
    assert "stage 09" in items[2].text and "python -m hybridopt crossover" in items[3].text
    assert "stage 06" in items[0].text and "stage 04" in items[4].text
    d = tmp_path / "r" / "decide"
    d.mkdir(parents=True)
    (d / "decisions.json").write_text(json.dumps(DOC))
    assert "api: Lambda wins 1 of 2 cells" in findings.findings(params)[0].text
    assert "Findings" in findings.panel_html(findings.findings(params))
    panel = findings.panel_html(findings.findings(params), tmp_path / "r")
    assert "<a href='decide/decisions.json'>" in panel and "links to the file" in panel


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
