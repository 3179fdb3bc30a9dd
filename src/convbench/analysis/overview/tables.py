"""The run's tables: every architecture with its counts, the environment per framework, the failed cells."""
from __future__ import annotations

import pandas as pd

from convbench.analysis.formatting import escape, framework_name, sig3, thousands, tt
from convbench.analysis.latex import booktabs, placeholder, ragged
from convbench.analysis.query import ARCH_ORDER
from convbench.analysis.records import LAYER_TASK
from convbench.analysis.study import Run


def architectures(run: Run) -> str:
    df = run.tidy
    caption = ("Architectures: blocks (stack depth x kernel / filters, activation), parameters and forward MFLOPs per "
               "example, counted from the spec in closed form for each task's inputs (channels x height x width).")
    counts = df[df["params"].notna() & (df["task"] != LAYER_TASK)].drop_duplicates(["study", "arch", "task"])
    if counts.empty:
        return placeholder(caption, "tab:architectures", "No cell of this run recorded parameter counts.")
    archs = counts.drop_duplicates(["study", "arch"]).sort_values(["study", *ARCH_ORDER])
    table = archs.set_index(["study", "arch"])[["description"]]
    for task, rows in counts.groupby("task", sort=True):
        shapes = {f"{c:.0f}x{s:.0f}x{s:.0f}" for c, s in zip(rows["in_channels"], rows["image_size"])}
        top = f"{task}, {shapes.pop()}" if len(shapes) == 1 else task
        rows = rows.set_index(["study", "arch"])
        table[(top, "Params")] = rows["params"].map(thousands)
        table[(top, "MFLOPs")] = rows["flops"].map(lambda f: sig3(f / 1e6) if pd.notna(f) else "--")
    table = table.fillna("--").reset_index()
    studies = table.pop("study")
    table.columns = pd.MultiIndex.from_tuples([("", "Architecture"), ("", "Blocks"), *table.columns[2:]])
    return booktabs(table, caption, "tab:architectures", "ll" + "r" * (len(table.columns) - 2), groups=studies)


def _recorded(value) -> bool:
    """A value some record holds: not missing, not empty."""
    return value is not None and pd.notna(value) and str(value) not in ("", "[]", "{}")


def environment(run: Run) -> str:
    """One column per framework; a row per environment field (whatever the records hold), distinct values joined."""
    env = run.environment
    caption = "Environment of the cells, per framework, as recorded by each cell."
    if env.empty:
        return placeholder(caption, "tab:environment", "No environment recorded.")
    # How each engine ran (optimizer, precision, warnings) is the fairness table's, per setup.
    fields = [c for c in env.columns
              if c not in ("cell_id", "framework", "engine", "status") and not c.startswith("engine.")]
    # Version columns of other frameworks are empty for a framework; keep only fields it has.
    table = {}
    for framework, rows in env.groupby("framework", sort=True):
        table[framework_name(framework)] = {
            f: "; ".join(sorted({str(v) for v in rows[f] if _recorded(v)})) for f in fields}
    table = pd.DataFrame(table).replace("", "--")
    if "started" in table.index:  # the run's time span, not every cell's start
        starts = sorted(str(v) for v in env["started"].dropna())
        table.loc["started"] = f"{starts[0]} to {starts[-1]}" if starts else "--"
    table = table.loc[~(table == "--").all(axis=1)].reset_index().rename(columns={"index": "Field"})
    align = ragged(0.2) + ragged(0.72 / (len(table.columns) - 1)) * (len(table.columns) - 1)
    return booktabs(table, caption, "tab:environment", align, size=r"\scriptsize")  # a whole commit hash fits


def failed(run: Run) -> str:
    """The failed cells with the last line of their error; empty when none failed (the text tests overview/failed)."""
    cells = run.tidy.drop_duplicates("cell_id")
    bad = cells[cells["status"] == "failed"]
    if bad.empty:
        return ""
    table = pd.DataFrame({"Cell": [tt(c) for c in bad["cell_id"]],
                          "Error": [escape(e) if isinstance(e, str) and e else "(no error text)" for e in bad["error"]]})
    return booktabs(table, "Failed cells and the last line of their error.", "tab:failed", ragged(0.42) + ragged(0.5),
                    raw=("Cell", "Error"), size=r"\footnotesize")
