"""Params: merged base + testbed + profile, validated; errors name the file, the key, the expectation."""

from __future__ import annotations

import shutil

import pytest
from hybridopt import paths
from hybridopt.params import ParamsError, known_profiles, load_params


@pytest.fixture()
def pdir(tmp_path):
    d = tmp_path / "params"
    shutil.copytree(paths.PARAMS_DIR, d)
    return d


def test_every_shipped_profile_loads():
    profiles = known_profiles()
    assert "thesis-2025-11" in profiles
    for name in profiles:
        p = load_params(name)
        assert p.profile == name and len(p.hash) == 16


def test_profile_overrides_base(pdir):
    p = load_params("thesis-2025-11", pdir)
    assert p.source == "legacy"
    assert p.workloads["heavy_processing"].payload_sizes_kb == [2048, 3072, 4096, 5120]
    assert p.workloads["heavy_processing"].lambda_memory_mb == 512  # from base, untouched
    assert p.prices.lambda_gb_s_usd.source.startswith("platform-facts.md")


def test_unknown_key_names_file_and_key(pdir):
    (pdir / "typo.yaml").write_text("source: legacy\nlabels:\n  latency_margn: 0.2\n")
    with pytest.raises(ParamsError) as e:
        load_params("typo", pdir)
    msg = str(e.value)
    assert "typo.yaml" in msg and "labels.latency_margn" in msg and "not a known parameter" in msg


def test_wrong_type_names_file_key_and_value(pdir):
    (pdir / "bad.yaml").write_text("pairing:\n  window_s: soon\n")
    with pytest.raises(ParamsError) as e:
        load_params("bad", pdir)
    msg = str(e.value)
    assert "bad.yaml" in msg and "pairing.window_s" in msg and "'soon'" in msg and "number" in msg


def test_bad_value_in_base_is_blamed_on_base(pdir):
    text = (pdir / "base.yaml").read_text().replace("cost_margin: 0.10", "cost_margin: 1.5")
    (pdir / "base.yaml").write_text(text)
    with pytest.raises(ParamsError) as e:
        load_params("thesis-2025-11", pdir)
    assert "base.yaml" in str(e.value) and "labels.cost_margin" in str(e.value)


def test_missing_profile_file_lists_known_profiles(pdir):
    with pytest.raises(ParamsError) as e:
        load_params("nosuch", pdir)
    assert "nosuch.yaml" in str(e.value) and "missing" in str(e.value) and "thesis-2025-11" in str(e.value)


def test_missing_base_file(pdir):
    (pdir / "base.yaml").unlink()
    with pytest.raises(ParamsError, match=r"base\.yaml: parameter file is missing"):
        load_params("thesis-2025-11", pdir)


def test_malformed_yaml_and_cross_references(pdir):
    (pdir / "broken.yaml").write_text("labels: [unclosed\n")
    with pytest.raises(ParamsError, match=r"broken\.yaml: not valid YAML"):
        load_params("broken", pdir)
    (pdir / "xref.yaml").write_text("time_windows:\n  midday: {load_pattern: lunch_rush}\n")
    with pytest.raises(ParamsError, match="lunch_rush"):
        load_params("xref", pdir)
    (pdir / "tz.yaml").write_text("timezone: Mars/Olympus_Mons\n")
    with pytest.raises(ParamsError, match=r"tz\.yaml: key 'timezone'.*Mars"):
        load_params("tz", pdir)


def test_forbidden_feature_in_feature_list_is_rejected(pdir):
    (pdir / "leaky.yaml").write_text("features:\n  columns: [payload_size_kb, lambda_latency_ms]\n")
    with pytest.raises(ParamsError, match="forbidden"):
        load_params("leaky", pdir)


def test_override_of_an_anchored_entry_changes_only_that_entry(pdir):
    (pdir / "anchors.yaml").write_text(
        "workloads:\n"
        "  lightweight_api: {fargate: {vcpu: 0.5}}\n")
    base = (pdir / "base.yaml").read_text().replace(
        "    fargate: {vcpu: 0.25, memory_gb: 0.5, min_tasks: 1, max_tasks: 1}\n    lambda_route: /lightweight",
        "    fargate: &small {vcpu: 0.25, memory_gb: 0.5, min_tasks: 1, max_tasks: 1}\n    lambda_route: /lightweight")
    base = base.replace("    fargate: {vcpu: 0.5, memory_gb: 1.0, min_tasks: 1, max_tasks: 1}\n    lambda_route: /thumbnail",
                        "    fargate: *small\n    lambda_route: /thumbnail")
    assert base.count("*small") == 1 and base.count("&small") == 1
    (pdir / "base.yaml").write_text(base)
    p = load_params("anchors", pdir)
    assert p.workloads["lightweight_api"].fargate.vcpu == 0.5
    assert p.workloads["thumbnail_processing"].fargate.vcpu == 0.25  # the alias keeps the anchored value


def test_collection_probe_defaults_switch_off_and_refusals():
    p = load_params("quick")
    probe = p.collection.probe
    assert (probe.pairs, probe.rate_rps, probe.workload, probe.duration_s) == (10, 2.0, "lightweight_api", 5)
    assert load_params("quick", overrides={"collection": {"probe": {"pairs": 0}}}).collection.probe.duration_s == 0
    assert load_params("quick", overrides={"collection": {"probe": {"pairs": 3, "rate_rps": 2}}}).collection.probe.duration_s == 2
    with pytest.raises(ParamsError, match=r"collection.probe.workload 'nope' is not one of workloads"):
        load_params("quick", overrides={"collection": {"probe": {"workload": "nope"}}})
    with pytest.raises(ParamsError, match=r"overrides: key 'collection.probe.rate_rps'"):
        load_params("quick", overrides={"collection": {"probe": {"rate_rps": 0}}})
    with pytest.raises(ParamsError, match=r"overrides: key 'collection.probe.pairs'"):
        load_params("quick", overrides={"collection": {"probe": {"pairs": -1}}})
    clash = {"load_patterns": {"low_load": {"phases": [{"name": "probe", "duration_s": 60, "arrival_rate_rps": 1}]}}}
    with pytest.raises(ParamsError, match=r"name a phase 'probe'.*reserved"):
        load_params("quick", overrides=clash)
