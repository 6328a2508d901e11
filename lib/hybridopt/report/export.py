"""What a thesis chapter pastes: every figure a report shows as SVG and PDF, every key table as
LaTeX (booktabs) and CSV, under reports/<profile>/export/<stage>/.

A notebook makes one exporter for its stage and passes each figure or table through it; the call
writes the files and returns what the notebook displays:

    exp = export.Exporter(params, "02_eda")
    exp.figure("rows_per_cell", report.rows_per_cell(cells), "Logged rows per run and cell")
    exp.table("buckets", buckets, "Input lines per bucket")        # a Styler, shown as a table

Each stage folder holds a `manifest.json` (name, kind, caption, files) that run_all.py's index lists.
Making the exporter empties its stage folder, so the folder always holds one run's files.

The LaTeX needs `booktabs`; wide tables are scaled to the line width with `graphicx`'s
`\\resizebox`, long ones use `longtable`.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from hybridopt.params import Params

#: When set (run_all.py --out), reports and exports go there instead of params data.reports_dir.
REPORTS_DIR_ENV = "HYBRIDOPT_REPORTS_DIR"
MANIFEST = "manifest.json"
FIGURE_FORMATS = ("svg", "pdf")
TABLE_FORMATS = ("tex", "csv")
#: Tables whose estimated width passes this many points (a thesis text width is 350-450 pt; a
#: 10 pt character about 5 pt, a column's padding 12 pt) are scaled to the line width in LaTeX.
WIDE_PT = 430
CHAR_PT = 5.0
COLUMN_PAD_PT = 12.0
#: Tables with more rows than this become a longtable (breaks across pages).
LONG_ROWS = 40
#: In a report, text cells longer than this wrap within a column of at least WRAP_WIDTH (the page's
#: other cells stay on one line and a wide table scrolls).
LONG_TEXT = 40
WRAP_WIDTH = "22em"

_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


class ExportError(ValueError):
    pass


@dataclass
class Item:
    name: str
    kind: str            # figure | table
    caption: str
    files: list[str]     # file names inside the stage folder


def reports_dir(params: Params) -> Path:
    """The profile's reports folder (params data.reports_dir, or HYBRIDOPT_REPORTS_DIR when set)."""
    env = os.environ.get(REPORTS_DIR_ENV)
    return Path(env) if env else params.path("reports_dir")


def export_dir(reports: Path) -> Path:
    return reports / "export"


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _has_index(df: pd.DataFrame) -> bool:
    """False for the default 0..n-1 index without a name, which says nothing."""
    return not (isinstance(df.index, pd.RangeIndex) and df.index.name is None and df.index.start == 0
                and df.index.step == 1)


def _as_text(value: object) -> object:
    """Cells that are not scalars (dicts, lists) as their text, so CSV and LaTeX show them as text."""
    if isinstance(value, (dict, list, tuple, set)):
        return str(value)
    return value


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns[out.dtypes == object]:
        out[col] = out[col].map(_as_text)
    return out


Formats = str | Mapping[str, str] | None


def number_format(precision: int, kind: str = "auto") -> Callable[[object], str]:
    """How a column's numbers read. `kind`: "auto" (`precision` decimals, or `precision`
    significant digits in scientific notation where decimals would show a non-zero value as 0:
    dollars per request beside milliseconds in a table of metrics), "whole" (no decimals: a float
    column of whole numbers, counts beside a missing value) or "scientific" (every value: a column
    of small values, like dollars per request). Thousands separators from 10,000. Anything not a
    number as is."""
    def fmt(value: object) -> str:
        if isinstance(value, (float, np.floating)):
            v = float(value)
            if not np.isfinite(v):
                return str(v)
            if kind == "scientific" or (kind == "auto" and v != 0 and abs(v) < 10 ** -precision):
                return f"{v:.{max(precision - 1, 1)}e}"
            decimals = 0 if kind == "whole" else precision
            return f"{v:,.{decimals}f}" if abs(v) >= 10_000 else f"{v:.{decimals}f}"
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            return f"{int(value):,}" if abs(int(value)) >= 10_000 else str(int(value))
        return str(value)
    return fmt


def column_kind(col: pd.Series, precision: int) -> str:
    """number_format's kind for a column (see there)."""
    if not pd.api.types.is_float_dtype(col):
        return "auto"
    v = col.dropna().to_numpy(dtype="float64")
    v = v[np.isfinite(v)]
    if len(v) and np.all(v == np.round(v)):
        return "whole"
    if len(v) and np.abs(v).max() < 10 ** -precision:
        return "scientific"
    return "auto"


