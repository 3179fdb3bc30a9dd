"""Seaborn figures as PDF, each a function of the tidy table. Missing data gives a placeholder page, not a crash."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from convbench.analysis import activation, engines  # noqa: E402
from convbench.analysis.tidy import (ARCH_ORDER, LAYER_TASK, framework_name, full_data, setup_labels,  # noqa: E402
                                     setup_rank, summarise)

sns.set_theme(context="paper", style="whitegrid", font_scale=0.9)
PHASES = ["forward", "backward", "optimizer"]


def placeholder(path: Path, text: str) -> Path:
    fig, ax = plt.subplots(figsize=(5, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def network_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Speed cells of the kernel and activation studies; the engines study has figures of its own."""
    return df[(df["task"] == "speed") & (df["study"] != engines.STUDY)]


def backward_vs_receptive_field(df: pd.DataFrame, path: Path) -> Path:
    """Forward and backward time against the receptive field; one conv (k x k) vs stacked convs by marker and line."""
    times = summarise(network_cells(df), "time")
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
    accuracy = summarise(full_data(df), "test_accuracy")
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
    times = summarise(network_cells(df), "time")
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


SPLIT_LABELS = {"forward": "forward", "backward_input": "backward to input (est.)",
                "backward_weight": "backward to weights (est.)", "backward": "backward", "optimizer": "optimizer"}


def engine_phases(df: pd.DataFrame, path: Path) -> Path:
    """Stacked forward / backward (split into input and weights where layer cells allow) / optimizer bars per
    engine, one panel per network of the engines study; a failed cell is written in its bar's place."""
    phases = engines.engine_phases(df)
    if phases.empty:
        return placeholder(path, f"No cells of the {engines.STUDY} study in this run.")
    phases = phases.assign(ms=phases["value"].clip(lower=0) * 1e3)  # a derived phase can dip below zero
    setups = sorted(set(phases["setup"]), key=setup_rank)
    labels = {s: phases[phases["setup"] == s]["Setup"].iloc[0] for s in setups}
    archs = list(dict.fromkeys(engines.study_cells(df)["arch"]))
    order = [p for p in SPLIT_LABELS if p in set(phases["phase"].dropna())]
    colors = dict(zip(SPLIT_LABELS, sns.color_palette()[:5]))
    fig, axes = plt.subplots(1, len(archs), figsize=(2.4 * len(archs) + 0.6, 3.6), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        rows = phases[phases["arch"] == arch]
        bars = (rows.pivot_table(index="setup", columns="phase", values="ms", aggfunc="sum")
                .reindex(index=setups, columns=order).rename(index=labels, columns=SPLIT_LABELS))
        bars.plot.bar(stacked=True, ax=ax, width=0.75, legend=False, color=[colors[p] for p in order])
        for i, setup in enumerate(setups):
            if (rows[rows["setup"] == setup]["status"] == "failed").any():
                ax.text(i, 0, " failed", rotation=90, ha="center", va="bottom", fontsize="small", color="0.3")
        ax.set_title(arch)
        ax.set_xlabel("")
        ax.set_ylabel("median time per step (ms)" if ax is axes[0][0] else "")
        ax.tick_params(axis="x", labelrotation=45)
        plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(names), frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path)
    plt.close(fig)
    return path


def roofline(df: pd.DataFrame, path: Path) -> Path:
    """Achieved GFLOP/s of every speed cell against its arithmetic intensity, under each framework's roof
    (the median GEMM ceiling and copy bandwidth its processes measured)."""
    ok = df[(df["status"] == "ok") & (df["task"] == "speed")]
    keys = ["study", "setup", "framework", "engine", "arch", "config"]
    achieved, intensity = summarise(ok, "achieved_flops"), summarise(ok, "arithmetic_intensity")
    ceilings = ok[ok["phase"] == "ceiling"].groupby(["framework", "metric"])["value"].median().unstack()
    ceilings = ceilings.sort_index(key=lambda f: f.map(lambda x: setup_rank(f"{x}-")))
    if achieved.empty or ceilings.empty:
        return placeholder(path, "No speed cell of this run recorded step FLOPs, bytes and ceilings.")
    points = achieved.merge(intensity[keys + ["value"]].rename(columns={"value": "arithmetic_intensity"}), on=keys)
    points = points.rename(columns={"value": "achieved_flops"})
    points = points.assign(GFLOPs=points["achieved_flops"] / 1e9, Setup=setup_labels(points),
                           Architecture=points["arch"], order=points["setup"].map(setup_rank)).sort_values("order")
    ridge = ceilings["gemm_flops"] / ceilings["memory_bandwidth"]
    lo = min(points["arithmetic_intensity"].min(), ridge.min()) / 3
    hi = max(points["arithmetic_intensity"].max(), ridge.max()) * 3
    x = np.geomspace(lo, hi, 200)
    fig, ax = plt.subplots(figsize=(6.2, 3.6))
    for (framework, roof), style in zip(ceilings.iterrows(), ["-", "--", ":", "-."]):
        ax.plot(x, np.minimum(roof["gemm_flops"], roof["memory_bandwidth"] * x) / 1e9, color="0.35", linestyle=style,
                linewidth=1, label=f"{framework_name(framework)} roof")
    sns.scatterplot(data=points, x="arithmetic_intensity", y="GFLOPs", hue="Setup", style="Architecture", s=45, ax=ax,
                    style_order=list(dict.fromkeys(points.sort_values(ARCH_ORDER)["arch"])))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity of a training step (FLOP/byte)")
    ax.set_ylabel("GFLOP/s")
    ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize="small", frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


