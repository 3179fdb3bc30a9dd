"""The scaling study's figures: speed-up and efficiency per scheme, the phases of every step, and the bytes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from convbench.analysis.formatting import setup_rank
from convbench.analysis.plotting import placeholder, plt, save, sns
from convbench.analysis.scaling import crossover
from convbench.analysis.scaling import projection as pj
from convbench.analysis.scaling.cells import MODE_ORDER, PARALLEL, cells, parallel
from convbench.analysis.scaling.values import setup_name
from convbench.analysis.study import Run
from convbench.parallel import bytes_model

NONE = "No scaling cells ran in this run."
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
CM = 1 / 2.54  # inches per centimetre: the paper's \linewidth is about 16 cm


def _errors(value, lo, hi) -> np.ndarray:
    err = np.array([value - lo, hi - value], float)
    return np.clip(np.nan_to_num(err, posinf=0, nan=0), 0, None)


def speedup(run: Run, path: Path) -> Path:
    """A column per framework; top: speed-up over one device, bottom: efficiency against the no-communication
    baseline; x: each scheme and scaling mode (and device count where there are several), one marker per network,
    bars: quartile-based range; dashes: ideal (as many times as devices; efficiency 1)."""
    df = cells(run)
    rows = parallel(df)
    rows = rows[rows["speedup"].notna() | rows["efficiency"].notna()] if len(rows) else rows
    if not len(rows):
        return placeholder(path, "No parallel scaling cell ran in this run." if len(df) else NONE)
    setups = sorted(rows["setup"].unique(), key=setup_rank)
    archs = list(dict.fromkeys(rows["arch"]))
    counts = sorted(rows["devices"].unique())
    groups = [(p, m, t) for p in PARALLEL for m in MODE_ORDER for t in counts
              if ((rows["parallelism"] == p) & (rows["mode"] == m) & (rows["devices"] == t)).any()]
    colors = dict(zip(PARALLEL, sns.color_palette()[:2]))
    fig, axes = plt.subplots(2, len(setups), figsize=(16 * CM, 7 * CM), squeeze=False, sharex=True, sharey="row")
    offsets = np.linspace(-0.18, 0.18, len(archs)) if len(archs) > 1 else [0.0]
    plain = df[df["straggler_ms"] == 0]
    for j, setup in enumerate(setups):
        here = rows[rows["setup"] == setup]
        for x, (p, m, t) in enumerate(groups):
            axes[0][j].hlines(t, x - 0.4, x + 0.4, color="0.25", ls="--", lw=1.0, zorder=3)
            cell = plain[(plain["setup"] == setup) & (plain["parallelism"] == p) & (plain["mode"] == m)
                         & (plain["devices"] == t)]
            if len(cell) and (cell["status"] != "ok").all():
                for ax in axes[:, j]:
                    ax.text(x, 0.05, "failed", ha="center", va="bottom", fontsize="small", color="0.4",
                            style="italic", transform=ax.get_xaxis_transform())
            for a, dx in zip(archs, offsets):
                hit = here[(here["parallelism"] == p) & (here["mode"] == m) & (here["devices"] == t)
                           & (here["arch"] == a)]
                if hit.empty:
                    continue
                r = hit.iloc[0]
                style = {"color": colors[p], "marker": MARKERS[archs.index(a) % len(MARKERS)], "ms": 5,
                         "capsize": 2, "elinewidth": 0.9, "ls": "none"}
                axes[0][j].errorbar([x + dx], [r["speedup"]],
                                    yerr=_errors(r["speedup"], r["speedup_lo"], r["speedup_hi"])[:, None], **style)
                axes[1][j].errorbar([x + dx], [r["efficiency"]],
                                    yerr=_errors(r["efficiency"], r["efficiency_lo"], r["efficiency_hi"])[:, None],
                                    **style)
        axes[1][j].axhline(1, color="0.25", ls="--", lw=1.0, zorder=3)
        # one network or one scaling mode is said once (title, axis label), not as a legend or axis of one category
        axes[0][j].set_title(setup_name(setup) + (f" ({archs[0]})" if len(archs) == 1 else ""), fontsize="medium")
        modes = {m for _, m, _ in groups}
        axes[1][j].set_xticks(range(len(groups)), [
            "\n".join([p, *([m] if len(modes) > 1 else []), *([f"t={t}"] if len(counts) > 1 else [])])
            for p, m, t in groups])
        if len(modes) == 1:
            axes[1][j].set_xlabel(f"{next(iter(modes))} scaling")
        for ax in axes[:, j]:
            ax.set_xlim(-0.6, len(groups) - 0.4)
    axes[0][0].set_ylim(0, 1.15 * max(max(counts), np.nanmax(rows["speedup_hi"].replace(np.inf, np.nan)), 1))
    axes[1][0].set_ylim(0, 1.15 * max(np.nanmax(rows["efficiency_hi"].replace(np.inf, np.nan)), 1))
    axes[0][0].set_ylabel("speed-up (×)")
    axes[1][0].set_ylabel("efficiency")
    fig.align_ylabels(axes[:, 0])
    if len(archs) > 1:  # a marker per network; with one, the titles name it
        handles = [Line2D([], [], color="0.3", marker=MARKERS[i % len(MARKERS)], ls="none", label=a)
                   for i, a in enumerate(archs)]
        handles += [Line2D([], [], color="0.25", ls="--", lw=1.0, label="ideal")]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0.08 if len(archs) > 1 else 0, 1, 1), h_pad=0.8)
    return save(fig, path)


def bytes_(run: Run, path: Path) -> Path:
    """Ring-model wire bytes per rank against the global batch, a panel per device count: data parallel one line
    per kernel size (flat), tensor parallel one line (activations do not depend on the kernel); the crossovers
    marked (the axis reaches down to the smallest); the bytes counted in the cells and the loopback counter / t."""
    df = cells(run)
    grid = crossover.grid(df)
    if grid.empty:
        return placeholder(path, NONE if not len(df) else "No network to model the bytes of in this run.")
    grid = grid[grid["config"] == 0]
    counts = sorted(grid["devices"].unique())
    kernels = sorted(grid["kernel"].unique())
    palette = dict(zip(kernels, sns.color_palette("viridis", len(kernels))))
    lowest = min(1.0, 0.7 * grid["crossover"].min())
    batches = np.geomspace(lowest, grid["batch"].max(), 64)
    fig, axes = plt.subplots(1, len(counts), figsize=(min(16, 6 + 5 * len(counts)) * CM, 6.5 * CM), squeeze=False,
                             sharey=True)
    ran = df[(df["status"] == "ok") & df["parallelism"].isin(PARALLEL)] if len(df) else df
    for ax, t in zip(axes[0], counts):
        rows = grid[grid["devices"] == t].drop_duplicates("kernel")
        for row in rows.itertuples():
            ax.plot(batches, np.full_like(batches, row.data), color=palette[row.kernel], lw=1.2)
            ax.plot([row.crossover], [row.data], marker="o", ms=5, mfc="white", mec=palette[row.kernel], mew=1.3)
        per_example = rows["data"].iloc[0] / rows["crossover"].iloc[0]
        ax.plot(batches, per_example * batches, color="black", lw=1.4, ls="--")
        here = ran[ran["devices"] == t] if len(ran) else ran
        for row in here.itertuples():
            wire = row.wire if pd.notna(row.wire) else (
                bytes_model.RING_FACTOR["all_reduce"](t) * row.payload
                if row.parallelism == "data" and pd.notna(row.payload) else np.nan)
            color = palette.get(row.kernel, "0.3") if row.parallelism == "data" else "black"
            marker = "D" if row.parallelism == "data" else "s"
            if pd.notna(wire):
                ax.plot([row.global_batch], [wire], marker=marker, ls="none", ms=5, color=color, mec="white", mew=0.6)
            if pd.notna(row.loopback):
                ax.plot([row.global_batch], [row.loopback / t], marker=marker, ls="none", ms=8, mfc="none", mec=color,
                        mew=1.0)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlim(lowest, grid["batch"].max() * 1.2)
        ticks = [b for b in [1, 2, 4, *sorted(grid["batch"].unique())] if b >= lowest]
        ax.set_xticks(ticks, [str(b) for b in ticks], fontsize="small")
        ax.minorticks_off()
        ax.set_title(f"{t} devices", fontsize="medium")
        ax.set_xlabel("global batch (examples)")
        # the lines are labelled where they end (moved apart where they would overlap), so that the legend holds
        # only the markers
        labels = sorted([(r.data, f"data {r.kernel}×{r.kernel}", palette[r.kernel]) for r in rows.itertuples()]
                        + [(per_example * batches[-1], "tensor (any kernel)", "black")])
        placed = []
        for y, text, color in labels:
            at = np.log10(y) if not placed else max(np.log10(y), placed[-1] + 0.22)  # decades apart, at least
            placed.append(at)
            ax.text(1.01, 10 ** at, text, transform=ax.get_yaxis_transform(), va="center", fontsize="x-small",
                    color=color, clip_on=False)
    axes[0][0].set_ylabel("wire bytes per rank and step")
    handles = [Line2D([], [], color="0.3", marker="o", mfc="white", ls="none", label="crossover"),
               Line2D([], [], color="0.3", marker="D", ls="none", label="counted, data"),
               Line2D([], [], color="black", marker="s", ls="none", label="counted, tensor"),
               Line2D([], [], color="0.3", marker="s", mfc="none", ls="none", ms=8, label="loopback / t")]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles), frameon=False,
               fontsize="small")
    fig.tight_layout()
    return save(fig, path, bbox_inches="tight")


def projection(run: Run, path: Path) -> Path:
    """PROJECTION, not measurement: efficiency against GPUs (one node, then whole nodes), data (solid) against
    tensor parallel (dashed), a colour per kernel size; left strong, right weak scaling."""
    rows, why = pj.projected(run)
    if rows.empty:
        return placeholder(path, f"Projection: nothing projected ({why}).")
    rows = rows[rows["mode"] != "sweep"]
    kernels = sorted(rows["kernel"].unique())
    palette = dict(zip(kernels, sns.color_palette("viridis", len(kernels))))
    fig, axes = plt.subplots(1, 2, figsize=(16 * CM, 6 * CM), sharey=True)
    one_node = rows.loc[rows["nodes"] == 1, "devices"].max()
    for ax, mode in zip(axes, ("strong", "weak")):
        for (k, parallelism), g in rows[rows["mode"] == mode].groupby(["kernel", "parallelism"]):
            g = g.sort_values("devices")
            ax.plot(g["devices"], g["efficiency"], color=palette[k], ls="-" if parallelism == "data" else "--",
                    marker="o" if parallelism == "data" else "s", ms=4, mfc="white")
        if rows["devices"].max() > one_node:
            ax.axvspan(one_node * 1.4, rows["devices"].max() * 1.3, color="0.92", zorder=0)
            ax.text(one_node * 1.5, 0.04, "2 nodes" if rows["nodes"].max() == 2 else "nodes", fontsize="x-small")
        ax.set_xscale("log", base=2)
        ticks = sorted(rows["devices"].unique())
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("GPUs")
        ax.set_title(f"projected, {mode} scaling", fontsize="medium")
    axes[0].set_ylabel("projected efficiency")
    handles = [Line2D([], [], color=palette[k], lw=1.2, label=f"{k}×{k}") for k in kernels]
    handles += [Line2D([], [], color="0.3", ls="-", marker="o", mfc="white", label="data parallel"),
                Line2D([], [], color="0.3", ls="--", marker="s", mfc="white", label="tensor parallel")]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.99, 0.5), frameon=False, fontsize="small")
    fig.suptitle(f"PROJECTION from one {run.projection['gpu']}'s records, not a measurement", fontsize="small")
    fig.tight_layout()
    return save(fig, path, bbox_inches="tight")
