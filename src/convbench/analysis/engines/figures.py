"""The engines study's figures: the phases of a step per engine, and the roofline of every speed cell."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from convbench.analysis.engines.cells import engine_phases, study_cells
from convbench.analysis.engines.values import unresolved
from convbench.analysis.formatting import ENGINE_ORDER, framework_name, setup_rank
from convbench.analysis.plotting import placeholder, plt, save, sns
from convbench.analysis.query import summarise, with_config
from convbench.analysis.roof import ABOVE, above_peak, framework_roofs
from convbench.analysis.study import Run

WIDTH = 6.3  # inches: the paper's \linewidth
SPLIT_LABELS = {"forward": "forward", "backward_input": "backward to input (est.)",
                "backward_weight": "backward to weights (est.)", "backward": "backward", "optimizer": "optimizer"}
NOT_RESOLVED_LABEL = "rest of the step: derived, not resolved"


def draw_engine_phases(run: Run, path: Path) -> Path:
    """Stacked horizontal bars of forward / backward (split into input and weights where layer cells allow) /
    optimizer per engine, one panel per network; the whole step timed on its own as a dot with its IQR. A derived
    phase the data cannot resolve gets no bar of its own: the rest of the whole step is hatched instead."""
    phases = engine_phases(run.tidy)
    if phases.empty:
        return placeholder(path, "No cells of the engines study in this run.")
    blurred = {(r.setup, r.arch, r.phase) for r in unresolved(run).itertuples()}
    # the backward's split into input and weights is a share of the backward: it goes with it
    whole = {"backward_input": "backward", "backward_weight": "backward"}
    hidden = [(s, a, whole.get(p, p)) in blurred for s, a, p in zip(phases["setup"], phases["arch"], phases["phase"])]
    phases = phases.assign(ms=np.where(hidden, 0.0, phases["value"].clip(lower=0) * 1e3))
    setups = sorted(set(phases["setup"]), key=setup_rank)
    labels = [phases[phases["setup"] == s]["Setup"].iloc[0] for s in setups]
    archs = list(dict.fromkeys(study_cells(run.tidy)["arch"]))
    order = [p for p in SPLIT_LABELS if p in set(phases["phase"].dropna())]
    colors = dict(zip(SPLIT_LABELS, sns.color_palette("deep")[:5]))
    fig, axes = plt.subplots(1, len(archs), figsize=(WIDTH, 0.22 * len(setups) + 1.15), sharey=True, squeeze=False)
    y = np.arange(len(setups))
    for ax, arch in zip(axes[0], archs):
        rows = phases[phases["arch"] == arch]
        bars = (rows.pivot_table(index="setup", columns="phase", values="ms", aggfunc="sum")
                .reindex(index=setups, columns=order).fillna(0))
        left = np.zeros(len(setups))
        for phase in order:
            ax.barh(y, bars[phase], left=left, height=0.7, color=colors[phase], label=SPLIT_LABELS[phase])
            left += bars[phase].to_numpy()
        step = rows.drop_duplicates("setup").set_index("setup").reindex(setups)
        ms, err = step["step"] * 1e3, step["step_iqr"].fillna(0) * 1e3 / 2
        ax.errorbar(ms, y, xerr=err, fmt="o", color="black", markersize=3, elinewidth=1, capsize=2,
                    label="whole step (median, IQR)")
        for i, setup in enumerate(setups):
            if (rows[rows["setup"] == setup]["status"] == "failed").any():
                ax.text(0, i, " failed", va="center", ha="left", fontsize="small", color="0.3")
            if any((setup, arch, p) in blurred for p in ("backward", "optimizer")) and pd.notna(ms.iloc[i]):
                ax.barh(i, max(ms.iloc[i] - left[i], 0), left=left[i], height=0.7, facecolor="white",
                        edgecolor="0.5", hatch="////", linewidth=0.5, label=NOT_RESOLVED_LABEL)
        ax.set_title(arch)
        ax.set_xlabel("time per step (ms)")
        ax.set_yticks(y, labels)
        ax.grid(axis="y", visible=False)
    axes[0][0].invert_yaxis()  # the first setup on top (the axes share y)
    legend = {}
    for ax in axes[0]:
        legend |= {name: h for h, name in zip(*ax.get_legend_handles_labels()) if name not in legend}
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=3, frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return save(fig, path)


def roofline_points(run: Run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every ok speed cell's achieved FLOP/s (median over seeds) with the range its step's IQR gives, and its
    arithmetic intensity; and each framework's roof: its device's, the best ceilings any framework measured there."""
    df = run.tidy
    ok = df[(df["status"] == "ok") & (df["task"] == "speed")] if len(df) else df
    if ok.empty:
        return pd.DataFrame(), pd.DataFrame()
    keys = ["study", "setup", "framework", "engine", "arch", "config"]
    ids = with_config(ok).drop_duplicates(keys)[keys + ["cell_id"]]  # one cell per point names it (seeds share a point)
    achieved, intensity = summarise(ok, "achieved_flops"), summarise(ok, "arithmetic_intensity")
    step = summarise(ok, "time")
    step = step[step["phase"] == "step"][keys + ["value", "iqr"]].rename(columns={"value": "t", "iqr": "t_iqr"})
    ceilings = framework_roofs(df).dropna(subset=["gemm", "bandwidth"])
    if achieved.empty or ceilings.empty:
        return pd.DataFrame(), pd.DataFrame()
    points = (achieved[keys + ["value"]].rename(columns={"value": "achieved"})
              .merge(intensity[keys + ["value"]].rename(columns={"value": "intensity"}), on=keys)
              .merge(step, on=keys, how="left").merge(ids, on=keys, how="left"))
    half = points["t_iqr"].fillna(0) / 2
    flops = points["achieved"] * points["t"]
    points = points.assign(lo=flops / (points["t"] + half),
                           hi=np.where(points["t"] > half, flops / (points["t"] - half).clip(lower=1e-30), np.nan))
    return points, ceilings


