"""Deploy the router package to AWS Lambda with boto3 and split traffic with a weighted alias.

One zip, two published versions that differ only in the environment variable HYBRIDOPT_ARM:
the CONTROL version answers with the static per-workload rule, the TREATMENT version with the
model. The alias (params deploy.alias, default `live`) points at the control version and sends
`treatment_weight` of the invocations to the treatment version
(RoutingConfig.AdditionalVersionWeights); every answer says which arm produced it.

Steps (printed first by `plan`, executed by `apply`):
  1. create the function (waiter function_active_v2) or update its code (waiter
     function_updated_v2);
  2. set HYBRIDOPT_ARM=control (+ memory, timeout, runtime, handler, role), wait, publish version C;
  3. set HYBRIDOPT_ARM=treatment, wait, publish version T;
  4. create or move the alias: C with weight 1-w, T with w (w=0: C only; w=1: T only).

The weight is validated to lie in [0, 1] here, before any call: AWS rejects others, moto does not.
Credentials come from boto3's standard chain (environment, profile, SSO, instance role); nothing
secret is printed: the plan and results hold names, ARNs, versions and code hashes only.
The IAM policy the deploying identity needs is `deploy-policy.json` beside this file
(least privilege: the Lambda actions below on this one function, and iam:PassRole for its role
to lambda.amazonaws.com only); the function's own role needs `execution-role-*.json`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hybridopt.errors import InputError
from hybridopt.router.package import HANDLER

if TYPE_CHECKING:
    from botocore.client import BaseClient  # a boto3 "lambda" client

    from hybridopt.params import Deploy

POLICY_DIR = Path(__file__).resolve().parent
DEPLOY_POLICY = POLICY_DIR / "deploy-policy.json"
EXECUTION_TRUST = POLICY_DIR / "execution-role-trust.json"
EXECUTION_POLICY = POLICY_DIR / "execution-role-policy.json"
ARM_ENV = "HYBRIDOPT_ARM"
#: boto3 operation -> IAM action, for every Lambda call this module makes.
LAMBDA_ACTIONS = {
    "GetFunction": "lambda:GetFunction", "GetAlias": "lambda:GetAlias",
    "CreateFunction": "lambda:CreateFunction", "UpdateFunctionCode": "lambda:UpdateFunctionCode",
    "UpdateFunctionConfiguration": "lambda:UpdateFunctionConfiguration",
    "PublishVersion": "lambda:PublishVersion", "CreateAlias": "lambda:CreateAlias",
    "UpdateAlias": "lambda:UpdateAlias",
}
#: Needed without a call of its own: CreateFunction with Tags requires lambda:TagResource (AWS
#: Lambda API reference, CreateFunction, "Tags").
IMPLIED_ACTIONS = {"lambda:TagResource"}


class DeployError(InputError):
    """A deployment setting is invalid or a step failed."""


def validate_weight(weight: object) -> float:
    """The treatment share of the alias: a finite number in [0, 1] (AWS's own rule)."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise DeployError(f"deploy.treatment_weight {weight!r} is not a number in [0, 1]")
    w = float(weight)
    if not math.isfinite(w) or not 0.0 <= w <= 1.0:
        raise DeployError(f"deploy.treatment_weight {weight!r} is outside [0, 1] (AWS accepts "
                          "AdditionalVersionWeights between 0.0 and 1.0)")
    return w


@dataclass(frozen=True)
class Step:
    action: str
    detail: str


@dataclass
class Plan:
    function_name: str
    region: str
    alias: str
    treatment_weight: float
    zip_path: str
    zip_bytes: int
    code_sha256: str              # base64 sha256, as Lambda reports CodeSha256
    role_arn: str | None
    function_exists: bool | None  # None: state unknown (dry run without credentials)
    alias_exists: bool | None
    current_alias: dict[str, Any] | None
    steps: list[Step] = field(default_factory=list)

    def render(self) -> str:
        known = {True: "exists", False: "does not exist", None: "unknown (AWS not queried)"}
        lines = [
            f"deploy plan: function {self.function_name} in {self.region}",
            f"  package   {self.zip_path} ({self.zip_bytes / 1e6:.2f} MB, CodeSha256 {self.code_sha256})",
            f"  role      {self.role_arn or '(not set: params deploy.role_arn)'}",
            f"  function  {known[self.function_exists]}; alias {self.alias}: {known[self.alias_exists]}"
            + (f" (now {self.current_alias})" if self.current_alias else ""),
            f"  split     control (static rule) {1 - self.treatment_weight:.0%} / treatment (model) "
            f"{self.treatment_weight:.0%}",
        ]
        lines += [f"  {i}. {s.action}: {s.detail}" for i, s in enumerate(self.steps, 1)]
        return "\n".join(lines)


@dataclass(frozen=True)
class DeployResult:
    function_arn: str
    control_version: str
    treatment_version: str
    alias_arn: str
    routing: dict[str, float]
    code_sha256: str


def code_sha256(zip_bytes: bytes) -> str:
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


def _exists(call: Callable[..., dict[str, Any]], **kw: object) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return call(**kw)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise


def check_package(zip_path: Path, data: bytes) -> None:
    """The bytes are a sound zip that holds the handler module Lambda will import, else DeployError."""
    rebuild = "rebuild it with `python -m hybridopt package --profile <profile>`"
    module = HANDLER.rsplit(".", 1)[0].replace(".", "/") + ".py"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
            corrupt = zf.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, zlib.error) as exc:
        raise DeployError(f"{zip_path}: not a zip archive ({len(data):,} bytes; {exc}): {rebuild}") from None
    if corrupt is not None:
        raise DeployError(f"{zip_path}: {corrupt} is corrupt inside the zip: {rebuild}")
    if module not in names:
        raise DeployError(f"{zip_path}: no {module} inside (not a router package): {rebuild}")


