"""notebooks/01_collect.ipynb executed with real papermill for the profiles Artillery does not collect
(the testbed profile's six-minute collection is run by run_all, not by a unit test): legacy logs on
disk (thesis-2025-11) and a simulator profile (smoke: the calibration work's simulator cell)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from hybridopt import paths


NOTEBOOK = paths.NOTEBOOKS_DIR / "01_collect.ipynb"


def _run(profile: str, tmp_path: Path) -> nbformat.NotebookNode:
    import papermill

    out = tmp_path / f"01_collect-{profile}.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), parameters={"profile": profile, "force": False},
                               kernel_name="python3", cwd=str(paths.NOTEBOOKS_DIR), progress_bar=False)
    return nbformat.read(out, as_version=4)


def _text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            parts.append(o.get("text", "") if "text" in o else str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def test_notebook_follows_the_house_rules() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].metadata.get("tags") == ["parameters"]
    assert code[0].source == 'profile = "quick"\nforce = False'
    assert "load_params(profile)" in code[1].source
    for c in code:
        assert c.execution_count is None and not c.outputs
        assert "def " not in c.source and "class " not in c.source
    assert any("SIMULATOR CELL" in c.source for c in code)
    assert any("collection.run_profile(params, force=force)" in c.source for c in code)


@pytest.mark.slow
@pytest.mark.needs_shared_data
@pytest.mark.timeout(1800)  # a fresh clone validates the platform model on the real logs first: ~7 CPU-minutes
def test_notebook_summarises_legacy_logs(tmp_path: Path) -> None:
    nb = _run("thesis-2025-11", tmp_path)
    text = _text(nb)
    assert "nothing for Artillery to collect" in text
    assert "early_morning_low_load" in text  # a folder of the original collection


@pytest.mark.slow
def test_notebook_runs_for_a_simulator_profile(tmp_path: Path) -> None:
    nb = _run("smoke", tmp_path)
    assert "source 'simulator': nothing for Artillery to collect" in _text(nb)
