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
               "Engines: the phases of a training step"),
        Figure("roofline", draw_roofline,
               "Roofline of every timed step"),
    ),
    tables=(Table("claim", claim_table), Table("fairness", fairness_table)),
    values=values.values,
    verdicts=claim_verdicts,
    ran=lambda run: len(study_cells(run.tidy)) > 0,
)
