"""The streaming reader: every line in exactly one bucket, never an exception."""

from __future__ import annotations

import json
import random

import pytest
from hybridopt.data.ingest import vocab_of
from hybridopt.data.reader import read_lines

from tests.conftest import contract_line


def _line(rec) -> bytes:
    return (json.dumps(rec) + "\n").encode()


@pytest.fixture(scope="module")
def vocab(params):
    return vocab_of(params)


def test_valid_line_is_kept(vocab):
    rows, led = read_lines([_line(contract_line())], vocab)
    assert (led.kept, led.repaired, led.quarantined) == (1, 0, 0)
    assert rows[0]["sent_at_epoch_s"] == pytest.approx(1763881200.0)
    assert rows[0]["total_ms"] == 125.0


@pytest.mark.parametrize("over, repair", [
    ({"total_ms": "125.5"}, "number_as_string:total_ms"),
    ({"memory_limit_mb": "128"}, "number_as_string:memory_limit_mb"),
    ({"sent_at": "2025-11-23T07:00:00.123456"}, "naive_timestamp_assumed_utc:sent_at"),
    ({"http_status": 200.0}, "integer_as_float:http_status"),
    ({"cold_start": "false"}, "bool_as_string:cold_start"),
    ({"http_status": 502, "error": None}, "error_inferred_from_status"),
])
def test_known_quirks_are_repaired(vocab, over, repair):
    rows, led = read_lines([_line(contract_line(**over))], vocab)
    assert led.repaired == 1 and led.repairs[repair] == 1, led.as_dict()


def test_zulu_timestamp_is_kept(vocab):
    rows, led = read_lines([_line(contract_line(sent_at="2025-11-23T07:00:00Z"))], vocab)
    assert led.kept == 1 and rows[0]["sent_at_epoch_s"] == pytest.approx(1763881200.0)


def test_failed_ab_attempt_the_router_never_answered_has_no_platform(vocab):
    line = contract_line(platform=None, arm="treatment", pair_id=None, http_status=None, error="timeout",
                         total_ms=None, execution_time_ms=None, billed_duration_ms=None)
    rows, led = read_lines([_line(line)], vocab)
    assert led.kept == 1 and rows[0]["platform"] is None and rows[0]["arm"] == "treatment"


@pytest.mark.parametrize("raw, reason", [
    (_line(contract_line(workload_type="video_transcode")), "unknown_workload:video_transcode"),
    (_line(contract_line(total_ms=-3.0)), "negative:total_ms"),
    (_line(contract_line(upload_ms=-0.1)), "negative:upload_ms"),
    (_line(contract_line(total_ms="fast")), "not_a_number:total_ms"),
    (_line(contract_line(sent_at="yesterday")), "bad_timestamp:sent_at"),
    (_line(contract_line(platform="kubernetes")), "unknown_platform:kubernetes"),
    (_line(contract_line(platform="unknown")), "unknown_platform:unknown"),  # only legacy may say unknown
    (_line(contract_line(platform=None)), "missing:platform"),
    (_line(contract_line(platform=None, arm="control")), "missing:platform"),  # the router answered: it names one
    (_line(contract_line(time_window="other")), "unknown_time_window:other"),
    (_line(contract_line(extra_field=1)), "unknown_field:extra_field"),
    (_line({k: v for k, v in contract_line().items() if k != "request_id"}), "missing:request_id"),
    (_line(contract_line(schema_version="2.0")), "unsupported_schema_version:2.0"),
    (_line(contract_line(error="gremlins")), "unknown_error_kind:gremlins"),
    (_line(contract_line(total_ms=float("nan"))), "not_finite:total_ms"),
    (_line(contract_line(http_status=None, error=None)), "no_status_and_no_error"),
    (_line(contract_line(target_payload_size_kb=[1])), "wrong_type:target_payload_size_kb"),
    (b"[1, 2, 3]\n", "not_a_json_object"),
    (b"\xff\xfe\x00garbage\n", "not_utf8"),
    (b"   \n", "blank_line"),
    (b'{"request_id": "r-1", "platf\n', "invalid_json"),
])
def test_bad_lines_are_quarantined_with_reason(vocab, raw, reason):
    rows, led = read_lines([raw], vocab)
    assert rows == [] and led.quarantined == 1
    assert dict(led.quarantine_reasons) == {reason: 1}
    assert led.samples[reason][0]["line"] == 1


