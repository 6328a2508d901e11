"""The request-log contract: one JSON line per request ATTEMPT, success or not.

Defined once here; the Artillery processor (artillery/variance-functions.js), the testbed, the
simulator and the legacy converter all write it, and `reader` validates it (`ingest` reads folders).

Version 1.0 fields (a field not listed is an error; a missing optional field means "not known"):
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

SCHEMA_VERSION: Final = "1.0"

SOURCES: Final = frozenset({"testbed", "simulator", "aws", "legacy"})
#: Ordered: the first is the positive class of every model ("send to Lambda").
PLATFORMS: Final = ("lambda", "ecs")
#: `unknown` is legal only for source=legacy: the thesis logs hold HTTP 500 rows with no platform.
LEGACY_UNKNOWN_PLATFORM: Final = "unknown"
ERROR_KINDS: Final = frozenset({
    "timeout",            # the client gave up (no response in time)
    "connection",         # refused / reset / DNS: nothing reached a platform
    "payload_too_large",  # HTTP 413 (API Gateway 10 MB, Lambda 6 MB, ALB limits)
    "throttled",          # HTTP 429 (Lambda concurrency / scaling limit)
    "gateway_timeout",    # HTTP 504 (API Gateway 29 s, ALB idle timeout)
    "http_error",         # any other non-2xx status
    "non_json",           # a 2xx whose body was not the platform's JSON
    "client_error",       # the load generator failed before sending
})
ARMS: Final = ("control", "treatment")
#: The `phase` of the few lightweight pairs a collection sends at a low rate before each window's load
#: phases: they measure the client's network; training, gates and the decision stage leave them out.
PROBE_PHASE: Final = "probe"


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: str            # str | float | int | bool | datetime
    required: bool
    group: str           # identity | context | outcome | platform | ab
    doc: str
    minimum: float | None = None


FIELDS: Final[tuple[Field, ...]] = (
    # identity
    Field("schema_version", "str", True, "identity", f"contract version, currently {SCHEMA_VERSION}"),
    Field("request_id", "str", True, "identity", "unique per attempt"),
    Field("pair_id", "str", False, "identity",
          "shared by the Lambda and ECS attempts of one generated payload; null when unpaired"),
    Field("experiment", "str", True, "identity", "experiment name (params.experiment)"),
    Field("run_id", "str", True, "identity", "one collection run (a time window of a schedule)"),
    Field("source", "str", True, "identity", "testbed | simulator | aws | legacy"),
    # context known before sending
    Field("platform", "str", True, "context",
          "lambda | ecs (legacy may say unknown; null only on a failed A/B attempt the router never answered)"),
    Field("workload_type", "str", True, "context", "one of params.workloads"),
    Field("target_payload_size_kb", "float", True, "context", "payload size the generator aimed at", 0.0),
    Field("time_window", "str", True, "context", "one of params.time_windows"),
    Field("load_pattern", "str", True, "context", "one of params.load_patterns"),
    Field("phase", "str", False, "context",
          f"load phase name (steady, ramp, burst, ...; `{PROBE_PHASE}`: the network probe before a window)"),
    Field("scheduled_rate_rps", "float", False, "context", "arrival rate scheduled at send time", 0.0),
    Field("sent_at", "datetime", True, "context", "ISO-8601 with zone (virtual clock on the testbed)"),
    Field("arm", "str", False, "ab", "A/B arm: control | treatment"),
    Field("router_probability", "float", False, "ab", "router's P(lambda) for this request", 0.0),
    # outcome
    Field("http_status", "int", False, "outcome", "null when no response arrived", 100),
    Field("error", "str", False, "outcome", "null on success, else one of ERROR_KINDS"),
    Field("upload_ms", "float", False, "outcome", "client: request body upload", 0.0),
    Field("first_byte_ms", "float", False, "outcome", "client: upload end to first response byte", 0.0),
    Field("total_ms", "float", False, "outcome", "client: end-to-end, start to last byte", 0.0),
    # platform's own metrics
    Field("execution_time_ms", "float", False, "platform", "handler time measured inside", 0.0),
    Field("cold_start", "bool", False, "platform", "Lambda: a new execution environment"),
    Field("init_duration_ms", "float", False, "platform", "Lambda INIT phase", 0.0),
    Field("billed_duration_ms", "float", False, "platform",
          "Lambda billed duration as reported (REPORT line: includes INIT where billed)", 0.0),
    Field("memory_limit_mb", "float", False, "platform", "Lambda memory / task memory", 0.0),
    Field("instance_id", "str", False, "platform", "execution environment or task id"),
    Field("actual_payload_size_kb", "float", False, "platform", "payload size the platform saw", 0.0),
)

FIELD_BY_NAME: Final = {f.name: f for f in FIELDS}
REQUIRED: Final = tuple(f.name for f in FIELDS if f.required)
COLUMNS: Final = tuple(f.name for f in FIELDS)

#: Columns known before a request is sent: the only inputs a feature may use.
PRE_SEND_COLUMNS: Final = frozenset(f.name for f in FIELDS if f.group == "context")
#: Columns that are outcomes of a request (a feature built from any of these is a leak).
OUTCOME_COLUMNS: Final = frozenset(f.name for f in FIELDS if f.group in ("outcome", "platform"))


def error_kind_for_status(status: int | None) -> str | None:
    """The contract's error kind for an HTTP status (None for a 2xx)."""
    if status is None:
        return "connection"
    if 200 <= status < 300:
        return None
    return {413: "payload_too_large", 429: "throttled", 504: "gateway_timeout"}.get(status, "http_error")


def describe() -> str:
    """A Markdown table of the contract (for the README and the reports)."""
    rows = ["| field | type | required | group | meaning |", "|---|---|---|---|---|"]
    rows += [f"| `{f.name}` | {f.kind} | {'yes' if f.required else ''} | {f.group} | {f.doc} |"
             for f in FIELDS]
    return "\n".join(rows)
