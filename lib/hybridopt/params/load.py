"""The whole `Params` and its loading: `params/base.yaml` + `params/testbed.yaml` +
`params/<profile>.yaml`, deep-merged in that order and validated. Any unknown key, wrong type or
missing file raises `ParamsError` naming the file, the dotted key and what was expected."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from hybridopt import paths
from hybridopt.params.common import ParamsError, _Strict
from hybridopt.params.experiment import (
    Audit,
    CostOptions,
    DataPaths,
    Features,
    Gates,
    Labels,
    LoadPattern,
    Pairing,
    Prices,
    Split,
    TimeWindow,
    Training,
    Workload,
)
from hybridopt.params.closedloop import ClosedLoop
from hybridopt.params.infra import InfraParams
from hybridopt.params.stages import AB, Collection, Decision, Deploy, Router
from hybridopt.params.testbed import TestbedParams

BASE_FILES = ("base.yaml", "testbed.yaml")


# ------------------------------------------------------------------------------------------- the whole
class Params(_Strict):
    profile: str
    experiment: str
    source: Literal["testbed", "simulator", "aws", "legacy"]
    timezone: str
    data: DataPaths
    workloads: dict[str, Workload] = Field(min_length=1)
    load_patterns: dict[str, LoadPattern] = Field(min_length=1)
    time_windows: dict[str, TimeWindow] = Field(min_length=1)
    prices: Prices
    cost: CostOptions
    pairing: Pairing
    labels: Labels
    features: Features
    gates: Gates
    audit: Audit
    split: Split
    training: Training
    testbed: TestbedParams = Field(description="platform model behind testbed and simulator; see testbed.yaml")
    decision: Decision
    router: Router = Field(default_factory=Router)
    deploy: Deploy = Field(default_factory=Deploy)
    ab: AB = Field(default_factory=AB)
    collection: Collection = Field(default_factory=Collection)
    infra: InfraParams = Field(default_factory=InfraParams)
    closed_loop: ClosedLoop = Field(default_factory=ClosedLoop)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {v!r}") from exc
        return v

    @model_validator(mode="after")
    def _cross_refs(self) -> "Params":
        for name, tw in self.time_windows.items():
            if tw.load_pattern not in self.load_patterns:
                raise ValueError(f"time_windows.{name}.load_pattern {tw.load_pattern!r} is not one of "
                                 f"load_patterns {sorted(self.load_patterns)}")
        for section in ("workloads", "load_patterns", "time_windows"):
            codes = [v.code for v in getattr(self, section).values()]
            if sorted(codes) != list(range(len(codes))):
                raise ValueError(f"{section} codes must be 0..{len(codes) - 1} without gaps, got {codes}")
        slo = set(self.decision.objective.slo_p95_ms)
        if slo != set(self.workloads):
            raise ValueError(f"decision.objective.slo_p95_ms must name every workload {sorted(self.workloads)} "
                             f"and no other, got {sorted(slo)}")
        bad = set(self.features.columns) & set(self.features.forbidden)
        if bad:
            raise ValueError(f"features.columns holds forbidden columns {sorted(bad)}")
        return self

    # conveniences -------------------------------------------------------------------------------
    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def path(self, key: str) -> Path:
        """A data path from `data.<key>`, resolved (None becomes a ParamsError)."""
        value = getattr(self.data, key)
        if value is None:
            raise ParamsError(f"profile {self.profile!r}: data.{key} is not set")
        return paths.resolve(value, self.profile)

    @property
    def hash(self) -> str:
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------- loading
def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ParamsError(f"{path}: parameter file is missing")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return _unshare(data)


def _unshare(value: Any) -> Any:
    """A copy in which no two keys share one object: a YAML anchor (`&x` ... `*x`) yields the same
    dict twice, and merging a profile's override into one place would change both."""
    if isinstance(value, dict):
        return {k: _unshare(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unshare(v) for v in value]
    return value


def _merge(dst: dict[str, Any], src: dict[str, Any], origin: dict[tuple[str, ...], str], file: str,
           prefix: tuple[str, ...] = ()) -> None:
    """Deep-merge src into dst (dicts merge, everything else replaces) and record which file set
    each key path."""
    for key, value in src.items():
        loc = prefix + (str(key),)
        origin[loc] = file
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _merge(dst[key], value, origin, file, loc)
        else:
            dst[key] = copy.deepcopy(value)
            if isinstance(value, dict):
                _mark(value, origin, file, loc)


def _mark(value: dict[str, Any], origin: dict[tuple[str, ...], str], file: str,
          prefix: tuple[str, ...]) -> None:
    for key, sub in value.items():
        origin[prefix + (str(key),)] = file
        if isinstance(sub, dict):
            _mark(sub, origin, file, prefix + (str(key),))


def _explain(exc: ValidationError, origin: dict[tuple[str, ...], str], files: list[str]) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(str(p) for p in err["loc"])
        file = next((origin[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in origin), None)
        dotted = ".".join(loc) or "(top level)"
        if err["type"] == "missing":
            where = f"{file or files[-1]}: key '{dotted}'"
            what = "is required but missing in every parameter file"
        elif err["type"] == "extra_forbidden":
            where = f"{file}: key '{dotted}'"
            what = "is not a known parameter (typo?)"
        else:
            where = f"{file}: key '{dotted}'"
            what = f"{err['msg']}; got {err.get('input')!r}"
        lines.append(f"{where} {what}")
    return "invalid parameters:\n  " + "\n  ".join(lines)


def profile_files(profile: str, params_dir: Path | None = None) -> list[Path]:
    d = params_dir or paths.PARAMS_DIR
    return [d / f for f in BASE_FILES] + [d / f"{profile}.yaml"]


def load_params(profile: str, params_dir: Path | None = None,
                overrides: dict[str, Any] | None = None) -> Params:
    """Load and validate the merged parameters of a profile."""
    if not profile or "/" in profile or profile in ("base", "testbed"):
        raise ParamsError(f"profile name {profile!r} is not a profile (expected e.g. quick, full, aws)")
    merged: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    files = profile_files(profile, params_dir)
    for f in files:
        if not f.is_file() and f.name == f"{profile}.yaml":
            known = sorted(p.stem for p in f.parent.glob("*.yaml") if p.name not in BASE_FILES and not p.name.endswith(".outputs.yaml"))
            raise ParamsError(f"{f}: parameter file is missing: profile {profile!r} does not exist "
                              f"(known profiles: {', '.join(known)})")
        _merge(merged, _read_yaml(f), origin, str(f))
    outputs = _outputs_layer(merged, profile, (overrides or {}).get("infra"))
    if outputs is not None:
        _merge(merged, outputs[1], origin, str(outputs[0]))
        files.append(outputs[0])
    if overrides:
        _merge(merged, overrides, origin, "overrides")
    merged["profile"] = profile
    try:
        return Params.model_validate(merged)
    except ValidationError as exc:
        raise ParamsError(_explain(exc, origin, [str(f) for f in files])) from None


#: The only keys a deployment's outputs file may set.
OUTPUT_KEYS = {"collection": {"lambda_base_url", "ecs_base_url"}}


def _outputs_layer(merged: dict[str, Any], profile: str,
                   infra_override: Any = None) -> tuple[Path, dict[str, Any]] | None:
    """The file `infra outputs` wrote for this profile (infra.outputs_file, git-ignored), when it
    exists: the deployed stacks' base URLs, merged after the profile's own file."""
    template = None
    for infra in (infra_override, merged.get("infra")):
        if isinstance(infra, dict) and infra.get("outputs_file"):
            template = infra["outputs_file"]
            break
    from hybridopt.params.infra import InfraParams

    path = paths.resolve(template or InfraParams.model_fields["outputs_file"].default, profile)
    if not path.is_file():
        return None
    data = _read_yaml(path)
    for section, value in data.items():
        allowed = OUTPUT_KEYS.get(section)
        extra = sorted(set(value) - allowed) if allowed and isinstance(value, dict) else None
        if allowed is None or extra is None or extra:
            raise ParamsError(f"{path}: may only set {OUTPUT_KEYS} (it is written by `python -m hybridopt infra "
                              f"outputs`), found {section!r}" + (f" keys {extra}" if extra else ""))
    return path, data


def known_profiles(params_dir: Path | None = None) -> list[str]:
    d = params_dir or paths.PARAMS_DIR
    return sorted(p.stem for p in d.glob("*.yaml") if p.name not in BASE_FILES and not p.name.endswith(".outputs.yaml"))
