"""The papermill batch runner behind run_all.py.

For a profile: execute the numbered notebooks (notebooks/NN_*.ipynb) in order with the injected
parameters `profile` and `force`, write each executed notebook and its HTML (code hidden, a
provenance header with the gates in one line on top, wide outputs scrolling in their own box) under
reports/<profile>/, and an index.html with each stage's status, duration and provenance, the whole
gates table and the thesis exports. While a stage runs, what its cells print streams to the terminal
line by line, prefixed with the stage. Kernels talk over IPC sockets; a kernel process's own output
goes to reports/<profile>/<stage>.kernel.log (its warnings, and its tail when the stage failed, are
shown). A failing notebook still gets its partial HTML; the index marks it failed with the failing
cell; later stages are skipped (they read what it should have written) and the process exits
non-zero naming both.
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import nbformat

from hybridopt import paths, provenance
from hybridopt.params import Params, load_params
from hybridopt.report import export

KERNEL = "python3"
REQUIRED_PARAMETERS = ("profile", "force")
#: Printed lines a stage may stream to the terminal; the rest are in its report.
MAX_STREAMED_LINES = 2000


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
def _gate_rows(card: dict[str, Any]) -> str:
    return "".join(
        f"<tr><td>{html.escape(str(g['gate']))}</td><td>{html.escape(str(g['scope']))}</td>"
        f"<td>{html.escape(str(g['value']))}</td><td>{html.escape(str(g['threshold']))}</td>"
        f"<td style='color:{'green' if g['pass'] else 'red'}'><b>{'PASS' if g['pass'] else 'FAIL'}</b></td></tr>"
        for g in card.get("gates", []))


def _gates_html(params: Params, folded: bool = False) -> str:
    """The gates of the latest training table: the whole table (the index), or one line, passed of
    total and the failing gates by name, with the table folded beneath it (each stage's report)."""
    card_path = paths.processed(params).data_card
    if not card_path.is_file():
        return "<p><b>Gates:</b> not computed yet (stage 03 writes them).</p>"
    card = json.loads(card_path.read_text())
    gates = card.get("gates", [])
    failing: dict[str, list[str]] = {}  # gate -> the scopes where it fails, in table order
    for g in gates:
        if not g["pass"]:
            failing.setdefault(str(g["gate"]), []).append(str(g["scope"]))
    n_failing = sum(len(v) for v in failing.values())
    table = (f"<table><tr><th>gate</th><th>scope</th><th>value</th><th>threshold</th><th></th></tr>"
             f"{_gate_rows(card)}</table>")
    head = (f"<b>Gates</b> (training table of {html.escape(card.get('created_at', '?'))}): "
            f"<b>{len(gates) - n_failing} of {len(gates)} pass</b>")
    if not folded:
        return f"<p>{head}</p>{table}"
    named = "; ".join(f"{gate} ({', '.join(scopes)})" for gate, scopes in failing.items())
    line = head + (f"; failing: <span style='color:red'>{html.escape(named)}</span>" if failing else "")
    return (f"<p class='ho-gates'>{line}</p>"
            f"<details><summary>all {len(gates)} gates</summary>{table}</details>")


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
            f"{_provenance_html(prov)}{_gates_html(params, folded=True)}</div>")
    return nbformat.v4.new_markdown_cell(body, metadata={"tags": ["provenance-header"]})


#: Injected into every report: wide outputs (tables, long text lines) scroll inside their own box
#: instead of running off the page; the folded gates table reads as a table.
REPORT_CSS = """<style>
.jp-OutputArea-child { display: block; }
.jp-OutputArea-output { display: block; max-width: 100%; overflow-x: auto; }
.jp-OutputArea-output.jp-RenderedHTMLCommon td, .jp-OutputArea-output.jp-RenderedHTMLCommon th { white-space: nowrap; }
.jp-OutputArea-output.jp-RenderedHTMLCommon caption { caption-side: top; text-align: left; white-space: nowrap;
  color: #555; padding: 2px 0; }
.jp-RenderedImage img { max-width: 100%; height: auto; }
.jp-RenderedHTMLCommon details > summary { cursor: pointer; color: #1f6fb4; }
</style>
"""


def export_html(executed: Path, out_html: Path, stage: Stage, prov: dict[str, Any], params: Params) -> None:
    from nbconvert import HTMLExporter

    nb = nbformat.read(executed, as_version=4)
    nb.cells.insert(0, _header_cell(stage, prov, params))
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": stage.name}})
    if "</head>" not in body:
        raise RunnerError(f"{out_html.name}: nbconvert's page has no </head> to put the report's style in")
    out_html.write_text(body.replace("</head>", REPORT_CSS + "</head>", 1))