def draw_roofline(run: Run, path: Path) -> Path:
    """Achieved GFLOP/s of every speed cell against its arithmetic intensity, one panel per framework under the roof
    of its device (the same in every panel: the best GEMM and copy any framework measured on it); bars span the range
    the step's IQR allows. Colour is the engine, the one thing a reader decodes: which network a point is, the
    speed table says (a marker per network made a legend of 18 symbols nobody could read)."""
    points, ceilings = roofline_points(run)
    if points.empty:
        return placeholder(path, "No speed cell of this run recorded step FLOPs, bytes and ceilings.")
    frameworks = sorted(set(ceilings.index) & set(points["framework"]), key=lambda f: setup_rank(f"{f}-"))
    engines = sorted(set(points["engine"]), key=lambda e: setup_rank(f"-{e}"))
    colors = dict(zip(engines, sns.color_palette("deep", len(ENGINE_ORDER) + 2)))
    peak = ceilings["peak"].dropna()
    above = set(above_peak(run.tidy, "speed")["cell_id"])
    ridge = ceilings["gemm"] / ceilings["bandwidth"]
    x = np.geomspace(min(points["intensity"].min(), ridge.min()) / 3, max(points["intensity"].max(), ridge.max()) * 3,
                     200)
    fig, axes = plt.subplots(1, len(frameworks), figsize=(WIDTH, 2.55), sharey=True, squeeze=False)
    for ax, framework in zip(axes[0], frameworks):
        roof = ceilings.loc[framework]
        ax.plot(x, np.minimum(roof["gemm"], roof["bandwidth"] * x) / 1e9, color="0.3", linewidth=1.2,
                label="device roof (best measured ceilings)")
        if framework in peak:  # what the hardware can do at most: nothing may pass it
            ax.axhline(peak[framework] / 1e9, color="0.3", linestyle=":", linewidth=1.2)
        rows = points[points["framework"] == framework]
        for engine, p in rows.groupby("engine", sort=False):
            y = p["achieved"] / 1e9
            err = [y - p["lo"] / 1e9, (p["hi"] / 1e9 - y).fillna(0)]
            ax.errorbar(p["intensity"], y, yerr=err, fmt="o", color=colors[engine], markersize=3.5, alpha=0.8,
                        elinewidth=0.8, capsize=1.5, linestyle="none")
        for p in rows[rows["cell_id"].isin(above)].itertuples():  # a bug, marked so that nobody misses it
            ax.plot(p.intensity, p.achieved / 1e9, "x", color="red", markersize=9, markeredgewidth=2)
            ax.annotate(ABOVE.upper(), (p.intensity, p.achieved / 1e9), color="red", fontsize="small",
                        fontweight="bold", xytext=(4, 4), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title(framework_name(framework))
        ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    axes[0][0].set_ylabel("achieved GFLOP/s of a step")
    handles = [plt.Line2D([], [], color="0.3", linewidth=1.2, label="device roof")]
    if len(peak):
        handles.append(plt.Line2D([], [], color="0.3", linestyle=":", linewidth=1.2, label="theoretical peak"))
    handles += [plt.Line2D([], [], color=colors[e], marker="o", linestyle="none", label=e) for e in engines]
    rows = -(-len(handles) // 8)
    fig.legend(handles=handles, loc="lower center", ncol=-(-len(handles) // rows), frameon=False, fontsize="small",
               columnspacing=1.0, handletextpad=0.3)
    fig.tight_layout(rect=(0, 0.09 * rows, 1, 1))
    return save(fig, path)
