"""Streaming reader of request logs: every line lands in exactly one bucket.

- kept:        valid as written
- repaired:    valid after fixing a known quirk (numbers as strings, a timestamp without zone,
               an error kind missing beside a failing status, ...); each repair is named
- quarantined: unusable, with a reason (truncated or non-JSON line, binary garbage, unknown
               workload, negative latency, duplicate request id, missing field, ...)

Never raises on bad input. `Ledger` counts everything; quarantined lines are kept verbatim (with
file, line number and reason) so nothing is lost.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from pydantic_core import SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

from hybridopt.data import contract

UTC = timezone.utc
_SAMPLES_PER_REASON = 5
_EXCERPT_CHARS = 200


@dataclass
class Ledger:
    """Where every input line went."""

    lines_total: int = 0
    kept: int = 0
    repaired: int = 0
    quarantined: int = 0
    repairs: Counter[str] = field(default_factory=Counter)          # repair -> lines
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    per_file: dict[str, Counter[str]] = field(default_factory=dict)  # file -> bucket -> lines
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # reason -> examples

    def add_file(self, name: str) -> Counter[str]:
        return self.per_file.setdefault(name, Counter())

    @property
    def accounted(self) -> bool:
        return self.kept + self.repaired + self.quarantined == self.lines_total

    def merge(self, other: "Ledger") -> None:
        self.lines_total += other.lines_total
        self.kept += other.kept
        self.repaired += other.repaired
        self.quarantined += other.quarantined
        self.repairs.update(other.repairs)
        self.quarantine_reasons.update(other.quarantine_reasons)
        for k, v in other.per_file.items():
            self.add_file(k).update(v)
        for k, v in other.samples.items():
            self.samples.setdefault(k, []).extend(v[: _SAMPLES_PER_REASON - len(self.samples.get(k, []))])

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines_total": self.lines_total,
            "kept": self.kept,
            "repaired": self.repaired,
            "quarantined": self.quarantined,
            "accounted_for_pct": (100.0 * (self.kept + self.repaired + self.quarantined) / self.lines_total
                                  if self.lines_total else 100.0),
            "repairs": dict(self.repairs.most_common()),
            "quarantine_reasons": dict(self.quarantine_reasons.most_common()),
            "per_file": {k: dict(v) for k, v in sorted(self.per_file.items())},
            "samples": self.samples,
        }


@dataclass(frozen=True)
class Vocab:
    """The categorical values a line may hold (from params)."""

    workloads: frozenset[str]
    time_windows: frozenset[str]
    load_patterns: frozenset[str]


class Reject(Exception):
    """A line is quarantined (the message is the reason)."""


# ------------------------------------------------------------------------------------ field checks
def _float(name: str, v: object, repairs: list[str]) -> float | None:
    t = type(v)
    if t is float:
        x = v
    elif t is int:
        x = float(v)
    elif v is None:
        return None
    elif t is str:
        try:
            x = float(v.strip())
        except ValueError:
            raise Reject(f"not_a_number:{name}") from None
        repairs.append(f"number_as_string:{name}")
    else:  # bool, list, dict
        raise Reject(f"wrong_type:{name}")
    if not math.isfinite(x):
        raise Reject(f"not_finite:{name}")
    minimum = contract.FIELD_BY_NAME[name].minimum
    if minimum is not None and x < minimum:
        raise Reject(f"negative:{name}" if minimum == 0.0 else f"below_minimum:{name}")
    return x


def _int(name: str, v: object, repairs: list[str]) -> int | None:
    if type(v) is int:
        x = v
    elif v is None:
        return None
    else:
        f = _float(name, v, repairs)
        if f is None or f != int(f):
            raise Reject(f"not_an_integer:{name}")
        if type(v) is float:
            repairs.append(f"integer_as_float:{name}")
        x = int(f)
    minimum = contract.FIELD_BY_NAME[name].minimum
    if minimum is not None and x < minimum:
        raise Reject(f"below_minimum:{name}")
    return x


def _bool(name: str, v: object, repairs: list[str]) -> bool | None:
    if type(v) is bool or v is None:
        return v
    if type(v) is str and v.strip().lower() in ("true", "false"):
        repairs.append(f"bool_as_string:{name}")
        return v.strip().lower() == "true"
    if type(v) is int and v in (0, 1):
        repairs.append(f"bool_as_number:{name}")
        return bool(v)
    raise Reject(f"wrong_type:{name}")


def _str(name: str, v: object, repairs: list[str]) -> str | None:
    if type(v) is str:
        if not v:
            raise Reject(f"empty:{name}")
        return v
    if v is None:
        return None
    if type(v) in (int, float) and type(v) is not bool:
        repairs.append(f"string_as_number:{name}")
        return str(v)
    raise Reject(f"wrong_type:{name}")


def _epoch_s(name: str, v: object, repairs: list[str]) -> float | None:
    if v is None:
        return None
    if type(v) is not str:
        raise Reject(f"wrong_type:{name}")
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise Reject(f"bad_timestamp:{name}") from None
    if dt.tzinfo is None:
        repairs.append(f"naive_timestamp_assumed_utc:{name}")
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


#: a field checker: (field name, the JSON value, repairs so far) -> the normalised value, or Reject
Check = Callable[[str, object, list[str]], object]
_CHECK: dict[str, Check] = {
    "str": _str, "float": _float, "int": _int, "bool": _bool, "datetime": _epoch_s,
}
_KNOWN = frozenset(contract.COLUMNS)
_TEMPLATE: dict[str, Any] = dict.fromkeys(contract.COLUMNS)
#: platform is checked apart: an A/B attempt whose router never answered has none (see validate)
_REQUIRED = tuple(n for n in contract.REQUIRED if n != "platform")
# name -> (expected python type, minimum or None, checker for anything else)
_FAST: dict[str, tuple[type, float | None, Check]] = {
    f.name: ({"str": str, "float": float, "int": int, "bool": bool, "datetime": type(None)}[f.kind],
             f.minimum, _CHECK[f.kind]) for f in contract.FIELDS}
_INF = float("inf")


def validate(obj: dict[str, Any], vocab: Vocab) -> tuple[dict[str, Any], list[str]]:
    """Validate one contract record. Returns (normalised record, repairs) or raises Reject.
    `sent_at` becomes `sent_at_epoch_s` (float, UTC)."""
    if not obj.keys() <= _KNOWN:
        raise Reject(f"unknown_field:{sorted(obj.keys() - _KNOWN)[0]}")
    repairs: list[str] = []
    out = _TEMPLATE.copy()
    for name, v in obj.items():
        if v is None:
            continue
        expected, minimum, check = _FAST[name]
        t = type(v)
        if t is expected and t is not str:
            if t is float and (v != v or v == _INF or v == -_INF):
                raise Reject(f"not_finite:{name}")
            if minimum is not None and v < minimum:
                raise Reject(f"negative:{name}" if minimum == 0.0 else f"below_minimum:{name}")
            out[name] = v
        elif t is str and expected is str and v:
            out[name] = v
        else:
            out[name] = check(name, v, repairs)
    for name in _REQUIRED:
        if out[name] is None:
            raise Reject(f"missing:{name}")
    if out["schema_version"].split(".")[0] != contract.SCHEMA_VERSION.split(".")[0]:
        raise Reject(f"unsupported_schema_version:{out['schema_version']}")
    if out["source"] not in contract.SOURCES:
        raise Reject(f"unknown_source:{out['source']}")
    platform = out["platform"]
    if platform is None:
        if out["arm"] is None:
            raise Reject("missing:platform")
    elif platform not in contract.PLATFORMS and not (
            platform == contract.LEGACY_UNKNOWN_PLATFORM and out["source"] == "legacy"):
        raise Reject(f"unknown_platform:{platform}")
    if out["workload_type"] not in vocab.workloads:
        raise Reject(f"unknown_workload:{out['workload_type']}")
    if out["time_window"] not in vocab.time_windows:
        raise Reject(f"unknown_time_window:{out['time_window']}")
    if out["load_pattern"] not in vocab.load_patterns:
        raise Reject(f"unknown_load_pattern:{out['load_pattern']}")
    if out["arm"] is not None and out["arm"] not in contract.ARMS:
        raise Reject(f"unknown_arm:{out['arm']}")
    error = out["error"]
    if error is not None and error not in contract.ERROR_KINDS:
        raise Reject(f"unknown_error_kind:{error}")
    status = out["http_status"]
    if error is None and status is not None and not 200 <= status < 300:
        out["error"] = contract.error_kind_for_status(status)
        repairs.append("error_inferred_from_status")
    elif error is None and status is None:
        raise Reject("no_status_and_no_error")
    if out["error"] is None and out["total_ms"] is None:
        raise Reject("success_without_total_ms")
    if platform is None and out["error"] is None:  # the router answered: it named the platform
        raise Reject("missing:platform")
    out["sent_at_epoch_s"] = out.pop("sent_at")
    return out, repairs


@lru_cache(maxsize=8)
def _fast_validator(vocab: Vocab) -> SchemaValidator:
    """The contract as a strict pydantic-core schema: a line that passes it, and the few
    cross-field checks of `_fast_accept`, is valid as written (kept) without the Python path.
    Anything else takes the Python path, which repairs or names the reason."""
    categories = {"workload_type": vocab.workloads, "time_window": vocab.time_windows,
                  "load_pattern": vocab.load_patterns, "source": contract.SOURCES, "platform": contract.PLATFORMS,
                  "error": contract.ERROR_KINDS, "arm": contract.ARMS}

    def kind(f: contract.Field) -> cs.CoreSchema:
        if f.name in categories:
            return cs.literal_schema(sorted(categories[f.name]))
        if f.kind == "str":
            return cs.str_schema(min_length=1)
        if f.kind == "float":
            return cs.float_schema(allow_inf_nan=False, ge=f.minimum)
        if f.kind == "int":
            return cs.int_schema(ge=int(f.minimum) if f.minimum is not None else None)
        if f.kind == "bool":
            return cs.bool_schema()
        return cs.datetime_schema(tz_constraint="aware")

    fields = {f.name: cs.typed_dict_field(kind(f) if f.required else cs.nullable_schema(kind(f)),
                                          required=f.required) for f in contract.FIELDS}
    return SchemaValidator(cs.typed_dict_schema(fields, extra_behavior="forbid"))


_MAJOR = contract.SCHEMA_VERSION.split(".")[0] + "."


def _fast_accept(raw: bytes, validator: SchemaValidator) -> dict[str, Any] | None:
    """The normalised record if the line is valid exactly as written, else None."""
    try:
        rec = validator.validate_json(raw, strict=True)
    except ValidationError:
        return None
    status, error = rec.get("http_status"), rec.get("error")
    if error is None and (status is None or not 200 <= status < 300 or rec.get("total_ms") is None):
        return None
    if not (rec["schema_version"] + ".").startswith(_MAJOR):
        return None
    out = _TEMPLATE.copy()
    out.update(rec)
    out["sent_at_epoch_s"] = out.pop("sent_at").timestamp()
    return out


# --------------------------------------------------------------------------------------- streaming
class Digest(Protocol):
    """What the reader uses of a hashlib object (`hashlib.sha256()`)."""

    def update(self, data: bytes, /) -> None: ...


def iter_lines(path: Path, digest: Digest | None = None) -> Iterator[tuple[int, bytes, bool]]:
    """(line number from 1, raw bytes without newline, ended_with_newline) for each line; `digest`
    (a hashlib object), when given, is fed every byte of the file as it is read."""
    with open(path, "rb") as fh:
        for no, raw in enumerate(fh, start=1):
            if digest is not None:
                digest.update(raw)
            if raw.endswith(b"\n"):
                yield no, raw[:-1].rstrip(b"\r"), True
            else:
                yield no, raw, False


Converter = Callable[[dict[str, Any]], dict[str, Any]]


def read_file(path: Path, vocab: Vocab, ledger: Ledger, rows: list[dict[str, Any]],
              seen_ids: set[str], convert: Converter | None = None,
              quarantine: list[dict[str, Any]] | None = None, label: str | None = None,
              digest: Digest | None = None) -> None:
    """Validate every line of one file into `rows` (normalised records) and `ledger`.
    `convert` maps a foreign record (legacy layout) into the contract before validation; it may
    raise Reject. Quarantined lines are appended to `quarantine` with their reason. `digest` (hashlib)
    is fed the file's bytes as they are read (one read for both)."""
    name = label or str(path)
    per_file = ledger.add_file(name)
    loads = json.loads
    fast = _fast_validator(vocab) if convert is None else None
    for no, raw, newline in iter_lines(path, digest):
        ledger.lines_total += 1
        if fast is not None and newline:
            rec = _fast_accept(raw, fast)
            if rec is not None and rec["request_id"] not in seen_ids:
                seen_ids.add(rec["request_id"])
                rec["source_file"] = name
                rec["source_line"] = no
                rows.append(rec)
                ledger.kept += 1
                per_file["kept"] += 1
                continue
        try:
            if not raw.strip():
                raise Reject("blank_line")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise Reject("not_utf8") from None
            try:
                obj = loads(text)
            except ValueError:
                raise Reject("truncated_last_line" if not newline else "invalid_json") from None
            if type(obj) is not dict:
                raise Reject("not_a_json_object")
            pre_repairs: list[str] = []
            if convert is not None:
                obj = convert(obj)
                pre_repairs = obj.pop("__repairs__", [])
            rec, repairs = validate(obj, vocab)
            repairs = pre_repairs + repairs
            rid = rec["request_id"]
            if rid in seen_ids:
                raise Reject("duplicate_request_id")
            seen_ids.add(rid)
        except Reject as exc:
            reason = str(exc)
            ledger.quarantined += 1
            per_file["quarantined"] += 1
            ledger.quarantine_reasons[reason] += 1
            excerpt = raw[:_EXCERPT_CHARS].decode("utf-8", errors="backslashreplace")
            samples = ledger.samples.setdefault(reason, [])
            if len(samples) < _SAMPLES_PER_REASON:
                samples.append({"file": name, "line": no, "excerpt": excerpt})
            if quarantine is not None:
                quarantine.append({"file": name, "line": no, "reason": reason,
                                   "raw": raw.decode("utf-8", errors="backslashreplace")})
            continue
        except Exception as exc:  # a bug in a converter must not lose the line either
            reason = f"reader_error:{type(exc).__name__}"
            ledger.quarantined += 1
            per_file["quarantined"] += 1
            ledger.quarantine_reasons[reason] += 1
            if quarantine is not None:
                quarantine.append({"file": name, "line": no, "reason": reason,
                                   "raw": raw.decode("utf-8", errors="backslashreplace")})
            continue
        rec["source_file"] = name
        rec["source_line"] = no
        rows.append(rec)
        if repairs:
            ledger.repaired += 1
            per_file["repaired"] += 1
            for r in dict.fromkeys(repairs):
                ledger.repairs[r] += 1
        else:
            ledger.kept += 1
            per_file["kept"] += 1


def read_lines(lines: Iterable[bytes], vocab: Vocab) -> tuple[list[dict[str, Any]], Ledger]:
    """Validate an in-memory sequence of contract lines (tests, small inputs)."""
    import tempfile

    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as fh:
        for line in lines:
            fh.write(line)
        tmp = Path(fh.name)
    try:
        ledger, rows = Ledger(), []
        read_file(tmp, vocab, ledger, rows, set(), label="<memory>")
        return rows, ledger
    finally:
        tmp.unlink()
