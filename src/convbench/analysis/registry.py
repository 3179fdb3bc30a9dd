"""The studies of a run, in the paper's order: the only list of figures and tables."""
from __future__ import annotations

from convbench.analysis import activation, engines, kernel, layers, learned, overhead, overview, reference, scaling
from convbench.analysis.learned import tracking
from convbench.analysis.study import Study

STUDIES: dict[str, Study] = {s.name: s for s in (overview.STUDY, kernel.STUDY, learned.STUDY, tracking.STUDY,
                                                  activation.STUDY, engines.STUDY, layers.STUDY, overhead.STUDY,
                                                  scaling.STUDY, reference.STUDY)}

FIGURES = {figure.name: (study.name, figure) for study in STUDIES.values() for figure in study.figures}
TABLES = {table.name: (study.name, table) for study in STUDIES.values() for table in study.tables}
