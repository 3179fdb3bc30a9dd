"""Time against batch, for any run's cells of the overhead study (the run's own, or a reference GPU run's): the median
time per setup, network, image size, batch and phase; a line a + b x batch per setup and phase with intervals on a (the
per-step overhead: launching operations, Python, the framework's dispatch) and b (the per-sample cost: arithmetic);
the figure of time against batch with the fitted lines, and the table of a and b."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize

from convbench.analysis.formatting import setup_label, setup_rank, sig3, signed
from convbench.analysis.latex import booktabs, placeholder
from convbench.analysis.plotting import placeholder as empty_figure
from convbench.analysis.plotting import plt, save, sns
from convbench.analysis.query import summarise
from convbench.analysis.stats import LEVEL, t_quantile

NAME = "overhead"  # the study whose cells sweep the batch
PHASES = ["forward", "backward", "optimizer", "step"]
SHOWN = ("backward", "step")  # the phases of the figure and the table: the claim's, and the whole step
KEYS = ["setup", "framework", "engine", "arch", "image_size"]


def sweep_times(df: pd.DataFrame) -> pd.DataFrame:
    """Median time per setup x arch x image size x batch x phase of the study's ok speed cells (seeds pooled)."""
    rows = df[(df["study"] == NAME) & (df["task"] == "speed")] if len(df) else df
    if len(rows) and "resolved" in rows:  # a derived phase the data cannot tell from zero: neither drawn nor fitted
        rows = rows[rows["resolved"].astype("boolean").fillna(True).astype(bool)]
    times = summarise(rows, "time") if len(rows) else pd.DataFrame()
    if times.empty:
        return pd.DataFrame(columns=[*KEYS, "batch_size", "phase", "value", "iqr"])
    times = times[times["phase"].isin(PHASES)]
    return times[[*KEYS, "batch_size", "phase", "value", "iqr"]].sort_values(
        ["setup", "arch", "image_size", "phase", "batch_size"], key=lambda c: c.map(setup_rank) if c.name == "setup"
        else c).reset_index(drop=True)


FIT_KIND = "$t$ interval of the weighted least-squares fit"  # how fit_line's intervals are named in the paper


def fit_line(batch, seconds, level: float = LEVEL) -> dict:
    """seconds = a + b x batch by weighted least squares, every point weighted as if its relative error were the same
    (sigma proportional to the time: a step at batch 256 is 100 times one at batch 1, and its noise too), with t
    intervals (n - 2 degrees of freedom) on a and b from the covariance scaled by the residuals (scipy's curve_fit)."""
    x, y = np.asarray(batch, float), np.asarray(seconds, float)
    out = dict.fromkeys(["a", "a_lo", "a_hi", "b", "b_lo", "b_hi"], np.nan) | {"n": len(x)}
    if len(x) < 3 or len(set(x)) < 3 or not (y > 0).all():
        return out
    (a, b), cov = optimize.curve_fit(lambda v, a, b: a + b * v, x, y, p0=(y.min(), (y.max() - y.min()) / np.ptp(x)),
                                     sigma=y, absolute_sigma=False)
    half = t_quantile(len(x) - 1, level) * np.sqrt(np.diag(cov))  # t_quantile(n) has n - 1 degrees of freedom
    return out | {"a": a, "a_lo": a - half[0], "a_hi": a + half[0], "b": b, "b_lo": b - half[1], "b_hi": b + half[1]}


def fits(df: pd.DataFrame) -> pd.DataFrame:
    """fit_line per setup x arch x image size x phase over the batches of the sweep."""
    times = sweep_times(df)
    rows = [dict(zip([*KEYS, "phase"], keys)) | fit_line(g["batch_size"], g["value"])
            for keys, g in times.groupby([*KEYS, "phase"], sort=False)]
    return pd.DataFrame(rows, columns=[*KEYS, "phase", "a", "a_lo", "a_hi", "b", "b_lo", "b_hi", "n"])


def label(row) -> str:
    """'PyTorch eager', plus the network and image size where the sweep holds several."""
    return setup_label(row["framework"], row["engine"])


