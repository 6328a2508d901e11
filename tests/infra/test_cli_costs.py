"""The infra commands as a person runs them, and the cost note's arithmetic."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest

from hybridopt import paths
from hybridopt.infra import deploy as dep
from hybridopt.infra.costs import COLUMNS, hourly_costs, provisioned_fargate_usd_per_hour
from hybridopt.params import load_params

pytestmark = pytest.mark.slow


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("AWS_")}
    return subprocess.run([sys.executable, "-m", "hybridopt", "infra", *args], capture_output=True, text=True,
                          cwd=paths.PROJECT_ROOT, timeout=timeout, env=env)


def test_synth_with_lint(tmp_path):
    out = _cli("synth", "--profile", "aws", "--lint", "--out", str(tmp_path / "t"))
    assert out.returncode == 0, out.stdout + out.stderr
    m = re.search(r"hybridopt-platforms: (\d+) resources", out.stdout)
    assert m and int(m.group(1)) > 100
    assert "cfn-lint on 2 templates: no findings" in out.stdout
    assert (tmp_path / "t" / "hybridopt-platforms.template.json").is_file()


def test_deploy_dry_run_without_credentials(tmp_path):
    out = _cli("deploy", "--profile", "aws", "--dry-run", "--out", str(tmp_path / "t"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no AWS credentials used" in out.stdout and "dry run: nothing changed" in out.stdout
    assert re.search(r"hybridopt-platforms \(new stack\): \d+ to add, 0 to modify", out.stdout)
    assert "FunctionName=hybridopt-heavy-processing MemorySize=512 Timeout=29" in out.stdout


def test_teardown_dry_run_offline_lists_what_stays(synthesized):
    text = dep.teardown_offline(synthesized).render()
    assert "would delete stacks: hybridopt-platforms, hybridopt-artifacts" in text
    assert text.count("log group") == 9 and "ECR repository   hybridopt-workloads" in text


def test_cost_note_adds_up():
    params = load_params("aws")
    note = hourly_costs(params, seed=42)
    t = note.table
    assert tuple(t.columns) == COLUMNS and len(t) == len(params.time_windows)
    pr = params.prices
    by_hand = 0.0
    for w in params.workloads.values():
        by_hand += w.fargate.min_tasks * (w.fargate.vcpu * pr.fargate_vcpu_hour_usd.value
                                          + w.fargate.memory_gb * pr.fargate_gb_hour_usd.value)
    assert provisioned_fargate_usd_per_hour(params) == pytest.approx(by_hand)
    for r in t.itertuples():
        pattern = params.load_patterns[r.load_pattern]
        assert r.pairs == pytest.approx(pattern.expected_arrivals, rel=0.02)
        assert r.fargate_provisioned_usd == pytest.approx(by_hand * pattern.duration_s / 3600)
        assert r.fargate_modelled_usd >= r.fargate_provisioned_usd * 0.999
        assert r.alb_usd > pr.alb_hour_usd.value
        assert r.total_usd == pytest.approx(r.lambda_usd + r.fargate_modelled_usd + r.alb_usd)
        # Lambda: at least its request and API Gateway prices per invocation
        assert r.lambda_usd >= r.lambda_invocations * (pr.lambda_request_usd.value + pr.api_gateway_rest_request_usd.value)
        assert math.isfinite(r.lambda_gb_s) and r.lambda_gb_s > 0
    low = t[t["load_pattern"] == "low_load"]["total_usd"]
    assert (low < t[t["load_pattern"] == "medium_load"]["total_usd"].iloc[0]).all()
    print("\n" + note.render())