def _wrap_long(value: object) -> str:
    text = value if isinstance(value, str) else str(value) if isinstance(value, (dict, list, tuple)) else ""
    return f"white-space: normal; min-width: {WRAP_WIDTH}" if len(text) > LONG_TEXT else ""


def _styled(df: pd.DataFrame, formats: Formats, precision: int, latex: bool = False) -> Styler:
    """`df` as a Styler: `formats` (one format for every cell, or one per column), and every other
    column by number_format(precision); missing values empty; every formatted cell escaped for
    LaTeX or HTML (a format's own output too, like the % of "{:.1%}")."""
    given: Mapping[object, str] = {c: formats for c in df.columns} if isinstance(formats, str) else dict(formats or {})
    unknown = [k for k in given if k not in df.columns]
    if unknown:
        raise ExportError(f"formats for columns the table does not have: {unknown} (columns: {list(df.columns)})")

    def cell(fmt: Callable[[object], str]) -> Callable[[object], str]:
        escape = latex_escape if latex else html.escape
        return lambda v: escape(fmt(v))

    per_column = {c: cell(given[c].format if c in given else number_format(precision, column_kind(df[c], precision)))
                  for c in df.columns}
    return df.style.format(per_column, na_rep="")


def to_latex(df: pd.DataFrame, caption: str, label: str, formats: Formats = None, precision: int = 3) -> str:
    """A booktabs table (`\\toprule`, `\\midrule`, `\\bottomrule`) with every label, cell and the
    caption escaped for LaTeX; the display formats of the report. Row labels of a MultiIndex repeat
    on every row (no `multirow` package needed); column groups use the core `\\multicolumn`."""
    data = _plain(df)
    data = data.rename_axis(index=[None if n is None else latex_escape(str(n)) for n in data.index.names],
                            columns=[None if n is None else latex_escape(str(n)) for n in data.columns.names])
    st = _styled(data, formats, precision, latex=True)
    st = st.format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    if not _has_index(df):
        st = st.hide(axis="index")
    long = len(df) > LONG_ROWS
    tex = st.to_latex(hrules=True, caption=latex_escape(caption), label=label, sparse_index=False,
                      environment="longtable" if long else None, position_float=None if long else "centering")
    if not long and _width_pt(tex) > WIDE_PT:
        tex = tex.replace("\\begin{tabular}", "\\resizebox{\\linewidth}{!}{%\n\\begin{tabular}", 1)
        tex = tex.replace("\\end{tabular}", "\\end{tabular}}", 1)
    return tex


def _width_pt(tex: str) -> float:
    """A table's printed width estimated from its rows: the longest cell of each column in
    characters, LaTeX escapes counted as one."""
    widest: list[int] = []
    for line in tex.splitlines():
        if "&" not in line or not line.rstrip().endswith("\\\\"):
            continue
        cells = re.split(r"(?<!\\)&", line.rstrip()[:-2])
        for i, cell in enumerate(cells):
            n = len(re.sub(r"\\[a-z]+\{\}|\\.", "x", cell.strip()))
            if i < len(widest):
                widest[i] = max(widest[i], n)
            else:
                widest.append(n)
    return sum(widest) * CHAR_PT + len(widest) * COLUMN_PAD_PT


