"""The kernel study: one large kernel against a stack of small ones with the same receptive field, in speed (every
phase of a training step) and in accuracy.

The paper's text is paper/sections/kernel.tex; the per-cell tables of every study (overview.tables) go to its
appendix, paper/sections/appendix-kernel.tex.
"""
from convbench.analysis.kernel import figures, tables, values
from convbench.analysis.study import Figure, Study, Table
from convbench.analysis.tidy import block_columns_for

STUDY = Study(
    "kernel", "Kernel size",
    figures=(
        Figure("backward_vs_receptive_field", figures.backward_vs_receptive_field,
               "Kernel size: step time against the receptive field"),
        Figure("accuracy_vs_params", figures.accuracy_vs_params,
               "Kernel size: test accuracy against parameters"),
    ),
    tables=(Table("kernel_pairs", tables.pairs),),
    values=values.values,
    verdicts=values.verdicts,
    ran=values.ran,
    columns=block_columns_for("kernel"),
)
