"""run_all.py / runner: ordering, selection, and the failure path with real papermill + nbconvert."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import nbformat
import pytest
from hybridopt import paths, runner
from hybridopt.report import export
from hybridopt.runner import CellOutputStream, RunnerError, discover, select

TCP_WARNING = "Kernel is running over TCP without encryption"

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
    _nb(nbs / "01_ok.ipynb", "print('stage one ran for', profile, force)",
        "import subprocess, sys\nsubprocess.run([sys.executable, '-c', 'import sys; print(\"from a child\", file=sys.stderr)'])")
    _nb(nbs / "02_fail.ipynb", "x = 41 + 1\nprint('before the failure', x)",
        "raise ValueError('boom on purpose')", "print('never reached')")
    _nb(nbs / "03_after.ipynb", "print('must not run')")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}  # ipykernel captures no fds under it
    proc = subprocess.run([sys.executable, str(paths.PROJECT_ROOT / "run_all.py"), "--profile", "thesis-2025-11",
                           "--force", "--notebooks", str(nbs), "--out", str(out)],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "FAILED: 02_fail at cell In [4]: ValueError: boom on purpose" in proc.stdout
    # printed output streams to the terminal as the cells run, each line once, named by its stage
    assert proc.stdout.count("  01_ok | stage one ran for thesis-2025-11 True\n") == 1
    lines = proc.stdout.splitlines()
    printed = lines.index("  02_fail | before the failure 42")
    assert lines[printed - 1] == "[2/3] 02_fail: running" and lines[printed + 1].startswith("[2/3] 02_fail: failed in ")
    assert "never reached" not in proc.stdout
    assert TCP_WARNING not in proc.stdout + proc.stderr  # kernels talk over IPC
    # a child process's output (below Python) reaches the notebook, and the terminal once, through it
    assert proc.stderr.splitlines().count("  01_ok ! from a child") == 1, proc.stderr
    assert "from a child" not in proc.stderr.replace("  01_ok ! from a child", "")
    assert "from a child" in (out / "01_ok.kernel.log").read_text()  # the kernel process's own copy
    page = (out / "02_fail.html").read_text()
    assert "before the failure 42" in page and "boom on purpose" in page and "never reached" not in page
    assert "x = 41 + 1" not in page  # code hidden
    assert 'status <b style="color:red">FAILED</b>' in page and "failed at cell In [4]" in page
    assert runner.REPORT_CSS in page  # wide outputs scroll in their own box
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


def test_cell_output_stream_prefixes_lines_and_keeps_a_progress_bars_last_state():
    target = io.StringIO()
    out = CellOutputStream(target, "  04_train | ", max_lines=4)
    out.write("candidate 1/2")
    assert target.getvalue() == ""                      # a line is written once it is complete
    out.write(": 0.97\nnext\n")
    out.write("\r 10%|#  |\r 50%|## |\r100%|###|\n")    # tqdm redrawing one line
    out.write("tail without newline")
    out.close()
    assert target.getvalue().splitlines() == ["  04_train | candidate 1/2: 0.97", "  04_train | next",
                                              "  04_train | 100%|###|", "  04_train | tail without newline"]
    flood = io.StringIO()
    out = CellOutputStream(flood, "x | ", max_lines=3)
    out.write("".join(f"line {i}\n" for i in range(10)))
    out.close()
    assert flood.getvalue().splitlines() == ["x | line 0", "x | line 1", "x | line 2",
                                             "x | ... (more output in the report)"]
    assert out.lines == 10


def test_kernel_setup_uses_ipc_sockets_in_a_private_folder_and_restores_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(export.REPORTS_DIR_ENV, "/before")
    log = tmp_path / "02_eda.kernel.log"
    log.write_text("an earlier run")
    with runner.kernel_setup(tmp_path, log) as kernel:
        assert os.environ[export.REPORTS_DIR_ENV] == str(tmp_path)
        km = kernel["config"].KernelManager
        assert km.transport == "ipc"
        sockets = os.path.dirname(km.ip)
        assert os.path.isdir(sockets) and os.path.basename(sockets).startswith("hybridopt-kernels-")
        manager = kernel["kernel_manager_class"]
        assert kernel["config"][manager.__name__].log_path == str(log) and log.read_text() == ""
    assert not os.path.exists(sockets)
    assert os.environ[export.REPORTS_DIR_ENV] == "/before"
    monkeypatch.delenv(export.REPORTS_DIR_ENV)
    with runner.kernel_setup(tmp_path):
        pass
    assert export.REPORTS_DIR_ENV not in os.environ


def test_gates_fold_under_one_line_in_reports_and_stay_whole_on_the_index(tmp_path, monkeypatch, params):
    card = {"created_at": "2026-01-01T00:00:00+00:00", "gates": [
        {"gate": "balanced_optimal mean", "scope": "lightweight_api", "value": 0.0, "threshold": "0.2-0.8", "pass": False},
        {"gate": "balanced_optimal mean", "scope": "heavy_processing", "value": 0.95, "threshold": "0.2-0.8",
         "pass": False},
        {"gate": "both classes present", "scope": "all", "value": [0, 1], "threshold": "[0, 1]", "pass": True},
        {"gate": "no missing values", "scope": "all", "value": 3, "threshold": "0", "pass": False}]}
    (tmp_path / "data_card.json").write_text(json.dumps(card))
    monkeypatch.setattr(runner.paths, "processed", lambda _params: paths.Processed(tmp_path))
    folded = runner._gates_html(params, folded=True)
    assert "<b>1 of 4 pass</b>" in folded
    assert ("failing: <span style='color:red'>balanced_optimal mean (lightweight_api, heavy_processing); "
            "no missing values (all)</span>") in folded
    assert "<details><summary>all 4 gates</summary><table>" in folded and folded.endswith("</table></details>")
    whole = runner._gates_html(params)
    assert "<details>" not in whole and whole.count("<tr>") == 5 and "failing" not in whole
    (tmp_path / "data_card.json").unlink()
    assert "not computed yet" in runner._gates_html(params, folded=True)


def test_kernel_log_shows_the_kernel_apps_warnings_and_a_failed_stages_tail(tmp_path):
    log = tmp_path / "03_x.kernel.log"
    log.write_text("copied child output\n[IPKernelApp] WARNING | something the kernel app says\n"
                   "[IPKernelApp] INFO | routine\n" + "".join(f"line {i}\n" for i in range(30)))
    shown = io.StringIO()
    runner.show_kernel_log(log, runner.Stage(key="03", name="03_x", status="ok"), shown)
    assert shown.getvalue() == "  03_x ! [IPKernelApp] WARNING | something the kernel app says\n"
    shown = io.StringIO()
    runner.show_kernel_log(log, runner.Stage(key="03", name="03_x", status="failed"), shown, tail_lines=2)
    assert shown.getvalue().splitlines()[1:] == [f"  03_x ! kernel log {log} ends:", "  03_x !   line 28",
                                                 "  03_x !   line 29"]
