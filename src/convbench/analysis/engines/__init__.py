"""The engines study: every engine of both frameworks on the same networks. Where the backward time goes (phases per
engine, the backward split estimated from the layer-wise cells), how timing was done (direct or derived, consistency
of phases and step, compile time), the roofline, the fairness table of every setting, and the claim that one
framework's backward pass is several times faster than the other's (one Verdict per engine pair and network)."""
from __future__ import annotations

from convbench.analysis.engines import values
from convbench.analysis.engines.cells import NAME, study_cells
from convbench.analysis.engines.claim import claim_table, claim_verdicts
from convbench.analysis.engines.fairness import fairness_table
from convbench.analysis.engines.figures import draw_engine_phases, draw_roofline
from convbench.analysis.study import Figure, Study, Table

STUDY = Study(
    NAME, "Engines",
    figures=(
        Figure("engine_phases", draw_engine_phases,
               "Engines: forward, backward (split into backward to the input and to the weights where layer cells "
               "allow) and optimizer step per engine of both frameworks, one panel per network; the dot and bar give "
               "the whole step timed on its own (median and interquartile range); a failed cell is marked in place "
               "of its bar, and where the data cannot resolve a derived phase, the rest of the whole step is hatched "
               "instead of split."),
        Figure("roofline", draw_roofline,
               "Roofline: achieved GFLOP/s of every timed cell against its arithmetic intensity, one panel per "
               "framework under the device's one roof: the best fp32 GEMM and copy bandwidth that any framework "
               "measured on it, and (dotted) its theoretical peak; bars span the range the step time's interquartile range allows."),
    ),
    tables=(Table("claim", claim_table), Table("fairness", fairness_table)),
    values=values.values,
    verdicts=claim_verdicts,
    ran=lambda run: len(study_cells(run.tidy)) > 0,
)
