"""The layers study's numbers for the text: each backward half over the forward convolution, and maxout's activation
cost over ReLU's on the same convolution, per framework (median and range over the shapes). Keys layers/layerwise/...;
'--' for a framework of the claim without layer-wise cells, so the text's keys always exist."""
from __future__ import annotations

import pandas as pd

from convbench.analysis.formatting import FRAMEWORK_ORDER, compare, count_words, ratio, setup_rank
from convbench.analysis.layerwise import layer_cells, layer_times
from convbench.analysis.query import time_values
from convbench.analysis.roof import roof_values
from convbench.analysis.study import Run

NAME = "layers"

KEY = "layers/layerwise"  # under the layers study's prefix
HALVES = {"backward_input": "bwd-input", "backward_weight": "bwd-weight"}


def median_range(key: str, x: pd.Series) -> dict[str, str]:
    if x.empty:
        return {key: "--", f"{key}-min": "--", f"{key}-max": "--"}
    return {key: ratio(x.median()), f"{key}-min": ratio(x.min()), f"{key}-max": ratio(x.max())}


def maxout_over_relu(rows: pd.DataFrame) -> pd.Series:
    """Activation forward plus backward of maxout over ReLU's, per convolution shape and batch that has both."""
    cost = rows.assign(cost=rows["activation_forward"] + rows["activation_backward"])
    relu = cost[cost["pieces"] == 1].set_index(["convs", "batch_size"])["cost"]
    maxout = cost[cost["pieces"] > 1].set_index(["convs", "batch_size"])["cost"]
    return (maxout / relu).dropna()


def layer_values(run: Run) -> dict[str, str]:
    layers = layer_times(run.tidy)
    ran = not layers.empty and "forward" in layers
    values = {f"{KEY}/shapes": str(layers["convs"].nunique() if ran else 0), f"{KEY}/maxout-any": "0"}
    present = set(layers["framework"]) if ran else set()
    for framework in sorted(set(FRAMEWORK_ORDER) | present, key=lambda f: setup_rank(f"{f}-")):
        rows = layers[layers["framework"] == framework] if ran else pd.DataFrame()
        for phase, name in HALVES.items():
            x = (rows[phase] / rows["forward"]).groupby(rows["convs"]).median() if len(rows) and phase in rows \
                else pd.Series(dtype=float)  # per shape: one timed after ReLU and after maxout counts once
            values |= median_range(f"{KEY}/{framework}/{name}-over-forward", x)
        r = maxout_over_relu(rows) if len(rows) and "activation_forward" in rows else pd.Series(dtype=float)
        key = f"{KEY}/{framework}/maxout-over-relu"
        values |= median_range(key, r) | {f"{key}-shapes": str(len(r)),
                                          f"{key}-over": ("on the one convolution shape" if len(r) == 1 else
                                                          f"median over the {count_words(len(r), 'convolution shape')}")}
        values[f"{key}-word"] = compare("more", "less", values[key], "1", "the same") if len(r) else "--"
        if len(r):
            values[f"{KEY}/maxout-any"] = "1"
    return values


def values(run: Run) -> dict[str, str]:
    return {**layer_values(run), **time_values(run.study(NAME)), **roof_values(run.tidy, f"{NAME}/roof", "layers")}


def ran(run: Run) -> bool:
    return len(layer_cells(run.tidy)) > 0
