"""The learned study's figures: the shrunk networks among the hand-picked ones (accuracy against parameters), and
what the networks learned over the epochs (the radius of each masked block, the open maps of each gated one)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from convbench import learned as method
from convbench.analysis.formatting import setup_rank
from convbench.analysis.learned import data
from convbench.analysis.learned.values import frames
from convbench.analysis.plotting import placeholder, plt, save
from convbench.analysis.stats import LEVEL
from convbench.analysis.study import Run

WIDTH = 6.3  # inches: the paper's line width (16 cm)
MARKERS, COLORS = ["*", "P", "X", "D"], ["C3", "C2", "C4", "C1"]
STYLES = ["-", "--", ":", "-."]


def thousands_axis(ax) -> None:
    """A log x axis of parameter counts labelled 20k, 50k, 100k rather than in powers of ten."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1e3:g}k" if x >= 1e3 else f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def pareto(run: Run, path: Path) -> Path:
    """Test accuracy against parameters, one panel per setup: the hand-picked networks (mean and t interval), their
    Pareto front as a staircase, and each seed's learned network before (hollow) and after crop and prune."""
    f = frames(run)
    done = f.sweep[f.sweep["seeds"] > 0] if len(f.sweep) else f.sweep
    lcells = f.lcells
    ok = lcells[lcells["status"] == "ok"] if len(lcells) else lcells
    if done.empty and ok.empty:
        return placeholder(path, "No finished training cell of the kernel or the learned study in this run.")
    labels = list(dict.fromkeys([*done.get("label", []), *lcells.get("label", [])]))
    fig, axes = plt.subplots(1, len(labels), figsize=(WIDTH, 2.7), squeeze=False, sharey=True)
    archs = list(dict.fromkeys(lcells["arch"])) if len(lcells) else []
    style = {a: (m, c) for a, m, c in zip(archs, MARKERS * 4, COLORS * 4)}
    accuracies, names = [], []
    for ax, label in zip(axes[0], labels):
        g = done[done["label"] == label].sort_values("params") if len(done) else done
        if len(g):
            mean, ci = 100 * g["mean"], 100 * g["ci"].fillna(0)
            ax.errorbar(g["params"], mean, yerr=[np.minimum(ci, mean), np.minimum(ci, 100 - mean)], fmt="o",
                        color="C0", ms=4, elinewidth=0.8, capsize=2,
                        label=f"hand-picked: mean, {LEVEL * 100:.0f}% CI over seeds")
            accuracies += list(mean)
            front = g[g["front"]].sort_values("params")
            ax.step(front["params"], 100 * front["mean"], where="post",  # ends at its last network
                    color="0.45", linewidth=0.9, linestyle="--", label="Pareto front of the hand-picked")
            for i, r in enumerate(g.sort_values("params").itertuples()):  # neighbours' names on opposite sides
                names.append(ax.annotate(r.arch, (r.params, 100 * r.mean), xytext=(4, -9 if i % 2 == 0 else 4),
                                         textcoords="offset points", fontsize=6.5, color="0.25"))
        failed = []
        for j, arch in enumerate(archs):
            dodge = 1 + 0.06 * (j - (len(archs) - 1) / 2)  # the trained networks share one size: side by side
            rows = lcells[(lcells["label"] == label) & (lcells["arch"] == arch)]
            good = rows[rows["status"] == "ok"]
            marker, color = style[arch]
            if len(good):
                ax.scatter(good["params"] * dodge, 100 * good["trained_test"], marker=marker, s=45, facecolor="none",
                           edgecolor=color, linewidth=0.8, zorder=4, label=f"{arch}, trained (masked or gated)")
                for r in good.itertuples():
                    ax.annotate("", (r.shrunk_params, 100 * r.test), (r.params * dodge, 100 * r.trained_test),
                                arrowprops={"arrowstyle": "->", "color": color, "lw": 0.7, "shrinkA": 4, "shrinkB": 5})
                ax.scatter(good["shrunk_params"], 100 * good["test"], marker=marker, s=70, color=color,
                           edgecolor="black", linewidth=0.5, zorder=5, label=f"{arch}, after crop and prune")
                accuracies += [*(100 * good["test"]), *(100 * good["trained_test"])]
            failed += [arch] * int((rows["status"] == "failed").any())
        if failed:
            ax.text(0.02, 0.03, "failed: " + ", ".join(failed), transform=ax.transAxes, fontsize=7, color="C3")
        thousands_axis(ax)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("parameters (log scale)")
    axes[0][0].set_ylabel("test accuracy (%)")
    if accuracies:  # the means and the learned points set the range; a wider interval is cut at the edge
        lo, hi = min(accuracies), max(accuracies)
        pad = max(1.0, 0.2 * (hi - lo))
        axes[0][0].set_ylim(max(0, lo - pad), min(100, hi + pad))
    bottom, top = axes[0][0].get_ylim()
    for name in names:  # a name near the top goes below its point, clear of the panel's title
        if name.xy[1] > top - 0.12 * (top - bottom):
            name.xyann = (4, -9)
    handles = {}
    for ax in axes[0]:
        for h, name in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(name, h)
    handles = dict(sorted(handles.items(), key=lambda kv: (not kv[0].startswith("hand"),
                                                            not kv[0].startswith("Pareto"))))
    rows = (len(handles) + 1) // 2
    fig.set_size_inches(WIDTH, 2.3 + 0.17 * rows)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=2, frameon=False, fontsize=7)
    fig.tight_layout(rect=(0, 0.17 * rows / (2.3 + 0.17 * rows) + 0.01, 1, 1))
    return save(fig, path)