LAYER_PHASES = {"forward": "forward", "backward_input": "backward to input", "backward_weight": "backward to weights"}


def layers(df: pd.DataFrame, path: Path) -> Path:
    """Achieved GFLOP/s of each convolution shape's forward and backward halves, per framework, with the GEMM
    ceiling of the framework's process as a line."""
    cells = df[(df["task"] == LAYER_TASK) & (df["engine"] == "eager")]
    rates = summarise(cells, "achieved_flops")
    if rates.empty:
        return placeholder(path, "No layer-wise cells in this run.")
    rates = (rates.groupby(["framework", "convs", "in_channels", "width", "kernel", "image_size", "phase"], sort=False)
             ["value"].median().reset_index().sort_values(["image_size", "in_channels", "kernel"],
                                                         ascending=[False, True, True]))
    rates = rates.assign(GFLOPs=rates["value"] / 1e9, Phase=rates["phase"].map(LAYER_PHASES),
                         Framework=rates["framework"].map(framework_name),
                         Shape=[f"{c:.0f}→{o:.0f} k{k:.0f} @{s:.0f}" for c, o, k, s in
                                zip(rates["in_channels"], rates["width"], rates["kernel"], rates["image_size"])])
    g = sns.catplot(data=rates, x="Shape", y="GFLOPs", hue="Phase", col="Framework", kind="bar", height=2.8,
                    aspect=1.3, hue_order=list(LAYER_PHASES.values()),
                    col_order=sorted(rates["Framework"].unique(), key=lambda f: rates[rates["Framework"] == f]
                                     ["framework"].map(lambda x: setup_rank(f"{x}-eager")).iloc[0]))
    gemm = df[df["metric"] == "gemm_flops"].groupby("framework")["value"].median()  # any of the framework's processes
    for name, ax in g.axes_dict.items():
        framework = rates[rates["Framework"] == name]["framework"].iloc[0]
        if framework in gemm:
            ax.axhline(gemm[framework] / 1e9, color="0.35", linestyle="--", linewidth=1)
        ax.tick_params(axis="x", labelrotation=45)
        plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    g.set_axis_labels("convolution (in→out channels, kernel, image size)", "GFLOP/s")
    g.set_titles("{col_name}")
    g.savefig(path)
    plt.close(g.figure)
    return path


def variant_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The activation study's hue (k), style (matching) and panel (setup) columns."""
    return frame.assign(Variant=["ReLU" if k == 1 else f"maxout k={k}" for k in frame["k"]],
                        Matching=frame["matching"].map(activation.MATCHING), Setup=frame["Label"])


def variant_orders(frame: pd.DataFrame) -> dict:
    ordered = frame.assign(rank=frame["matching"].map(list(activation.MATCHING).index)).sort_values(["k", "rank"])
    units = ordered.drop_duplicates("Setup").set_index("Setup")["unit"]
    return {"hue_order": list(dict.fromkeys(ordered["Variant"])),
            "style_order": list(dict.fromkeys(ordered["Matching"])),
            "col_order": sorted(units.index, key=lambda s: setup_rank(units[s]))}


