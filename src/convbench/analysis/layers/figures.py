"""The layers figure: achieved GFLOP/s of each convolution shape's forward pass and backward halves, per framework."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from convbench.analysis.formatting import framework_name, setup_rank
from convbench.analysis.layerwise import layer_cells
from convbench.analysis.plotting import placeholder, plt, save, sns
from convbench.analysis.query import summarise
from convbench.analysis.roof import ABOVE, above_peak, framework_roofs
from convbench.analysis.study import Run

PHASES = {"forward": "forward", "backward_input": "backward to input", "backward_weight": "backward to weights"}
SHAPE = ["framework", "convs", "in_channels", "width", "kernel", "image_size"]


def layer_rates(df: pd.DataFrame) -> pd.DataFrame:
    """Per framework x convolution shape x phase: achieved FLOP/s (useful FLOPs, the taps inside the image, over the
    median; median over the shape's activations) and the range (lo, hi) that the time's IQR allows (FLOPs over
    median +/- IQR/2)."""
    times = summarise(layer_cells(df), "time") if len(df) else pd.DataFrame()
    if times.empty:
        return times
    times = times[times["phase"].isin(list(PHASES)) & times["flops_useful"].notna()]
    half, flops = times["iqr"].fillna(0) / 2, times["flops_useful"]
    times = times.assign(rate=flops / times["value"], lo=flops / (times["value"] + half),
                         hi=np.where(times["value"] > half, flops / (times["value"] - half).clip(lower=1e-30), np.nan))
    return (times.groupby([*SHAPE, "phase"], sort=False)[["rate", "lo", "hi"]].median().reset_index()
            .sort_values(["image_size", "in_channels", "width", "kernel"], ascending=[False, True, True, True]))


def draw_layers(run: Run, path: Path) -> Path:
    """Horizontal bars per convolution shape (rows) and phase (colour), one panel per framework, with IQR ranges and
    the device's GEMM roof (the best any framework measured) as a dashed line."""
    rates = layer_rates(run.tidy)
    if rates.empty:
        return placeholder(path, "No layer-wise cells in this run.")
    rates = rates.assign(Shape=[f"{c:.0f}→{o:.0f}, {k:.0f}×{k:.0f} at {s:.0f}×{s:.0f}" for c, o, k, s in
                                zip(rates["in_channels"], rates["width"], rates["kernel"], rates["image_size"])])
    frameworks = sorted(set(rates["framework"]), key=lambda f: setup_rank(f"{f}-"))
    shapes = list(dict.fromkeys(rates["Shape"]))
    phases = [p for p in PHASES if p in set(rates["phase"])]
    colors = dict(zip(PHASES, sns.color_palette("deep")[:3]))
    df = run.tidy
    roofs = framework_roofs(df)  # the device's: the best GEMM any framework's process measured on it, and its peak
    gemm, peak = (roofs[c].dropna() if len(roofs) else pd.Series(dtype=float) for c in ("gemm", "peak"))
    above = above_peak(df, "layers").merge(df.drop_duplicates("cell_id")[["cell_id", "in_channels", "width", "kernel",
                                                                          "image_size"]], on="cell_id")
    height = 0.8 / len(phases)
    fig, axes = plt.subplots(1, len(frameworks), figsize=(6.3, 0.15 * len(shapes) + 0.95),
                             sharey=True, sharex=True, squeeze=False)
    y = np.arange(len(shapes))
    for ax, framework in zip(axes[0], frameworks):
        rows = rates[rates["framework"] == framework].set_index(["Shape", "phase"])
        for i, phase in enumerate(phases):
            r = rows.xs(phase, level="phase").reindex(shapes)[["rate", "lo", "hi"]] / 1e9
            err = [(r["rate"] - r["lo"]).fillna(0), (r["hi"] - r["rate"]).fillna(0)]
            ax.barh(y + (i - (len(phases) - 1) / 2) * height, r["rate"], height=height, xerr=err, color=colors[phase],
                    label=PHASES[phase], error_kw={"elinewidth": 0.6, "capsize": 1, "ecolor": "0.25"})
        if framework in gemm:
            ax.axvline(gemm[framework] / 1e9, color="0.3", linestyle="--", linewidth=1, label="device GEMM roof")
        if framework in peak:
            ax.axvline(peak[framework] / 1e9, color="0.3", linestyle=":", linewidth=1.2, label="theoretical peak")
        for p in above[above["framework"] == framework].itertuples():  # a bug, marked so that nobody misses it
            row = shapes.index(f"{p.in_channels:.0f}→{p.width:.0f}, {p.kernel:.0f}×{p.kernel:.0f} at "
                               f"{p.image_size:.0f}×{p.image_size:.0f}")
            ax.annotate(f"{ABOVE.upper()} ({p.phase})", (p.achieved / 1e9, row), color="red", fontsize="x-small",
                        fontweight="bold", va="center")
        ax.set_title(f"{framework_name(framework)} (eager)")
        ax.set_xlabel("achieved rate (GFLOP/s)")
        ax.set_yticks(y, shapes)
        ax.grid(axis="y", visible=False)
    axes[0][0].invert_yaxis()
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(names), frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return save(fig, path)
