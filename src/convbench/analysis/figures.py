"""Seaborn figures as PDF, each a function of the tidy table. Missing data gives a placeholder page, not a crash."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from convbench.analysis.tidy import setup_labels, summarise  # noqa: E402

sns.set_theme(context="paper", style="whitegrid", font_scale=0.9)
PHASES = ["forward", "backward", "optimizer"]


def placeholder(path: Path, text: str) -> Path:
    fig, ax = plt.subplots(figsize=(5, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def backward_vs_receptive_field(df: pd.DataFrame, path: Path) -> Path:
    """Forward and backward time against the receptive field; one conv (k x k) vs stacked convs by marker and line."""
    times = summarise(df, "time")
    times = times[times["phase"].isin(["forward", "backward"])]
    # Only studies that vary the receptive field say anything here.
    varying = times.groupby("study")["receptive_field"].nunique()
    times = times[times["study"].isin(varying[varying > 1].index)]
    if times.empty:
        return placeholder(path, "No timed cells with more than one receptive field in this run.")
    times = times.assign(Setup=setup_labels(times), 
        ms=times["value"] * 1e3, iqr_ms=times["iqr"] * 1e3,
        Convolutions=["single k x k" if d == 1 else f"{d} stacked {k}x{k}" for k, d in zip(times["kernel"], times["depth"])])
    g = sns.relplot(data=times, x="receptive_field", y="ms", col="phase",
                    col_order=[p for p in ["forward", "backward"] if p in set(times["phase"])],
                    hue="Setup", style="Convolutions", kind="line", markers=True, dashes=False, markersize=7,
                    errorbar=None, facet_kws={"sharey": False}, height=2.6, aspect=1.1)
    for phase, ax in g.axes_dict.items():
        rows = times[times["phase"] == phase]
        ax.errorbar(rows["receptive_field"], rows["ms"], yerr=rows["iqr_ms"] / 2, fmt="none", ecolor="0.3",
                    elinewidth=0.8, capsize=2, zorder=1)
        ax.set_xticks(sorted(times["receptive_field"].unique()))
    g.set_axis_labels("receptive field of the first block (pixels)", "median time per step (ms)")
    g.set_titles("{col_name} pass")
    g.savefig(path)
    plt.close(g.figure)
    return path


def accuracy_vs_params(df: pd.DataFrame, path: Path) -> Path:
    accuracy = summarise(df, "test_accuracy")
    if accuracy.empty:
        return placeholder(path, "No training cells in this run.")
    accuracy = accuracy.assign(percent=100 * accuracy["value"],
                               Framework=setup_labels(accuracy))
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    sns.scatterplot(data=accuracy.rename(columns={"arch": "Architecture"}), x="params", y="percent", hue="Architecture",
                    style="Framework", s=60, ax=ax)
    ax.set_xscale("log")
    ax.set_xlabel("parameters (network trained on the data set)")
    ax.set_ylabel("final test accuracy (%)")
    ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize="small", frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def phases(df: pd.DataFrame, path: Path) -> Path:
    """Stacked forward / backward / optimizer bars per architecture, one panel per setup."""
    times = summarise(df, "time")
    times = times[times["phase"].isin(PHASES)]
    if times.empty:
        return placeholder(path, "No timed cells in this run.")
    times = times.assign(Setup=setup_labels(times), ms=times["value"] * 1e3)
    panels = list(dict.fromkeys(times["Setup"]))
    archs = list(dict.fromkeys(times["arch"]))  # summarise orders them by study and shape
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), sharey=True, squeeze=False)
    for ax, setup in zip(axes[0], panels):
        bars = (times[times["Setup"] == setup].pivot_table(index="arch", columns="phase", values="ms", aggfunc="median")
                .reindex(index=archs, columns=[p for p in PHASES if p in set(times["phase"])]))
        bars.plot.bar(stacked=True, ax=ax, width=0.75, legend=ax is axes[0][-1], color=sns.color_palette()[:3])
        ax.set_title(setup)
        ax.set_xlabel("")
        ax.set_ylabel("median time per step (ms)")
        ax.tick_params(axis="x", labelrotation=45)
        plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    axes[0][-1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


FIGURES = {"backward_vs_receptive_field": backward_vs_receptive_field, "accuracy_vs_params": accuracy_vs_params,
           "phases": phases}


def all_figures(df: pd.DataFrame, out_dir) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [figure(df, out / f"{name}.pdf") for name, figure in FIGURES.items()]