def test_truncated_last_line_and_duplicates(vocab):
    good = _line(contract_line(request_id="a"))
    dup = _line(contract_line(request_id="a", total_ms=200.0))
    truncated = _line(contract_line(request_id="b"))[:57]  # no newline: the writer died mid-line
    rows, led = read_lines([good, dup, truncated], vocab)
    assert [r["request_id"] for r in rows] == ["a"]
    assert led.quarantine_reasons == {"duplicate_request_id": 1, "truncated_last_line": 1}
    assert led.accounted and led.lines_total == 3


def _mutate(rng: random.Random, i: int) -> tuple[bytes, str]:
    """One generated line and the bucket it must land in ('kept', 'repaired' or 'quarantined')."""
    rec = contract_line(request_id=f"r-{i}", pair_id=f"p-{i // 2}")
    kind = rng.randrange(16)
    if kind == 0:
        return _line(rec), "kept"
    if kind == 1:
        rec[rng.choice(["total_ms", "upload_ms", "execution_time_ms", "target_payload_size_kb"])] = \
            str(rng.uniform(0, 5000))
        return _line(rec), "repaired"
    if kind == 2:
        rec["sent_at"] = "2025-11-2%dT0%d:1%d:00.5" % (rng.randrange(10), rng.randrange(10), rng.randrange(6))
        return _line(rec), "repaired"
    if kind == 3:
        raw = _line(rec)
        return raw[: rng.randrange(1, len(raw) - 2)], "quarantined"  # truncated, no newline
    if kind == 4:
        raw = bytearray(_line(rec))
        for _ in range(rng.randrange(1, 6)):
            raw[rng.randrange(len(raw) - 1)] = rng.randrange(0x80, 0x100)
        return bytes(raw), "quarantined"  # binary garbage (not UTF-8)
    if kind == 5:
        rec[rng.choice(["total_ms", "upload_ms", "first_byte_ms", "execution_time_ms"])] = -rng.uniform(0.1, 99)
        return _line(rec), "quarantined"
    if kind == 6:
        rec["workload_type"] = rng.choice(["ml_inference", "LIGHTWEIGHT_API", "", "heavy"])
        return _line(rec), "quarantined"
    if kind == 7:
        del rec[rng.choice(["request_id", "platform", "sent_at", "run_id", "workload_type", "source"])]
        return _line(rec), "quarantined"
    if kind == 8:
        field = rng.choice(["total_ms", "http_status", "cold_start", "sent_at"])
        rec[field] = rng.choice([[1], {"a": 1}] + ([] if field == "cold_start" else [True]))
        return _line(rec), "quarantined"
    if kind == 9:
        return rng.choice([b"\n", b"null\n", b"42\n", b'"text"\n', b"[]\n", b"{}\n", b"\x00\x01\x02\n"]), "quarantined"
    if kind == 10:
        rec["http_status"] = rng.choice([500, 502, 504, 413, 429])
        rec["error"] = None
        return _line(rec), "repaired"
    if kind == 11:
        rec["total_ms"] = rng.choice([float("inf"), float("-inf"), float("nan")])
        return json.dumps(rec, allow_nan=True).encode() + b"\n", "quarantined"
    if kind == 12:
        rec["request_id"] = "r-0"  # collides with line 0, which is always kept (see the test)
        return _line(rec), "quarantined"
    if kind == 13:
        rec["cold_start"] = rng.choice(["true", "false"])
        return _line(rec), "repaired"
    if kind == 14:
        rec["error"], rec["http_status"], rec["total_ms"] = "timeout", None, None
        return _line(rec), "kept"  # a logged failure is a valid attempt
    raw = _line(rec)
    cut = rng.randrange(5, len(raw) - 5)
    return raw[:cut] + b"\n", "quarantined"  # a line cut and terminated mid-way


@pytest.mark.parametrize("seed", range(5))
def test_generated_corrupted_corpus_accounts_for_every_line(vocab, seed):
    rng = random.Random(seed)
    lines, expected = [_line(contract_line(request_id="r-0"))], ["kept"]
    for i in range(1, 400):
        raw, bucket = _mutate(rng, i)
        if not raw.endswith(b"\n") and i < 399:
            raw += b"\n"  # only the file's last line may lack a newline
        lines.append(raw)
        expected.append(bucket)
    rows, led = read_lines(lines, vocab)  # must not raise
    assert led.lines_total == len(lines) == 400
    assert led.accounted
    assert led.kept == expected.count("kept")
    assert led.repaired == expected.count("repaired")
    assert led.quarantined == expected.count("quarantined")
    assert len(rows) == led.kept + led.repaired
    assert sum(led.quarantine_reasons.values()) == led.quarantined
