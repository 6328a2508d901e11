"""Every pipeline notebook follows the house rules: the first code cell is tagged `parameters` and
holds the literals `profile = "quick"` and `force = False`; no cell defines a function or a class;
outputs and execution counts are stripped (the executed copy under reports/ is the run record)."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
from hybridopt import paths

NOTEBOOKS = sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def parameters(source: str) -> dict[str, object]:
    """The names a parameters cell binds to literals; anything else in it is an error."""
    out: dict[str, object] = {}
    for stmt in ast.parse(source).body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            raise AssertionError(f"line {stmt.lineno}: only `name = literal` assignments belong in parameters")
        out[stmt.targets[0].id] = ast.literal_eval(stmt.value)  # ValueError for anything not a literal
    return out


def rule_breaks(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if not code:
        return ["no code cells"]
    broken = []
    first_i, first = code[0]
    if "parameters" not in first.metadata.get("tags", []):
        broken.append(f"cell {first_i}: the first code cell is not tagged `parameters`")
    try:
        declared = parameters(first.source)
        if declared.get("profile") != "quick" or declared.get("force") is not False:
            broken.append(f"cell {first_i}: parameters are {declared}, expected profile = \"quick\" and force = False")
    except (AssertionError, ValueError, SyntaxError) as exc:
        broken.append(f"cell {first_i}: parameters cell: {exc}")
    for i, cell in code:
        if i != first_i and "parameters" in cell.metadata.get("tags", []):
            broken.append(f"cell {i}: a second cell tagged `parameters`")
        try:
            tree = ast.parse(cell.source)
        except SyntaxError as exc:
            broken.append(f"cell {i}: not plain Python ({exc.msg}, line {exc.lineno})")
            continue
        for node in ast.walk(tree):
            if isinstance(node, DEFINITIONS):
                what = "lambda" if isinstance(node, ast.Lambda) else f"{type(node).__name__} {node.name}"
                broken.append(f"cell {i}, line {node.lineno}: defines a {what} (belongs in lib/hybridopt)")
        for j, stmt in enumerate(tree.body[:-1]):   # only a cell's last expression is shown by itself
            if (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
                    and isinstance(stmt.value.func, ast.Attribute) and stmt.value.func.attr in ("figure", "table")):
                broken.append(f"cell {i}, line {stmt.lineno}: `{stmt.value.func.attr}(...)` is not the cell's last "
                              "expression: it is exported but not shown (wrap it in display)")
        if cell.get("outputs"):
            broken.append(f"cell {i}: {len(cell.outputs)} outputs not stripped")
        if cell.get("execution_count") is not None:
            broken.append(f"cell {i}: execution count {cell.execution_count} not stripped")
    return broken


def test_the_pipeline_has_its_nine_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07", "08", "09"], NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_follows_the_house_rules(path):
    assert rule_breaks(path) == []


def test_the_rules_catch_each_break(tmp_path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "full"\nforce = False\nimport os')
    params.metadata["tags"] = ["parameters"]
    helper = nbformat.v4.new_code_cell("def helper(x):\n    return x\n\nclass Thing:\n    pass")
    key = nbformat.v4.new_code_cell("sorted([3, 1], key=lambda v: -v)")
    ran = nbformat.v4.new_code_cell("print(1)", execution_count=3,
                                    outputs=[nbformat.v4.new_output("stream", name="stdout", text="1\n")])
    magic = nbformat.v4.new_code_cell("%time print(1)")
    hidden = nbformat.v4.new_code_cell('exp.figure("f", fig, "c")\nexp.table("t", df, "c")')
    nb.cells = [nbformat.v4.new_markdown_cell("# x"), params, helper, key, ran, magic, hidden]
    path = tmp_path / "99_bad.ipynb"
    nbformat.write(nb, path)
    broken = "\n".join(rule_breaks(path))
    assert "parameters cell: line 3: only `name = literal`" in broken
    assert "defines a FunctionDef helper" in broken and "defines a ClassDef Thing" in broken
    assert "defines a lambda" in broken
    assert "cell 4: 1 outputs not stripped" in broken and "cell 4: execution count 3 not stripped" in broken
    assert "cell 5: not plain Python" in broken
    assert "cell 6, line 1: `figure(...)` is not the cell's last expression" in broken and "cell 6, line 2" not in broken

    params.source = 'profile = "full"\nforce = True'
    nbformat.write(nb, path)
    assert "expected profile = \"quick\" and force = False" in "\n".join(rule_breaks(path))
    params.metadata["tags"] = []
    nbformat.write(nb, path)
    assert "the first code cell is not tagged `parameters`" in "\n".join(rule_breaks(path))
