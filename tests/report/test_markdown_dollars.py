"""Markdown the notebooks display never holds a bare `$`: two of them in a paragraph open TeX math in
Jupyter and in the HTML reports (MathJax), which swallows the text between them."""

from __future__ import annotations

import re

from hybridopt.report import closed_loop, decide

BARE_DOLLAR = re.compile(r"(?<!\\)\$")


def test_dollar_amounts_and_labels_are_escaped() -> None:
    assert decide._usd(0.01234) == r"\$0.01234" and decide._usd(-0.5) == r"-\$0.50000"
    doc = {"comparison": [{"metric": "bill_usd_per_1k", "policy": "a", "open": 0.01, "closed": 0.02, "disagree": True},
                          {"metric": "bill_usd_per_1k", "policy": "b", "open": 0.01, "closed": 0.01, "disagree": False},
                          {"metric": "p95_ms", "policy": "a", "open": 900.0, "closed": 950.0, "disagree": False}],
           "rankings": [{"policy": p, **{f"{m}_rank_{s}": r for m in closed_loop.METRIC_LABELS for s in ("open", "closed")}}
                        for r, p in enumerate(("a", "b"), start=1)]}
    text = closed_loop.disagreements_markdown(doc)
    assert "bill \\$/1k" in text and "lowest bill \\$/1k" in text
    assert not BARE_DOLLAR.search(text)
