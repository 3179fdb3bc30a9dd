"""The overhead study: one network timed at several batches in every engine, to tell the per-step overhead (launching
operations, Python, the framework's dispatch) from the per-sample cost (arithmetic). A line a + b x batch per engine and
phase with intervals on a and b, the figure of time against batch with the fits, the table of a and b (all three
convbench.analysis.sweep, which a reference GPU run's sweep shares), and the backward claim of the engines study at
every batch: where in (engine, batch) space one framework's backward pass is several times faster than the other's."""
from convbench.analysis.overhead import tables, values
from convbench.analysis.study import Figure, Study, Table
from convbench.analysis.sweep import NAME, draw_sweep, fit_line, fit_table

STUDY = Study(
    NAME, "Overhead against per-sample cost",
    figures=(Figure("overhead", draw_sweep,
                    "Per-step overhead against per-sample cost"),),
    tables=(Table("overhead", fit_table), Table("overhead-claim", tables.claim_table)),
    values=values.values,
    verdicts=values.verdicts,
    ran=values.ran,
)

__all__ = ["STUDY", "fit_line"]
