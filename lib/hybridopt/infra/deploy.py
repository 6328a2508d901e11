"""Plan, deploy, read the outputs of, and tear down the synthesized stacks with boto3 (CloudFormation
CreateStack/UpdateStack; no CDK CLI, no CDK bootstrap: the templates carry no assets).

- `plan`: what a deploy would change, resource by resource (Add / Modify / Remove / Unchanged).
  Without an AWS client every resource is an Add (the stacks are assumed absent); with one it
  compares against the deployed templates (read-only calls: DescribeStacks, GetTemplate).
- `deploy`: the artifacts stack; the Lambda zip to its bucket (`lambda/<sha256>.zip`); a check that
  the image `<repository>:<tag>` is in ECR (it is built and pushed outside, see the README); the
  platforms stack with both parameters; its outputs to the profile's outputs file.
- `teardown`: the platforms stack, then the artifacts bucket's objects and the artifacts stack; it
  reports what is left on purpose (resources with DeletionPolicy Retain: log groups with their
  retention, the ECR repository with its images).

Every boto3 client is passed in (`Clients`), so tests run the same code against moto.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from hybridopt.errors import InputError
from hybridopt import paths
from hybridopt.infra.settings import (
    BUCKET_OUTPUT,
    ECS_URL_OUTPUT,
    IMAGE_TAG_PARAM,
    LAMBDA_CODE_KEY_PARAM,
    LAMBDA_URL_OUTPUT,
    REPOSITORY_OUTPUT,
)
from hybridopt.infra.synth import Synthesized, Template

if TYPE_CHECKING:
    from hybridopt.params import Params

Action = Literal["Add", "Modify", "Remove", "Unchanged"]
#: CloudFormation accepts a TemplateBody up to this size; larger templates go through S3.
TEMPLATE_BODY_MAX_BYTES = 51_200
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]


class InfraError(InputError):
    """A deploy or teardown step cannot go on (missing image, failed change set, ...)."""


@dataclass
class Clients:
    """The boto3 clients the deploy and teardown use (one region)."""
    cloudformation: Any
    s3: Any
    ecr: Any
    logs: Any

    @classmethod
    def create(cls, region: str) -> "Clients":
        import boto3

        session = boto3.Session(region_name=region)
        return cls(*(session.client(n) for n in ("cloudformation", "s3", "ecr", "logs")))


def have_credentials(region: str) -> bool:
    """Whether boto3's standard chain finds credentials (no AWS call is made)."""
    import boto3

    return boto3.Session(region_name=region).get_credentials() is not None


# ------------------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class Change:
    stack: str
    action: Action
    logical_id: str
    type: str
    detail: str = ""


@dataclass
class Plan:
    changes: list[Change]
    against: str                       # what the templates were compared with
    stacks_present: dict[str, bool] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.changes:
            out[c.action] = out.get(c.action, 0) + 1
        return out

    def render(self, *, show_unchanged: bool = False) -> str:
        lines = [f"plan ({self.against}):"]
        for stack in dict.fromkeys(c.stack for c in self.changes):
            rows = [c for c in self.changes if c.stack == stack and (show_unchanged or c.action != "Unchanged")]
            n = {a: sum(1 for c in self.changes if c.stack == stack and c.action == a)
                 for a in ("Add", "Modify", "Remove", "Unchanged")}
            state = "exists" if self.stacks_present.get(stack) else "new stack"
            lines.append(f"  {stack} ({state}): {n['Add']} to add, {n['Modify']} to modify, {n['Remove']} to remove, "
                         f"{n['Unchanged']} unchanged")
            for c in rows:
                lines.append(f"    {'+' if c.action == 'Add' else '~' if c.action == 'Modify' else '-' if c.action == 'Remove' else '='} "
                             f"{c.type:<46} {c.logical_id}" + (f"  [{c.detail}]" if c.detail else ""))
        return "\n".join(lines)


def _changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [k for k in keys if json.dumps(old.get(k), sort_keys=True) != json.dumps(new.get(k), sort_keys=True)]


