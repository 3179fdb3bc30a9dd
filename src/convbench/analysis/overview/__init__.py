"""The run as a whole: what it holds, where and with what it ran, the data and the timing protocol; the architectures,
environment and failed-cells tables. Quoted by the introduction, the method and the appendix."""
from convbench.analysis.overview import launches, tables, values
from convbench.analysis.study import Study, Table

STUDY = Study(
    "overview", "All studies",
    tables=(Table("architectures", tables.architectures), Table("environment", tables.environment),
            Table("failed", tables.failed), Table("launch_cv", launches.table)),
    values=values.values,
)
