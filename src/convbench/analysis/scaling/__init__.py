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
               "Several devices: speed-up over one device and efficiency against the no-communication baseline "
               "(bars: quartile-based range), per framework, parallelism (data, tensor) and scaling (strong, weak)."),
        Figure("scaling_bytes", figures.bytes_,
               "Bytes per step each rank sends under the ring model against the global batch, data against tensor "
               "parallel per kernel size, with the crossovers marked and the payloads counted in this run's steps."),
        Figure("scaling_projection", figures.projection,
               "Several devices, PROJECTION (not measured): the step model's efficiency of data against tensor "
               "parallel on 1 to 8 GPUs of one node and on two nodes, from a committed single-GPU reference run "
               "and the config's links."),
    ),
    tables=(Table("scaling_times", tables.times), Table("scaling_phases", tables.phases),
            Table("scaling_bytes", tables.bytes_), Table("scaling_crossover", tables.crossover_table),
            Table("scaling_straggler", tables.straggler), Table("scaling_verdicts", tables.verdicts),
            Table("scaling_failed", tables.failed), Table("scaling_projection_check", tables.projection_check),
            Table("scaling_projection", tables.projection_table)),
    values=values, verdicts=verdicts, ran=ran, columns=rows.columns, rows=rows.rows)
