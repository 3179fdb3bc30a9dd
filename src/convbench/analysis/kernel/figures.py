"""The kernel study's figures, each of its own networks only: time against the receptive field and accuracy against
parameters (each phase's times are the speed table's, not a figure's). One k x k convolution and stacked 3x3
convolutions keep one marker each in both; spread is shown everywhere (IQR of the timed repeats, t interval over
seeds)."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from convbench.analysis.formatting import NUMBER_WORDS, setup_rank
from convbench.analysis.kernel.values import STUDY, times
from convbench.analysis.plotting import log_parameters_axis, placeholder, plt, save, sns
from convbench.analysis.query import datasets, full_data, seed_summary, setup_labels
from convbench.analysis.study import Run

WIDTH = 6.3  # inches: the paper's \linewidth, so that fonts print at their size
MARKERS = {1: "o", 2: "s", 3: "^", 4: "D"}  # by the depth of the first block: single, two stacked, three stacked


def kind(depth, kernel=None) -> str:
    """'one k×k', 'two stacked 3×3' (the kernel where known)."""
    k = f"{int(kernel)}×{int(kernel)}" if kernel is not None and pd.notna(kernel) else "k×k"
    return f"one {k}" if depth == 1 else f"{NUMBER_WORDS.get(int(depth), int(depth))} stacked {k}"


def stack_kernel(frame: pd.DataFrame, depth) -> float | None:
    kernels = frame.loc[frame["depth"] == depth, "kernel"].unique()
    return kernels[0] if depth != 1 and len(kernels) == 1 else None


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """Setup labels, and the setups in the paper's order."""
    frame = frame.assign(Setup=setup_labels(frame), rank=frame["setup"].map(setup_rank))
    return frame.sort_values("rank", kind="stable")


def backward_vs_receptive_field(run: Run, path: Path) -> Path:
    """Forward and backward time against the receptive field: colour = setup, marker = single or stacked; lines
    join the networks of one kind; bars span the IQR."""
    t = times(run)
    t = t[t["phase"].isin(["forward", "backward"])]
    if t.empty or t["receptive_field"].nunique() < 2:
        return placeholder(path, "No timed cells of the kernel study with more than one receptive field in this run.")
    t = labelled(t).assign(ms=t["value"] * 1e3, err=t["iqr"].fillna(0) * 1e3 / 2)
    setups = list(dict.fromkeys(t["Setup"]))
    colors = dict(zip(setups, sns.color_palette(n_colors=len(setups))))
    phases = [p for p in ["forward", "backward"] if p in set(t["phase"])]
    fig, axes = plt.subplots(1, len(phases), figsize=(WIDTH, 2.5), squeeze=False)
    for ax, phase in zip(axes[0], phases):
        for (setup, depth), rows in t[t["phase"] == phase].groupby(["Setup", "depth"], sort=False):
            rows = rows.sort_values("receptive_field")
            ax.errorbar(rows["receptive_field"], rows["ms"], yerr=rows["err"], color=colors[setup],
                        marker=MARKERS.get(int(depth), "x"), linestyle="-" if depth == 1 else "--", markersize=5,
                        linewidth=1, elinewidth=0.8, capsize=2)
        ax.set_xticks(sorted(t["receptive_field"].unique()))
        ax.set_title(f"{phase} pass")
        ax.set_xlabel("receptive field, first block (pixels)")
        ax.set_ylim(bottom=0)
    axes[0][0].set_ylabel("median time per step (ms)")
    handles = [plt.Line2D([], [], color=colors[s], linewidth=1.5, label=s) for s in setups]
    handles += [plt.Line2D([], [], color="0.3", marker=MARKERS.get(int(d), "x"), linestyle="-" if d == 1 else "--",
                           markersize=5, label=kind(d, stack_kernel(t, d))) for d in sorted(t["depth"].unique())]
    fig.legend(handles=handles, loc="center right", frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    return save(fig, path)


def accuracy_vs_params(run: Run, path: Path) -> Path:
    """Test accuracy against parameters, one panel per setup: mean and t interval over seeds per network, at the
    largest training fraction; colour = receptive field, marker = one or stacked convolutions, a legend key each."""
    df = run.study(STUDY)
    stats = seed_summary(full_data(df), "test_accuracy") if len(df) else pd.DataFrame()
    if stats.empty:
        return placeholder(path, "No training cells of the kernel study in this run.")
    trained = df[df["params"].notna() & (df["task"] == "train")]  # the trained networks' counts: the head per data set
    shape = trained.assign(data=datasets(trained)).drop_duplicates(["arch", "data"]).set_index(["arch", "data"])[
        ["params", "kernel", "depth", "receptive_field", "width"]]
    stats = labelled(stats.assign(data=datasets(stats)).join(shape, on=["arch", "data"])).sort_values(
        ["rank", "receptive_field", "depth", "width"])
    if stats["dataset"].nunique() > 1:  # a panel per setup and data set: accuracies on different data never share one
        stats = stats.assign(Setup=stats["Setup"] + ", " + datasets(stats))
    stats = stats.assign(percent=100 * stats["mean"], ci=100 * stats["ci"].fillna(0))
    # A t interval over few seeds can reach past 100 %; accuracy cannot: bars stop at 0 and 100.
    stats = stats.assign(lo=(stats["percent"] - stats["ci"]).clip(lower=0),
                         hi=(stats["percent"] + stats["ci"]).clip(upper=100))
    setups = list(dict.fromkeys(stats["Setup"]))
    fields = sorted(stats["receptive_field"].unique())
    colors = dict(zip(fields, sns.color_palette("colorblind", n_colors=len(fields))))
    style = {row.arch: dict(color=colors[row.receptive_field], marker=MARKERS.get(int(row.depth), "x"))
             for row in stats.drop_duplicates("arch").itertuples()}
    columns = len(setups) if len(setups) <= 2 else 2  # four panels in a row left their titles overlapping
    rows = -(-len(setups) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(WIDTH, 2.4 * rows), sharey=True, squeeze=False)
    for ax in axes.flat[len(setups):]:
        ax.set_visible(False)
    for ax, setup in zip(axes.flat, setups):
        for row in stats[stats["Setup"] == setup].itertuples():
            look = style[row.arch]
            ax.errorbar(row.params, row.percent, yerr=[[row.percent - row.lo], [row.hi - row.percent]],
                        color=look["color"], marker=look["marker"], markersize=5, elinewidth=0.8, capsize=2)
        log_parameters_axis(ax, stats["params"])
        ax.margins(x=0.15)
        ax.set_title(setup)
        ax.set_xlabel("parameters")
    for line in axes:
        line[0].set_ylabel("test accuracy (%)")
    top = min(101, 10 * math.ceil((min(100, stats["hi"].max()) + 1) / 10))  # up to a labelled tick: 100 near the top
    axes[0][0].set_ylim(max(0, stats["lo"].min() - 2), top)
    # two keys, not one entry per network: a colour per receptive field, a marker per kind of block (the networks'
    # names are the pairs table's; one entry each made a legend of 14 that no reader could match to its points)
    handles = [plt.Line2D([], [], color=colors[f], marker="o", linestyle="", label=f"{f:g}×{f:g} field")
               for f in fields]
    handles += [plt.Line2D([], [], color="0.3", marker=MARKERS.get(int(d), "x"), linestyle="",
                           label=kind(d, stack_kernel(stats, d))) for d in sorted(stats["depth"].unique())]
    fig.legend(handles=handles, loc="center right", frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    return save(fig, path)
