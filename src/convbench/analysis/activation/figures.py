"""The activation study's figures: test accuracy against parameters, the train/test gap per training fraction, and
the forward and backward time per variant. One panel per unit; every variant keeps its colour and marker (what it
holds equal to ReLU) across figures, and its points are dodged so that intervals stay apart."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from convbench.analysis.activation import data
from convbench.analysis.formatting import setup_rank
from convbench.analysis.plotting import log_parameters_axis, placeholder, plt, save, sns
from convbench.analysis.study import Run

MARKERS = {"reference": "o", "filters": "X", "width": "s", "params": "^", "other": "D"}
WIDTH, HEIGHT = 6.3, 1.75  # inches: the paper's line width, so that fonts print at their size; panels' height
LEGEND_ROW, LEGEND_COLUMNS = 0.22, 3  # inches per row of the legend under the panels
NO_TRAINING = "No training cells of the activation study in this run."


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


def activation_accuracy(run: Run, path: Path) -> Path:
    """Test accuracy (mean and t interval over seeds, largest training fraction) against parameters per variant; an
    interval is cut at 100 %, which accuracy cannot pass."""
    df = run.tidy
    stats = data.seed_stats(df) if len(df) else pd.DataFrame()
    if stats.empty:
        return placeholder(path, NO_TRAINING)
    stats = stats[stats["train_fraction"] == stats["train_fraction"].max()]
    style = styles(df)
    fig, axes = panels(stats, set(stats["arch"]))
    for unit, label, ax in axes:
        for r in stats[stats["unit"] == unit].itertuples():
            mean, ci = 100 * r.test, 100 * (r.test_ci if pd.notna(r.test_ci) else 0)
            s = style[r.arch]
            ax.errorbar(r.params, mean, yerr=[[min(ci, mean)], [min(ci, 100 - mean)]], color=s["color"],
                        marker=s["marker"], markersize=6, elinewidth=1, capsize=3, linestyle="")
        log_parameters_axis(ax, stats["params"])
        ax.margins(x=0.2)
        ax.set_title(label)
        ax.set_xlabel("parameters (log scale)")
    axes[0][2].set_ylabel("test accuracy (%)")
    top = min(100, (100 * (stats["test"] + stats["test_ci"].fillna(0))).max())
    low = max(0, (100 * (stats["test"] - stats["test_ci"].fillna(0))).min())
    axes[0][2].set_ylim(low - 0.05 * (top - low + 1), 100 + 0.03 * (top - low + 1))
    legend(fig, style, stats["arch"])
    return save(fig, path)


def activation_gap(run: Run, path: Path) -> Path:
    """Train/test gap per training fraction and variant: mean over seeds with its t interval, the variants dodged
    around each fraction and joined across fractions by a thin line."""
    df = run.tidy
    stats = data.seed_stats(df) if len(df) else pd.DataFrame()
    if stats.empty:
        return placeholder(path, NO_TRAINING)
    style = styles(df)
    fractions = sorted(stats["train_fraction"].unique())
    archs = [a for a in style if a in set(stats["arch"])]
    offset = dict(zip(archs, dodge(len(archs))))
    fig, axes = panels(stats, archs)
    for unit, label, ax in axes:
        for arch in archs:
            rows = stats[(stats["unit"] == unit) & (stats["arch"] == arch)].sort_values("train_fraction")
            if rows.empty:
                continue
            x = [fractions.index(f) + offset[arch] for f in rows["train_fraction"]]
            s = style[arch]
            ax.errorbar(x, 100 * rows["gap"], yerr=100 * rows["gap_ci"].fillna(0), color=s["color"],
                        marker=s["marker"], markersize=6, elinewidth=1, capsize=3, linewidth=0.6, alpha=0.95)
        ax.axhline(0, color="0.5", linewidth=0.6)
        ax.set_xticks(range(len(fractions)), [f"{100 * f:g}" for f in fractions])
        ax.set_xlim(-0.6, len(fractions) - 0.4)
        ax.grid(axis="x", visible=False)
        ax.set_title(label)
        ax.set_xlabel("share of the training split (%)")
    axes[0][2].set_ylabel("train $-$ test (points)")
    legend(fig, style, archs)
    return save(fig, path)


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
