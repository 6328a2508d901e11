"""The whole nine-notebook pipeline through run_all.py (papermill + nbconvert), on the simulator's
smoke profile: no external data, a couple of minutes. The default profile `quick` is the same
pipeline with real Artillery collection (its stages are tested in test_collect*.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hybridopt import paths
from hybridopt.params import load_params

STAGES = ["01_collect", "02_eda", "03_preprocess", "04_train", "05_shap", "06_decide", "07_deploy", "08_ab_test", "09_closed_loop"]


@pytest.mark.slow
def test_run_all_smoke_profile_end_to_end(tmp_path):
    out = tmp_path / "reports"
    proc = subprocess.run([sys.executable, str(paths.PROJECT_ROOT / "run_all.py"), "--profile", "smoke", "--force",
                           "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    stages = json.loads((out / "run.json").read_text())["stages"]
    assert [s for s in stages] == STAGES
    assert all(s["status"] == "ok" for s in stages.values()), stages
    index = (out / "index.html").read_text()
    for name in STAGES:
        page = (out / f"{name}.html").read_text()
        assert "git commit" in page and "Gates" in page, name     # provenance + gates header
        assert "Traceback" not in page, name
        assert f"href='{name}.html'" in index
    assert "noise ceiling" in (out / "04_train.html").read_text().lower()
    # printed output streamed while the stages ran; no kernel TCP warning
    assert "  04_train | CV search on" in proc.stdout and "over TCP without encryption" not in proc.stderr
    # the thesis exports of every stage from 02 on, listed on the index with links
    manifests = {m.parent.name: json.loads(m.read_text()) for m in (out / "export").glob("*/manifest.json")}
    assert sorted(manifests) == STAGES[1:], sorted(manifests)
    for stage, manifest in manifests.items():
        kinds = {i["kind"] for i in manifest["items"]}
        assert "table" in kinds, stage
        for item in manifest["items"]:
            for f in item["files"]:
                assert (out / "export" / stage / f).stat().st_size > 0, (stage, f)
                assert f"href='export/{stage}/{f}'" in index, (stage, f)
    assert {"beeswarm", "payload_scatter"} <= {i["name"] for i in manifests["05_shap"]["items"]}
    assert "\\toprule" in (out / "export" / "04_train" / "accuracy.tex").read_text()
    assert "verdict" in (out / "04_train.html").read_text().lower()
    params = load_params("smoke")
    models = params.path("models_dir")
    meta = json.loads((models / "model_metadata.json").read_text())
    assert (models / meta["serving"]["file"]).is_file() and (models / "feature_spec.json").is_file()
    card = json.loads((paths.processed(params).data_card).read_text())
    assert card["rows"]["input_lines"] == card["rows"]["kept"] + card["rows"]["repaired"] + card["rows"]["quarantined"]
