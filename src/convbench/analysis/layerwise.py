"""Layer-wise times, shared by the layers study (which reports them) and the engines study (which splits a network's
measured backward pass with them). Not a study: no figures, tables or values of its own."""
from __future__ import annotations

import numpy as np
import pandas as pd

from convbench.analysis.query import summarise
from convbench.analysis.records import LAYER_TASK


def layer_cells(df: pd.DataFrame) -> pd.DataFrame:
    """The eager layer-wise cells' rows of the tidy table."""
    return df[(df["task"] == LAYER_TASK) & (df["engine"] == "eager")] if len(df) else df


def layer_times(df: pd.DataFrame) -> pd.DataFrame:
    """Eager layer-wise cells: one row per framework x convolution shape x activation x batch, phases as columns."""
    layers = summarise(layer_cells(df), "time") if len(df) else pd.DataFrame()
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
