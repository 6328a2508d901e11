"""Plan, deploy, outputs and teardown with boto3 against moto (nothing reaches AWS)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hybridopt import paths
from hybridopt.infra import bundle
from hybridopt.infra import deploy as dep
from hybridopt.params import ParamsError, load_params

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")  # resource types moto does not model

MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                       "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023,
                                  "digest": "sha256:" + "a" * 64},
                       "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654,
                                   "digest": "sha256:" + "b" * 64}]})


# --------------------------------------------------------------------------------------- no synthesis
def test_deploy_and_teardown_refuse_without_opt_in():
    for action in ("deploy", "teardown"):
        out = subprocess.run([sys.executable, "-m", "hybridopt", "infra", action, "--profile", "aws"],
                             capture_output=True, text=True, cwd=paths.PROJECT_ROOT, timeout=120)
        assert out.returncode == 2, out.stderr
        assert "--aws-opt-in" in out.stdout and "--dry-run" in out.stdout


def test_outputs_file_feeds_the_profile_and_nothing_else(tmp_path):
    f = tmp_path / "aws.outputs.yaml"
    over = {"infra": {"outputs_file": str(f)}}
    student = load_params("aws", overrides=over).collection.lambda_base_url
    f.write_text("collection:\n  lambda_base_url: https://abc.execute-api.eu-west-1.amazonaws.com/prod\n"
                 "  ecs_base_url: http://hybridopt-alb-1.eu-west-1.elb.amazonaws.com\n")
    p = load_params("aws", overrides=over)
    assert p.collection.lambda_base_url == "https://abc.execute-api.eu-west-1.amazonaws.com/prod" != student
    assert p.collection.ecs_base_url == "http://hybridopt-alb-1.eu-west-1.elb.amazonaws.com"
    f.write_text("collection:\n  aws_opt_in: true\n")
    with pytest.raises(ParamsError, match="aws_opt_in"):
        load_params("aws", overrides=over)
    f.write_text("prices: {}\n")
    with pytest.raises(ParamsError, match="may only set"):
        load_params("aws", overrides=over)


def test_outputs_files_are_not_profiles_and_are_ignored_by_git():
    from hybridopt.params import known_profiles

    assert all(not p.endswith(".outputs") for p in known_profiles())
    out = subprocess.run(["git", "check-ignore", "params/aws.outputs.yaml"], cwd=paths.PROJECT_ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0


# ------------------------------------------------------------------------------------ with templates
@pytest.mark.slow
def test_offline_plan_adds_every_resource(synthesized):
    plan = dep.plan(synthesized, None)
    n = sum(len(t["Resources"]) for t in synthesized.templates.values())
    assert plan.counts() == {"Add": n}
    text = plan.render()
    assert "no AWS credentials used" in text and "MemorySize=512" in text


@pytest.mark.slow
def test_deploy_plan_outputs_teardown_on_moto(synthesized, moto_env, tmp_path):
    from moto import mock_aws

    params = load_params("aws", overrides={"infra": {"outputs_file": str(tmp_path / "aws.outputs.yaml")}})
    cfg = synthesized.cfg
    zip_rep = bundle.build_lambda_zip(tmp_path / "w.zip", with_dependencies=False)
    tag = bundle.image_tag()
    with mock_aws():
        clients = dep.Clients.create(cfg.region)
        # 1. no image in ECR: the artifacts stack and the zip are there, the platforms are not
        with pytest.raises(dep.InfraError, match=tag):
            dep.deploy(params, synthesized, clients, zip_file=Path(zip_rep.path), zip_sha256=zip_rep.sha256,
                       image_tag=tag, wait_delay_s=0.05)
        cf = clients.cloudformation
        assert dep.stack_outputs(cf, cfg.artifacts_stack)["RepositoryUri"].endswith(cfg.repository_name)
        assert not dep._stack_exists(cf, cfg.platforms_stack)
        bucket = dep.stack_outputs(cf, cfg.artifacts_stack)["ArtifactsBucketName"]
        keys = [o["Key"] for o in clients.s3.list_objects_v2(Bucket=bucket)["Contents"]]
        assert keys == [f"lambda/{zip_rep.sha256}.zip"]
        # 2. the image pushed: both stacks deployed, the outputs written where the profile reads them
        clients.ecr.put_image(repositoryName=cfg.repository_name, imageManifest=MANIFEST, imageTag=tag)
        res = dep.deploy(params, synthesized, clients, zip_file=Path(zip_rep.path), zip_sha256=zip_rep.sha256,
                         image_tag=tag, wait_delay_s=0.05)
        assert (res.artifacts, res.platforms) == ("no changes", "created")
        stack = cf.describe_stacks(StackName=cfg.platforms_stack)["Stacks"][0]
        assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]} == \
            {"LambdaCodeKey": f"lambda/{zip_rep.sha256}.zip", "ImageTag": tag}
        assert ".execute-api.eu-west-1." in res.lambda_base_url and res.ecs_base_url.startswith("http://")
        reread = load_params("aws", overrides={"infra": {"outputs_file": str(tmp_path / "aws.outputs.yaml")}})
        assert (reread.collection.lambda_base_url, reread.collection.ecs_base_url) == (res.lambda_base_url,
                                                                                      res.ecs_base_url)
        # 3. the plan against what is deployed: nothing, then exactly the edited resource
        assert set(dep.plan(synthesized, cf).counts()) == {"Unchanged"}
        edited = json.loads(json.dumps(synthesized.platforms))
        fn = next(lid for lid, r in edited["Resources"].items() if r["Type"] == "AWS::Lambda::Function"
                  and r["Properties"]["MemorySize"] == 128)
        edited["Resources"][fn]["Properties"]["MemorySize"] = 1024
        gone = next(lid for lid, r in edited["Resources"].items() if r["Type"] == "AWS::Logs::ResourcePolicy")
        del edited["Resources"][gone]
        changes = dep.diff_templates(cfg.platforms_stack, dep.deployed_template(cf, cfg.platforms_stack), edited)
        moved = [c for c in changes if c.action != "Unchanged"]
        assert [(c.action, c.logical_id) for c in moved] == [("Modify", fn), ("Remove", gone)]
        assert moved[0].detail == "MemorySize: 128 -> 1024"


@pytest.mark.slow
def test_teardown_deletes_the_stacks_and_reports_what_stays(synthesized, moto_env, tmp_path):
    """moto cannot delete a whole platforms stack (it removes the VPC before its dependants), so the
    platforms stack here holds its log groups only: the retained resources teardown reports."""
    from dataclasses import replace

    from moto import mock_aws

    cfg = synthesized.cfg
    logs_only = {**synthesized.platforms, "Parameters": {}, "Outputs": {},
                 "Resources": {lid: r for lid, r in synthesized.platforms["Resources"].items()
                               if r["Type"] == "AWS::Logs::LogGroup"}}
    small = replace(synthesized, templates={**synthesized.templates, cfg.platforms_stack: logs_only})
    with mock_aws():
        clients = dep.Clients.create(cfg.region)
        cf = clients.cloudformation
        dep.deploy_stack(clients, cfg.artifacts_stack, synthesized.artifacts, {}, wait_delay_s=0.05)
        dep.deploy_stack(clients, cfg.platforms_stack, logs_only, {}, wait_delay_s=0.05)
        bucket = dep.stack_outputs(cf, cfg.artifacts_stack)["ArtifactsBucketName"]
        clients.s3.put_object(Bucket=bucket, Key="lambda/x.zip", Body=b"zip")
        clients.ecr.put_image(repositoryName=cfg.repository_name, imageManifest=MANIFEST, imageTag="w-1")
        group = cfg.workloads[0].lambda_log_group
        clients.logs.create_log_stream(logGroupName=group, logStreamName="s")
        clients.logs.put_log_events(logGroupName=group, logStreamName="s",
                                    logEvents=[{"timestamp": 1_700_000_000_000, "message": "REPORT RequestId: x"}])
        dry = dep.teardown(small, clients, dry_run=True)
        assert dry.deleted == [cfg.platforms_stack, cfg.artifacts_stack] and dep._stack_exists(cf, cfg.platforms_stack)
        report = dep.teardown(small, clients, dry_run=False, wait_delay_s=0.05)
        assert report.deleted == [cfg.platforms_stack, cfg.artifacts_stack] and report.emptied == [bucket]
        assert not dep._stack_exists(cf, cfg.platforms_stack) and not dep._stack_exists(cf, cfg.artifacts_stack)
        assert bucket not in [b["Name"] for b in clients.s3.list_buckets()["Buckets"]]
        retained = {r.name: r for r in report.retained}
        assert set(retained) == set(cfg.log_groups) | {cfg.repository_name}
        text = report.render()
        print(text)
        assert "left in the account on purpose (10" in text
        assert "1 images" in retained[cfg.repository_name].detail
        assert "retention 30 days" in retained[group].detail