def activation_accuracy(df: pd.DataFrame, path: Path) -> Path:
    """Test accuracy (mean and t interval over seeds, largest training fraction) against parameters per variant."""
    stats = activation.seed_stats(df)
    if stats.empty:
        return placeholder(path, f"No training cells of the {activation.STUDY} study in this run.")
    stats = variant_columns(stats[stats["train_fraction"] == stats["train_fraction"].max()])
    stats = stats.assign(percent=100 * stats["test"], ci=100 * stats["test_ci"].fillna(0))
    g = sns.relplot(data=stats, x="params", y="percent", col="Setup", hue="Variant", style="Matching", s=60,
                    height=2.8, aspect=1.0, **variant_orders(stats))
    for setup, ax in g.axes_dict.items():
        rows = stats[stats["Setup"] == setup]
        ax.errorbar(rows["params"], rows["percent"], yerr=rows["ci"], fmt="none", ecolor="0.3", elinewidth=0.8,
                    capsize=2, zorder=1)
        ax.set_xscale("log")
        ax.margins(x=0.15)
    # A t interval over few seeds can reach past 0 or 100 %; accuracy cannot.
    lo, hi = (stats["percent"] - stats["ci"]).min(), (stats["percent"] + stats["ci"]).max()
    g.set(ylim=(max(0, lo - 2), min(100, hi) + 2))
    g.set_axis_labels("parameters of the trained network", "test accuracy (%)")
    g.set_titles("{col_name}")
    g.savefig(path)
    plt.close(g.figure)
    return path


def activation_gap(df: pd.DataFrame, path: Path) -> Path:
    """Train/test gap against the training fraction per variant: mean over seeds, band = t interval."""
    stats = activation.seed_stats(df)
    if stats.empty:
        return placeholder(path, f"No training cells of the {activation.STUDY} study in this run.")
    stats = variant_columns(stats).assign(points=100 * stats["gap"], ci=100 * stats["gap_ci"].fillna(0),
                                          percent=100 * stats["train_fraction"])
    orders = variant_orders(stats)
    colors = dict(zip(orders["hue_order"], sns.color_palette(n_colors=len(orders["hue_order"]))))
    g = sns.relplot(data=stats, x="percent", y="points", col="Setup", hue="Variant", style="Matching", kind="line",
                    markers=True, palette=colors, errorbar=None, height=2.8, aspect=1.0, **orders)
    fractions = sorted(stats["percent"].unique())
    for setup, ax in g.axes_dict.items():
        for (variant, _), rows in stats[stats["Setup"] == setup].groupby(["Variant", "Matching"]):
            rows = rows.sort_values("percent")
            ax.fill_between(rows["percent"], rows["points"] - rows["ci"], rows["points"] + rows["ci"],
                            color=colors[variant], alpha=0.12, linewidth=0)
        ax.set_xscale("log")
        ax.set_xticks(fractions, [f"{f:g}%" for f in fractions])
        ax.minorticks_off()
    g.set_axis_labels("share of the training split", "train/test gap (points)")
    g.set_titles("{col_name}")
    g.savefig(path)
    plt.close(g.figure)
    return path


def activation_time(df: pd.DataFrame, path: Path) -> Path:
    """Median forward and backward time per variant, one panel per setup; error bars span the IQR."""
    speed = df[(df["study"] == activation.STUDY) & (df["task"] == "speed")]
    times = summarise(speed, "time")
    times = times[times["phase"].isin(activation.PHASES)]
    if times.empty:
        return placeholder(path, f"No timed cells of the {activation.STUDY} study in this run.")
    times = activation.with_units(times, df).merge(activation.variants(df), on="arch")
    times = times.assign(ms=times["value"] * 1e3, err=times["iqr"].fillna(0) * 1e3 / 2)
    units = sorted(set(times["unit"]), key=setup_rank)
    archs = list(activation.variants(df)["arch"])
    fig, axes = plt.subplots(1, len(units), figsize=(3.1 * len(units) + 0.4, 3.3), squeeze=False)
    for ax, unit in zip(axes[0], units):
        rows = times[times["unit"] == unit]
        bars, err = (rows.pivot_table(index="arch", columns="phase", values=v)
                     .reindex(index=archs, columns=activation.PHASES) for v in ("ms", "err"))
        bars.plot.bar(ax=ax, yerr=err, width=0.75, capsize=2, legend=ax is axes[0][-1], error_kw={"elinewidth": 0.8},
                      color=sns.color_palette()[:2])
        ax.set_title(rows["Label"].iloc[0])
        ax.set_xlabel("")
        ax.set_ylabel("median time per step (ms)" if ax is axes[0][0] else "")
        ax.tick_params(axis="x", labelrotation=45)
        plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    axes[0][-1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


FIGURES = {"backward_vs_receptive_field": backward_vs_receptive_field, "accuracy_vs_params": accuracy_vs_params,
           "phases": phases, "engine_phases": engine_phases, "roofline": roofline, "layers": layers,
           "activation_accuracy": activation_accuracy, "activation_gap": activation_gap,
           "activation_time": activation_time}


def all_figures(df: pd.DataFrame, out_dir) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [figure(df, out / f"{name}.pdf") for name, figure in FIGURES.items()]
