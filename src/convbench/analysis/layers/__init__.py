"""The layers study: one convolution and its activation timed phase by phase (forward, backward to the input,
backward to the weights, activation forward and backward), the split convnet-benchmarks and DeepBench report. The
engines study splits a network's backward pass with these times (analysis/layerwise.py)."""
from __future__ import annotations

from convbench.analysis.layers.figures import draw_layers
from convbench.analysis.layers.tables import layers_table
from convbench.analysis.layers.values import layer_values
from convbench.analysis.layerwise import layer_cells
from convbench.analysis.query import time_values
from convbench.analysis.roof import roof_values
from convbench.analysis.study import Figure, Run, Study, Table

NAME = "layers"


def study_values(run: Run) -> dict[str, str]:
    return {**layer_values(run), **time_values(run.study(NAME)),
            **roof_values(run.tidy, f"{NAME}/roof", "layers")}


STUDY = Study(
    NAME, "Layer by layer",
    figures=(Figure("layers", draw_layers,
                    "Layer by layer: achieved GFLOP/s of each distinct convolution, forward, backward to the input and "
                    "backward to the weights, per framework; bars span the range the time's interquartile range "
                    "allows; the dashed line is the device's GEMM roof (the best fp32 GEMM any framework measured on it), "
                    "the dotted one its theoretical peak."),),
    tables=(Table("layers", layers_table),),
    values=study_values,
    ran=lambda run: len(layer_cells(run.tidy)) > 0,
)