def radius_bands(ax, max_kernel: int, lo: float, hi: float) -> None:
    """Dotted lines where the crop size changes (z = d - ramp), each band labelled on the right with the size that a
    radius in it crops to; the axis spans lo to hi."""
    edges = [d - data.RAMP for d in range(1, (max_kernel - 1) // 2 + 1)]
    lo, hi = min(lo, edges[0] - 0.5 if edges else lo), max(hi, edges[-1] + 0.5 if edges else hi)
    ax.set_ylim(lo, hi)
    distance = method.distance_grid(max_kernel)
    bounds = [lo, *[e for e in edges if lo < e < hi], hi]
    for a, b in zip(bounds[:-1], bounds[1:]):
        z = (a + b) / 2
        k = method.effective_size(method.ramp_mask(distance, z, data.RAMP), data.THRESHOLD)
        if b < hi:
            ax.axhline(b, color="0.55", linestyle=":", linewidth=0.8)
        ax.text(1.01, z, f"crops to\n{k}×{k}", transform=ax.get_yaxis_transform(), va="center", fontsize=6.5,
                color="0.35")


def lines(ax, rows: pd.DataFrame, column: str, ncol: int = 2) -> None:
    """One line per block, network and setup (a colour per block, a line style per network and setup): the mean over
    seeds, and the range over seeds as a band where there are more. The legend names the network, and the setup
    where there are several."""
    colors = {b: f"C{i}" for i, b in enumerate(sorted(rows["block"].unique()))}
    rows = rows.iloc[sorted(range(len(rows)), key=lambda i: setup_rank(rows["unit"].iloc[i]))]
    several = rows["label"].nunique() > 1
    for i, (label, arch) in enumerate(dict.fromkeys(zip(rows["label"], rows["arch"]))):
        for block, g in rows[(rows["label"] == label) & (rows["arch"] == arch)].groupby("block"):
            per_epoch = g.groupby("epoch")[column].agg(["mean", "min", "max", "count"])
            name = f"block {block + 1}, {arch}" + (f", {label}" if several else "")
            ax.plot(per_epoch.index, per_epoch["mean"], linestyle=STYLES[i % len(STYLES)], color=colors[block],
                    marker=".", markersize=3, linewidth=1, label=name)
            if per_epoch["count"].max() > 1:
                ax.fill_between(per_epoch.index, per_epoch["min"], per_epoch["max"], color=colors[block], alpha=0.15,
                                linewidth=0)
    ax.set_xlabel("epoch (0 = initialisation)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    ax.legend(fontsize=6, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=ncol)


def radius(run: Run, path: Path) -> Path:
    """Left: the mean learned radius of each masked block over the epochs, with the bands of the kernel size it crops
    to. Right: the open maps of each gated block, in percent of its maps. Lines: mean over seeds; bands: the range
    over seeds. A kind no network learned has no panel."""
    f = frames(run)
    traj, lcells = f.traj, f.lcells
    rad = traj[traj["quantity"] == "radius"]
    gates = traj[traj["quantity"] == "open_maps"]
    if rad.empty and gates.empty:
        return placeholder(path, "No network of this run learned its kernel size or its number of filters.")
    # a panel per kind that learned (the caption says which is missing): an empty panel's text is no figure
    n = bool(len(rad)) + bool(len(gates))
    fig, axes = plt.subplots(1, n, figsize=(WIDTH * n / 2, 3.3 if n > 1 else 3.8), squeeze=False)
    panels = iter(axes[0])
    if len(rad):
        left = next(panels)
        lines(left, rad, "value", ncol=2 if n > 1 else 1)
        kmax = max(k for r in lcells[lcells["size"]].itertuples() for k in r.kernels)
        radius_bands(left, kmax, rad["value"].min() - 0.15, rad["value"].max() + 0.15)
        left.set_ylabel("mean radius z (pixels)")
        left.set_title("learned kernel size", fontsize=9)
    if len(gates):
        right = next(panels)
        maps = {(r.unit, r.arch, r.seed): r.maps for r in lcells.itertuples()}
        start = [maps[(r.unit, r.arch, r.seed)][r.block] for r in gates.itertuples()]
        lines(right, gates.assign(percent=100 * gates["value"] / start), "percent", ncol=2 if n > 1 else 1)
        right.set_ylim(0, 105)
        right.set_ylabel("open maps (% of initial)")
        right.set_title("learned number of filters (gate > 0)", fontsize=9)
    fig.tight_layout()
    return save(fig, path)


def penalty(run: Run, path: Path) -> Path:
    """The penalty sweep of each kind, one column each: above, what the shrunk network kept against the penalty
    weight (its receptive field, with the planted scale; its maps, in percent of the initial ones); below, its test
    accuracy. One point per seed, a line through the means."""
    sweep = data.penalty_sweep(frames(run).lcells)
    if sweep.empty:
        return placeholder(path, "No network of this run learned its kernel size or its number of filters.")
    kinds = [k for k in ("size", "width") if (sweep["kind"] == k).any()]
    fig, axes = plt.subplots(2, len(kinds), figsize=(WIDTH * len(kinds) / 2, 3.4), sharex="col", squeeze=False)
    for col, kind in enumerate(kinds):
        rows = sweep[sweep["kind"] == kind]
        kept = (rows["shrunk_field"] if kind == "size"
                else 100 * rows["kept_maps"].map(sum) / rows["maps"].map(sum))
        for i, (label, g) in enumerate(rows.assign(kept=kept, accuracy=100 * rows["test"]).groupby("label", sort=False)):
            for ax, column in zip(axes[:, col], ("kept", "accuracy")):
                ax.plot(g["penalty"], g[column], linestyle="none", marker=MARKERS[i % len(MARKERS)],
                        color=COLORS[i % len(COLORS)], markersize=5, alpha=0.7)
                means = g.groupby("penalty")[column].mean()
                ax.plot(means.index, means.to_numpy(), color=COLORS[i % len(COLORS)], linewidth=1,
                        label=label if ax is axes[0, col] else None)
        top, bottom = axes[0, col], axes[1, col]
        if kind == "size":
            top.set_ylabel("shrunk field (px)")
            scale = rows["planted_scale"].dropna()
            if len(scale):
                top.axhline(scale.max(), color="0.4", linestyle="--", linewidth=0.8)
                top.text(0.02, scale.max(), " planted scale", transform=top.get_yaxis_transform(), va="bottom",
                         fontsize=6.5, color="0.3")
            top.set_title("learned kernel size", fontsize=9)
        else:
            top.set_ylabel("maps kept (% of initial)")
            top.set_ylim(0, 105)
            top.set_title("learned number of filters", fontsize=9)
        bottom.set_ylabel("test accuracy (%)")
        bottom.set_xlabel("radius penalty" if kind == "size" else "L0 penalty")
        bottom.set_xscale("log")  # ticks at the penalties run, plainly labelled: minor labels crowd ("3x10^2 4x10^2")
        bottom.set_xticks(sorted(rows["penalty"].unique()), [f"{p:g}" for p in sorted(rows["penalty"].unique())])
        bottom.xaxis.set_minor_formatter(NullFormatter())
        top.legend(fontsize=6.5, frameon=False, loc="lower left")
    fig.tight_layout()
    return save(fig, path)
