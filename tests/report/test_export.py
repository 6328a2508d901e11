"""The thesis exports: figures as SVG and PDF, tables as booktabs LaTeX and CSV, the manifest the
index lists, and the numbers' formats."""

from __future__ import annotations

import json
import shutil
import subprocess

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from hybridopt.report import export  # noqa: E402
from hybridopt.report.export import ExportError, Exporter, column_kind, number_format, to_latex  # noqa: E402
from pandas.io.formats.style import Styler  # noqa: E402


def _fig() -> plt.Figure:
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([1, 2, 3], [3, 1, 2])
    ax.set_title("latency_ms & 50 %")
    return fig


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"cost_usd": [2.1234e-06, 3.5e-06], "share_%": [0.51234, np.nan], "n": [65023, 7],
                         "rule": ["a_b & c", "{x}"], "settings": [{"depth": 3}, None]},
                        index=pd.Index(["always_lambda", "model:xgb"], name="policy_name"))


def test_figure_writes_svg_and_pdf_closes_it_and_returns_it(tmp_path, params):
    exp = Exporter(params, "02_eda", root=tmp_path)
    fig = _fig()
    assert exp.figure("latency_by_payload", fig, "Latency by payload") is fig
    assert not plt.fignum_exists(fig.number)  # closed: a notebook shows the returned figure once
    stage = tmp_path / "export" / "02_eda"
    assert (stage / "latency_by_payload.svg").read_text().lstrip().startswith("<?xml")
    assert (stage / "latency_by_payload.pdf").read_bytes().startswith(b"%PDF")
    manifest = json.loads((stage / "manifest.json").read_text())
    assert manifest == {"stage": "02_eda", "items": [{"name": "latency_by_payload", "kind": "figure",
                                                      "caption": "Latency by payload",
                                                      "files": ["latency_by_payload.svg", "latency_by_payload.pdf"]}]}


def test_figure_files_are_the_same_bytes_each_run(tmp_path, params):
    exp = Exporter(params, "02_eda", root=tmp_path / "a")
    exp.figure("f", _fig())
    again = Exporter(params, "02_eda", root=tmp_path / "b")
    again.figure("f", _fig())
    for ext in ("svg", "pdf"):
        assert (tmp_path / "a/export/02_eda" / f"f.{ext}").read_bytes() == \
            (tmp_path / "b/export/02_eda" / f"f.{ext}").read_bytes(), ext


