"""Where things live: the project's folders and the data layout (data/<profile>/raw and processed).
Every data path the project writes or reads is derived here; the model directory's files are in
`hybridopt.model_dir`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hybridopt.params import Params

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


# --- data/<profile>/: what each stage writes and the next one reads ------------------------------
@dataclass(frozen=True)
class Processed:
    """The files of a processed folder (params data.processed_dir, or a command's --out)."""

    dir: Path

    @property
    def requests(self) -> Path:        # the validated contract rows (kept + repaired)
        return self.dir / "requests.parquet"

    @property
    def quarantine(self) -> Path:      # quarantined lines, verbatim, with their reason
        return self.dir / "quarantine.jsonl"

    @property
    def audit(self) -> Path:           # every input line accounted for
        return self.dir / "audit.json"

    @property
    def pairs(self) -> Path:           # one row per pair, labels included
        return self.dir / "pairs.parquet"

    @property
    def training_table(self) -> Path:  # pairs + the feature columns
        return self.dir / "training_table.parquet"

    @property
    def data_card(self) -> Path:       # row counts, label shares, gates, hashes
        return self.dir / "data_card.json"


def processed(params: "Params", out_dir: str | os.PathLike[str] | None = None) -> Processed:
    """The profile's processed folder (or `out_dir` when a command was given --out)."""
    return Processed(Path(out_dir) if out_dir is not None else params.path("processed_dir"))


def platform_logs_dir(params: "Params") -> Path:
    """What AWS logged about a collection (`platform-logs`: Lambda REPORT lines, ECS task times,
    joined to the request log), beside the raw logs: <data.raw_dir>/platform/ (no .jsonl inside)."""
    return params.path("raw_dir") / "platform"
