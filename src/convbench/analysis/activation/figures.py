"""The activation study's figure: the forward and backward time per variant (its accuracies and gaps are tables, which
a figure would only repeat). One panel per unit; every variant keeps its colour and marker (what it holds equal to
ReLU), and its points are dodged so that intervals stay apart."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from convbench.analysis.activation import data
from convbench.analysis.formatting import setup_rank
from convbench.analysis.plotting import placeholder, plt, save, sns
from convbench.analysis.study import Run

MARKERS = {"reference": "o", "filters": "X", "width": "s", "params": "^", "other": "D"}
WIDTH, HEIGHT = 6.3, 1.75  # inches: the paper's line width, so that fonts print at their size; panels' height
LEGEND_ROW, LEGEND_COLUMNS = 0.22, 3  # inches per row of the legend under the panels


def styles(df: pd.DataFrame) -> dict[str, dict]:
    """Per arch: its legend label, colour and marker (by what it holds equal to ReLU), in the variants' order."""
    v = data.variants(df)
    colours = sns.color_palette("colorblind", len(v))
    return {r.arch: {"label": "ReLU" if r.k == 1 else f"maxout $k={r.k}$, {data.MATCHING[r.matching]}",
                     "color": colours[i], "marker": MARKERS[r.matching]} for i, r in enumerate(v.itertuples())}


def panels(units: pd.DataFrame, archs, sharey: bool = True):
    """One axis per unit (setup order) over a legend row per LEGEND_COLUMNS variants: the figure, (unit, label,
    axis) triples."""
    order = units.drop_duplicates("unit").set_index("unit")["Label"]
    names = sorted(order.index, key=setup_rank)
    rows = -(-len(archs) // LEGEND_COLUMNS)
    fig, axes = plt.subplots(1, len(names), figsize=(WIDTH, HEIGHT + LEGEND_ROW * rows), sharey=sharey,
                             squeeze=False)
    return fig, [(u, order[u], ax) for u, ax in zip(names, axes[0])]


def legend(fig, style: dict, archs) -> None:
    """One legend for all panels, under them; then the panels laid out above it."""
    handles = [Line2D([], [], color=style[a]["color"], marker=style[a]["marker"], linestyle="", markersize=6,
                      label=style[a]["label"]) for a in style if a in set(archs)]
    bottom = LEGEND_ROW * -(-len(handles) // LEGEND_COLUMNS) / fig.get_figheight()
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0), ncol=LEGEND_COLUMNS, frameon=False,
               handletextpad=0.2, columnspacing=1.2)
    fig.tight_layout(rect=(0, bottom + 0.01, 1, 1))


def dodge(n: int) -> np.ndarray:
    """Offsets that spread n points around 0, wider apart the fewer there are, within 0.75 of a category's slot."""
    width = min(0.75, 0.15 * (n - 1))
    return (np.arange(n) - (n - 1) / 2) * (width / max(n - 1, 1))


def activation_time(run: Run, path: Path) -> Path:
    """Median forward and backward time of a training step per variant, dodged within each phase; bars span the
    interquartile range of the repeats. One panel per unit, each with its own scale."""
    df = run.tidy
    times = data.times(df) if len(df) else pd.DataFrame()
    if times.empty:
        return placeholder(path, "No timed cells of the activation study in this run.")
    style = styles(df)
    archs = [a for a in style if a in set(times["arch"])]
    offset = dict(zip(archs, dodge(len(archs))))
    fig, axes = panels(times, archs, sharey=False)
    for unit, label, ax in axes:
        for arch in archs:
            rows = times[(times["unit"] == unit) & (times["arch"] == arch)]
            rows = rows.set_index("phase").reindex(data.PHASES).dropna(subset=["value"])
            if rows.empty:
                continue
            x = [data.PHASES.index(p) + offset[arch] for p in rows.index]
            s = style[arch]
            ax.errorbar(x, 1e3 * rows["value"], yerr=1e3 * rows["iqr"].fillna(0) / 2, color=s["color"],
                        marker=s["marker"], markersize=6, elinewidth=1, capsize=3, linestyle="")
        ax.set_xticks(range(len(data.PHASES)), [f"{p} pass" for p in data.PHASES])
        ax.set_xlim(-0.6, len(data.PHASES) - 0.4)
        ax.grid(axis="x", visible=False)
        ax.set_ylim(bottom=0)
        ax.set_title(label)
    axes[0][2].set_ylabel("median time per step (ms)")
    legend(fig, style, archs)
    return save(fig, path)
