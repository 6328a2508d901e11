"""run_all.py / runner: ordering, selection, and the failure path with real papermill + nbconvert."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest
from hybridopt import paths
from hybridopt.runner import RunnerError, discover, select



def _nb(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "x"\nforce = False')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), params] + [nbformat.v4.new_code_cell(s)
                                                                             for s in sources]
    nbformat.write(nb, path)


def test_select_only_and_from(tmp_path):
    for name in ("01_a", "02_b", "03_c"):
        _nb(tmp_path / f"{name}.ipynb")
    nbs = discover(tmp_path)
    assert [p.stem for p in select(nbs, ["01", "03"], None)] == ["01_a", "03_c"]
    assert [p.stem for p in select(nbs, None, "02")] == ["02_b", "03_c"]
    with pytest.raises(RunnerError, match="no notebook numbered '07'"):
        select(nbs, ["07"], None)


@pytest.mark.slow
def test_failing_notebook_gives_partial_html_failed_index_and_nonzero_exit(tmp_path):
    nbs, out = tmp_path / "nbs", tmp_path / "reports"
    nbs.mkdir()
    _nb(nbs / "01_ok.ipynb", "print('stage one ran for', profile, force)")
    _nb(nbs / "02_fail.ipynb", "x = 41 + 1\nprint('before the failure', x)",
        "raise ValueError('boom on purpose')", "print('never reached')")
    _nb(nbs / "03_after.ipynb", "print('must not run')")
    proc = subprocess.run([sys.executable, str(paths.PROJECT_ROOT / "run_all.py"), "--profile", "thesis-2025-11",
                           "--force", "--notebooks", str(nbs), "--out", str(out)],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "FAILED: 02_fail at cell In [4]: ValueError: boom on purpose" in proc.stdout
    page = (out / "02_fail.html").read_text()
    assert "before the failure 42" in page and "boom on purpose" in page and "never reached" not in page
    assert "x = 41 + 1" not in page  # code hidden
    assert 'status <b style="color:red">FAILED</b>' in page and "failed at cell In [4]" in page
    ok_page = (out / "01_ok.html").read_text()
    assert "stage one ran for thesis-2025-11 True" in ok_page and "git commit" in ok_page
    record = json.loads((out / "run.json").read_text())["stages"]
    assert record["01_ok"]["status"] == "ok"
    assert record["02_fail"]["status"] == "failed" and record["02_fail"]["failing_cell"] == 4
    assert record["03_after"]["status"] == "skipped" and not (out / "03_after.html").exists()
    index = (out / "index.html").read_text()
    assert "02_fail" in index and "<b>failed</b>" in index and "<b>skipped</b>" in index
    assert "boom on purpose" in index


@pytest.mark.slow
@pytest.mark.needs_shared_data
def test_thesis_profile_eda_and_preprocess_reports(tmp_path):
    out = tmp_path / "reports"
    proc = subprocess.run([sys.executable, str(paths.PROJECT_ROOT / "run_all.py"), "--profile", "thesis-2025-11",
                           "--only", "02,03", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    eda, pre = (out / "02_eda.html").read_text(), (out / "03_preprocess.html").read_text()
    assert "65,023" in eda and "quarantined" in eda and "unlogged_share_est" in eda
    assert "Gates (read first)" in pre and "FAIL" in pre and "gates pass" in pre
    processed = paths.resolve("data/{profile}/processed", "thesis-2025-11")
    card = json.loads((processed / "data_card.json").read_text())
    assert card["rows"]["input_lines"] == 65023 and (processed / "training_table.parquet").is_file()
