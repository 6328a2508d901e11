"""Where things live. Every path the project writes or reads is derived here."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT: Path = Path(__file__).resolve().parents[2]
PARAMS_DIR: Path = PROJECT_ROOT / "params"
NOTEBOOKS_DIR: Path = PROJECT_ROOT / "notebooks"
ARTILLERY_DIR: Path = PROJECT_ROOT / "artillery"


def shared_dir() -> Path:
    """The read-only `../shared` folder next to the repository (override: HYBRIDOPT_SHARED_DIR)."""
    env = os.environ.get("HYBRIDOPT_SHARED_DIR")
    return Path(env).resolve() if env else (PROJECT_ROOT.parent / "shared").resolve()


def resolve(path_template: str | os.PathLike[str], profile: str) -> Path:
    """Resolve a params path: `{profile}` and `{shared}` are substituted; relative paths are
    relative to the project root."""
    text = str(path_template).replace("{profile}", profile).replace("{shared}", str(shared_dir()))
    p = Path(text).expanduser()
    return p if p.is_absolute() else (PROJECT_ROOT / p)
