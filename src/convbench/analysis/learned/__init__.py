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
               "Learned against hand-picked: test accuracy against parameters, the hand-picked kernel sizes with t "
               "intervals and their Pareto front, and each learned network before and after crop and prune at the "
               "parameters it kept."),
        Figure("learned_radius", figures.radius,
               "What the networks learned, after every epoch: the mean radius of each masked block (bands mark the "
               "kernel size each radius crops to) and the open maps of each L0-gated block (deterministic test-time "
               "gate), per framework."),
        Figure("learned_penalty", figures.penalty,
               "The penalty sweep: what the shrunk network kept against the penalty weight (its receptive field, "
               "dashed: the planted task's scale; its maps in percent of the initial ones) and its test accuracy. "
               "Points: seeds; lines: their means."),
        Figure("learned_tracking", tracking.figure,
               "The learned receptive field against the planted scale, one point per seed: the staircase is the "
               "smallest field that covers the scale, the band one kernel step around it."),
    ),
    tables=(Table("learned_shrunk", tables.shrunk), Table("learned_sweep", tables.sweep),
            Table("learned_verdicts", tables.verdict_table)),
    values=values.values, verdicts=values.verdicts, ran=values.ran,
    columns=block_columns_for(*rows.LEARNING_STUDIES), rows=rows.rows,
)
