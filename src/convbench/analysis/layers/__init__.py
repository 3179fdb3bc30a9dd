"""The layers study: one convolution and its activation timed phase by phase (forward, backward to the input,
backward to the weights, activation forward and backward), the split convnet-benchmarks and DeepBench report. The
engines study splits a network's backward pass with these times (analysis/layerwise.py)."""
from __future__ import annotations

from convbench.analysis.layers import values
from convbench.analysis.layers.figures import draw_layers
from convbench.analysis.layers.tables import layers_table
from convbench.analysis.layers.values import NAME
from convbench.analysis.study import Figure, Study, Table

STUDY = Study(
    NAME, "Layer by layer",
    figures=(Figure("layers", draw_layers,
                    "Layer by layer: achieved GFLOP/s per convolution"),),
    tables=(Table("layers", layers_table),),
    values=values.values,
    ran=values.ran,
)
