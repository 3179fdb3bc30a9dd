"""Matplotlib on the Agg backend with the paper's seaborn theme, and the page a figure shows when its data is missing."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from convbench.files import replacing  # noqa: E402

sns.set_theme(context="paper", style="whitegrid", font_scale=0.9)

__all__ = ["plt", "sns", "placeholder", "save", "log_parameters_axis"]


def placeholder(path: Path, text: str) -> Path:
    """A small page that says why the figure has nothing to show, instead of a crash."""
    fig, ax = plt.subplots(figsize=(5, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    return save(fig, path)


def save(fig, path: Path, **savefig) -> Path:
    """Save and close a figure; written to a temporary file first, then renamed (files.replacing)."""
    path = Path(path)
    with replacing(path) as tmp:
        fig.savefig(tmp, **savefig)
    plt.close(fig)
    return path


def log_parameters_axis(ax, values) -> None:
    """A log x axis of parameter counts with a few readable ticks: 1, 2 and 5 times a power of ten where the data
    span them, else the data's own ends, as '12k'. (matplotlib's LogLocator crowds a range narrower than a decade.)"""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    ax.set_xscale("log")
    if not values:
        return
    lo, hi = min(values), max(values)
    nice = [m * 10 ** e for e in range(int(math.log10(lo)) - 1, int(math.log10(hi)) + 2) for m in (1, 2, 5)]
    ticks = [t for t in nice if lo / 1.15 <= t <= hi * 1.15]
    if len(ticks) < 2:
        ticks = sorted({float(f"{lo:.2g}"), float(f"{hi:.2g}")})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1e3:g}k" if x >= 1e3 else f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
