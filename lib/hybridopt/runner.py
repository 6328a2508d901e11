"""The papermill batch runner behind run_all.py.

For a profile: execute the numbered notebooks (notebooks/NN_*.ipynb) in order with the injected
parameters `profile` and `force`, write each executed notebook and its HTML (code hidden, a
provenance and gates header on top) under reports/<profile>/, and an index.html with each stage's
status, duration and provenance. A failing notebook still gets its partial HTML; the index marks
it failed with the failing cell; later stages are skipped (they read what it should have written)
and the process exits non-zero naming both.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat

from hybridopt import paths, provenance
from hybridopt.params import Params, load_params

KERNEL = "python3"
REQUIRED_PARAMETERS = ("profile", "force")


@dataclass
class Stage:
    key: str                 # "02"
    name: str                # "02_eda"
    status: str = "pending"  # ok | failed | skipped | pending
    seconds: float | None = None
    started_at: str | None = None
    failing_cell: int | None = None   # execution count of the failing cell ("In [n]" in the notebook)
    error: str | None = None
    html: str | None = None
    notebook: str | None = None
    run_id: str | None = None


@dataclass
class RunRecord:
    profile: str
    stages: dict[str, Stage] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


class RunnerError(RuntimeError):
    pass


def discover(notebooks_dir: Path | None = None) -> list[Path]:
    d = notebooks_dir or paths.NOTEBOOKS_DIR
    return sorted(p for p in d.glob("[0-9][0-9]_*.ipynb"))


def select(notebooks: list[Path], only: list[str] | None, start: str | None) -> list[Path]:
    keys = {p.name[:2]: p for p in notebooks}
    for k in (only or []) + ([start] if start else []):
        if k not in keys:
            raise RunnerError(f"no notebook numbered {k!r} (have: {', '.join(sorted(keys))})")
    chosen = [p for p in notebooks if (not only or p.name[:2] in only) and (not start or p.name[:2] >= start)]
    if not chosen:
        raise RunnerError("nothing selected to run")
    return chosen


def check_parameters(nb_path: Path) -> None:
    import papermill

    declared = papermill.inspect_notebook(str(nb_path))
    missing = [p for p in REQUIRED_PARAMETERS if p not in declared]
    if missing:
        raise RunnerError(f"{nb_path.name}: its `parameters` cell does not declare {missing}")


# ------------------------------------------------------------------------------------------- HTML
def _gates_html(params: Params) -> str:
    card_path = paths.processed(params).data_card
    if not card_path.is_file():
        return "<p><b>Gates:</b> not computed yet (stage 03 writes them).</p>"
    card = json.loads(card_path.read_text())
    rows = "".join(
        f"<tr><td>{html.escape(str(g['gate']))}</td><td>{html.escape(str(g['scope']))}</td>"
        f"<td>{html.escape(str(g['value']))}</td><td>{html.escape(str(g['threshold']))}</td>"
        f"<td style='color:{'green' if g['pass'] else 'red'}'><b>{'PASS' if g['pass'] else 'FAIL'}</b></td></tr>"
        for g in card.get("gates", []))
    s = card.get("gates_summary", {})
    return (f"<p><b>Gates</b> (training table of {html.escape(card.get('created_at', '?'))}): "
            f"{s.get('passed', '?')}/{s.get('total', '?')} pass</p>"
            f"<table><tr><th>gate</th><th>scope</th><th>value</th><th>threshold</th><th></th></tr>{rows}</table>")


def _provenance_html(prov: dict[str, Any]) -> str:
    libs = ", ".join(f"{k} {v}" for k, v in prov.get("libraries", {}).items())
    return ("<table>"
            f"<tr><td>profile</td><td>{html.escape(prov['profile'])}</td></tr>"
            f"<tr><td>git commit</td><td>{html.escape(prov['git_commit'])}</td></tr>"
            f"<tr><td>params hash</td><td>{html.escape(prov['params_hash'])}</td></tr>"
            f"<tr><td>data hash</td><td>{html.escape(str(prov.get('data_hash')))}</td></tr>"
            f"<tr><td>libraries</td><td>{html.escape(libs)}</td></tr></table>")


def _header_cell(stage: Stage, prov: dict[str, Any], params: Params) -> nbformat.NotebookNode:
    status = stage.status.upper()
    colour = {"OK": "green", "FAILED": "red"}.get(status, "black")
    err = ""
    if stage.status == "failed":
        err = (f"<p style='color:red'><b>This notebook failed at cell In [{stage.failing_cell}]: "
               f"{html.escape(stage.error or '')}</b> (the outputs below stop there).</p>")
    body = (f"<div style='border:1px solid #999;padding:8px;margin-bottom:8px'>"
            f"<p><b>{html.escape(stage.name)}</b> · status <b style='color:{colour}'>{status}</b> · "
            f"{stage.seconds or 0:.1f} s · started {html.escape(stage.started_at or '?')}</p>{err}"
            f"{_provenance_html(prov)}{_gates_html(params)}</div>")
    return nbformat.v4.new_markdown_cell(body, metadata={"tags": ["provenance-header"]})


def export_html(executed: Path, out_html: Path, stage: Stage, prov: dict[str, Any], params: Params) -> None:
    from nbconvert import HTMLExporter

    nb = nbformat.read(executed, as_version=4)
    nb.cells.insert(0, _header_cell(stage, prov, params))
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": stage.name}})
    out_html.write_text(body)


def write_index(record: RunRecord, out_dir: Path, params: Params) -> Path:
    rows = []
    for st in record.stages.values():
        colour = {"ok": "green", "failed": "red", "skipped": "#b60"}.get(st.status, "black")
        link = f"<a href='{html.escape(st.html)}'>report</a>" if st.html else ""
        nb = f"<a href='{html.escape(st.notebook)}'>notebook</a>" if st.notebook else ""
        detail = (f"cell In [{st.failing_cell}]: {html.escape(st.error or '')}" if st.status == "failed"
                  else html.escape(st.error or ""))
        rows.append(f"<tr><td>{html.escape(st.name)}</td><td style='color:{colour}'><b>{st.status}</b></td>"
                    f"<td>{'' if st.seconds is None else f'{st.seconds:.1f} s'}</td>"
                    f"<td>{html.escape(st.started_at or '')}</td><td>{link} {nb}</td><td>{detail}</td></tr>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(record.profile)}: reports</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}td,th{{border-bottom:1px solid #ddd;padding:4px 8px;
text-align:left;vertical-align:top}}table{{border-collapse:collapse}}</style></head><body>
<h1>Profile <code>{html.escape(record.profile)}</code></h1>
<p>Generated {datetime.now(timezone.utc).isoformat(timespec="seconds")} by <code>run_all.py</code>.
Each report is an executed notebook with its code hidden; the notebook itself is the run record.</p>
<h2>Stages</h2>
<table><tr><th>stage</th><th>status</th><th>duration</th><th>started (UTC)</th><th>links</th><th>detail</th></tr>
{''.join(rows)}</table>
<h2>Provenance</h2>{_provenance_html(record.provenance)}
<h2>Gates</h2>{_gates_html(params)}
</body></html>"""
    path = out_dir / "index.html"
    path.write_text(page)
    return path


