"""The experiment's platforms as AWS CDK stacks (aws-cdk-lib, Python; synthesized without the CDK
CLI and without an AWS account by `hybridopt.infra.synth`).

Two stacks, deployed in this order and deleted in the reverse one:

- `<prefix>-artifacts`: the ECR repository of the workloads' image (kept when the stack is deleted:
  images survive a teardown) and a private S3 bucket for the Lambda zip.
- `<prefix>-platforms`, with two parameters (`LambdaCodeKey`: the zip's S3 key; `ImageTag`: the
  image's tag in ECR):
  * Lambda: one function per workload (`hybridopt.infra.entry.lambda_handler`), memory from
    `workloads.<w>.lambda_memory_mb`, timeout `testbed.lambda.function_timeout_s`, behind one API
    Gateway REST API (POST <lambda_route>, Lambda proxy integration, stage `infra.api_stage`);
  * ECS Fargate: one service per workload from the same code in the container image, task size and
    bounds from `workloads.<w>.fargate`, `testbed.fargate.worker_slots_per_task` gunicorn workers,
    target-tracking autoscaling from `testbed.fargate.autoscaling`, behind one internet-facing ALB
    (POST <ecs_route> -> the workload's target group; anything else 404), health checks on the
    container's health port;
  * a VPC of public subnets in two AZs (no NAT gateway: tasks get public IPs to pull their image,
    and their security group admits only the ALB);
  * log groups with `infra.log_retention_days` (kept when the stack is deleted, so `platform-logs`
    still reads them): one per function (its REPORT lines), one per service, and one for the ECS
    task state changes (EventBridge), from which `platform-logs` rebuilds the billed task time;
  * one role per function (write its own log group) and per service (task execution: pull this
    repository's image, write its own log group; task role: no permissions).
- Outputs: `LambdaBaseUrl` and `EcsBaseUrl`, read by `infra outputs`.

Nothing in the stacks is public but the API's stage and the ALB's port 80.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from hybridopt.infra.bundle import LAMBDA_HANDLER
from hybridopt.infra.settings import (
    BUCKET_OUTPUT,
    ECS_URL_OUTPUT,
    IMAGE_TAG_PARAM,
    LAMBDA_CODE_KEY_PARAM,
    LAMBDA_URL_OUTPUT,
    REPOSITORY_OUTPUT,
    InfraSettings,
    WorkloadSettings,
)

CONTAINER_NAME = "workload"


class ArtifactsStack(cdk.Stack):
    """The ECR repository and the S3 bucket the platforms stack takes its code from."""

    def __init__(self, scope: Construct, cfg: InfraSettings, **kwargs: object) -> None:
        super().__init__(scope, cfg.artifacts_stack, stack_name=cfg.artifacts_stack,
                         description="hybridopt: the workloads' image repository and Lambda code bucket",
                         **kwargs)
        self.repository = ecr.Repository(
            self, "Repository", repository_name=cfg.repository_name, image_scan_on_push=True,
            image_tag_mutability=ecr.TagMutability.IMMUTABLE, removal_policy=cdk.RemovalPolicy.RETAIN,
            lifecycle_rules=[ecr.LifecycleRule(max_image_count=cfg.infra.ecr_keep_images,
                                               description="keep the newest images")])
        self.bucket = s3.Bucket(
            self, "CodeBucket", block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True, versioned=False,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED, removal_policy=cdk.RemovalPolicy.DESTROY)
        cdk.CfnOutput(self, BUCKET_OUTPUT, value=self.bucket.bucket_name)
        cdk.CfnOutput(self, REPOSITORY_OUTPUT, value=self.repository.repository_uri)


@dataclass(frozen=True)
class _Network:
    vpc: ec2.Vpc
    alb: elbv2.ApplicationLoadBalancer
    listener: elbv2.ApplicationListener
    cluster: ecs.Cluster


class PlatformsStack(cdk.Stack):
    """API Gateway + Lambda and ALB + ECS Fargate running the same workloads."""

    def __init__(self, scope: Construct, cfg: InfraSettings, artifacts: ArtifactsStack, **kwargs: object) -> None:
        super().__init__(scope, cfg.platforms_stack, stack_name=cfg.platforms_stack,
                         description="hybridopt: the experiment's Lambda and Fargate platforms", **kwargs)
        self.cfg = cfg
        code_key = cdk.CfnParameter(self, LAMBDA_CODE_KEY_PARAM, type="String", min_length=1,
                                    description="S3 key of the workloads' Lambda zip in the artifacts bucket")
        image_tag = cdk.CfnParameter(self, IMAGE_TAG_PARAM, type="String", min_length=1,
                                     description="tag of the workloads' image in the artifacts repository")
        api = self._api(cfg)
        code = lambda_.Code.from_bucket(artifacts.bucket, code_key.value_as_string)
        for w in cfg.workloads:
            fn = self._function(w, code)
            resource = api.root.resource_for_path(w.lambda_route)
            resource.add_method("POST", apigw.LambdaIntegration(fn, proxy=True))
        net = self._network(cfg)
        image = ecs.ContainerImage.from_ecr_repository(artifacts.repository, image_tag.value_as_string)
        for w in cfg.workloads:
            self._service(w, net, image)
        self._task_events(net.cluster)
        cdk.CfnOutput(self, LAMBDA_URL_OUTPUT, value=api.url, description="API Gateway stage URL (Lambda)")
        cdk.CfnOutput(self, ECS_URL_OUTPUT, value=cdk.Fn.join("", ["http://", net.alb.load_balancer_dns_name]),
                      description="ALB URL (ECS Fargate)")

    # ------------------------------------------------------------------------------------- Lambda
    def _api(self, cfg: InfraSettings) -> apigw.RestApi:
        api = apigw.RestApi(
            self, "Api", rest_api_name=cfg.api_name, cloud_watch_role=False,
            endpoint_types=[apigw.EndpointType[cfg.infra.api_endpoint_type]],
            deploy_options=apigw.StageOptions(stage_name=cfg.infra.api_stage),
            description="hybridopt workloads on Lambda")
        api.node.try_remove_child("Endpoint")      # CDK's own URL output: LambdaBaseUrl says the same
        return api

    def _log_group(self, cid: str, name: str) -> logs.LogGroup:
        group = logs.LogGroup(self, cid, log_group_name=name, removal_policy=cdk.RemovalPolicy.RETAIN)
        cfn = group.node.default_child
        assert isinstance(cfn, logs.CfnLogGroup)
        cfn.retention_in_days = self.cfg.infra.log_retention_days   # any of CloudWatch's values (params check)
        return group

    def _function(self, w: WorkloadSettings, code: lambda_.Code) -> lambda_.Function:
        cid = _cid(w.workload)
        log_group = self._log_group(f"{cid}FunctionLogs", w.lambda_log_group)
        role = iam.Role(self, f"{cid}FunctionRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description=f"{w.function_name}: write its own log group")
        role.add_to_policy(iam.PolicyStatement(actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                               resources=[log_group.log_group_arn]))
        fn = lambda_.Function(
            self, f"{cid}Function", function_name=w.function_name, handler=LAMBDA_HANDLER,
            runtime=lambda_.Runtime(self.cfg.infra.lambda_runtime, lambda_.RuntimeFamily.PYTHON),
            architecture=lambda_.Architecture.ARM_64 if self.cfg.infra.lambda_architecture == "arm64"
            else lambda_.Architecture.X86_64,
            code=code, memory_size=w.lambda_memory_mb, timeout=cdk.Duration.seconds(self.cfg.lambda_timeout_s),
            role=role, log_group=log_group, logging_format=lambda_.LoggingFormat.TEXT,
            description=f"hybridopt workload {w.workload}")
        # the function names the role (GetAtt), so CDK's DependsOn on the role is redundant (cfn-lint
        # W3005); the one on the role's policy stays: the function starts only once it may write logs
        fn_cfn, policy = fn.node.default_child, role.node.find_child("DefaultPolicy").node.default_child
        assert isinstance(fn_cfn, cdk.CfnResource) and isinstance(policy, cdk.CfnElement)
        fn_cfn.add_override("DependsOn", [self.get_logical_id(policy)])
        return fn

    # ---------------------------------------------------------------------------------------- ECS
    def _network(self, cfg: InfraSettings) -> _Network:
        vpc = ec2.Vpc(self, "Vpc", ip_addresses=ec2.IpAddresses.cidr(cfg.infra.vpc_cidr), max_azs=cfg.infra.max_azs,
                      nat_gateways=0, restrict_default_security_group=False,
                      subnet_configuration=[ec2.SubnetConfiguration(name="public", cidr_mask=24,
                                                                    subnet_type=ec2.SubnetType.PUBLIC)])
        alb_sg = ec2.SecurityGroup(self, "AlbSecurityGroup", vpc=vpc, allow_all_outbound=False,
                                   description="ALB: HTTP from anywhere; out to the tasks only")
        alb_sg.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(80), "HTTP entry point (ECS base URL)")
        alb = elbv2.ApplicationLoadBalancer(self, "Alb", vpc=vpc, internet_facing=True, security_group=alb_sg,
                                            load_balancer_name=cfg.load_balancer_name,
                                            idle_timeout=cdk.Duration.seconds(cfg.alb_idle_timeout_s))
        listener = alb.add_listener("Http", port=80, open=False, default_action=elbv2.ListenerAction.fixed_response(
            404, content_type="application/json", message_body='{"error": "no such route"}'))
        cluster = ecs.Cluster(self, "Cluster", vpc=vpc, cluster_name=cfg.cluster_name)
        return _Network(vpc=vpc, alb=alb, listener=listener, cluster=cluster)

    def _service(self, w: WorkloadSettings, net: _Network, image: ecs.ContainerImage) -> None:
        cfg, inf, cid = self.cfg, self.cfg.infra, _cid(w.workload)
        log_group = self._log_group(f"{cid}ServiceLogs", w.ecs_log_group)
        task = ecs.FargateTaskDefinition(self, f"{cid}Task", cpu=w.task_cpu_units, memory_limit_mib=w.task_memory_mib,
                                         family=w.service_name,
                                         runtime_platform=ecs.RuntimePlatform(
                                             cpu_architecture=ecs.CpuArchitecture.X86_64,
                                             operating_system_family=ecs.OperatingSystemFamily.LINUX))
        task.add_container(
            CONTAINER_NAME, image=image, essential=True,
            logging=ecs.LogDrivers.aws_logs(stream_prefix=w.slug, log_group=log_group),
            port_mappings=[ecs.PortMapping(container_port=inf.container_port),
                           ecs.PortMapping(container_port=inf.health_port)],
            environment={"PORT": str(inf.container_port), "HEALTH_PORT": str(inf.health_port),
                         "HEALTH_PATH": inf.health_check.path,
                         "WEB_CONCURRENCY": str(cfg.worker_slots_per_task),
                         "HYBRIDOPT_WORKER_TIMEOUT_S": str(inf.worker_timeout_s),
                         "HYBRIDOPT_MEMORY_LIMIT_MB": str(w.task_memory_mib)})
        service = ecs.FargateService(
            self, f"{cid}Service", cluster=net.cluster, task_definition=task, service_name=w.service_name,
            desired_count=w.min_tasks, assign_public_ip=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True), min_healthy_percent=100,
            max_healthy_percent=200, health_check_grace_period=cdk.Duration.seconds(60),
            platform_version=ecs.FargatePlatformVersion.LATEST)
        hc = inf.health_check
        target_group = elbv2.ApplicationTargetGroup(
            self, f"{cid}Targets", vpc=net.vpc, port=inf.container_port, protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP, targets=[service.load_balancer_target(
                container_name=CONTAINER_NAME, container_port=inf.container_port)],
            deregistration_delay=cdk.Duration.seconds(inf.deregistration_delay_s),
            health_check=elbv2.HealthCheck(path=hc.path, port=str(inf.health_port),
                                           interval=cdk.Duration.seconds(hc.interval_s),
                                           timeout=cdk.Duration.seconds(hc.timeout_s),
                                           healthy_threshold_count=hc.healthy_threshold,
                                           unhealthy_threshold_count=hc.unhealthy_threshold,
                                           healthy_http_codes="200"))
        net.listener.add_target_groups(f"{cid}Route", target_groups=[target_group], priority=w.listener_priority,
                                       conditions=[elbv2.ListenerCondition.path_patterns([w.ecs_route]),
                                                   elbv2.ListenerCondition.http_request_methods(["POST"])])
        service.connections.allow_from(net.alb, ec2.Port.tcp(inf.health_port), "ALB health check")
        self._autoscaling(w, service, target_group)

    def _autoscaling(self, w: WorkloadSettings, service: ecs.FargateService,
                     target_group: elbv2.ApplicationTargetGroup) -> None:
        a = self.cfg.autoscaling
        if not a.enabled or w.max_tasks == w.min_tasks:
            return
        scaling = service.auto_scale_task_count(min_capacity=w.min_tasks, max_capacity=w.max_tasks)
        out_cd = cdk.Duration.seconds(a.scale_out_cooldown_s)
        in_cd = cdk.Duration.seconds(a.scale_in_cooldown_s)
        if a.metric == "cpu":
            scaling.scale_on_cpu_utilization("CpuTarget", target_utilization_percent=a.target_value,
                                             scale_out_cooldown=out_cd, scale_in_cooldown=in_cd)
        else:
            scaling.scale_on_request_count("RequestTarget", requests_per_target=round(a.target_value),
                                           target_group=target_group, scale_out_cooldown=out_cd,
                                           scale_in_cooldown=in_cd)

    def _task_events(self, cluster: ecs.Cluster) -> None:
        """ECS task state changes of the cluster into a log group: when each task was provisioned,
        started and stopped (its billed time)."""
        log_group = self._log_group("TaskEventsLogs", self.cfg.ecs_events_log_group)
        rule_name = f"{self.cfg.prefix}-ecs-task-events"
        rule_arn = self.format_arn(service="events", resource="rule", resource_name=rule_name)
        policy = logs.CfnResourcePolicy(
            self, "TaskEventsLogsPolicy", policy_name=rule_name,
            policy_document=cdk.Fn.to_json_string({
                "Version": "2012-10-17",
                "Statement": [{"Sid": "EventBridgeToLogs", "Effect": "Allow",
                               "Principal": {"Service": ["events.amazonaws.com", "delivery.logs.amazonaws.com"]},
                               "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                               "Resource": log_group.log_group_arn,
                               "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]}))
        rule = events.CfnRule(
            self, "TaskEventsRule", name=rule_name, description="ECS task state changes of the workloads cluster",
            event_pattern={"source": ["aws.ecs"], "detail-type": ["ECS Task State Change"],
                           "detail": {"clusterArn": [cluster.cluster_arn]}},
            targets=[events.CfnRule.TargetProperty(id="TaskEventsLogGroup", arn=log_group.log_group_arn)])
        rule.add_resource_dependency(policy)


def _cid(workload: str) -> str:
    """A construct id from a workload name (lightweight_api -> LightweightApi)."""
    return "".join(part.capitalize() for part in workload.split("_"))


def build_app(cfg: InfraSettings, outdir: str) -> cdk.App:
    """The CDK app of both stacks, environment-agnostic, without bootstrap resources."""
    # template checks that CDK runs on synthesis fail it instead of printing warnings
    app = cdk.App(outdir=outdir, analytics_reporting=False,
                  context={"@aws-cdk/core:validateAgainstDefaultRules": True})
    kw = {"synthesizer": cdk.BootstraplessSynthesizer()}
    artifacts = ArtifactsStack(app, cfg, **kw)
    platforms = PlatformsStack(app, cfg, artifacts, **kw)
    platforms.add_stack_dependency(artifacts)
    for key, value in cfg.infra.tags.items():
        cdk.Tags.of(app).add(key, value)
    return app