def _findings_html(params: Params, out_dir: Path | None = None) -> str:
    """The findings panel; a failure to build it is shown in its place, never hides the index."""
    from hybridopt.report import findings

    try:
        return findings.panel_html(findings.findings(params), out_dir)
    except Exception as exc:  # noqa: BLE001 (the index must still be written)
        return f"<p style='color:red'>Findings could not be built: {html.escape(type(exc).__name__)}: {html.escape(str(exc))}</p>"


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
{_findings_html(params, out_dir)}
<h2>Stages</h2>
<table><tr><th>stage</th><th>status</th><th>duration</th><th>started (UTC)</th><th>links</th><th>detail</th></tr>
{''.join(rows)}</table>
<h2>Provenance</h2>{_provenance_html(record.provenance)}
<h2>Gates</h2>{_gates_html(params)}
<h2>Exports for the thesis</h2>{export.index_html(out_dir)}
</body></html>"""
    path = out_dir / "index.html"
    path.write_text(page)
    return path


# -------------------------------------------------------------------------------------------- run
class CellOutputStream:
    """Where papermill writes a stage's printed cell output (stdout or stderr streams; tables and
    images are not streams): to `target` line by line, each line prefixed with the stage name. A line
    rewritten with carriage returns (a progress bar) shows only its final state; after `max_lines`
    lines the rest is counted, not shown."""

    def __init__(self, target: TextIO, prefix: str, max_lines: int = MAX_STREAMED_LINES) -> None:
        self._target, self._prefix, self._max = target, prefix, max_lines
        self._partial = ""
        self.lines = 0

    def write(self, text: str) -> int:
        *complete, self._partial = (self._partial + text).split("\n")
        for line in complete:
            self._emit(line)
        return len(text)

    def _emit(self, line: str) -> None:
        shown = next((part for part in reversed(line.split("\r")) if part), "")
        self.lines += 1
        if self.lines <= self._max:
            self._target.write(f"{self._prefix}{shown}\n")
        elif self.lines == self._max + 1:
            self._target.write(f"{self._prefix}... (more output in the report)\n")

    def flush(self) -> None:
        self._target.flush()

    def close(self) -> None:
        """Write a last line that had no newline."""
        if self._partial:
            self._emit(self._partial)
            self._partial = ""
        self.flush()


#: A line the kernel application logs at WARNING or above (ipykernel's own log, not cell output).
KERNEL_APP_WARNING = re.compile(r"^\[[A-Za-z]*App\] (WARNING|ERROR|CRITICAL)\b")


def _kernel_manager_class() -> type:
    """jupyter_client's AsyncKernelManager whose kernel process writes its own stdout and stderr to
    `log_path` rather than to the terminal. ipykernel copies output below Python (subprocesses, C
    libraries) both into the notebook and onto the process's own streams; the runner streams the
    notebook's copy, so the terminal would show it twice. The kernel application's own log lands
    there too; the runner shows its warnings (show_kernel_log)."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Unicode

    class LoggedKernelManager(AsyncKernelManager):
        log_path = Unicode("", help="file for the kernel process's stdout and stderr").tag(config=True)

        async def start_kernel(self, **kw: Any) -> None:
            if not self.log_path:
                return await super().start_kernel(**kw)
            with open(self.log_path, "ab") as log:  # the kernel process keeps its own descriptor
                return await super().start_kernel(**{"stdout": log, "stderr": log, **kw})

    return LoggedKernelManager


@contextmanager
def kernel_setup(out_dir: Path, kernel_log: Path | None = None) -> Iterator[dict[str, Any]]:
    """papermill's kernel settings for a run: kernels talk over IPC (Unix sockets in a private
    temporary folder, removed afterwards) rather than TCP on localhost; the kernel process's own
    output goes to `kernel_log` (emptied first); exports go to `out_dir` (the kernel inherits the
    environment)."""
    from traitlets.config import Config

    saved = os.environ.get(export.REPORTS_DIR_ENV)
    os.environ[export.REPORTS_DIR_ENV] = str(out_dir)
    config = Config()
    kwargs: dict[str, Any] = {"config": config}
    if kernel_log is not None:
        kernel_log.write_bytes(b"")
        manager = _kernel_manager_class()
        config[manager.__name__].log_path = str(kernel_log)
        kwargs["kernel_manager_class"] = manager
    try:
        if os.name == "nt":  # no Unix sockets
            yield kwargs
            return
        with tempfile.TemporaryDirectory(prefix="hybridopt-kernels-") as sockets:
            config.KernelManager.transport = "ipc"
            config.KernelManager.ip = str(Path(sockets) / "kernel")
            yield kwargs
    finally:
        if saved is None:
            os.environ.pop(export.REPORTS_DIR_ENV, None)
        else:
            os.environ[export.REPORTS_DIR_ENV] = saved


def show_kernel_log(kernel_log: Path, stage: Stage, target: TextIO, tail_lines: int = 20) -> None:
    """What of a stage's kernel log the terminal must see: the kernel application's warnings and
    errors, and, when the stage failed, the log's last lines (a kernel that died says why there)."""
    if not kernel_log.is_file():
        return
    lines = kernel_log.read_text(errors="replace").splitlines()
    for line in lines:
        if KERNEL_APP_WARNING.match(line):
            target.write(f"  {stage.name} ! {line}\n")
    if stage.status == "failed" and lines:
        target.write(f"  {stage.name} ! kernel log {kernel_log} ends:\n")
        for line in lines[-tail_lines:]:
            target.write(f"  {stage.name} !   {line}\n")
    target.flush()


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
    out_dir = Path(out_dir or params.path("reports_dir")).resolve()
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
        out, err = CellOutputStream(sys.stdout, f"  {nb.stem} | "), CellOutputStream(sys.stderr, f"  {nb.stem} ! ")
        kernel_log = out_dir / f"{nb.stem}.kernel.log"
        try:
            with kernel_setup(out_dir, kernel_log) as kernel:
                papermill.execute_notebook(
                    str(nb), str(executed), parameters={"profile": profile, "force": force},
                    kernel_name=KERNEL, cwd=str(nb.parent), progress_bar=False, stdout_file=out, stderr_file=err,
                    request_save_on_cell_execute=True, start_timeout=180, execution_timeout=cell_timeout_s,
                    **kernel)
            st.status = "ok"
        except PapermillExecutionError as exc:
            st.status, st.failing_cell = "failed", exc.exec_count
            st.error = f"{exc.ename}: {exc.evalue}"[:500]
        except Exception as exc:  # kernel died, timeout, ... : still a failed stage with a record
            st.status, st.error = "failed", f"{type(exc).__name__}: {exc}"[:500]
        finally:
            out.close()
            err.close()
        st.seconds = round(time.perf_counter() - t0, 2)
        show_kernel_log(kernel_log, st, sys.stderr)
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
