"""Layer-wise cells: one convolution and its activation timed phase by phase (forward, backward to the input, backward
to the weights, activation forward and backward), the split convnet-benchmarks and DeepBench report."""
from __future__ import annotations

import numpy as np
import pandas as pd

from convbench.analysis.tables import (blank_repeats, booktabs, escape, flagged, noisy_note, placeholder, ratio, sig3,
                                       words)
from convbench.analysis.tidy import LAYER_TASK, framework_name, setup_rank, summarise


def layer_times(df: pd.DataFrame) -> pd.DataFrame:
    """Eager layer-wise cells: one row per framework x convolution shape x activation x batch, phases as columns."""
    layers = summarise(df[(df["task"] == LAYER_TASK) & (df["engine"] == "eager")], "time")
    if layers.empty:
        return pd.DataFrame(columns=["framework", "convs", "activation", "pieces", "batch_size"])
    return (layers.pivot_table(index=["framework", "convs", "activation", "pieces", "batch_size"], columns="phase",
                               values="value", aggfunc="median", sort=False)
            .reset_index().rename_axis(columns=None))


def input_fraction(convs: str, framework: str, batch_size, layers: pd.DataFrame) -> float:
    """The share of backward-to-input in a network's convolution backward, summed from layer-wise medians.

    The first convolution's backward-to-input is left out: no gradient flows to the input images. NaN when a
    convolution of the network has no layer-wise cell.
    """
    if not isinstance(convs, str) or layers.empty:
        return np.nan
    shapes = layers[(layers["framework"] == framework) & (layers["batch_size"] == batch_size)]
    conv = shapes.groupby("convs")[["backward_input", "backward_weight"]].median()  # activations share the conv
    names = convs.split()
    if not set(names) <= set(conv.index):
        return np.nan
    to_input = sum(conv.loc[n, "backward_input"] for n in names[1:])
    to_weight = sum(conv.loc[n, "backward_weight"] for n in names)
    return to_input / (to_input + to_weight)


def shape_text(conv: str) -> str:
    """'c3-o32-k5-s16' as LaTeX: 3$\\to$32, 5$\\times$5 at 16$\\times$16."""
    c, o, k, s = (part[1:] for part in conv.split("-"))
    return rf"{c}$\to${o}, {k}$\times${k} at {s}$\times${s}"


def layers_table(df: pd.DataFrame) -> str:
    layers = summarise(df[(df["task"] == LAYER_TASK) & (df["engine"] == "eager")], "time")
    caption = ("Layer-wise times of one convolution and its activation, in ms (median over the repeats): forward, "
               "backward to the input, backward to the weights, and the activation's forward and backward; maxout/ReLU "
               "is the activation's forward plus backward time over ReLU's on the same convolution. Shape: input "
               "$\\to$ output channels, kernel, at image size")
    if layers.empty:
        return placeholder(caption + ".", "tab:layers", "This run has no layer-wise cells.")
    caption += f", batch {words(str(b) for b in sorted(layers['batch_size'].unique()))}."
    layers = layers.assign(text=[flagged(sig3(v * 1e3), n) for v, n in zip(layers["value"], layers["noisy"])],
                           Activation=[a if p == 1 else f"{a}{p:.0f}"
                                       for a, p in zip(layers["activation"], layers["pieces"])])
    keys = ["convs", "framework", "Activation"]
    table = layers.pivot_table(index=keys, columns="phase", values="text", aggfunc="first", sort=False)
    phases = {"forward": "Conv fwd", "backward_input": "Bwd input", "backward_weight": "Bwd weight",
              "activation_forward": "Act fwd", "activation_backward": "Act bwd"}
    table = table.reindex(columns=list(phases)).rename(columns=phases)
    cost = (layers[layers["phase"].isin(["activation_forward", "activation_backward"])]
            .groupby(keys + ["pieces"])["value"].sum().reset_index())
    relu = cost[cost["pieces"] == 1].set_index(["convs", "framework"])["value"]
    cost["ratio"] = [v / relu.get((c, f), np.nan) if p > 1 else np.nan
                     for c, f, p, v in zip(cost["convs"], cost["framework"], cost["pieces"], cost["value"])]
    table["Maxout/ReLU"] = cost.set_index(keys)["ratio"].map(lambda r: ratio(r) if pd.notna(r) else "")
    order = layers.drop_duplicates(keys).assign(rank=lambda d: d["setup"].map(setup_rank))
    order = order.sort_values(["image_size", "in_channels", "width", "kernel", "rank", "pieces"],
                              ascending=[False, True, True, True, True, True])
    table = table.reindex(pd.MultiIndex.from_frame(order[keys])).fillna("--").reset_index()
    table["convs"] = table["convs"].map(shape_text)
    table["framework"] = table["framework"].map(framework_name)
    table = blank_repeats(table, ["convs", "framework"]).rename(columns={"convs": "Shape", "framework": "Framework"})
    return booktabs(table, caption, "tab:layers", "lll" + "r" * 6, raw=("Shape", *phases.values()),
                    size=r"\scriptsize", note=noisy_note(layers), colsep="2.5pt")


def layer_values(df: pd.DataFrame) -> dict[str, str]:
    layers = layer_times(df)
    if layers.empty or "forward" not in layers:
        return {"layerwise/sentence": "This run has no layer-wise cells."}
    values, parts, activation = {}, [], []
    for framework in sorted(layers["framework"].unique(), key=lambda f: setup_rank(f"{f}-")):
        rows, name = layers[layers["framework"] == framework], escape(framework_name(framework))
        for phase, short_name in [("backward_input", "bwd-input"), ("backward_weight", "bwd-weight")]:
            x = rows[phase] / rows["forward"]
            values |= {f"layerwise/{framework}/{short_name}-over-forward": ratio(x.median()),
                       f"layerwise/{framework}/{short_name}-over-forward-min": ratio(x.min()),
                       f"layerwise/{framework}/{short_name}-over-forward-max": ratio(x.max())}
        bi, bw = (values[f"layerwise/{framework}/{p}-over-forward"] for p in ("bwd-input", "bwd-weight"))
        parts.append(f"{bi}$\\times$ and {bw}$\\times$ in {name}")
        cost = rows.assign(cost=rows["activation_forward"] + rows["activation_backward"])
        relu = cost[cost["pieces"] == 1].set_index(["convs", "batch_size"])["cost"]
        maxout = cost[cost["pieces"] > 1].set_index(["convs", "batch_size"])["cost"]
        r = (maxout / relu).dropna()
        values[f"layerwise/{framework}/maxout-over-relu"] = ratio(r.median()) if len(r) else "--"
        if len(r):
            shown = float(ratio(r.median()))
            word = "more" if shown > 1 else "less" if shown < 1 else "the same"
            spread = f", range {ratio(r.min())}--{ratio(r.max())}" if ratio(r.min()) != ratio(r.max()) else ""
            activation.append(f"{word} in {name} ({ratio(r.median())}$\\times$ over {len(r)} shape"
                              f"{'s' if len(r) > 1 else ''}{spread})")
    values["layerwise/sentence"] = (
        f"Over the {layers['convs'].nunique()} convolution shapes (median over the shapes), backward to the input and "
        f"backward to the weights took, relative to the forward convolution, {words(parts)}."
        + (f" Against ReLU on the same convolution, maxout's activation (forward and backward) cost "
           f"{words(activation)}." if activation else ""))
    return values