class Exporter:
    """Writes one stage's figures and tables under <reports>/export/<stage>/ and returns them for
    display. `root` overrides the reports folder (tests)."""

    def __init__(self, params: Params, stage: str, root: Path | None = None) -> None:
        if not re.match(r"^[0-9]{2}_[a-z0-9_]+$", stage):
            raise ExportError(f"stage {stage!r}: expected the notebook's name, like '02_eda'")
        self.stage = stage
        self.dir = export_dir(root if root is not None else reports_dir(params)) / stage
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        self.items: dict[str, Item] = {}
        self._write_manifest()

    def _check(self, name: str, kind: str) -> None:
        if not _NAME.match(name):
            raise ExportError(f"{self.stage}: export name {name!r} must be lower-case letters, digits and _")
        earlier = self.items.get(name)
        if earlier is not None and earlier.kind != kind:
            raise ExportError(f"{self.stage}: {name!r} is already a {earlier.kind}; give the {kind} another name")

    def _write_manifest(self) -> None:
        (self.dir / MANIFEST).write_text(json.dumps(
            {"stage": self.stage, "items": [asdict(i) for i in self.items.values()]}, indent=2))

    def _record(self, item: Item) -> None:
        self.items[item.name] = item
        self._write_manifest()

    def figure(self, name: str, fig: plt.Figure, caption: str = "") -> plt.Figure:
        """Save `fig` as <name>.svg and <name>.pdf (no timestamps inside, fonts embedded as
        TrueType), close it, and return it: a notebook shows it once."""
        self._check(name, "figure")
        if not isinstance(fig, plt.Figure):
            raise ExportError(f"{self.stage}/{name}: expected a matplotlib Figure, got {type(fig).__name__}")
        files = []
        with mpl.rc_context({"pdf.fonttype": 42, "svg.hashsalt": name}):
            for ext in FIGURE_FORMATS:
                path = self.dir / f"{name}.{ext}"
                meta = {"Date": None} if ext == "svg" else {"CreationDate": None}
                fig.savefig(path, format=ext, bbox_inches="tight", metadata=meta)
                files.append(path.name)
        plt.close(fig)
        self._record(Item(name, "figure", caption, files))
        return fig

    def table(self, name: str, df: pd.DataFrame, caption: str, formats: Formats = None, precision: int = 3,
              style: Callable[[Styler], Styler] | None = None) -> Styler:
        """Save `df` as <name>.csv (full precision) and <name>.tex (booktabs, `formats` or
        `precision` digits, label tab:<stage>:<name>), and return it as a Styler with the same
        formats and the caption, restyled by `style` when given (colours for the report only)."""
        self._check(name, "table")
        if not isinstance(df, pd.DataFrame):
            raise ExportError(f"{self.stage}/{name}: expected a DataFrame, got {type(df).__name__}")
        index = _has_index(df)
        _plain(df).to_csv(self.dir / f"{name}.csv", index=index)
        (self.dir / f"{name}.tex").write_text(
            to_latex(df, caption, f"tab:{self.stage}:{name}", formats, precision))
        self._record(Item(name, "table", caption, [f"{name}.{ext}" for ext in TABLE_FORMATS]))
        shown = (_styled(df, formats, precision).format_index(escape="html", axis=0)
                 .format_index(escape="html", axis=1).set_caption(html.escape(caption)))
        if df.index.is_unique and df.columns.is_unique:
            shown = shown.map(_wrap_long)
        if not index:
            shown = shown.hide(axis="index")
        return style(shown) if style is not None else shown


# --------------------------------------------------------------------------------- the index lists
def read_manifests(reports: Path) -> dict[str, list[Item]]:
    """Every stage's exported items, by stage in notebook order. A manifest that cannot be read
    is reported as an item-less stage by the caller (ExportError names the file)."""
    root = export_dir(reports)
    out: dict[str, list[Item]] = {}
    if not root.is_dir():
        return out
    for manifest in sorted(root.glob(f"*/{MANIFEST}")):
        try:
            raw = json.loads(manifest.read_text())
            out[manifest.parent.name] = [Item(**i) for i in raw["items"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ExportError(f"{manifest}: not an export manifest ({exc})") from exc
    return out


def index_html(reports: Path) -> str:
    """The exports as HTML for reports/<profile>/index.html: one table per stage, each item with
    its caption and a link per file (paths relative to the reports folder)."""
    try:
        stages = read_manifests(reports)
    except ExportError as exc:
        return f"<p style='color:red'>{html.escape(str(exc))}</p>"
    if not stages:
        return "<p>No exports yet.</p>"
    parts = ["<p>Figures as SVG and PDF, tables as LaTeX (booktabs; wide ones need <code>graphicx</code>, "
             "long ones <code>longtable</code>) and CSV, ready for a thesis chapter.</p>"]
    for stage, items in stages.items():
        rows = "".join(
            f"<tr><td>{html.escape(i.kind)}</td><td><code>{html.escape(i.name)}</code></td>"
            f"<td>{html.escape(i.caption)}</td><td>"
            + " ".join(f"<a href='export/{html.escape(stage)}/{html.escape(f)}'>{html.escape(f.rsplit('.', 1)[-1])}</a>"
                       for f in i.files)
            + "</td></tr>" for i in items)
        parts.append(f"<h3>{html.escape(stage)}</h3>" + (
            f"<table><tr><th>kind</th><th>name</th><th>caption</th><th>files</th></tr>{rows}</table>"
            if items else "<p>nothing exported</p>"))
    return "".join(parts)
