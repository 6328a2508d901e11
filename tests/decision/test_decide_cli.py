"""`python -m hybridopt decide`: bad input is one line and exit 2; the smoke profile end to end
(simulate, preprocess, decide, then the saved models scoring the logs as unseen data)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hybridopt import model_dir as layout
from hybridopt.cli import main
from hybridopt.params import load_params


def test_scoring_without_saved_models_is_one_line_and_exit_2(tmp_path, capsys) -> None:
    (tmp_path / "logs").mkdir()
    code = main(["decide", "--profile", "smoke", "--data", str(tmp_path / "logs"), "--model", str(tmp_path / "empty")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and layout.DECISION_SPEC in err[0] and "decide --profile" in err[0]


def test_missing_processed_inputs_name_the_stage_to_run(tmp_path, capsys, monkeypatch) -> None:
    import hybridopt.commands.decide as cmd

    real = cmd.load_params
    monkeypatch.setattr(cmd, "load_params", lambda profile: real(profile, overrides={
        "data": {"processed_dir": str(tmp_path / "processed")}}))
    assert main(["decide", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "requests.parquet is missing" in err[0] and "preprocess" in err[0]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hybridopt", *args], capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
def test_decide_on_the_smoke_profile_end_to_end(tmp_path) -> None:
    for step in (("simulate", "--profile", "smoke"), ("preprocess", "--profile", "smoke")):
        proc = _run(*step)
        assert proc.returncode == 0, proc.stderr[-3000:]
    proc = _run("decide", "--profile", "smoke", "--out", str(tmp_path / "lso"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "OPEN LOOP" in proc.stdout
    doc = json.loads((tmp_path / "lso" / "decisions.json").read_text())
    assert doc["mode"] == "leave_session_out" and len(doc["folds"]) == 5 and "OPEN LOOP" in doc["open_loop"]
    names = {r["policy"] for r in doc["policies"]}
    assert {"always_lambda", "always_ecs", "workload_rule", "lookup_table", "classifier@0.5", "classifier@best",
            "objective", "oracle"} <= names
    models = load_params("smoke").path("models_dir")
    assert layout.decision_spec_path(models).is_file()

    proc = _run("decide", "--profile", "smoke", "--data", str(load_params("smoke").path("raw_dir")),
                "--out", str(tmp_path / "unseen"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    unseen = json.loads((tmp_path / "unseen" / "decisions.json").read_text())
    assert unseen["mode"] == "unseen_data" and unseen["data"]["pairs"] == doc["data"]["pairs"]
    assert unseen["serving"]["trained_on"] == "smoke"