def draw_sweep(run, path: Path) -> Path:
    """Time against batch, log-log, one panel per shown phase, one colour per setup (line style per network and image
    size where there are several): medians with their IQR, and the fitted a + b x batch."""
    times = sweep_times(run.tidy)
    if times.empty:
        return empty_figure(path, "No cells of the overhead study in this run.")
    lines = fits(run.tidy)
    setups = sorted(set(times["setup"]), key=setup_rank)
    colors = dict(zip(setups, sns.color_palette("deep", len(setups))))
    shapes = list(dict.fromkeys(zip(times["arch"], times["image_size"])))
    styles = dict(zip(shapes, ["-", "--", ":", "-."] * 3))
    fig, axes = plt.subplots(1, len(SHOWN), figsize=(6.3, 2.6), squeeze=False)
    grid = np.geomspace(times["batch_size"].min(), times["batch_size"].max(), 50)
    for ax, phase in zip(axes[0], SHOWN):
        for (setup, arch, size), g in times[times["phase"] == phase].groupby(["setup", "arch", "image_size"]):
            half = g["iqr"].fillna(0) / 2 * 1e3
            ax.errorbar(g["batch_size"], g["value"] * 1e3, yerr=half, fmt="o", color=colors[setup], markersize=3,
                        elinewidth=0.8, capsize=1.5)
            fit = lines[(lines["setup"] == setup) & (lines["arch"] == arch) & (lines["image_size"] == size)
                        & (lines["phase"] == phase)]
            if len(fit) and pd.notna(fit["a"].iloc[0]):
                ax.plot(grid, (fit["a"].iloc[0] + fit["b"].iloc[0] * grid) * 1e3, styles[(arch, size)],
                        color=colors[setup], linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(phase)
        ax.set_xlabel("batch")
    axes[0][0].set_ylabel("time (ms)")
    first = times.drop_duplicates("setup").set_index("setup")
    handles = [plt.Line2D([], [], color=colors[s], marker="o", label=label(first.loc[s])) for s in setups]
    if len(shapes) > 1:
        handles += [plt.Line2D([], [], color="0.3", linestyle=styles[sh], label=f"{sh[0]}, {sh[1]:.0f}x{sh[1]:.0f} px")
                    for sh in shapes]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0.1 * -(-len(handles) // 4), 1, 1))
    return save(fig, path)


def interval(x, lo, hi, scale: float) -> str:
    return "--" if pd.isna(x) else f"{num(x * scale)} [{num(lo * scale)}, {num(hi * scale)}]"


def num(x: float) -> str:
    """Three significant digits with a minus sign (a fitted overhead or its interval may dip below zero)."""
    return signed(sig3(x))


def fit_table(run, tag: str = "tab:overhead", prefix: str = "") -> str:
    """The table of a and b per setup; `prefix` opens the caption (a reference run names itself there)."""
    caption = (f"{prefix}Step time against batch: the fitted per-step overhead $a$ (ms) and per-sample cost $b$ "
               f"($\\mu$s per example) of $a + b \\times$ batch [{LEVEL * 100:.0f}\\,\\% {FIT_KIND}], per engine, "
               f"for the backward pass and the whole step; weighted least squares over the batches of the sweep.")
    f = fits(run.tidy)
    if f.empty:
        return placeholder(caption, tag, "This run has no cells of the overhead study.")
    several = f[["arch", "image_size"]].drop_duplicates().shape[0] > 1
    rows = []
    for keys, g in f.groupby(["setup", "arch", "image_size"], sort=False):
        first, phase = g.iloc[0], g.set_index("phase")
        row = {"Setup": label(first) + (f" ({first['arch']}, {first['image_size']:.0f})" if several else "")}
        for p in SHOWN:
            r = phase.loc[p] if p in phase.index else None
            row[f"{p.capitalize()} a"] = interval(r["a"], r["a_lo"], r["a_hi"], 1e3) if r is not None else "--"
            row[f"{p.capitalize()} b"] = interval(r["b"], r["b_lo"], r["b_hi"], 1e6) if r is not None else "--"
        rows.append(row)
    table = pd.DataFrame(rows)
    return booktabs(table, caption, tag, "l" + "r" * (len(table.columns) - 1), size=r"\footnotesize",
                    raw=tuple(table.columns[1:]))  # the numbers carry their own minus signs ($-$)
