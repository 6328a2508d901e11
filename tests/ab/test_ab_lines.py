"""The lines an online A/B run writes go through the validating reader: bad lines are quarantined
with their reason and counted, a failed attempt the router never answered stays in its arm."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hybridopt.ab import online as abtest
from hybridopt.ab import stats as ab

from tests.conftest import contract_line, write_jsonl


def _ab(request_id: str, arm: str, platform: str | None, **over) -> dict:
    """A line as artillery/ab-functions.js writes it (pair_id null, phase ab, arm and probability)."""
    return contract_line(**{"request_id": request_id, "pair_id": None, "phase": "ab", "arm": arm,
                            "platform": platform, "router_probability": 0.7, **over})


@pytest.fixture()
def folder(tmp_path):
    good = [_ab("t1", "treatment", "lambda"), _ab("c1", "control", "ecs", billed_duration_ms=None,
                                                    cold_start=None, instance_id="task-1"),
            _ab("t2", "treatment", "lambda", http_status=503, error=None)]           # repaired: error inferred
    never_answered = _ab("c2", "control", None, http_status=None, error="timeout", total_ms=None,
                         execution_time_ms=None, billed_duration_ms=None, router_probability=None)
    bad = [_ab("t3", "treatment", None),                                              # answered, no platform
           _ab("t4", "sideways", "lambda"),                                           # unknown arm
           _ab("t1", "treatment", "lambda"),                                          # duplicate request id
           "\x00\x01 not json"]
    write_jsonl(tmp_path / "lines" / "worker-1.jsonl", [*good, never_answered, *bad])
    with open(tmp_path / "lines" / "worker-2.jsonl", "w") as fh:                        # a worker killed mid-line
        fh.write(json.dumps(_ab("c3", "control", "ecs"))[:40])
    return tmp_path / "lines"


def test_ab_lines_are_validated_counted_and_quarantined(params, folder) -> None:
    read = abtest.read_ab_lines(params, folder)
    led = read.ledger
    assert (led.lines_total, led.kept + led.repaired, led.quarantined) == (9, 4, 5) and led.accounted
    assert led.repairs["error_inferred_from_status"] == 1
    assert dict(led.quarantine_reasons) == {"missing:platform": 1, "unknown_arm:sideways": 1,
                                            "duplicate_request_id": 1, "invalid_json": 1,
                                            "truncated_last_line": 1}
    assert {q["reason"] for q in read.quarantine} == set(led.quarantine_reasons)


def test_ab_frame_keeps_the_failure_the_router_never_answered(params, folder) -> None:
    frame, bills = abtest.requests_frame(abtest.read_ab_lines(params, folder).requests, params)
    frame = frame.set_index(frame["arm"] + "/" + frame["platform"].fillna("none").astype(str))
    assert sorted(frame.index) == ["control/ecs", "control/none", "treatment/lambda", "treatment/lambda"]
    lost = frame.loc["control/none"]
    assert not lost["ok"] and lost["slo_miss"] and np.isnan(lost["router_probability"])
    assert frame.loc["control/ecs", "ok"] and frame.loc["control/ecs", "bill_usd"] > 0
    # the attempt nobody answered is billed only its share of the fleet; the arms' means are their averages
    assert lost["bill_usd"] == pytest.approx(bills.table.loc["control", "fleet_usd"] / 4)
    for arm in ("control", "treatment"):
        assert frame.loc[frame.arm == arm, "bill_usd"].mean() == pytest.approx(
            bills.table.loc[arm, "avg_usd_per_request"], rel=1e-12)
    assert frame["ok"].tolist().count(False) == 2                     # the 503 and the timeout
    assert frame["arm"].map(type).eq(str).all()                        # plain text, as in the simulated frame
    res = ab.compare_arms(frame.reset_index(drop=True), n_resamples=50)
    assert res.n == {"control": 2, "treatment": 2}


def test_ensure_package_builds_for_this_model_folder_only(params, tmp_path) -> None:
    import shutil

    from hybridopt.data.features import FeatureSpec
    from hybridopt.params import load_params
    from hybridopt.router.handler import PackageError
    from hybridopt.testing import write_synthetic_model_dir

    p = load_params(params.profile, overrides={"router": {"package_dir": str(tmp_path / "dist")}})
    spec = FeatureSpec.from_params(p)
    a = write_synthetic_model_dir(spec, tmp_path / "a", "lightgbm", n_rows=300, n_trees=5, seed=1)
    b = write_synthetic_model_dir(spec, tmp_path / "b", "lightgbm", n_rows=300, n_trees=5, seed=2)
    zp = abtest.ensure_package(p, a)
    built, mtime_ns = zp.read_bytes(), zp.stat().st_mtime_ns
    assert abtest.ensure_package(p, a) == zp and zp.stat().st_mtime_ns == mtime_ns   # the same model: reused
    assert abtest.ensure_package(p, b).read_bytes() != built              # another model: rebuilt
    shutil.rmtree(a)
    with pytest.raises(PackageError, match="no such model folder"):       # never the older zip
        abtest.ensure_package(p, a)
