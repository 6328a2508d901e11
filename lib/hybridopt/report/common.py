"""What every stage's report shares: the platform colours, figure finishing and small display helpers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

PLATFORM_COLOURS = {"lambda": "#e07b00", "ecs": "#1f6fb4", "unknown": "#888888"}


def done(fig: plt.Figure) -> plt.Figure:
    fig.tight_layout()
    plt.close(fig)
    return fig


def markdown_list(items: list[str]) -> Any:
    from IPython.display import Markdown

    return Markdown("\n".join(f"- {s}" for s in items) if items else "_nothing to report_")


def payload_axis(ax: plt.Axes, sizes_kb: Iterable[float], min_ratio: float = 1.6) -> None:
    """A log x axis for payload sizes with a tick at the sizes present, labelled plainly (0.5, 10,
    1024) rather than as powers of ten; a size less than `min_ratio` times the previous tick gets
    none (its label would overlap); no minor ticks."""
    ticks: list[float] = []
    for s in sorted({float(s) for s in sizes_kb if s and s > 0}):
        if not ticks or s >= ticks[-1] * min_ratio:
            ticks.append(s)
    ax.set_xscale("log")
    if not ticks:
        return
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FixedFormatter([f"{t:g}" for t in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    if len(ticks) > 5:
        ax.tick_params(axis="x", labelrotation=45)