# -------------------------------------------------------------------------------------------- run
def _load_record(out_dir: Path, profile: str) -> RunRecord:
    p = out_dir / "run.json"
    if p.is_file():
        try:
            raw = json.loads(p.read_text())
            return RunRecord(profile=profile, stages={k: Stage(**v) for k, v in raw.get("stages", {}).items()},
                             provenance=raw.get("provenance", {}))
        except (ValueError, TypeError):
            pass
    return RunRecord(profile=profile)


def _save_record(record: RunRecord, out_dir: Path) -> None:
    (out_dir / "run.json").write_text(json.dumps(
        {"profile": record.profile, "provenance": record.provenance,
         "stages": {k: asdict(v) for k, v in record.stages.items()}}, indent=2))


def run(profile: str, only: list[str] | None = None, start: str | None = None, force: bool = False,
        notebooks_dir: Path | None = None, cell_timeout_s: int | None = None,
        out_dir: Path | None = None) -> tuple[RunRecord, int]:
    """Run the selected notebooks of a profile. Returns the record and the exit code."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    params = load_params(profile)
    notebooks = discover(notebooks_dir)
    if not notebooks:
        raise RunnerError(f"no numbered notebooks in {notebooks_dir or paths.NOTEBOOKS_DIR}")
    chosen = select(notebooks, only, start)
    for nb in chosen:
        check_parameters(nb)
    out_dir = out_dir or params.path("reports_dir")
    out_dir.mkdir(parents=True, exist_ok=True)
    record = _load_record(out_dir, profile)
    for nb in notebooks:  # keep earlier results of stages not selected, in notebook order
        record.stages.setdefault(nb.stem, Stage(key=nb.name[:2], name=nb.stem))
    record.stages = {nb.stem: record.stages[nb.stem] for nb in notebooks}
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    failed: Stage | None = None
    for i, nb in enumerate(chosen, start=1):
        st = Stage(key=nb.name[:2], name=nb.stem, run_id=run_id)
        record.stages[nb.stem] = st
        if failed is not None:
            st.status, st.error = "skipped", f"upstream stage {failed.name} failed"
            print(f"[{i}/{len(chosen)}] {nb.stem}: skipped ({st.error})", flush=True)
            continue
        executed = out_dir / f"{nb.stem}.ipynb"
        st.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        print(f"[{i}/{len(chosen)}] {nb.stem}: running", flush=True)
        t0 = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(nb), str(executed), parameters={"profile": profile, "force": force},
                kernel_name=KERNEL, cwd=str(nb.parent), progress_bar={"desc": nb.stem, "leave": False},
                request_save_on_cell_execute=True, start_timeout=180, execution_timeout=cell_timeout_s)
            st.status = "ok"
        except PapermillExecutionError as exc:
            st.status, st.failing_cell = "failed", exc.exec_count
            st.error = f"{exc.ename}: {exc.evalue}"[:500]
        except Exception as exc:  # kernel died, timeout, ... : still a failed stage with a record
            st.status, st.error = "failed", f"{type(exc).__name__}: {exc}"[:500]
        st.seconds = round(time.perf_counter() - t0, 2)
        st.notebook = executed.name if executed.is_file() else None
        record.provenance = provenance.collect(params)
        if executed.is_file():
            export_html(executed, out_dir / f"{nb.stem}.html", st, record.provenance, params)
            st.html = f"{nb.stem}.html"
        print(f"[{i}/{len(chosen)}] {nb.stem}: {st.status} in {st.seconds:.1f} s"
              + (f" (cell In [{st.failing_cell}]: {st.error})" if st.status == "failed" else ""), flush=True)
        _save_record(record, out_dir)
        write_index(record, out_dir, params)
        if st.status == "failed":
            failed = st
    # final pass: every report of this run gets the final provenance and gates header
    record.provenance = provenance.collect(params)
    for st in record.stages.values():
        executed = out_dir / f"{st.name}.ipynb"
        if st.run_id == run_id and st.status in ("ok", "failed") and executed.is_file():
            export_html(executed, out_dir / f"{st.name}.html", st, record.provenance, params)
    _save_record(record, out_dir)
    index = write_index(record, out_dir, params)
    print(f"index: {index}")
    if failed is not None:
        print(f"FAILED: {failed.name} at cell In [{failed.failing_cell}]: {failed.error}", flush=True)
        return record, 1
    return record, 0
