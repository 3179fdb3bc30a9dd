"""The layers table: each convolution shape's forward and backward halves and its activation, per framework."""
from __future__ import annotations

import numpy as np
import pandas as pd

from convbench.analysis.formatting import framework_name, ratio, setup_rank, sig3, words
from convbench.analysis.latex import blank_repeats, booktabs, flagged, noisy_note, placeholder
from convbench.analysis.layerwise import layer_cells
from convbench.analysis.query import summarise
from convbench.analysis.study import Run

PHASES = {"forward": "Conv fwd", "backward_input": "Bwd input", "backward_weight": "Bwd weight",
          "activation_forward": "Act fwd", "activation_backward": "Act bwd"}


def shape_text(conv: str) -> str:
    """'c3-o32-k5-s16' as LaTeX: 3$\\to$32, 5$\\times$5 at 16$\\times$16."""
    c, o, k, s = (part[1:] for part in conv.split("-"))
    return rf"{c}$\to${o}, {k}$\times${k} at {s}$\times${s}"


def layers_table(run: Run) -> str:
    df = run.tidy
    layers = summarise(layer_cells(df), "time") if len(df) else pd.DataFrame()
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
    table = table.reindex(columns=list(PHASES)).rename(columns=PHASES)
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
    return booktabs(table, caption, "tab:layers", "lll" + "r" * 6, raw=("Shape", *PHASES.values()),
                    size=r"\scriptsize", note=noisy_note(layers, iqr_shown=False), colsep="2.5pt")
