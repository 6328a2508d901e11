"""What every stage's report shares: the platform colours, figure finishing and small display helpers."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

PLATFORM_COLOURS = {"lambda": "#e07b00", "ecs": "#1f6fb4", "unknown": "#888888"}


def done(fig: plt.Figure) -> plt.Figure:
    fig.tight_layout()
    plt.close(fig)
    return fig


def markdown_list(items: list[str]) -> Any:
    from IPython.display import Markdown

    return Markdown("\n".join(f"- {s}" for s in items) if items else "_nothing to report_")
