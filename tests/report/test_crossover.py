"""The crossover map's tables, answers and figure (hybridopt.report.crossover) on a frame whose
winners are known, and the real-log points from a validation result."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from hybridopt.closedloop.grid import FRAME_COLUMNS, CrossoverRun
from hybridopt.closedloop.grid import crossover_tasks as grid_tasks
from hybridopt.params import load_params
from hybridopt.report import crossover as rc
from hybridopt.report.export import Exporter

RATES = [1.0, 5.0, 20.0, 50.0]
SIZES = [1.0, 5.0, 10.0]


def _frame(seeds=(1, 2, 3), caps=("1x2", "4x2"), noisy_hybrid=False) -> pd.DataFrame:
    """Lambda's objective 0.1 per KB; ECS's 0.2 x rate / slots: Lambda wins at 1x2 when
    payload x 2 < rate... ECS below; the hybrid is 90 % of the best pure policy."""
    rows = []
    for w, cap, r, s, seed in itertools.product(["api", "thumb"], caps, RATES, SIZES, seeds):
        t, k = map(int, cap.split("x"))
        lam, ecs = 0.1 * s, 0.2 * r / (t * k)
        noise = 0.001 * seed
        objs = {"always_lambda": lam + noise, "always_ecs": ecs + noise,
                "hybrid": 0.9 * min(lam, ecs) + (0.2 * (seed - 2) if noisy_hybrid else noise)}
        for p, obj in objs.items():
            rows.append({"task_id": f"{w}{cap}{r}{s}{seed}{p}", "workload_type": w, "rate_rps": r, "payload_size_kb": s,
                         "capacity": cap, "ecs_tasks": t, "ecs_workers": k, "policy": p, "policy_detail": "",
                         "seed": seed, "requests": 100, "bill_usd_per_1k": obj, "p50_ms": 1.0, "p95_ms": 2.0,
                         "p99_ms": 3.0, "failure_rate": 0.0, "objective_usd_per_1k": obj, "status": "ok", "error": "",
                         "wall_s": 0.1})
    return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))


def test_winners_margin_and_clear() -> None:
    win = rc.winners(_frame())
    assert len(win) == 2 * 2 * 4 * 3
    assert (win["winner"] == "hybrid").all()
    c = win[(win["workload_type"] == "api") & (win["capacity"] == "1x2") & (win["rate_rps"] == 1.0)
            & (win["payload_size_kb"] == 10.0)].iloc[0]
    # lambda 1.0, ecs 0.1: hybrid 0.09 (+0.002 mean noise... the hybrid's own noise) vs ECS
    assert c["runner_up"] == "always_ecs"
    assert c["margin_usd_per_1k"] == pytest.approx(0.1 - 0.09)
    assert c["margin_rel"] == pytest.approx(0.01 / 0.102)
    assert c["margin_se"] == pytest.approx(0.0) and c["clear"] is True or c["clear"] == True  # noqa: E712
    assert c["lambda_minus_ecs_usd_per_1k"] == pytest.approx(0.9)
    noisy = rc.winners(_frame(noisy_hybrid=True))
    assert (noisy["clear"] == False).any()  # noqa: E712 - the hybrid's seeds spread by 0.4: not clear


def test_failed_task_leaves_cell_without_winner() -> None:
    f = _frame()
    hit = (f["workload_type"] == "api") & (f["rate_rps"] == 5.0) & (f["payload_size_kb"] == 1.0) & (f["capacity"] == "1x2")
    f.loc[hit & (f["policy"] == "always_ecs"), ["status", "objective_usd_per_1k"]] = ["failed", np.nan]
    win = rc.winners(f)
    c = win[(win["workload_type"] == "api") & (win["rate_rps"] == 5.0) & (win["payload_size_kb"] == 1.0)
            & (win["capacity"] == "1x2")].iloc[0]
    assert c["winner"] == "" and c["not_ok_tasks"] == 3 and math.isnan(c["margin_usd_per_1k"])
    counts = rc.winner_counts(win)
    row = counts[(counts["workload_type"] == "api") & (counts["capacity"] == "1x2")].iloc[0]
    assert row["no result"] == 1 and row["hybrid"] == 11


def test_break_even_and_answers() -> None:
    win = rc.winners(_frame())
    # 1x2: lambda = 0.1 s, ecs = 0.1 r  -> equal at r = s; payload 1: 1 rps is on the grid, 5: 5, 10: between 5 and 20
    be = rc.break_even_rate(win, "api", "1x2")
    assert be == pytest.approx(5.0)
    # 4x2: ecs = 0.025 r -> r = 4 s: 4, 20, 40 -> median 20
    assert rc.break_even_rate(win, "api", "4x2") == pytest.approx(20.0)
    lines = rc.answers(win)
    assert set(lines) == {"api", "thumb"}
    assert lines["api"].startswith("api: at 1x2 hybrid wins 12 of 12 cells")
    assert "Lambda = ECS near 5 rps" in lines["api"] and "at 4x2" in lines["api"]


def test_points_from_validation() -> None:
    vparams = load_params("thesis-2025-11")
    cell = {"judged": True, "pass_median": True, "pass_p95": True}
    res = {"record": "conditioned", "conditioned": {"cells": [
        {**cell, "run_id": "midday_medium_load", "workload_type": "lightweight_api", "platform": "lambda"},
        {**cell, "run_id": "midday_medium_load", "workload_type": "lightweight_api", "platform": "ecs"},
        {**cell, "run_id": "evening_burst_load", "workload_type": "heavy_processing", "platform": "ecs",
         "pass_p95": False},
        {**cell, "run_id": "evening_burst_load", "workload_type": "medium_processing", "platform": "ecs", "judged": False},
        {**cell, "run_id": "unknown_run", "workload_type": "heavy_processing", "platform": "ecs"}]}}
    pts = rc.points_from_validation(res, vparams)
    light = pts[pts["workload_type"] == "lightweight_api"]
    assert sorted(light["payload_size_kb"]) == [0.5, 1.0, 5.0, 10.0]
    # the legacy logs are unpaired: 4 workloads x 2 platforms share the scheduled rate
    assert (light["rate_rps"] == 15.0 / 8).all() and light["reproduced"].all() and (light["capacity"] == "1x2").all()
    heavy = pts[pts["workload_type"] == "heavy_processing"]
    assert sorted(heavy["payload_size_kb"]) == [2048.0, 3072.0, 4096.0, 5120.0]      # that profile's sizes
    assert not heavy["reproduced"].any()
    assert heavy["rate_rps"].iloc[0] == pytest.approx((1440 * 5 + 720 * 30 + 1440 * 5) / 3600 / 8)
    assert set(pts["workload_type"]) == {"lightweight_api", "heavy_processing"}      # unjudged, unknown run: none


def test_figure_panels_and_overlay() -> None:
    win = rc.winners(_frame())
    pts = pd.DataFrame([{"workload_type": "api", "run_id": "r", "rate_rps": 10.0, "payload_size_kb": 5.0,
                         "capacity": "1x2", "reproduced": True},
                        {"workload_type": "api", "run_id": "s", "rate_rps": 15.0, "payload_size_kb": 1.0,
                         "capacity": "1x2", "reproduced": False},
                        {"workload_type": "api", "run_id": "t", "rate_rps": 0.6, "payload_size_kb": 0.5,
                         "capacity": "1x2", "reproduced": False}])
    fig = rc.crossover_figure(win, pts)
    axes = fig.get_axes()
    assert len(axes) == 4
    assert axes[0].get_title().startswith("api\n1x2")
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["1", "5", "20", "50"]
    assert len(axes[0].collections) >= 2          # the break-even contour and the two point groups
    crosses = [c for c in axes[0].collections if len(c.get_offsets()) == 2]
    assert len(crosses) == 1 and crosses[0].get_offsets()[:, 0].min() == pytest.approx(-0.45)   # 0.6 rps: left edge
    assert any(t.get_text().endswith("%") for t in axes[0].texts)


def test_section_exports(tmp_path) -> None:
    params = load_params("smoke")
    frame = _frame(caps=("1x2",))
    run = CrossoverRun(frame, {"tasks": len(frame), "cached": 0, "computed": len(frame), "workers": 2, "wall_s": 1.5,
                               "status_counts": {"ok": len(frame), "failed": 0, "over_budget": 0}}, tmp_path)
    exp = Exporter(params, "09_closed_loop", root=tmp_path)
    sec = rc.crossover_section(params, run=run, exporter=exp)
    assert "computed on 2 workers in 1.5 s wall" in sec.text and set(sec.answers) == {"api", "thumb"}
    assert (exp.dir / "crossover_map.svg").is_file() and (exp.dir / "crossover_map.pdf").is_file()
    assert (exp.dir / "crossover_winners.csv").is_file()
    files = rc.save_figure(sec, tmp_path)
    assert [f.name for f in files] == ["crossover_map.svg", "crossover_map.pdf"]


def test_answers_from_disk(tmp_path) -> None:
    params = load_params("smoke", overrides={"closed_loop": {"crossover": {"out_dir": str(tmp_path / "x")}}})
    lines, where = rc.crossover_answers(params)
    assert lines == {} and "python -m hybridopt crossover --profile smoke" in where
    assert rc.crossover_finding(params).text.startswith("Not computed yet: 09_closed_loop")
    out = tmp_path / "x"
    out.mkdir()
    frame = _frame(caps=("1x2",))
    tasks = len(grid_tasks(params))
    frame = frame.iloc[:tasks]
    frame.to_parquet(out / "results.parquet")
    (out / "sweep.json").write_text(json.dumps({"params_hash": params.hash, "interrupted": False}))
    found = rc.crossover_finding(params)
    assert found.source.endswith("results.parquet") and "api: at 1x2" in found.text and "<li>api: at 1x2" in found.html


def test_slo_cheapest_winner_is_the_cheapest_policy_that_meets_the_slo() -> None:
    f = _frame(caps=("1x2",))
    # always_ecs is the cheapest where rate is low but misses the SLO everywhere; the hybrid fails too often
    f.loc[f["policy"] == "always_ecs", "p95_ms"] = 5000.0
    f.loc[f["policy"] == "hybrid", "failure_rate"] = 0.5
    win = rc.winners(f, {"api": 1000.0, "thumb": 1000.0}, 0.01)
    assert (win["winner"] == "always_lambda").all()
    assert (win["feasible"] == "always_lambda").all() and win["margin_usd_per_1k"].isna().all()
    f.loc[f["policy"] == "always_lambda", "failure_rate"] = 0.2
    none = rc.winners(f, {"api": 1000.0, "thumb": 1000.0}, 0.01)
    assert (none["winner"] == "none").all() and (none["least_bad"] == "always_ecs").all()
    assert "no policy meets the SLO" in " ".join(rc.answers(none).values())
    rc.crossover_figure(none)
    weighted = rc.winners(f)
    assert (weighted["winner"] == "hybrid").all()


def test_answers_as_a_markdown_list() -> None:
    assert rc.answers_markdown({"a": "a: x", "b": "b: y"}) == "- a: x\n- b: y"