def make_plan(cfg: "Deploy", zip_path: str | Path, client: BaseClient | None = None,
              weight: float | None = None) -> Plan:
    """Validate and describe the deployment. With a client, read the current state (read-only)."""
    w = validate_weight(cfg.treatment_weight if weight is None else weight)
    zp = Path(zip_path)
    if not zp.is_file():
        raise DeployError(f"{zp}: no package: run `python -m hybridopt package --profile <profile>` first")
    data = zp.read_bytes()
    check_package(zp, data)
    fn_exists = alias_exists = None
    current = None
    if client is not None:
        fn_exists = _exists(client.get_function, FunctionName=cfg.function_name) is not None
        if fn_exists:
            a = _exists(client.get_alias, FunctionName=cfg.function_name, Name=cfg.alias)
            alias_exists = a is not None
            if a:
                current = {"version": a["FunctionVersion"],
                           "weights": (a.get("RoutingConfig") or {}).get("AdditionalVersionWeights", {})}
        else:
            alias_exists = False
    plan = Plan(cfg.function_name, cfg.region, cfg.alias, w, str(zp), len(data), code_sha256(data),
                cfg.role_arn, fn_exists, alias_exists, current)
    conf = (f"runtime {cfg.runtime}, {cfg.architecture}, {cfg.memory_mb} MB, timeout {cfg.timeout_s} s, "
            f"handler {HANDLER}")
    if fn_exists is False or fn_exists is None:
        plan.steps.append(Step("create_function" if fn_exists is False else "create_function or update_function_code",
                               f"{conf}; then wait (function_active_v2 / function_updated_v2)"))
    else:
        plan.steps.append(Step("update_function_code", "upload the zip; wait (function_updated_v2)"))
    plan.steps += [
        Step("update_function_configuration", f"{ARM_ENV}=control, {conf}; wait (function_updated_v2)"),
        Step("publish_version", "control version (static per-workload rule)"),
        Step("update_function_configuration", f"{ARM_ENV}=treatment; wait (function_updated_v2)"),
        Step("publish_version", "treatment version (the model)"),
        Step("update_alias" if alias_exists else "create_alias",
             f"{cfg.alias} -> control version, AdditionalVersionWeights {{treatment version: {w}}}"
             if 0 < w < 1 else f"{cfg.alias} -> {'treatment' if w == 1 else 'control'} version only"),
    ]
    return plan


