"""The activation study: ReLU against maxout with k pieces, at equal filters and at equal width, in every setup.

Test accuracy and the train/test gap over training fractions as means with t intervals over seeds, forward and
backward time as ratios with bootstrap intervals of the raw samples, parameters, FLOPs and memory. The verdicts
(verdicts.py) compare each maxout variant with its ReLU network; the text is paper/sections/activation.tex.
"""
from convbench.analysis.activation import data, figures, tables
from convbench.analysis.activation.verdicts import values, verdicts
from convbench.analysis.study import Figure, Study, Table

STUDY = Study(
    "activation", "Maxout against ReLU",
    figures=(
        Figure("activation_time", figures.activation_time,
               "Maxout against ReLU: step time per variant"),
    ),
    tables=(Table("activation_verdicts", tables.verdict_table), Table("activation_accuracy", tables.accuracy_table),
            Table("activation_cost", tables.cost_table), Table("activation_gaps", tables.gap_table)),
    values=values,
    verdicts=verdicts,
    ran=data.ran,
)
