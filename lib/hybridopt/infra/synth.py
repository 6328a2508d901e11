"""Synthesize the stacks' CloudFormation templates offline, list their resources, lint them.

`synth(params)` runs the CDK app (`stack.build_app`) through the jsii runtime on the local Node.js:
no AWS account, no CDK CLI, no Docker. It writes the cloud assembly (`<stack>.template.json` per
stack, manifest) to `infra.synth_dir` and returns the templates. CDK's own template validation runs
on synthesis and fails it. `cfn_lint` runs the pinned cfn-lint on the written templates.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybridopt.errors import InputError
from hybridopt import paths
from hybridopt.infra.settings import InfraSettings, settings

if TYPE_CHECKING:
    from hybridopt.params import Params

Template = dict[str, Any]
#: Node 20 runs the jsii runtime fine, but jsii prints a page-wide end-of-support banner on every start.
_NODE_BANNER_ENV = "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"


class SynthError(InputError):
    """Synthesis failed (Node.js missing, CDK validation, ...)."""


@dataclass(frozen=True)
class Synthesized:
    out_dir: Path
    cfg: InfraSettings
    templates: dict[str, Template]        # stack name -> template

    def template_path(self, stack_name: str) -> Path:
        return self.out_dir / f"{stack_name}.template.json"

    @property
    def artifacts(self) -> Template:
        return self.templates[self.cfg.artifacts_stack]

    @property
    def platforms(self) -> Template:
        return self.templates[self.cfg.platforms_stack]


def synth_dir(params: "Params") -> Path:
    return paths.resolve(params.infra.synth_dir, params.profile)


def synth(params: "Params", out_dir: Path | None = None) -> Synthesized:
    """Write the templates of the profile's stacks and return them."""
    cfg = settings(params)
    out = Path(out_dir) if out_dir is not None else synth_dir(params)
    if shutil.which("node") is None:
        raise SynthError("Node.js is not on PATH: the AWS CDK's jsii runtime needs it (Node 20 or newer)")
    os.environ.setdefault(_NODE_BANNER_ENV, "20")
    from hybridopt.infra.stack import build_app   # aws-cdk-lib loads only here (a few seconds)

    if out.exists():
        if any(out.iterdir()) and not (out / "manifest.json").is_file():
            raise SynthError(f"{out} is not empty and holds no cloud assembly (manifest.json): not overwriting it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    try:
        assembly = build_app(cfg, str(out)).synth()
    except Exception as exc:  # jsii surfaces CDK errors (validation included) as RuntimeError/JSIIError
        raise SynthError(f"CDK synthesis failed: {exc}") from exc
    templates = {s.stack_name: json.loads(json.dumps(s.template)) for s in assembly.stacks}
    return Synthesized(out_dir=out, cfg=cfg, templates=templates)


def load_synthesized(params: "Params", out_dir: Path | None = None) -> Synthesized:
    """The templates an earlier `synth` wrote (no Node.js needed)."""
    cfg = settings(params)
    out = Path(out_dir) if out_dir is not None else synth_dir(params)
    templates = {}
    for name in (cfg.artifacts_stack, cfg.platforms_stack):
        p = out / f"{name}.template.json"
        if not p.is_file():
            raise SynthError(f"{p} is missing: run `python -m hybridopt infra synth --profile {params.profile}`")
        templates[name] = json.loads(p.read_text())
    return Synthesized(out_dir=out, cfg=cfg, templates=templates)


# ---------------------------------------------------------------------------------------- resources
_SUMMARY_KEYS = {
    "AWS::Lambda::Function": ("FunctionName", "MemorySize", "Timeout", "Runtime", "Architectures"),
    "AWS::ECS::TaskDefinition": ("Family", "Cpu", "Memory"),
    "AWS::ECS::Service": ("ServiceName", "DesiredCount"),
    "AWS::ApplicationAutoScaling::ScalableTarget": ("MinCapacity", "MaxCapacity"),
    "AWS::Logs::LogGroup": ("LogGroupName", "RetentionInDays"),
    "AWS::ElasticLoadBalancingV2::LoadBalancer": ("Name", "Scheme"),
    "AWS::ElasticLoadBalancingV2::TargetGroup": ("Port", "HealthCheckPath", "HealthCheckPort"),
    "AWS::ApiGateway::Resource": ("PathPart",),
    "AWS::ApiGateway::Method": ("HttpMethod", "AuthorizationType"),
    "AWS::ApiGateway::Stage": ("StageName",),
    "AWS::ECR::Repository": ("RepositoryName", "ImageTagMutability"),
    "AWS::Events::Rule": ("Name",),
}


def _plain(value: Any) -> str:
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return ",".join(map(str, value))
    return "(computed)"


def summary(resource: Template) -> str:
    """A few identifying properties of a resource, `key=value` (tokens shown as `(computed)`)."""
    props = resource.get("Properties", {})
    keys = _SUMMARY_KEYS.get(resource["Type"], ())
    parts = [f"{k}={_plain(props[k])}" for k in keys if k in props]
    if resource["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy":
        tt = props.get("TargetTrackingScalingPolicyConfiguration", {})
        metric = tt.get("PredefinedMetricSpecification", {}).get("PredefinedMetricType")
        parts += [f"metric={metric}", f"target={tt.get('TargetValue')}"]
    return " ".join(parts)


def resource_rows(template: Template) -> list[tuple[str, str, str]]:
    """(type, logical id, summary) of every resource, sorted by type then id."""
    return sorted((r["Type"], lid, summary(r)) for lid, r in template.get("Resources", {}).items())


def render_resources(syn: Synthesized) -> str:
    lines = []
    for name, template in syn.templates.items():
        rows = resource_rows(template)
        lines.append(f"{name}: {len(rows)} resources ({syn.template_path(name)})")
        for rtype, lid, text in rows:
            lines.append(f"  {rtype:<46} {lid:<64} {text}".rstrip())
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- cfn-lint
@dataclass(frozen=True)
class LintResult:
    returncode: int
    output: str
    templates: list[str]

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def cfn_lint(template_paths: list[Path], region: str) -> LintResult:
    """Run cfn-lint (the pinned one in this interpreter's environment) on the templates."""
    exe = Path(sys.executable).parent / "cfn-lint"
    if not exe.is_file():
        found = shutil.which("cfn-lint")
        if found is None:
            raise SynthError("cfn-lint is not installed (requirements.txt pins it)")
        exe = Path(found)
    cmd = [str(exe), "--regions", region, "--", *map(str, template_paths)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    return LintResult(returncode=out.returncode, output=(out.stdout + out.stderr).strip(),
                      templates=[str(p) for p in template_paths])
