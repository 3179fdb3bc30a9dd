"""The backward pass on several devices (issue 6): data parallel against tensor parallel, strong and weak scaling,
a straggler, the bytes against the ring model and the crossover batch. Drawn from the tidy table's scaling rows
(rows.py, this study's hooks into the tidy table); the byte model comes from convbench.parallel.bytes_model,
which needs only the spec; the step model and its projection to several GPUs from convbench.step_model
(projection.py). Imports neither torch nor tensorflow."""
from convbench.analysis.scaling import figures, rows, tables
from convbench.analysis.scaling.values import ran, values, verdicts
from convbench.analysis.study import Figure, Study, Table

STUDY = Study(
    "scaling", "Several devices",
    figures=(
        Figure("scaling_speedup", figures.speedup,
               "Several devices: speed-up and efficiency"),
        Figure("scaling_bytes", figures.bytes_,
               "Several devices: bytes per step against the batch"),
        Figure("scaling_projection", figures.projection,
               "Several devices: the step model's projection to GPUs (not measured)"),
    ),
    tables=(Table("scaling_times", tables.times), Table("scaling_phases", tables.phases),
            Table("scaling_bytes", tables.bytes_), Table("scaling_crossover", tables.crossover_table),
            Table("scaling_straggler", tables.straggler), Table("scaling_verdicts", tables.verdicts),
            Table("scaling_failed", tables.failed), Table("scaling_projection_check", tables.projection_check),
            Table("scaling_projection", tables.projection_table)),
    values=values, verdicts=verdicts, ran=ran, columns=rows.columns, rows=rows.rows)
