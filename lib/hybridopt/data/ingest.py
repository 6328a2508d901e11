"""Ingestion: a folder of request logs (contract JSONL, the legacy thesis layout, or both) into one
validated DataFrame, with a ledger that accounts for every line."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybridopt.data import contract, legacy
from hybridopt.data.reader import Ledger, Vocab, read_file
from hybridopt.errors import InputError
from hybridopt.params import Params

CATEGORICAL = ("source", "platform", "workload_type", "time_window", "load_pattern", "phase", "error",
               "arm", "run_id", "experiment")


@dataclass
class IngestResult:
    requests: pd.DataFrame              # one row per kept or repaired attempt
    ledger: Ledger
    files: list[dict[str, Any]]         # per input file: path, layout, bytes, lines
    manifests: list[dict[str, Any]]     # collection manifests found beside the logs
    input_hash: str                     # sha256 over every input file's bytes (sorted by path)
    data_dir: Path
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)  # {file, error}: logs that could not be read

    def summary(self) -> dict[str, Any]:
        led = self.ledger
        return {"data_dir": str(self.data_dir), "files": len(self.files), "lines": led.lines_total,
                "kept": led.kept, "repaired": led.repaired, "quarantined": led.quarantined,
                "requests": len(self.requests), "unreadable": len(self.unreadable),
                "input_hash": self.input_hash}


def vocab_of(params: Params) -> Vocab:
    return Vocab(workloads=frozenset(params.workloads), time_windows=frozenset(params.time_windows),
                 load_patterns=frozenset(params.load_patterns))


def default_data_dir(params: Params) -> Path:
    """The profile's input: data.legacy_dir when set, else data.raw_dir."""
    return params.path("legacy_dir") if params.data.legacy_dir else params.path("raw_dir")


def _sniff_contract(path: Path) -> bool:
    """True if the first line that parses as JSON carries a schema_version."""
    with open(path, "rb") as fh:
        for raw in fh:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            return isinstance(obj, dict) and "schema_version" in obj
    return False


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def discover(data_dir: Path) -> tuple[list[tuple[Path, str]], list[dict[str, str]]]:
    """Every *.jsonl under data_dir with its layout ('contract' or 'legacy'), and every folder or
    log file that cannot be read ({file, error}; file "." is data_dir itself). Raises InputError
    when data_dir is missing or not a folder."""
    if not data_dir.exists():
        raise InputError(f"data folder {data_dir} does not exist: point --data (or the profile's "
                         "data.raw_dir / data.legacy_dir) at a folder of request logs")
    if not data_dir.is_dir():
        raise InputError(f"data folder {data_dir} is a file, not a folder: point --data at the folder "
                         "that holds the request logs")
    try:
        os.scandir(data_dir).close()
    except OSError as exc:  # the folder itself: "." (audited like any unreadable sub-folder)
        return [], [{"file": ".", "error": _os_reason(exc)}]
    unreadable: list[dict[str, str]] = []

    def rel(name: str) -> str:
        return str(Path(name).relative_to(data_dir))

    def on_error(exc: OSError) -> None:  # a sub-folder os.walk cannot list
        unreadable.append({"file": rel(exc.filename), "error": _os_reason(exc)})

    paths = []
    for root, _dirs, names in os.walk(data_dir, onerror=on_error):
        paths += [Path(root) / n for n in names if n.endswith(".jsonl") and not n.startswith("quarantine")]
    found = []
    for path in sorted(paths):
        try:
            layout = "legacy" if legacy.is_legacy_file(path) and not _sniff_contract(path) else "contract"
        except OSError as exc:
            unreadable.append({"file": rel(str(path)), "error": _os_reason(exc)})
            continue
        found.append((path, layout))
    return found, sorted(unreadable, key=lambda u: u["file"])


