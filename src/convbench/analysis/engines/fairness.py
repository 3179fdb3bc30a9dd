"""The fairness table: every setting that matters for a fair comparison, per setup, as the speed cells recorded it."""
from __future__ import annotations

import re
import textwrap

import numpy as np
import pandas as pd

from convbench.analysis.engines.cells import setup_order
from convbench.analysis.formatting import FRAMEWORK_ORDER, escape, seconds, setup_label, setup_rank
from convbench.analysis.latex import booktabs, placeholder, ragged
from convbench.analysis.study import Run
from convbench.analysis.tidy import WARNINGS_SEP


def short(warning: str, width: int = 80) -> str:
    """The first line, shortened; without Markdown backticks, which LaTeX would set as quotes."""
    first = warning.strip().splitlines()[0] if warning.strip() else warning
    return textwrap.shorten(first.replace("`", ""), width, placeholder="...")


def fairness(df: pd.DataFrame, env: pd.DataFrame) -> pd.DataFrame:
    """Rows are settings, columns setups of the speed cells (every study's). A setting only the failed cells of a
    setup would have recorded shows 'failed'."""
    df = df[df["task"] == "speed"] if len(df) else df
    if df.empty:
        return pd.DataFrame()
    cells = df.drop_duplicates("cell_id")
    cells = cells.merge(env.drop(columns=["framework", "engine", "status", "started"], errors="ignore"), on="cell_id",
                        how="left")
    compile_time = df[df["metric"] == "compile_time"].groupby("setup")["value"].median()
    flags = [c for c in cells.columns if c.startswith("flags.") and c != "flags.layout"]
    # each flag in the order of the first setup that recorded it (PyTorch's flags before TensorFlow's)
    flags.sort(key=lambda c: min(setup_rank(s) for s in cells.loc[cells[c].notna(), "setup"]) if cells[c].notna().any()
               else (len(FRAMEWORK_ORDER),))
    fields = {"Cells": None, "Phases timed": "phase_method", "Threads (intra/inter)": "threads",
              "Layout": "flags.layout", "Precision": "engine.precision", "Batch": "batch_size",
              "Optimizer": "engine.optimizer", "Compile time (median of every speed cell)": "compile",
              **{c.removeprefix("flags."): c for c in flags}, "Warnings": "engine.warnings"}
    missing = pd.Series(np.nan, cells.index)
    intra, inter = (pd.to_numeric(cells.get(f"threads.{c}", missing)) for c in ("intra_op", "inter_op"))
    cells = cells.assign(
        threads=[f"{i:g}/{o:g}" if pd.notna(i) and pd.notna(o) else None for i, o in zip(intra, inter)],
        compile=cells["setup"].map(lambda s: seconds(compile_time[s], " ") if s in compile_time else None))
    table = {}
    for setup in setup_order(cells):
        rows = cells[cells["setup"] == setup]
        ok, failed = (rows["status"] == "ok").sum(), (rows["status"] == "failed").sum()
        column = {"Cells": f"{ok} ok" + (f", {failed} failed" if failed else "")}
        for name, field in list(fields.items())[1:]:
            values = rows[field].dropna() if field in rows else pd.Series(dtype=object)
            if field == "engine.warnings":
                values = values.map(lambda w: "; ".join(dict.fromkeys(short(x) for x in str(w).split(WARNINGS_SEP))))
            distinct = list(dict.fromkeys(str(v) for v in values if str(v) != ""))
            column[name] = "; ".join(distinct) if distinct else ("failed" if ok == 0 else "--")
        table[setup_label(*setup.split("-", 1))] = column
    return pd.DataFrame(table)


def fairness_table(run: Run) -> str:
    caption = ("What each setup ran with, as its speed cells recorded it: threads, data layout, precision, batch, "
               "how the phases were timed (direct: between device synchronisations; derived: from separately compiled "
               "programs), the optimizer's implementation, compile and trace time (first step minus a median step), "
               "framework flags and warnings (shortened).")
    table = fairness(run.tidy, run.environment)
    if table.empty:
        return placeholder(caption, "tab:fairness", "This run has no timed cells.")
    # Dotted names (keras.optimizers.SGD) are longer than a column: let a line break after their dots.
    table = table.map(lambda v: re.sub(r"\.(?=[A-Za-z])", r".\\allowbreak{}", escape(v)))
    table = table.reset_index().rename(columns={"index": "Setting"})
    n = len(table.columns) - 1
    return booktabs(table, caption, "tab:fairness", ragged(0.12) + ragged(0.75 / n) * n, raw=tuple(table.columns[1:]),
                    size=r"\scriptsize")
