"""Assertions on the synthesized templates of the aws profile (AWS CDK `assertions` where it reads
best, plain JSON where a whole-template property is checked)."""

from __future__ import annotations

import json
import math

import pytest

from hybridopt.infra.bundle import LAMBDA_HANDLER
from hybridopt.infra.settings import settings

pytestmark = pytest.mark.slow          # one CDK synthesis per session (conftest)


def _of_type(template, rtype):
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == rtype}


def _ref_id(value):
    """The logical id a Ref / Fn::GetAtt points at (None for anything else)."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
    return None


def test_lambda_memory_timeout_handler_from_params(synthesized, aws_params):
    from aws_cdk.assertions import Template

    t = Template.from_json(synthesized.platforms)
    t.resource_count_is("AWS::Lambda::Function", len(aws_params.workloads))
    timeout = math.ceil(aws_params.testbed.lambda_.function_timeout_s.value)
    assert timeout == 29
    for w in settings(aws_params).workloads:
        t.has_resource_properties("AWS::Lambda::Function", {
            "FunctionName": w.function_name, "MemorySize": aws_params.workloads[w.workload].lambda_memory_mb,
            "Timeout": timeout, "Handler": LAMBDA_HANDLER, "Runtime": "python3.12",
            "Code": {"S3Key": {"Ref": "LambdaCodeKey"}}, "LoggingConfig": {"LogFormat": "Text"}})


def test_api_routes_and_alb_routes_from_params(synthesized, aws_params):
    p = synthesized.platforms
    parts = {r["Properties"]["PathPart"] for r in _of_type(p, "AWS::ApiGateway::Resource").values()}
    assert parts == {w.lambda_route.strip("/") for w in aws_params.workloads.values()}
    methods = _of_type(p, "AWS::ApiGateway::Method").values()
    assert {m["Properties"]["HttpMethod"] for m in methods} == {"POST"}
    stage = next(iter(_of_type(p, "AWS::ApiGateway::Stage").values()))
    assert stage["Properties"]["StageName"] == aws_params.infra.api_stage
    paths = set()
    for rule in _of_type(p, "AWS::ElasticLoadBalancingV2::ListenerRule").values():
        for c in rule["Properties"]["Conditions"]:
            if c["Field"] == "path-pattern":
                paths |= set(c["PathPatternConfig"]["Values"])
    assert paths == {w.ecs_route for w in aws_params.workloads.values()}
    lb = next(iter(_of_type(p, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()))
    attrs = {a["Key"]: a["Value"] for a in lb["Properties"]["LoadBalancerAttributes"]}
    assert attrs["idle_timeout.timeout_seconds"] == str(int(aws_params.testbed.fargate.alb_idle_timeout_s.value))


def test_fargate_task_sizes_workers_and_no_per_request_work(synthesized, aws_params):
    p = synthesized.platforms
    slots = aws_params.testbed.fargate.worker_slots_per_task.value
    tasks = {r["Properties"]["Family"]: r["Properties"] for r in _of_type(p, "AWS::ECS::TaskDefinition").values()}
    for w in settings(aws_params).workloads:
        f = aws_params.workloads[w.workload].fargate
        td = tasks[w.service_name]
        assert (td["Cpu"], td["Memory"]) == (str(round(f.vcpu * 1024)), str(round(f.memory_gb * 1024)))
        (container,) = td["ContainerDefinitions"]
        env = {e["Name"]: e["Value"] for e in container["Environment"]}
        assert env["WEB_CONCURRENCY"] == str(slots)
        assert env["HYBRIDOPT_MEMORY_LIMIT_MB"] == str(round(f.memory_gb * 1024))
        assert "Command" not in container and "EntryPoint" not in container   # the image's CMD: gunicorn_conf
        assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    services = _of_type(p, "AWS::ECS::Service")
    assert {s["Properties"]["DesiredCount"] for s in services.values()} == \
        {w.fargate.min_tasks for w in aws_params.workloads.values()}
    for s in services.values():
        assert s["Properties"]["LaunchType"] == "FARGATE"
        assert s["Properties"]["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {"Enable": True,
                                                                                         "Rollback": True}


def test_autoscaling_bounds_and_target_from_params(synthesized, aws_params):
    p = synthesized.platforms
    a = aws_params.testbed.fargate.autoscaling
    targets = _of_type(p, "AWS::ApplicationAutoScaling::ScalableTarget")
    services = {lid: s["Properties"]["ServiceName"] for lid, s in _of_type(p, "AWS::ECS::Service").items()}
    by_service = {}
    for t in targets.values():
        rid = t["Properties"]["ResourceId"]["Fn::Join"][1]
        service_lid = next(_ref_id(x) for x in rid if isinstance(x, dict) and "Fn::GetAtt" in x)
        by_service[services[service_lid]] = (t["Properties"]["MinCapacity"], t["Properties"]["MaxCapacity"])
    expected = {w.service_name: (aws_params.workloads[w.workload].fargate.min_tasks,
                                 aws_params.workloads[w.workload].fargate.max_tasks)
                for w in settings(aws_params).workloads}
    assert by_service == expected and all(hi > lo for lo, hi in expected.values())
    policies = _of_type(p, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    assert len(policies) == len(expected)
    for pol in policies:
        cfg = pol["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        assert pol["Properties"]["PolicyType"] == "TargetTrackingScaling"
        assert cfg["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ECSServiceAverageCPUUtilization"
        assert cfg["TargetValue"] == a.target_value.value
        assert cfg["ScaleInCooldown"] == a.scale_in_cooldown_s.value
        assert cfg["ScaleOutCooldown"] == a.scale_out_cooldown_s.value


def test_log_groups_have_retention_and_outlive_the_stack(synthesized, aws_params):
    p = synthesized.platforms
    groups = _of_type(p, "AWS::Logs::LogGroup")
    assert {g["Properties"]["LogGroupName"] for g in groups.values()} == set(settings(aws_params).log_groups)
    for g in groups.values():
        assert g["Properties"]["RetentionInDays"] == aws_params.infra.log_retention_days
        assert g["DeletionPolicy"] == "Retain"
    # every function and container writes to one of these groups, not to one created on first write
    for fn in _of_type(p, "AWS::Lambda::Function").values():
        assert _ref_id(fn["Properties"]["LoggingConfig"]["LogGroup"]) in groups
    for td in _of_type(p, "AWS::ECS::TaskDefinition").values():
        opts = td["Properties"]["ContainerDefinitions"][0]["LogConfiguration"]["Options"]
        assert _ref_id(opts["awslogs-group"]) in groups


def _statements(template):
    """(role logical id, statement) for every policy attached to a role, inline or not."""
    out = []
    for lid, role in _of_type(template, "AWS::IAM::Role").items():
        assert not role["Properties"].get("ManagedPolicyArns"), f"{lid} has managed policies"
        for pol in role["Properties"].get("Policies", []):
            out += [(lid, s) for s in pol["PolicyDocument"]["Statement"]]
    for pol in _of_type(template, "AWS::IAM::Policy").values():
        for role in pol["Properties"]["Roles"]:
            out += [(_ref_id(role), s) for s in pol["Properties"]["PolicyDocument"]["Statement"]]
    return out


def test_roles_are_least_privilege(synthesized):
    p = synthesized.platforms
    roles = _of_type(p, "AWS::IAM::Role")
    fn_roles = {_ref_id(f["Properties"]["Role"]): f for f in _of_type(p, "AWS::Lambda::Function").values()}
    tds = _of_type(p, "AWS::ECS::TaskDefinition").values()
    exec_roles = {_ref_id(t["Properties"]["ExecutionRoleArn"]): t for t in tds}
    task_roles = {_ref_id(t["Properties"]["TaskRoleArn"]) for t in tds}
    assert set(roles) == set(fn_roles) | set(exec_roles) | task_roles
    for lid, role in roles.items():
        (stmt,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert stmt["Principal"] == {"Service": "lambda.amazonaws.com" if lid in fn_roles else "ecs-tasks.amazonaws.com"}
    actions: dict[str, set[str]] = {lid: set() for lid in roles}
    for lid, s in _statements(p):
        assert s["Effect"] == "Allow"
        acts = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        assert all("*" not in a for a in acts), acts
        if s["Resource"] == "*":
            assert acts == ["ecr:GetAuthorizationToken"]       # the one ECR action without a resource
        actions[lid] |= set(acts)
        if lid in fn_roles:   # a function writes its own log group only
            group = _ref_id(fn_roles[lid]["Properties"]["LoggingConfig"]["LogGroup"])
            assert _ref_id(s["Resource"]) == group
    logs_write = {"logs:CreateLogStream", "logs:PutLogEvents"}
    ecr_pull = {"ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage",
                "ecr:GetAuthorizationToken"}
    for lid in roles:
        expected = logs_write if lid in fn_roles else logs_write | ecr_pull if lid in exec_roles else set()
        assert actions[lid] == expected, lid


def test_nothing_public_but_the_two_entry_points(synthesized):
    p = synthesized.platforms
    sgs = _of_type(p, "AWS::EC2::SecurityGroup")
    lbs = _of_type(p, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    (alb_lid, alb), = lbs.items()
    assert alb["Properties"]["Scheme"] == "internet-facing"
    alb_sgs = {_ref_id(x) for x in alb["Properties"]["SecurityGroups"]}
    open_rules = []
    for lid, sg in sgs.items():
        for rule in sg["Properties"].get("SecurityGroupIngress", []):
            open_rules.append((lid, rule))
    for lid, rule in _of_type(p, "AWS::EC2::SecurityGroupIngress").items():
        open_rules.append((_ref_id(rule["Properties"]["GroupId"]), rule["Properties"]))
    for group, rule in open_rules:
        if "CidrIp" in rule or "CidrIpv6" in rule:      # from an address range: only the ALB, only port 80
            assert group in alb_sgs and rule["CidrIp"] == "0.0.0.0/0"
            assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 80, 80)
        else:                                           # the tasks: only from the ALB's security group
            assert _ref_id(rule["SourceSecurityGroupId"]) in alb_sgs and group not in alb_sgs
    listeners = _of_type(p, "AWS::ElasticLoadBalancingV2::Listener").values()
    assert [(lis["Properties"]["Port"], lis["Properties"]["Protocol"]) for lis in listeners] == [(80, "HTTP")]
    assert len(_of_type(p, "AWS::ApiGateway::RestApi")) == 1
    api_lid = next(iter(_of_type(p, "AWS::ApiGateway::RestApi")))
    for perm in _of_type(p, "AWS::Lambda::Permission").values():
        assert perm["Properties"]["Principal"] == "apigateway.amazonaws.com"
        assert perm["Properties"]["Action"] == "lambda:InvokeFunction"
        assert api_lid in json.dumps(perm["Properties"]["SourceArn"])
    for rtype in ("AWS::Lambda::Url", "AWS::EC2::EIP", "AWS::ECR::RepositoryPolicy", "AWS::EC2::NatGateway"):
        assert not _of_type(p, rtype) and not _of_type(synthesized.artifacts, rtype)
    a = synthesized.artifacts
    (bucket,) = _of_type(a, "AWS::S3::Bucket").values()
    assert all(bucket["Properties"]["PublicAccessBlockConfiguration"].values())
    for pol in _of_type(a, "AWS::S3::BucketPolicy").values():
        assert {s["Effect"] for s in pol["Properties"]["PolicyDocument"]["Statement"]} == {"Deny"}
    (repo,) = _of_type(a, "AWS::ECR::Repository").values()
    assert "RepositoryPolicyText" not in repo["Properties"] and repo["DeletionPolicy"] == "Retain"
    (rp,) = _of_type(p, "AWS::Logs::ResourcePolicy").values()
    doc = json.dumps(rp["Properties"]["PolicyDocument"])
    assert "events.amazonaws.com" in doc and "aws:SourceArn" in doc


def test_outputs_give_the_two_base_urls(synthesized):
    outs = synthesized.platforms["Outputs"]
    assert {"LambdaBaseUrl", "EcsBaseUrl"} <= set(outs)
    assert "http://" in json.dumps(outs["EcsBaseUrl"]["Value"])
    params = synthesized.platforms["Parameters"]
    assert {"LambdaCodeKey", "ImageTag"} <= set(params)


def test_other_params_give_another_template(aws_params, tmp_path):
    """The template follows params (not constants): other sizes, bounds and metric."""
    from hybridopt.infra.synth import synth
    from hybridopt.params import load_params

    p = load_params("aws", overrides={
        "workloads": {"heavy_processing": {"lambda_memory_mb": 1769, "fargate": {"vcpu": 2, "memory_gb": 4,
                                                                                   "max_tasks": 7}}},
        "testbed": {"fargate": {"worker_slots_per_task": {"value": 3, "basis": "assumption", "source": "a test"},
                                "autoscaling": {"metric": {"value": "request_count_per_target", "basis": "assumption",
                                                           "source": "a test"},
                                                "target_value": {"value": 120, "basis": "assumption",
                                                                 "source": "a test"}}}},
        "infra": {"log_retention_days": 7}})
    t = synth(p, tmp_path / "out").platforms
    fn = next(f for f in _of_type(t, "AWS::Lambda::Function").values()
              if f["Properties"]["FunctionName"].endswith("heavy-processing"))
    assert fn["Properties"]["MemorySize"] == 1769
    td = next(x for x in _of_type(t, "AWS::ECS::TaskDefinition").values()
              if x["Properties"]["Family"].endswith("heavy-processing"))
    assert (td["Properties"]["Cpu"], td["Properties"]["Memory"]) == ("2048", "4096")
    env = {e["Name"]: e["Value"] for e in td["Properties"]["ContainerDefinitions"][0]["Environment"]}
    assert env["WEB_CONCURRENCY"] == "3"
    assert 7 in {x["Properties"]["MaxCapacity"] for x in _of_type(t, "AWS::ApplicationAutoScaling::ScalableTarget").values()}
    for pol in _of_type(t, "AWS::ApplicationAutoScaling::ScalingPolicy").values():
        cfg = pol["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        assert cfg["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ALBRequestCountPerTarget"
        assert cfg["TargetValue"] == 120
    assert {g["Properties"]["RetentionInDays"] for g in _of_type(t, "AWS::Logs::LogGroup").values()} == {7}


def test_cfn_lint_passes_and_catches_a_broken_template(synthesized, tmp_path):
    from hybridopt.infra.synth import cfn_lint

    res = cfn_lint([synthesized.template_path(n) for n in synthesized.templates], "eu-west-1")
    assert res.ok, res.output
    broken = json.loads(json.dumps(synthesized.platforms))
    fn = next(iter(_of_type(broken, "AWS::Lambda::Function")))
    broken["Resources"][fn]["Properties"]["MemorySizeMb"] = 512         # no such property
    path = tmp_path / "broken.template.json"
    path.write_text(json.dumps(broken))
    bad = cfn_lint([path], "eu-west-1")
    assert not bad.ok and "MemorySizeMb" in bad.output