def ingest(params: Params, data_dir: Path | None = None) -> IngestResult:
    """Read every log under data_dir (default: the profile's) into a validated frame. Bad lines are
    quarantined and files that cannot be read are listed (`unreadable`), never raised; call
    `require_usable` to fail on an input that gave nothing usable."""
    data_dir = (data_dir or default_data_dir(params)).resolve()
    vocab = vocab_of(params)
    ledger = Ledger()
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    quarantine: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    digest = hashlib.sha256()
    found, unreadable = discover(data_dir)
    for path, layout in found:
        rel = str(path.relative_to(data_dir))
        before = ledger.lines_total
        convert = None
        if layout == "legacy":
            m = legacy.FILE_RE.match(path.name)
            assert m is not None
            convert = legacy.make_converter(legacy.run_id_for(path), params.experiment,
                                            m["platform"], m["workload"])
        digest.update(rel.encode() + b"\0")
        size: int | None = None
        try:
            size = path.stat().st_size
            read_file(path, vocab, ledger, rows, seen, convert=convert, quarantine=quarantine, label=rel,
                      digest=digest)
        except OSError as exc:  # lines read before the error stay accounted for
            unreadable.append({"file": rel, "error": _os_reason(exc)})
            digest.update(b"\0unreadable\0")
        files.append({"file": rel, "layout": layout, "bytes": size, "lines": ledger.lines_total - before})
    manifests = []
    for mpath in sorted(data_dir.rglob("manifest.json")):
        try:
            manifests.append({"file": str(mpath.relative_to(data_dir)), **json.loads(mpath.read_text())})
        except (ValueError, OSError) as exc:
            manifests.append({"file": str(mpath.relative_to(data_dir)), "unreadable": str(exc)})
    return IngestResult(requests=to_frame(rows), ledger=ledger, files=files, manifests=manifests,
                        input_hash=digest.hexdigest(), data_dir=data_dir, quarantine=quarantine,
                        unreadable=sorted(unreadable, key=lambda u: u["file"]))


def require_usable(result: IngestResult, quarantine_path: Path | None = None) -> None:
    """Raise InputError when some log could not be read, or when the input holds no usable request
    (no log file, no line, or every line quarantined). Call it after writing what was read (the
    audit, the quarantine), so the reasons are on disk when the error is shown."""
    d = result.data_dir
    if result.unreadable:
        u = result.unreadable[0]
        if u["file"] == ".":
            raise InputError(f"data folder {d} cannot be read ({u['error']}): fix its permissions or point "
                             "--data elsewhere")
        more = f" (and {len(result.unreadable) - 1} more)" if len(result.unreadable) > 1 else ""
        raise InputError(f"{d / u['file']}: cannot be read ({u['error']}){more}: fix its permissions, or move "
                         f"it out of {d}")
    led = result.ledger
    if not result.files:
        raise InputError(f"data folder {d} holds no request logs (*.jsonl): point --data at a folder of "
                         "contract or legacy JSONL logs")
    if led.kept + led.repaired == 0:
        where = f"; every line and its reason: {quarantine_path}" if quarantine_path is not None else ""
        if led.lines_total == 0:
            raise InputError(f"data folder {d}: its {len(result.files)} log file(s) are empty: point --data at "
                             "a folder of request logs")
        reasons = ", ".join(f"{r} {n:,}" for r, n in led.quarantine_reasons.most_common(3))
        raise InputError(f"data folder {d}: none of its {led.lines_total:,} line(s) is a usable request "
                         f"(quarantined: {reasons}): point --data at contract or legacy JSONL request "
                         f"logs{where}")


def to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Records (reader output) to a typed frame: categories, nullable numbers, tz-aware sent_at.
    Built column by column with explicit dtypes (no per-cell type inference)."""
    n = len(rows)
    nan = float("nan")
    cols: dict[str, Any] = {}
    for f in contract.FIELDS:
        name = "sent_at_epoch_s" if f.name == "sent_at" else f.name
        vals = [r[name] for r in rows]
        if f.name == "sent_at":
            epoch_us = np.fromiter((v * 1e6 for v in vals), dtype=np.float64, count=n)
            cols["sent_at"] = pd.to_datetime(epoch_us.round().astype(np.int64), unit="us", utc=True)
        elif f.kind == "float":
            cols[f.name] = np.fromiter((nan if v is None else v for v in vals), dtype=np.float64, count=n)
        elif f.kind == "int":
            cols[f.name] = pd.array(vals, dtype="Int64")
        elif f.kind == "bool":
            cols[f.name] = pd.array(vals, dtype="boolean")
        elif f.name in CATEGORICAL:
            cols[f.name] = pd.Categorical(vals)
        else:
            cols[f.name] = pd.Series(vals, dtype=object)
    cols["source_file"] = pd.Categorical([r["source_file"] for r in rows])
    cols["source_line"] = np.fromiter((r["source_line"] for r in rows), dtype=np.int64, count=n)
    df = pd.DataFrame(cols)
    df["ok"] = df["error"].isna().to_numpy()
    return df


def write_quarantine(result: IngestResult, path: Path) -> None:
    """Every quarantined line, verbatim, with its file, line number and reason."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for q in result.quarantine:
            fh.write(json.dumps(q) + "\n")
