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
                    "Layer by layer: achieved GFLOP/s of each distinct convolution, forward, backward to the input and "
                    "backward to the weights, per framework; bars span the range the time's interquartile range "
                    "allows; the dashed line is the device's GEMM roof (the best fp32 GEMM any framework measured on it), "
                    "the dotted one its theoretical peak."),),
    tables=(Table("layers", layers_table),),
    values=values.values,
    ran=values.ran,
)
