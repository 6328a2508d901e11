"""What every stage's report shares: the platform colours, figure finishing and small display helpers."""

from __future__ import annotations

import math
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


#: Inches a tick label of n characters needs on a payload axis (10 pt sans serif), the gap kept
#: between two, and the spacing labels rotated by 45 degrees need.
LABEL_IN_PER_CHAR = 0.088
LABEL_GAP_IN = 0.08
ROTATED_LABEL_IN = 0.22


def _spaced(sizes: list[float], inches_per_decade: float, rotated: bool) -> list[float]:
    """The sizes whose labels fit beside the previous kept one."""
    ticks: list[float] = []
    for size in sizes:
        if ticks:
            needed = ROTATED_LABEL_IN if rotated else \
                LABEL_IN_PER_CHAR * (len(f"{size:g}") + len(f"{ticks[-1]:g}")) / 2 + LABEL_GAP_IN
            if math.log10(size / ticks[-1]) * inches_per_decade < needed:
                continue
        ticks.append(size)
    return ticks


def payload_axis(ax: plt.Axes, sizes_kb: Iterable[float]) -> None:
    """A log x axis for payload sizes from a third below the smallest to a third above the largest,
    with a tick at each size present, labelled plainly (0.5, 10, 1024) rather than as powers of ten.
    Labels are turned by 45 degrees when they do not all fit level at the axes' width; a size still
    too close to the previous tick gets none."""
    sizes = sorted({float(s) for s in sizes_kb if s and s > 0})
    ax.set_xscale("log")
    if not sizes:
        return
    lo, hi = sizes[0] / 1.3, sizes[-1] * 1.3
    ax.set_xlim(lo, hi)
    inches_per_decade = ax.get_position().width * ax.figure.get_figwidth() / math.log10(hi / lo)
    ticks = _spaced(sizes, inches_per_decade, rotated=False)
    rotated = len(ticks) < len(sizes)
    if rotated:
        ticks = _spaced(sizes, inches_per_decade, rotated=True)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FixedFormatter([f"{t:g}" for t in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    if rotated:
        ax.tick_params(axis="x", labelrotation=45)