def test_table_writes_booktabs_latex_and_full_precision_csv(tmp_path, params):
    exp = Exporter(params, "08_ab_test", root=tmp_path)
    shown = exp.table("policies", _frame(), "Policies: 95 % CIs & cost_usd")
    assert isinstance(shown, Styler)
    stage = tmp_path / "export" / "08_ab_test"
    tex = (stage / "policies.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "\\caption{Policies: 95 \\% CIs \\& cost\\_usd}" in tex and "\\label{tab:08_ab_test:policies}" in tex
    assert "policy\\_name" in tex and "share\\_\\%" in tex and "model:xgb" in tex
    assert "a\\_b \\& c" in tex and "\\{x\\}" in tex and "\\{'depth': 3\\}" in tex
    assert "2.12e-06" in tex and "65,023" in tex and "0.512" in tex
    csv = pd.read_csv(stage / "policies.csv", index_col=0)
    assert csv.loc["always_lambda", "cost_usd"] == 2.1234e-06 and csv.loc["model:xgb", "n"] == 7
    assert csv.loc["always_lambda", "settings"] == "{'depth': 3}"
    page = shown.to_html()
    assert "Policies: 95 % CIs &amp; cost_usd" in page and "a_b &amp; c" in page and "2.12e-06" in page


def test_table_without_a_meaningful_index_leaves_it_out(tmp_path, params):
    exp = Exporter(params, "03_preprocess", root=tmp_path)
    df = pd.DataFrame({"gate": ["a", "b"], "pass": [True, False]})
    exp.table("gates", df, "Gates")
    stage = tmp_path / "export" / "03_preprocess"
    assert (stage / "gates.csv").read_text().splitlines()[0] == "gate,pass"
    assert "\\begin{tabular}{lr}" in (stage / "gates.tex").read_text()  # two columns: no index column


def test_table_style_is_for_the_report_only(tmp_path, params):
    exp = Exporter(params, "03_preprocess", root=tmp_path)
    df = pd.DataFrame({"gate": ["a", "b"], "pass": [True, False]})
    shown = exp.table("gates", df, "Gates", style=lambda st: st.map(lambda v: "color: red" if v is False else "",
                                                                      subset=["pass"]))
    assert "color: red" in shown.to_html()
    assert "color" not in (tmp_path / "export/03_preprocess/gates.tex").read_text()


def test_the_shown_table_escapes_row_and_column_labels(tmp_path, params):
    exp = Exporter(params, "06_decide", root=tmp_path)
    df = pd.DataFrame({"p95 <ms>": [1.0, 2.0]}, index=pd.Index(["classifier<0.5>", "a & b"], name="policy"))
    out = exp.table("policies", df, "Policies <all>").to_html()
    assert "classifier&lt;0.5&gt;" in out and "a &amp; b" in out and "p95 &lt;ms&gt;" in out
    assert "<0.5>" not in out and "<ms>" not in out


def test_wide_tables_scale_and_long_tables_break_across_pages():
    wide = pd.DataFrame([[0.5] * 12], columns=[f"test_accuracy_{i}" for i in range(12)])
    tex = to_latex(wide, "wide", "tab:w")
    assert "\\resizebox{\\linewidth}{!}{%\n\\begin{tabular}" in tex and "\\end{tabular}}" in tex
    rules = pd.DataFrame({"rule": ["IF workload in {lightweight_api, thumbnail_processing} AND hour > 15 AND "
                                   "payload_kb > 30"], "then": ["lambda"]})
    assert "\\resizebox" in to_latex(rules, "few columns, long text", "tab:r")
    narrow = pd.DataFrame([range(12)], columns=[f"c{i}" for i in range(12)])
    assert "\\resizebox" not in to_latex(narrow, "many short columns", "tab:n")
    long = pd.DataFrame({"x": np.arange(60) / 7})
    tex = to_latex(long, "long", "tab:l")
    assert tex.startswith("\\begin{longtable}") and "\\endhead" in tex and "\\toprule" in tex


def test_number_formats():
    assert number_format(3)(0.51234) == "0.512"
    assert number_format(3)(2.1e-06) == "2.10e-06"      # would read 0.000
    assert number_format(3)(0.0) == "0.000"
    assert number_format(3)(1234567.891) == "1,234,567.891"
    assert number_format(3)(np.int64(65023)) == "65,023" and number_format(3)(True) == "True"
    assert number_format(3, "whole")(200.0) == "200"
    assert number_format(3, "scientific")(0.0) == "0.00e+00"
    assert column_kind(pd.Series([200.0, np.nan, 400.0]), 3) == "whole"          # counts beside a NaN
    assert column_kind(pd.Series([2e-6, 3e-6]), 3) == "scientific"              # dollars per request
    assert column_kind(pd.Series([0.5, 1700.6]), 3) == "auto"
    assert column_kind(pd.Series(["a", 1.5], dtype=object), 3) == "auto"


def test_explicit_formats_and_their_mistakes(tmp_path, params):
    exp = Exporter(params, "04_train", root=tmp_path)
    df = pd.DataFrame({"lambda_share": [0.4567], "regret_cost_usd": [-0.00026]})
    exp.table("decision", df, "Decision", formats={"regret_cost_usd": "{:+.5f}", "lambda_share": "{:.1%}"})
    tex = (tmp_path / "export/04_train/decision.tex").read_text()
    assert "45.7\\%" in tex and "-0.00026" in tex
    with pytest.raises(ExportError, match=r"formats for columns the table does not have: \['nope'\]"):
        exp.table("bad", df, "Bad", formats={"nope": "{:.1f}"})


def test_names_stages_and_inputs_are_checked(tmp_path, params):
    with pytest.raises(ExportError, match="expected the notebook's name"):
        Exporter(params, "eda", root=tmp_path)
    exp = Exporter(params, "04_train", root=tmp_path)
    with pytest.raises(ExportError, match="lower-case letters, digits and _"):
        exp.table("Bad Name", pd.DataFrame({"a": [1]}), "x")
    with pytest.raises(ExportError, match="expected a DataFrame, got Series"):
        exp.table("series", pd.Series([1]), "x")
    with pytest.raises(ExportError, match="expected a matplotlib Figure"):
        exp.figure("table", pd.DataFrame())
    exp.figure("importance", _fig())
    with pytest.raises(ExportError, match="'importance' is already a figure"):
        exp.table("importance", pd.DataFrame({"a": [1]}), "x")
    assert not (tmp_path / "export/04_train/importance.csv").exists()
    exp.figure("importance", _fig(), "again")  # a re-run cell replaces its item
    assert [i.caption for i in export.read_manifests(tmp_path)["04_train"]] == ["again"]


def test_a_new_exporter_empties_its_stage_folder_only(tmp_path, params):
    Exporter(params, "02_eda", root=tmp_path).figure("old", _fig())
    Exporter(params, "03_preprocess", root=tmp_path).figure("kept", _fig())
    Exporter(params, "02_eda", root=tmp_path)
    assert sorted(p.name for p in (tmp_path / "export/02_eda").iterdir()) == ["manifest.json"]
    assert (tmp_path / "export/03_preprocess/kept.svg").is_file()


def test_reports_dir_follows_the_runners_override(tmp_path, params, monkeypatch):
    monkeypatch.delenv(export.REPORTS_DIR_ENV, raising=False)
    assert export.reports_dir(params) == params.path("reports_dir")
    monkeypatch.setenv(export.REPORTS_DIR_ENV, str(tmp_path))
    assert export.reports_dir(params) == tmp_path
    assert Exporter(params, "05_shap").dir == tmp_path / "export" / "05_shap"


def test_index_lists_every_stage_with_links(tmp_path, params):
    assert export.index_html(tmp_path) == "<p>No exports yet.</p>"
    exp = Exporter(params, "05_shap", root=tmp_path)
    exp.figure("beeswarm", _fig(), "SHAP <values>")
    exp.table("rules", pd.DataFrame({"rule": ["IF a"]}), "Rules")
    page = export.index_html(tmp_path)
    assert "<h3>05_shap</h3>" in page and "SHAP &lt;values&gt;" in page
    for f in ("beeswarm.svg", "beeswarm.pdf", "rules.tex", "rules.csv"):
        assert f"href='export/05_shap/{f}'" in page
    (tmp_path / "export/05_shap/manifest.json").write_text("{not json")
    assert "not an export manifest" in export.index_html(tmp_path)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_compiles(tmp_path):
    body = "\n".join([to_latex(_frame(), "Policies: 95 % & cost_usd", "tab:a"),
                      to_latex(pd.DataFrame([range(12)], columns=[f"c_{i}" for i in range(12)]), "wide", "tab:w"),
                      to_latex(pd.DataFrame({"x": np.arange(60) / 7}), "long", "tab:l"),
                      to_latex(pd.DataFrame({("known", "a_b"): [1.5, 2.5], ("none", "c"): [3, 4]},
                                            index=pd.MultiIndex.from_tuples([("run_1", "ecs"), ("run_1", "lambda")],
                                                                            names=["run_id", "platform"])),
                               "grouped", "tab:g")])
    (tmp_path / "t.tex").write_text("\\documentclass{article}\\usepackage{booktabs,graphicx,longtable}\n"
                                    "\\begin{document}\n" + body + "\n\\end{document}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
