"""The overhead study: one network timed at several batches in every engine, to tell the per-step overhead (launching
operations, Python, the framework's dispatch) from the per-sample cost (arithmetic). A line a + b x batch per engine and
phase with intervals on a and b (fit.py), the figure of time against batch with the fits, the table of a and b, and the
backward claim of the engines study at every batch: where in (engine, batch) space one framework's backward pass is
several times faster than the other's."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from convbench.analysis.formatting import (SEVERAL, SEVERAL_FASTER, SEVERAL_SLOWER, escape, flag, ratio, setup_label,
                                           setup_rank, sig3, signed, words)
from convbench.analysis.latex import booktabs, placeholder
from convbench.analysis.overhead.fit import CLAIM, NAME, claim_space, fit_line, fits, sweep_times
from convbench.analysis.plotting import placeholder as empty_figure
from convbench.analysis.plotting import plt, save, sns
from convbench.analysis.stats import LEVEL, Verdict
from convbench.analysis.study import Figure, Run, Study, Table

SHOWN = ("backward", "step")  # the phases of the figure and the main table: the claim's, and the whole step


def label(row) -> str:
    """'PyTorch eager', plus the network and image size where the sweep holds several."""
    return setup_label(row["framework"], row["engine"])


def draw_overhead(run: Run, path: Path) -> Path:
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
        handles += [plt.Line2D([], [], color="0.3", linestyle=styles[sh], label=f"{sh[0]} at {sh[1]}") for sh in shapes]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0.1 * -(-len(handles) // 4), 1, 1))
    return save(fig, path)


def interval(x, lo, hi, scale: float) -> str:
    return "--" if pd.isna(x) else f"{num(x * scale)} [{num(lo * scale)}, {num(hi * scale)}]"


def num(x: float) -> str:
    """Three significant digits with a minus sign (a fitted overhead or its interval may dip below zero)."""
    return signed(sig3(x))


def fit_table(run: Run, tag: str = "tab:overhead", where: str = "") -> str:
    caption = (f"{where}Step time against batch: the fitted per-step overhead $a$ (ms) and per-sample cost $b$ ($\\mu$s "
               f"per example) of $a + b \\times$ batch [{LEVEL * 100:.0f}\\,\\% interval], per engine, for the "
               f"backward pass and the whole step; weighted least squares over the batches of the sweep.")
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
    return booktabs(table, caption, tag, "l" + "r" * (len(table.columns) - 1), size=r"\footnotesize")


def claim_table(run: Run) -> str:
    caption = (f"The backward claim at every batch of the sweep: backward time of PyTorch over TensorFlow per engine "
               f"pair, ratio of the medians [{LEVEL * 100:.0f}\\,\\% interval]. Bold: several times ($\\geq "
               f"{SEVERAL:g}\\times$) faster or slower. \\emph{{not resolved}}: a derived backward pass (a difference "
               f"of two graph programs) that the data cannot tell from zero.")
    c = claim_space(run.tidy, run.samples)
    if c.empty:
        return placeholder(caption, "tab:overhead-claim", "This run has no PyTorch and TensorFlow overhead cells.")
    text = [r"\emph{not resolved}" if not ok else
            rf"\textbf{{{ratio(r)} [{ratio(lo)}, {ratio(hi)}]}}" if w in (SEVERAL_SLOWER, SEVERAL_FASTER) else
            f"{ratio(r)} [{ratio(lo)}, {ratio(hi)}]"
            for r, lo, hi, w, ok in zip(c["ratio"], c["lo"], c["hi"], c["word"], c["resolved"])]
    c = c.assign(Pair=[f"{setup_label(CLAIM[0], a)} / {setup_label(CLAIM[1], b)}"
                       + (f" ({arch}, {size:.0f})" if c[["arch", "image_size"]].drop_duplicates().shape[0] > 1 else "")
                       for a, b, arch, size in zip(c["engine_a"], c["engine_b"], c["arch"], c["image_size"])],
                 Batch=c["batch_size"].map(lambda b: f"batch {b:.0f}"), text=text)
    table = c.pivot_table(index="Pair", columns="Batch", values="text", aggfunc="first", sort=False)
    table = table.fillna("--").reset_index().rename_axis(columns=None)
    return booktabs(table, caption, "tab:overhead-claim", "l" + "r" * (len(table.columns) - 1),
                    raw=tuple(table.columns[1:]), size=r"\scriptsize", colsep="3pt")


def overhead_values(run: Run) -> dict[str, str]:
    """The sweep's batches and network; per shown phase the smallest and largest overhead a and per-sample cost b over
    the setups (with the setup); where the claim holds in (engine, batch) space."""
    times, f = sweep_times(run.tidy), fits(run.tidy)
    values = {f"{NAME}/batches": words(f"{b:.0f}" for b in sorted(times["batch_size"].unique())) or "--",
              f"{NAME}/archs": words(escape(a) for a in dict.fromkeys(times["arch"])) or "--",
              f"{NAME}/setups": str(times["setup"].nunique()), f"{NAME}/fitted": flag(f["a"].notna().any())}
    for phase in SHOWN:
        rows = f[(f["phase"] == phase)].dropna(subset=["a"])
        for name, scale, unit in (("a", 1e3, "ms"), ("b", 1e6, "us")):
            for end, pick in (("min", "idxmin"), ("max", "idxmax")):
                key = f"{NAME}/{phase}/{name}-{end}"
                if rows.empty:
                    values |= {f"{key}-{unit}": "--", f"{key}-lo": "--", f"{key}-hi": "--", f"{key}-setup": "--"}
                    continue
                r = rows.loc[getattr(rows[name], pick)()]
                values |= {f"{key}-{unit}": num(r[name] * scale), f"{key}-lo": num(r[f"{name}_lo"] * scale),
                           f"{key}-hi": num(r[f"{name}_hi"] * scale), f"{key}-setup": escape(label(r))}
    c = claim_space(run.tidy, run.samples)
    holds = c[c["word"].isin([SEVERAL_SLOWER, SEVERAL_FASTER])]
    largest, smallest = (c["batch_size"].max(), c["batch_size"].min()) if len(c) else (np.nan, np.nan)
    return values | {
        f"{NAME}/claim/tested": flag(len(c)), f"{NAME}/claim/points": str(int(c["resolved"].sum())),
        f"{NAME}/claim/holds": str(len(holds)), f"{NAME}/claim/holds-any": flag(len(holds)),
        f"{NAME}/claim/holds-batches": words(f"{b:.0f}" for b in sorted(holds["batch_size"].unique())) or "none",
        f"{NAME}/claim/smallest-batch": f"{smallest:.0f}" if len(c) else "--",
        f"{NAME}/claim/largest-batch": f"{largest:.0f}" if len(c) else "--",
        f"{NAME}/claim/holds-at-smallest": str(int((holds["batch_size"] == smallest).sum())),
        f"{NAME}/claim/holds-at-largest": str(int((holds["batch_size"] == largest).sum())),
        f"{NAME}/claim/pairs": str(len(c[["engine_a", "engine_b", "arch", "image_size"]].drop_duplicates()))}


def overhead_verdicts(run: Run) -> list[Verdict]:
    """One Verdict per engine pair and batch (keys overhead/claim/<torch-e>-over-<tensorflow-e>/<arch>-s<size>-b<batch>/
    ratio)."""
    c = claim_space(run.tidy, run.samples)
    return [Verdict(f"{NAME}/claim/{CLAIM[0]}-{r.engine_a}-over-{CLAIM[1]}-{r.engine_b}/{r.arch}-s{r.image_size:.0f}-"
                    f"b{r.batch_size:.0f}/ratio", f"{CLAIM[0]}-{r.engine_a}", f"{CLAIM[1]}-{r.engine_b}",
                    f"backward time on {r.arch} at batch {r.batch_size:.0f}", r.ratio, r.lo, r.hi, r.word, "ratio",
                    int(r.n)) for r in c.itertuples()]


STUDY = Study(
    NAME, "Overhead against per-sample cost",
    figures=(Figure("overhead", draw_overhead,
                    "Overhead against per-sample cost: time of the backward pass and of the whole step against the "
                    "batch, log-log, per engine, with the fitted a + b x batch."),),
    tables=(Table("overhead", fit_table), Table("overhead-claim", claim_table)),
    values=overhead_values,
    verdicts=overhead_verdicts,
    ran=lambda run: not sweep_times(run.tidy).empty,
)

__all__ = ["STUDY", "fit_line"]
