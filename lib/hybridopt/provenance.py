"""Provenance of a run: git commit, params hash, data hash, library versions."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

from hybridopt import paths
from hybridopt.params import Params

LIBRARIES = ("hybridopt", "pandas", "numpy", "scikit-learn", "xgboost-cpu", "xgboost", "lightgbm", "shap", "seaborn",
             "matplotlib", "papermill", "nbconvert", "pydantic", "pyarrow", "boto3")


def git_commit() -> str:
    """The HEAD commit, with `+dirty` when tracked files differ from it; 'unknown' outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=paths.PROJECT_ROOT,
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=paths.PROJECT_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def data_hash(params: Params) -> str | None:
    """The input hash recorded by the latest preprocessing (data card) or audit, if any."""
    processed = paths.processed(params)
    for path, key in ((processed.data_card, ("hashes", "input_sha256")), (processed.audit, ("input_hash",))):
        p = path
        if p.is_file():
            try:
                obj: Any = json.loads(p.read_text())
                for k in key:
                    obj = obj[k]
                return str(obj)[:16]
            except (ValueError, KeyError, TypeError):
                continue
    return None


def collect(params: Params) -> dict[str, Any]:
    return {"profile": params.profile, "git_commit": git_commit(), "params_hash": params.hash,
            "data_hash": data_hash(params), "python_executable": sys.executable,
            "libraries": library_versions()}
