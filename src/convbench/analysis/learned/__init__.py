"""The learned study: the kernel size and the number of filters learned in training (ramp masks, L0 gates), cropped
and pruned after it, against the kernel study's hand-picked grid (whose statistics, keys 'learned/sweep/...', are
computed here from the kernel study's train and speed cells).

data.py reads the tidy table, values.py turns it into numbers, phrases and verdicts, tables.py and figures.py draw it;
rows.py adds the masks' and gates' rows to the tidy table; tracking.py reads the tracking study (the learned size at several planted scales) for this study's text and figure.
"""
from convbench.analysis.learned import figures, rows, tables, tracking, values
from convbench.analysis.study import Figure, Study, Table
from convbench.analysis.tidy import block_columns_for

STUDY = Study(
    "learned", "Learned size and width",
    figures=(
        Figure("learned_pareto", figures.pareto,
               "Learned against hand-picked networks: accuracy against parameters"),
        Figure("learned_radius", figures.radius,
               "What the learned networks learned, epoch by epoch"),
        Figure("learned_penalty", figures.penalty,
               "The penalty sweep of the learned networks"),
        Figure("learned_tracking", tracking.figure,
               "The learned receptive field against the planted scale"),
    ),
    tables=(Table("learned_shrunk", tables.shrunk), Table("learned_sweep", tables.sweep),
            Table("learned_verdicts", tables.verdict_table)),
    values=values.values, verdicts=values.verdicts, ran=values.ran,
    columns=block_columns_for(*rows.LEARNING_STUDIES), rows=rows.rows,
)
