"""The run as a whole: what it holds, where and with what it ran, the data and the timing protocol; example images of
the data sets; the architectures, environment and failed-cells tables; every study's cells (the speed, accuracy and
unconverged tables), how many runs converged, the cross-framework repeat, and the frameworks in eager mode over every
study's timed networks (runs.py). Quoted by the introduction, the method, the kernel section and the appendix."""
from convbench.analysis.overview import examples, launches, runs, tables, values
from convbench.analysis.study import Figure, Study, Table

STUDY = Study(
    "overview", "All studies",
    figures=(Figure("overview_data", examples.figure,
                    "The data sets the run trained on"),),
    tables=(Table("architectures", tables.architectures), Table("environment", tables.environment),
            Table("failed", tables.failed), Table("launch_cv", launches.table), Table("speed", tables.speed),
            Table("accuracy", tables.accuracy), Table("unconverged", tables.unconverged)),
    values=values.values,
    verdicts=runs.framework_verdicts,
)