def _configure(client: BaseClient, cfg: "Deploy", arm: str) -> None:
    client.update_function_configuration(
        FunctionName=cfg.function_name, Role=cfg.role_arn, Handler=HANDLER, Runtime=cfg.runtime,
        MemorySize=cfg.memory_mb, Timeout=cfg.timeout_s, Description=cfg.description,
        Environment={"Variables": {ARM_ENV: arm}})
    client.get_waiter("function_updated_v2").wait(FunctionName=cfg.function_name)


def apply(plan: Plan, cfg: "Deploy", client: BaseClient, log: Callable[[str], None] = print) -> DeployResult:
    """Execute a plan made by `make_plan` (validated again here)."""
    w = validate_weight(plan.treatment_weight)
    if not cfg.role_arn:
        raise DeployError("deploy.role_arn is not set: the function needs an execution role "
                          f"(trust policy {EXECUTION_TRUST.name}, permissions {EXECUTION_POLICY.name})")
    data = Path(plan.zip_path).read_bytes()
    if code_sha256(data) != plan.code_sha256:
        raise DeployError(f"{plan.zip_path} changed since the plan was made")
    name = cfg.function_name
    if _exists(client.get_function, FunctionName=name) is None:
        log(f"create_function {name}")
        client.create_function(
            FunctionName=name, Runtime=cfg.runtime, Role=cfg.role_arn, Handler=HANDLER,
            Code={"ZipFile": data}, Description=cfg.description, Timeout=cfg.timeout_s,
            MemorySize=cfg.memory_mb, Architectures=[cfg.architecture], Publish=False,
            Environment={"Variables": {ARM_ENV: "control"}}, Tags=dict(cfg.tags))
        client.get_waiter("function_active_v2").wait(FunctionName=name)
    else:
        log(f"update_function_code {name}")
        client.update_function_code(FunctionName=name, ZipFile=data, Architectures=[cfg.architecture])
        client.get_waiter("function_updated_v2").wait(FunctionName=name)
    versions = {}
    for arm in ("control", "treatment"):
        _configure(client, cfg, arm)
        v = client.publish_version(FunctionName=name, CodeSha256=plan.code_sha256,
                                   Description=f"{arm}: {'static rule' if arm == 'control' else 'model'}")
        versions[arm] = v["Version"]
        log(f"publish_version {arm}: {v['Version']}")
    if w == 1.0:
        primary, routing = versions["treatment"], {}
    else:
        primary, routing = versions["control"], ({versions["treatment"]: w} if w > 0 else {})
    kw = dict(FunctionName=name, Name=cfg.alias, FunctionVersion=primary,
              RoutingConfig={"AdditionalVersionWeights": routing},
              Description=f"A/B: treatment weight {w}")
    if _exists(client.get_alias, FunctionName=name, Name=cfg.alias) is None:
        alias = client.create_alias(**kw)
    else:
        alias = client.update_alias(**kw)
    log(f"alias {cfg.alias} -> {primary} + {routing}")
    fn = client.get_function(FunctionName=name)["Configuration"]
    return DeployResult(fn["FunctionArn"], versions["control"], versions["treatment"], alias["AliasArn"],
                        dict(routing), plan.code_sha256)


def render_policy(path: Path, account_id: str, region: str, function_name: str, role_name: str) -> dict:
    """A shipped policy with its placeholders filled in (and checked to be valid JSON)."""
    text = (path.read_text().replace("${AccountId}", account_id).replace("${Region}", region)
            .replace("${FunctionName}", function_name).replace("${RoleName}", role_name))
    if "${" in text:
        raise DeployError(f"{path}: unfilled placeholder in {text[text.index('${'):][:30]!r}")
    return json.loads(text)


def policy_actions(policy: dict) -> set[str]:
    acts: set[str] = set()
    for st in policy["Statement"]:
        a = st["Action"]
        acts |= {a} if isinstance(a, str) else set(a)
    return acts