def diff_templates(stack: str, deployed: Template | None, new: Template) -> list[Change]:
    """Resource-level changes from `deployed` (None: no stack) to `new`."""
    from hybridopt.infra.synth import summary

    old_res = (deployed or {}).get("Resources", {})
    new_res = new.get("Resources", {})
    changes = []
    for lid, res in new_res.items():
        if lid not in old_res:
            changes.append(Change(stack, "Add", lid, res["Type"], summary(res)))
            continue
        before = old_res[lid]
        if before["Type"] != res["Type"]:
            changes.append(Change(stack, "Modify", lid, res["Type"], f"type {before['Type']} -> replaced"))
            continue
        keys = _changed_keys(before.get("Properties", {}), res.get("Properties", {}))
        other = _changed_keys({k: v for k, v in before.items() if k != "Properties"},
                              {k: v for k, v in res.items() if k != "Properties"})
        if keys or other:
            detail = ", ".join([f"{k}: {_short(before.get('Properties', {}).get(k))} -> "
                                f"{_short(res.get('Properties', {}).get(k))}" for k in keys] + other)
            changes.append(Change(stack, "Modify", lid, res["Type"], detail))
        else:
            changes.append(Change(stack, "Unchanged", lid, res["Type"]))
    for lid, res in old_res.items():
        if lid not in new_res:
            changes.append(Change(stack, "Remove", lid, res["Type"]))
    return sorted(changes, key=lambda c: (c.action != "Add", c.type, c.logical_id))


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def _stack_exists(cf: Any, name: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        stacks = cf.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return False
        raise
    return bool(stacks) and stacks[0]["StackStatus"] not in ("DELETE_COMPLETE", "REVIEW_IN_PROGRESS")


def deployed_template(cf: Any, name: str) -> Template | None:
    if not _stack_exists(cf, name):
        return None
    body = cf.get_template(StackName=name, TemplateStage="Original")["TemplateBody"]
    return body if isinstance(body, dict) else json.loads(body) if body.lstrip().startswith("{") else yaml.safe_load(body)


def plan(syn: Synthesized, cf: Any | None) -> Plan:
    """The changes a deploy would make (cf None: against no stacks at all, no AWS call)."""
    changes: list[Change] = []
    present: dict[str, bool] = {}
    for name in (syn.cfg.artifacts_stack, syn.cfg.platforms_stack):
        old = deployed_template(cf, name) if cf is not None else None
        present[name] = old is not None
        changes += diff_templates(name, old, syn.templates[name])
    against = "the deployed stacks (read-only calls)" if cf is not None else \
        "no AWS credentials used: the stacks are assumed not to exist"
    return Plan(changes=changes, against=against, stacks_present=present)


# ------------------------------------------------------------------------------------------ deploy
def stack_outputs(cf: Any, name: str) -> dict[str, str]:
    stack = cf.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def deploy_stack(clients: Clients, name: str, template: Template, parameters: dict[str, str],
                 *, template_bucket: str | None = None, wait_delay_s: float = 10.0) -> str:
    """Create or update one stack and wait for it; returns 'created', 'updated' or 'no changes'."""
    cf = clients.cloudformation
    exists = _stack_exists(cf, name)
    if exists:
        stack = cf.describe_stacks(StackName=name)["Stacks"][0]
        current = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
        if deployed_template(cf, name) == template and current == parameters:
            return "no changes"
    body = json.dumps(template, sort_keys=True)
    source: dict[str, str]
    if len(body.encode()) <= TEMPLATE_BODY_MAX_BYTES:
        source = {"TemplateBody": body}
    else:
        if template_bucket is None:
            raise InfraError(f"{name}: template of {len(body)} bytes needs an S3 bucket (CloudFormation takes "
                             f"at most {TEMPLATE_BODY_MAX_BYTES} inline)")
        import hashlib

        key = f"templates/{name}-{hashlib.sha256(body.encode()).hexdigest()[:16]}.json"
        clients.s3.put_object(Bucket=template_bucket, Key=key, Body=body.encode())
        region = clients.s3.meta.region_name
        source = {"TemplateURL": f"https://{template_bucket}.s3.{region}.amazonaws.com/{key}"}
    from botocore.exceptions import ClientError, WaiterError

    args: dict[str, Any] = {"StackName": name, "Capabilities": CAPABILITIES, **source,
                            "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())]}
    try:
        if exists:
            cf.update_stack(**args)
        else:
            cf.create_stack(**args, OnFailure="ROLLBACK")
    except ClientError as exc:
        if exists and "No updates are to be performed" in str(exc):
            return "no changes"
        raise
    done = cf.get_waiter("stack_update_complete" if exists else "stack_create_complete")
    try:
        done.wait(StackName=name, WaiterConfig={"Delay": wait_delay_s, "MaxAttempts": 360})
    except WaiterError as exc:
        raise InfraError(f"{name}: {'update' if exists else 'creation'} did not complete: {exc}; see the "
                         "stack's events in the CloudFormation console") from None
    return "updated" if exists else "created"


def image_present(ecr: Any, repository: str, tag: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        return bool(ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("ImageNotFoundException", "RepositoryNotFoundException"):
            return False
        raise


@dataclass(frozen=True)
class DeployResult:
    artifacts: str
    platforms: str
    lambda_code_key: str
    image_tag: str
    lambda_base_url: str
    ecs_base_url: str
    outputs_file: Path


def deploy(params: "Params", syn: Synthesized, clients: Clients, *, zip_file: Path, zip_sha256: str,
           image_tag: str, wait_delay_s: float = 10.0) -> DeployResult:
    """Deploy both stacks (the real thing: costs money). See the module docstring for the steps."""
    cfg = syn.cfg
    art = deploy_stack(clients, cfg.artifacts_stack, syn.artifacts, {}, wait_delay_s=wait_delay_s)
    out = stack_outputs(clients.cloudformation, cfg.artifacts_stack)
    bucket = out[BUCKET_OUTPUT]
    key = f"lambda/{zip_sha256}.zip"
    clients.s3.upload_file(str(zip_file), bucket, key)
    if not image_present(clients.ecr, cfg.repository_name, image_tag):
        raise InfraError(f"image {cfg.repository_name}:{image_tag} is not in ECR ({out[REPOSITORY_OUTPUT]}): build and "
                         f"push it first (`python -m hybridopt infra image --profile {params.profile}` prints the "
                         "commands), then deploy again")
    plat = deploy_stack(clients, cfg.platforms_stack, syn.platforms,
                        {LAMBDA_CODE_KEY_PARAM: key, IMAGE_TAG_PARAM: image_tag}, template_bucket=bucket,
                        wait_delay_s=wait_delay_s)
    lam, ecs_url, path = write_outputs(params, stack_outputs(clients.cloudformation, cfg.platforms_stack))
    return DeployResult(artifacts=art, platforms=plat, lambda_code_key=key, image_tag=image_tag,
                        lambda_base_url=lam, ecs_base_url=ecs_url, outputs_file=path)


def outputs_path(params: "Params") -> Path:
    return paths.resolve(params.infra.outputs_file, params.profile)


def write_outputs(params: "Params", outputs: dict[str, str]) -> tuple[str, str, Path]:
    """Write the platforms stack's two base URLs to the profile's outputs file (git-ignored), where
    the params loader picks them up as collection.lambda_base_url / ecs_base_url."""
    missing = [k for k in (LAMBDA_URL_OUTPUT, ECS_URL_OUTPUT) if not outputs.get(k)]
    if missing:
        raise InfraError(f"the platforms stack has no output {missing} (is it deployed?)")
    lam, ecs_url = outputs[LAMBDA_URL_OUTPUT].rstrip("/"), outputs[ECS_URL_OUTPUT].rstrip("/")
    path = outputs_path(params)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("# Written by `python -m hybridopt infra outputs` from the deployed stacks: do not edit, never commit.\n"
            + yaml.safe_dump({"collection": {"lambda_base_url": lam, "ecs_base_url": ecs_url}}, sort_keys=True))
    path.write_text(text)
    return lam, ecs_url, path


# ---------------------------------------------------------------------------------------- teardown
@dataclass
class Retained:
    kind: str
    name: str
    detail: str


@dataclass
class TeardownReport:
    deleted: list[str]
    emptied: list[str]
    retained: list[Retained]
    dry_run: bool

    def render(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        lines = [f"teardown: {verb} stacks: {', '.join(self.deleted) or '(none present)'}"]
        if self.emptied:
            lines.append(f"  {'would empty' if self.dry_run else 'emptied'} buckets: {', '.join(self.emptied)}")
        lines.append(f"  left in the account on purpose ({len(self.retained)}; delete them by hand when done):")
        for r in self.retained:
            lines.append(f"    {r.kind:<16} {r.name}  {r.detail}")
        return "\n".join(lines)


def retained_resources(syn: Synthesized) -> list[tuple[str, str, Template]]:
    """(stack, logical id, resource) of every resource the templates keep when a stack is deleted."""
    return [(stack, lid, res) for stack, t in syn.templates.items()
            for lid, res in t.get("Resources", {}).items() if res.get("DeletionPolicy") == "Retain"]


def _describe_retained(syn: Synthesized, clients: Clients) -> list[Retained]:
    out = []
    for _stack, _lid, res in retained_resources(syn):
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Logs::LogGroup":
            name = props["LogGroupName"]
            groups = [g for g in clients.logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups", [])
                      if g["logGroupName"] == name]
            if groups:
                g = groups[0]
                out.append(Retained("log group", name, f"retention {g.get('retentionInDays', 'never expires')} days, "
                                                       f"{g.get('storedBytes', 0):,} bytes stored"))
            else:
                out.append(Retained("log group", name, "(not found: never created)"))
        elif res["Type"] == "AWS::ECR::Repository":
            name = props["RepositoryName"]
            try:
                images = clients.ecr.describe_images(repositoryName=name).get("imageDetails", [])
            except clients.ecr.exceptions.RepositoryNotFoundException:
                out.append(Retained("ECR repository", name, "(not found)"))
                continue
            size = sum(i.get("imageSizeInBytes", 0) for i in images)
            out.append(Retained("ECR repository", name, f"{len(images)} images, {size:,} bytes"))
        else:
            out.append(Retained(res["Type"], _lid, "(retained by the template)"))
    return out


def teardown(syn: Synthesized, clients: Clients, *, dry_run: bool, wait_delay_s: float = 10.0) -> TeardownReport:
    """Delete the platforms stack, empty the code bucket, delete the artifacts stack; report what stays."""
    cf = clients.cloudformation
    cfg = syn.cfg
    deleted, emptied = [], []
    from botocore.exceptions import WaiterError

    for name in (cfg.platforms_stack, cfg.artifacts_stack):
        if not _stack_exists(cf, name):
            continue
        if name == cfg.artifacts_stack:
            bucket = stack_outputs(cf, name).get(BUCKET_OUTPUT)
            if bucket:
                emptied.append(bucket)
                if not dry_run:
                    _empty_bucket(clients.s3, bucket)
        deleted.append(name)
        if dry_run:
            continue
        cf.delete_stack(StackName=name)
        try:
            cf.get_waiter("stack_delete_complete").wait(StackName=name, WaiterConfig={"Delay": wait_delay_s,
                                                                                        "MaxAttempts": 360})
        except WaiterError as exc:
            raise InfraError(f"{name}: deletion did not complete: {exc}") from None
    return TeardownReport(deleted=deleted, emptied=emptied, retained=_describe_retained(syn, clients), dry_run=dry_run)


def teardown_offline(syn: Synthesized) -> TeardownReport:
    """What a teardown would delete and leave, from the templates alone (no AWS call)."""
    retained = []
    for _stack, lid, res in retained_resources(syn):
        props = res.get("Properties", {})
        name = props.get("LogGroupName") or props.get("RepositoryName") or lid
        detail = (f"retention {props['RetentionInDays']} days" if "RetentionInDays" in props else
                  "its images stay (storage billed)" if res["Type"] == "AWS::ECR::Repository" else "")
        kind = {"AWS::Logs::LogGroup": "log group", "AWS::ECR::Repository": "ECR repository"}.get(res["Type"], res["Type"])
        retained.append(Retained(kind, name, detail + " (not read: no AWS credentials)"))
    return TeardownReport(deleted=[syn.cfg.platforms_stack, syn.cfg.artifacts_stack], emptied=["(the code bucket)"],
                          retained=retained, dry_run=True)


def _empty_bucket(s3: Any, bucket: str) -> None:
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if objs:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": objs, "Quiet": True})
