"""Build the router's Lambda zip: the handler, the model in its serving format, the feature spec,
metadata and the router config, the decide stage's serving set when the model folder has one, and
the only third-party dependency (tzdata). No numpy, no native code, no pickle. Deterministic
(sorted entries, fixed timestamps): the same inputs give the same bytes, so the CodeSha256 AWS
reports identifies a build.

Layout inside the zip (the Lambda handler string is `hybridopt.router.handler.lambda_handler`):

    hybridopt/__init__.py, errors.py, model_dir.py
    hybridopt/data/__init__.py, contract.py, features.py
    hybridopt/decision/__init__.py, load_state.py, objective.py
    hybridopt/router/__init__.py, events.py, handler.py, policy.py, trees.py
    tzdata/...                      IANA zone data (Lambda's runtime may lack /usr/share/zoneinfo)
    model/<model.txt|model.json>, feature_columns.json, feature_spec.json, static_rule.json,
          model_metadata.json, router_config.json, MANIFEST.json (sha256 of every file)
    model/decision/decision_spec.json and the six outcome models it names (when present; the
          decide stage's classifier refit stays out: the plan's classifier is model/<model file>)
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybridopt import model_dir as layout
from hybridopt.router.handler import (
    MODEL_FILES,
    ROUTER_CONFIG,
    PackageError,
    Router,
    RouterConfig,
)
from hybridopt.router.policy import DecisionSpecError, model_files

if TYPE_CHECKING:
    from hybridopt.params import Params

#: hybridopt modules the handler imports (a fresh-interpreter test proves this list is enough).
SHIPPED_MODULES = ("__init__.py", "errors.py", "model_dir.py", "data/__init__.py", "data/contract.py",
                   "data/features.py", "decision/__init__.py", "decision/load_state.py", "decision/objective.py",
                   "router/__init__.py", "router/events.py", "router/handler.py", "router/policy.py",
                   "router/trees.py")
HANDLER = "hybridopt.router.handler.lambda_handler"
ZIP_NAME = "hybridopt-router.zip"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class PackageReport:
    zip_path: str
    zip_bytes: int
    unzipped_bytes: int
    n_files: int
    model_format: str
    model_version: str
    model_bytes: int
    sha256: str
    handler: str
    synthetic_model: bool
    warnings: list[str]
    policy: str = "classifier"            # objective (decision/ packaged) | classifier
    decision_version: str | None = None
    decision_bytes: int = 0               # decision/ files, unzipped

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def router_config(params: "Params") -> RouterConfig:
    return RouterConfig(window_load_patterns={k: tw.load_pattern for k, tw in params.time_windows.items()},
                        outside_window=params.router.outside_window,
                        max_payload_size_kb=params.router.max_payload_size_kb)


def package_path(params: "Params") -> Path:
    from hybridopt.paths import resolve

    return resolve(params.router.package_dir, params.profile) / ZIP_NAME


def _package_root() -> Path:
    return Path(__file__).resolve().parents[1]          # lib/hybridopt


def _tzdata_files() -> list[tuple[Path, str]]:
    spec = importlib.util.find_spec("tzdata")
    if spec is None or spec.origin is None:
        raise PackageError("the tzdata package is not installed (pip install tzdata; it is pinned in "
                           "requirements.txt): the router ships it for zoneinfo")
    root = Path(spec.origin).parent
    files = [(p, "tzdata/" + p.relative_to(root).as_posix()) for p in sorted(root.rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts]
    for dist in root.parent.glob("tzdata-*.dist-info"):
        files += [(p, f"tzdata/{dist.name}/{p.relative_to(dist).as_posix()}") for p in sorted(dist.rglob("*"))
                  if p.is_file() and ("LICENSE" in p.name.upper() or p.name == "METADATA")]
    return files


def _json_object(path: Path) -> dict[str, Any]:
    """A JSON object file of the model folder, or PackageError naming it."""
    try:
        doc = json.loads(path.read_bytes())
    except ValueError as exc:  # includes UnicodeDecodeError
        raise PackageError(f"{path}: not valid JSON ({exc}): retrain the model (notebook 04_train)") from None
    if not isinstance(doc, dict):
        raise PackageError(f"{path}: expected a JSON object, got {type(doc).__name__}: retrain the model "
                           "(notebook 04_train)")
    return doc


def stage(model_dir: Path, config: RouterConfig, out_dir: Path) -> None:
    """Copy everything the zip holds into out_dir (the unzipped package)."""
    model_dir = Path(model_dir)
    meta_path = layout.metadata_path(model_dir)
    if not model_dir.is_dir():
        raise PackageError(f"{model_dir}: no such model folder: train a model first (notebook 04_train)")
    if not meta_path.is_file():
        raise PackageError(f"{model_dir}: no model_metadata.json: train a model first (notebook 04_train)")
    meta = _json_object(meta_path)
    serving = meta.get("serving")
    if not isinstance(serving, dict) or "file" not in serving:
        raise PackageError(f"{meta_path}: serving.file is missing: retrain the model (notebook 04_train)")
    root = _package_root()
    for rel in SHIPPED_MODULES:
        dst = out_dir / "hybridopt" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, dst)
    for src, rel in _tzdata_files():
        dst = out_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    mdir = out_dir / "model"
    mdir.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES + (str(serving["file"]),):
        src = model_dir / name
        if not src.is_file():
            raise PackageError(f"{src}: required model file is missing")
        shutil.copyfile(src, mdir / name)
    _stage_decision(model_dir, mdir)
    (mdir / ROUTER_CONFIG).write_text(json.dumps(asdict(config), indent=2, sort_keys=True))
    manifest = {p.relative_to(out_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(out_dir.rglob("*")) if p.is_file()}
    (mdir / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))


def _stage_decision(model_dir: Path, mdir: Path) -> None:
    """decision/decision_spec.json and the outcome models it names, when the model folder has them."""
    spec = layout.decision_spec_path(model_dir)
    if not spec.is_file():
        return
    try:
        files = model_files(_json_object(spec), spec)
    except DecisionSpecError as exc:
        raise PackageError(str(exc)) from None
    out = mdir / layout.DECISION_DIR
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(spec, out / layout.DECISION_SPEC)
    for name in sorted({f for fs in files.values() for f in fs.values()}):
        src = layout.decision_dir(model_dir) / name
        if not src.is_file():
            raise PackageError(f"{src}: named in {spec} but missing: run `python -m hybridopt decide` again")
        shutil.copyfile(src, out / name)


def _zip(src_dir: Path, zip_path: Path) -> None:
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for p in sorted(src_dir.rglob("*")):
            if p.is_file():
                info = zipfile.ZipInfo(p.relative_to(src_dir).as_posix(), date_time=_FIXED_TIME)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, p.read_bytes(), compresslevel=9)
    tmp.replace(zip_path)


def build_package(model_dir: str | Path, zip_path: str | Path, config: RouterConfig,
                  max_mb: float = 50.0, target_mb: float = 10.0) -> PackageReport:
    """Stage, self-check (load the staged model and answer one request per workload), zip."""
    zip_path = Path(zip_path)
    with tempfile.TemporaryDirectory(prefix="hybridopt-router-") as tmp:
        staged = Path(tmp) / "pkg"
        stage(Path(model_dir), config, staged)
        try:
            router = Router.from_dir(staged / "model")
        except PackageError as exc:  # name the user's folder, not the staging copy
            raise PackageError(str(exc).replace(str(staged / "model"), str(model_dir))) from None
        when = datetime(2025, 11, 20, 3, 0, tzinfo=timezone.utc)
        for w in router.spec.workload_codes:
            resp = router.handle({"workload_type": w, "payload_size_kb": 1.0, "timestamp": when.isoformat()})
            if resp["statusCode"] != 200:
                raise PackageError(f"self-check failed for {w}: {resp}")
        unzipped = sum(p.stat().st_size for p in staged.rglob("*") if p.is_file())
        n_files = sum(1 for p in staged.rglob("*") if p.is_file())
        serving = router.metadata["serving"]
        model_bytes = (staged / "model" / serving["file"]).stat().st_size
        ddir = staged / "model" / layout.DECISION_DIR
        decision_bytes = sum(p.stat().st_size for p in ddir.rglob("*") if p.is_file()) if ddir.is_dir() else 0
        _zip(staged, zip_path)
    size = zip_path.stat().st_size
    warnings = []
    if size > max_mb * 1e6:
        zip_path.unlink()
        raise PackageError(f"package is {size / 1e6:.1f} MB, over the {max_mb} MB limit (router.max_package_mb)")
    if size > target_mb * 1e6:
        warnings.append(f"package is {size / 1e6:.1f} MB, over the {target_mb} MB aim")
    if router.metadata.get("synthetic"):
        warnings.append("the model is SYNTHETIC (trained on made-up contexts), not the trained router")
    if router.decision is not None and (router.decision.doc.get("training") or {}).get("synthetic"):
        warnings.append("the decision models are SYNTHETIC (hybridopt.testing), not the decide stage's")
    return PackageReport(str(zip_path), size, unzipped, n_files, str(serving["format"]), router.model_version,
                         model_bytes, hashlib.sha256(zip_path.read_bytes()).hexdigest(), HANDLER,
                         bool(router.metadata.get("synthetic")), warnings,
                         "objective" if router.decision is not None else "classifier",
                         router.decision.version if router.decision is not None else None, decision_bytes)
