"""The boto3 deployment against moto (control plane only: no Docker here): function, published
control/treatment versions, the weighted alias, moving it, rejected weights, the least-privilege
policy covering exactly the calls made, and the CLI's dry run / opt-in."""

from __future__ import annotations

import argparse
import io
import json
import zipfile
from pathlib import Path

import boto3
import pytest
from hybridopt.params import load_params
from hybridopt.router import deploy as D
from moto import mock_aws

PROFILE = "thesis-2025-11"
REGION = "eu-west-1"


@pytest.fixture()
def zip_path(tmp_path) -> Path:
    """Any valid zip serves the control plane (moto does not execute it)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hybridopt/router/handler.py", "def lambda_handler(e, c):\n    return {}\n")
    p = tmp_path / "router.zip"
    p.write_bytes(buf.getvalue())
    return p


@pytest.fixture()
def aws(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="router-exec",
                               AssumeRolePolicyDocument=D.EXECUTION_TRUST.read_text())["Role"]["Arn"]
        client = boto3.client("lambda", region_name=REGION)
        calls: list[str] = []
        client.meta.events.register("before-call.lambda.*",
                                     lambda model, **kw: calls.append(model.name))
        yield client, role, calls


def _cfg(role: str, weight: float = 0.5):
    return load_params(PROFILE).deploy.model_copy(update={"role_arn": role, "treatment_weight": weight,
                                                          "region": REGION})


def test_first_deploy_creates_function_versions_and_weighted_alias(aws, zip_path) -> None:
    client, role, _ = aws
    cfg = _cfg(role, 0.3)
    plan = D.make_plan(cfg, zip_path, client)
    assert plan.function_exists is False and plan.steps[0].action == "create_function"
    res = D.apply(plan, cfg, client, log=lambda *_: None)
    fn = client.get_function(FunctionName=cfg.function_name)["Configuration"]
    assert fn["State"] == "Active" and fn["Handler"] == "hybridopt.router.handler.lambda_handler"
    assert fn["Runtime"] == cfg.runtime and fn["MemorySize"] == cfg.memory_mb and fn["Role"] == role
    assert fn["CodeSha256"] == plan.code_sha256
    versions = {v["Version"]: v for v in client.list_versions_by_function(FunctionName=cfg.function_name)["Versions"]}
    assert {res.control_version, res.treatment_version} <= set(versions) and res.control_version != res.treatment_version
    for version, arm in ((res.control_version, "control"), (res.treatment_version, "treatment")):
        conf = client.get_function_configuration(FunctionName=cfg.function_name, Qualifier=version)
        assert conf["Environment"]["Variables"][D.ARM_ENV] == arm
    alias = client.get_alias(FunctionName=cfg.function_name, Name=cfg.alias)
    assert alias["FunctionVersion"] == res.control_version
    assert alias["RoutingConfig"]["AdditionalVersionWeights"] == {res.treatment_version: 0.3}


def test_redeploy_updates_code_and_moves_the_alias(aws, zip_path, tmp_path) -> None:
    client, role, _ = aws
    first = D.apply(D.make_plan(_cfg(role), zip_path, client), _cfg(role), client, log=lambda *_: None)
    newer = tmp_path / "newer.zip"
    with zipfile.ZipFile(newer, "w") as zf:
        zf.writestr("hybridopt/router/handler.py", "# v2\n")
    cfg = _cfg(role, 0.8)
    plan = D.make_plan(cfg, newer, client)
    assert plan.function_exists and plan.alias_exists and plan.steps[0].action == "update_function_code"
    assert plan.current_alias == {"version": first.control_version, "weights": {first.treatment_version: 0.5}}
    second = D.apply(plan, cfg, client, log=lambda *_: None)
    assert int(second.control_version) > int(first.treatment_version)
    alias = client.get_alias(FunctionName=cfg.function_name, Name=cfg.alias)
    assert alias["FunctionVersion"] == second.control_version
    assert alias["RoutingConfig"]["AdditionalVersionWeights"] == {second.treatment_version: 0.8}
    conf = client.get_function_configuration(FunctionName=cfg.function_name, Qualifier=second.treatment_version)
    assert conf["CodeSha256"] == plan.code_sha256 != first.code_sha256


@pytest.mark.parametrize("weight, primary, routing", [(0.0, "control", {}), (1.0, "treatment", {})])
def test_edge_weights_route_to_one_version(aws, zip_path, weight, primary, routing) -> None:
    client, role, _ = aws
    res = D.apply(D.make_plan(_cfg(role, weight), zip_path, client), _cfg(role, weight), client,
                  log=lambda *_: None)
    alias = client.get_alias(FunctionName="hybrid-thesis-ml-router", Name="live")
    assert alias["FunctionVersion"] == getattr(res, f"{primary}_version")
    assert (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights", {}) == routing


@pytest.mark.parametrize("weight", [1.5, -0.1, float("nan"), float("inf"), True, "0.5"])
def test_weight_outside_0_1_is_rejected_before_any_call(aws, zip_path, weight) -> None:
    client, role, calls = aws
    with pytest.raises(D.DeployError, match="treatment_weight"):
        D.make_plan(_cfg(role), zip_path, client, weight=weight)
    with pytest.raises(D.DeployError, match="treatment_weight"):
        D.make_plan(_cfg(role, weight), zip_path, client)        # the same from params
    assert calls == []
    # moto itself would accept 1.5: the check must be ours
    plan = D.make_plan(_cfg(role), zip_path, client)
    plan.treatment_weight = 1.5
    with pytest.raises(D.DeployError, match="outside"):
        D.apply(plan, _cfg(role), client)
    assert "CreateFunction" not in calls


def test_missing_role_or_changed_zip_refuse(aws, zip_path) -> None:
    client, role, _ = aws
    plan = D.make_plan(_cfg(None), zip_path, client)
    assert "not set" in plan.render()
    with pytest.raises(D.DeployError, match="role_arn is not set"):
        D.apply(plan, _cfg(None), client)
    plan = D.make_plan(_cfg(role), zip_path, client)
    zip_path.write_bytes(zip_path.read_bytes() + b"\0")
    with pytest.raises(D.DeployError, match="changed since the plan"):
        D.apply(plan, _cfg(role), client)


def test_policy_allows_exactly_the_calls_made(aws, zip_path) -> None:
    client, role, calls = aws
    D.apply(D.make_plan(_cfg(role), zip_path, client), _cfg(role), client, log=lambda *_: None)
    D.apply(D.make_plan(_cfg(role, 0.2), zip_path, client), _cfg(role, 0.2), client, log=lambda *_: None)
    policy = D.render_policy(D.DEPLOY_POLICY, "123456789012", REGION, "hybrid-thesis-ml-router", "router-exec")
    allowed = D.policy_actions(policy)
    needed = {D.LAMBDA_ACTIONS[c] for c in calls} | D.IMPLIED_ACTIONS
    assert needed == allowed - {"iam:PassRole"}, (sorted(needed), sorted(allowed))
    assert not any("*" in a for a in allowed)
    lam = policy["Statement"][0]["Resource"]
    assert lam == ["arn:aws:lambda:eu-west-1:123456789012:function:hybrid-thesis-ml-router",
                   "arn:aws:lambda:eu-west-1:123456789012:function:hybrid-thesis-ml-router:*"]
    assert policy["Statement"][1]["Condition"]["StringEquals"]["iam:PassedToService"] == "lambda.amazonaws.com"
    exec_policy = D.render_policy(D.EXECUTION_POLICY, "123456789012", REGION, "hybrid-thesis-ml-router", "r")
    assert D.policy_actions(exec_policy) == {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}
    # the shipped policies are valid IAM documents for moto's IAM as well
    iam = boto3.client("iam", region_name=REGION)
    iam.create_policy(PolicyName="router-deploy", PolicyDocument=json.dumps(policy))


def _args(**kw) -> argparse.Namespace:
    base = dict(profile=PROFILE, zip=None, weight=None, dry_run=False, execute=False, read_state=False)
    return argparse.Namespace(**{**base, **kw})


def test_cli_dry_run_prints_plan_and_changes_nothing(aws, zip_path, capsys, monkeypatch) -> None:
    from hybridopt.commands import deploy as cmd

    client, role, calls = aws
    assert cmd.run(_args(zip=zip_path, dry_run=True)) == 0
    out = capsys.readouterr().out
    assert "deploy plan" in out and "create_alias" in out and "dry run: nothing changed" in out
    assert "testing" not in out                       # no credential material printed
    assert cmd.run(_args(zip=zip_path)) == 2          # no --execute: refuses
    assert "--execute" in capsys.readouterr().out
    with pytest.raises(D.DeployError, match=r"outside \[0, 1\]"):  # the CLI prints it: one line, exit 2
        cmd.run(_args(zip=zip_path, dry_run=True, weight=2.0))
    with pytest.raises(Exception):
        boto3.client("lambda", region_name=REGION).get_function(FunctionName="hybrid-thesis-ml-router")


def test_cli_execute_against_moto(aws, zip_path, capsys, monkeypatch) -> None:
    from hybridopt.commands import deploy as cmd

    _, role, _ = aws
    real = load_params(PROFILE)
    monkeypatch.setattr(cmd, "load_params", lambda p: real.model_copy(update={"deploy": _cfg(role, 0.25)}))
    assert cmd.run(_args(zip=zip_path, execute=True)) == 0
    out = capsys.readouterr().out
    assert "deployed arn:aws:lambda:eu-west-1:" in out and "testing" not in out
    alias = boto3.client("lambda", region_name=REGION).get_alias(FunctionName="hybrid-thesis-ml-router", Name="live")
    assert list(alias["RoutingConfig"]["AdditionalVersionWeights"].values()) == [0.25]
