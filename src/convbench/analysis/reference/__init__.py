"""Committed reference runs on GPUs (results/reference/<run>/records/): per run, a table of its speed cells and one of
its layer cells, each with the hardware, versions, commit and flags under it (appendix); and, where two runs on the same
GPU differ only in TF32, a verdict per phase and network: TF32 over fp32 (main text); and the sweeps of the fp32 run
(sweeps.py): time against batch, eager against a CUDA graph, and the share of the peak against size. Read with the run's
own reader and tidy function (records.load_records, tidy.tidy), from the folder run.reference; not part of the run's
tidy.csv. No reference run committed: the flag reference/ran is 0 and the paper says so, never made-up numbers."""
from __future__ import annotations

from convbench.analysis.reference.sweeps import draw_overhead, overhead_table
from convbench.analysis.reference.tables import cells_table, tf32_table
from convbench.analysis.reference.values import ran, reference_values, tf32_verdicts
from convbench.analysis.study import Figure, Study, Table

STUDY = Study("reference", "Reference GPU runs",
              figures=(Figure("reference-overhead", draw_overhead,
                              "Reference GPU run: time against batch"),),
              tables=(Table("reference", tf32_table), Table("reference-overhead", overhead_table),
                      Table("reference-cells", cells_table)),
              values=reference_values, verdicts=tf32_verdicts, ran=ran)
