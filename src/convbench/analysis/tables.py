"""Booktabs LaTeX tables, each a function of the tidy table (the environment table of the environment frame)."""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import pandas as pd

from convbench.analysis.tidy import (ARCH_ORDER, LAYER_TASK, by_setup, framework_name, full_data, setup_labels,
                                     summarise, with_config)

LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def escape(text) -> str:
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def tt(text) -> str:
    """Typewriter text. OT1's \\_ is a drawn rule that PDF text extraction loses; cmtt has a real underscore glyph
    (slot 95), and a line may break after it."""
    return rf"\texttt{{{escape(text)}}}".replace(r"\_", r"\char95\allowbreak{}")


def decimals(x: float) -> int:
    """Decimals that show three significant digits (none past the point for 100 and above)."""
    return max(0, 2 - math.floor(math.log10(abs(x)))) if x else 0


def sig3(x: float) -> str:
    return f"{x:.{decimals(x)}f}"


def ms(median_s: float, iqr_s: float | None = None) -> str:
    """A time in seconds shown in milliseconds as 'median (IQR)', both to the median's precision."""
    value = median_s * 1e3
    if iqr_s is None or pd.isna(iqr_s):
        return sig3(value)
    return f"{sig3(value)} ({iqr_s * 1e3:.{decimals(value)}f})"


def thousands(n) -> str:
    return f"{int(n):,}" if pd.notna(n) else "--"


def seconds(x: float, space: str = r"\,") -> str:
    """A duration with its unit: milliseconds below one second."""
    return f"{sig3(x)}{space}s" if abs(x) >= 1 else f"{sig3(x * 1e3)}{space}ms"


def ratio(x: float) -> str:
    return f"{x:.2f}"


def words(items) -> str:
    """'a', 'a and b', 'a, b and c'; '' for nothing."""
    items = list(items)
    return " and ".join(items) if len(items) <= 2 else ", ".join(items[:-1]) + " and " + items[-1]


def percent(fraction: float) -> str:
    return f"{100 * fraction:.1f}"


def blank_repeats(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Show a leading column's value only where it (or a column before it) changes, as grouped tables do."""
    changed = {c: (df[columns[: i + 1]] != df[columns[: i + 1]].shift()).any(axis=1) for i, c in enumerate(columns)}
    return df.assign(**{c: df[c].where(changed[c], "") for c in columns})


def header(columns: pd.Index) -> list[str]:
    """One header row, or two for a two-level column index (top level spanned and underlined)."""
    if not isinstance(columns, pd.MultiIndex):
        return [" & ".join(escape(c) for c in columns) + r" \\"]
    top, rules, start = [], [], 1
    for name, group in itertools.groupby(columns.get_level_values(0)):
        n = len(list(group))
        top += [rf"\multicolumn{{{n}}}{{c}}{{{escape(name)}}}"] if name else [""] * n  # one cell per unnamed column
        if name:
            rules.append(rf"\cmidrule(lr){{{start}-{start + n - 1}}}")
        start += n
    return [" & ".join(top) + r" \\", "".join(rules), " & ".join(escape(c) for c in columns.get_level_values(1)) + r" \\"]


def booktabs(df: pd.DataFrame, caption: str, label: str, align: str | None = None, raw: tuple[str, ...] = (),
             size: str = r"\small", groups: pd.Series | None = None, note: str | None = None,
             colsep: str = "4pt") -> str:
    """A table float; cells are escaped except in the columns named in raw (already LaTeX).

    groups: one name per row, shown as a heading row wherever it changes (e.g. the study).
    note: LaTeX set under the table, e.g. what a dagger means.
    """
    group = groups is not None
    groups = groups if group else [None] * len(df)
    align = align or "l" * len(df.columns)
    body, previous = [], None
    for (_, row), name in zip(df.iterrows(), groups):
        if group and name != previous:
            body += ([r"\midrule"] if previous is not None else []) + [
                rf"\multicolumn{{{len(df.columns)}}}{{@{{}}l}}{{\textit{{{escape(name)}}}}} \\"]
            previous = name
        body.append(" & ".join(str(v) if c in raw else escape(v) for c, v in row.items()) + r" \\")
    return "\n".join([r"\begin{table}[htbp]", r"\centering", size, rf"\setlength{{\tabcolsep}}{{{colsep}}}",
                      rf"\caption{{{caption}}}", rf"\label{{{label}}}",
                      rf"\begin{{tabular}}{{{align}}}", r"\toprule", *header(df.columns), r"\midrule", *body,
                      r"\bottomrule", r"\end{tabular}", *([rf"\par\smallskip{{\footnotesize {note}}}"] if note else []),
                      r"\end{table}", ""])


def ragged(fraction: float) -> str:
    """A ragged-right paragraph column of a fraction of the line width (needs the array package)."""
    return rf">{{\raggedright\arraybackslash}}p{{{fraction:.2f}\linewidth}}"


def placeholder(caption: str, label: str, text: str) -> str:
    return "\n".join([r"\begin{table}[htbp]", r"\centering", rf"\caption{{{caption}}}", rf"\label{{{label}}}",
                      rf"\emph{{{escape(text)}}}", r"\end{table}", ""])


def architectures(df: pd.DataFrame) -> str:
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


DAGGER = r"$^\dagger$"


def noisy_note(df: pd.DataFrame) -> str | None:
    """What the dagger means, with the threshold the protocol recorded; None when no shown cell is noisy."""
    if not df["noisy"].fillna(False).any():
        return None
    limits = words(f"{x:g}" for x in sorted(df.loc[df["noisy"].fillna(False), "max_iqr_ratio"].dropna().unique()))
    limit = f"{limits} of the median (the protocol's {tt('max_iqr_ratio')})" if limits else "the protocol's threshold"
    return rf"{DAGGER}\,Noisy: the interquartile range of the repeats exceeded {limit}."


def flagged(text: str, noisy) -> str:
    return text + DAGGER if pd.notna(noisy) and noisy else text


def cells_in_order(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """One row per study x arch x setup x config of a task, failed cells included, in the tables' order."""
    cells = with_config(df[df["task"] == task]).drop_duplicates(["study", "arch", "setup", "config"])
    return cells.sort_values(["study", *ARCH_ORDER, "setup", "config"], kind="stable", key=by_setup)


def speed(df: pd.DataFrame) -> str:
    caption = ("Time per training step and phase, in ms: median (interquartile range) over the timed repeats; "
               "sum = forward + backward + optimizer of the same repeat, step = a whole step timed on its own; "
               "roof = FLOPs of a step over the step's median, as a percentage of what the ceilings measured in the "
               "cell's own process allow at its arithmetic intensity (Figure~\\ref{fig:roofline}). "
               "A cell that failed shows \\emph{failed} in its place.")
    df = df[df["task"] == "speed"]
    times = summarise(df, "time")
    if times.empty:
        return placeholder(caption, "tab:speed", "This run has no timed cells.")
    times = times.assign(cell=[flagged(ms(v, i), noisy)
                               for v, i, noisy in zip(times["value"], times["iqr"], times["noisy"])])
    keys = ["study", "arch", "setup", "config"]
    table = times.pivot_table(index=keys, columns="phase", values="cell", aggfunc="first", sort=False)
    phases = [p for p in ["forward", "backward", "optimizer", "total", "step"] if p in table.columns]
    phases += [p for p in table.columns if p not in phases]  # phases a new harness adds
    table = table[phases].rename(columns={"total": "sum"})
    roof = summarise(df, "ceiling_fraction")
    if len(roof):
        table["roof %"] = roof.set_index(keys)["value"].map(percent)
    cells = cells_in_order(df, "speed")
    index = pd.MultiIndex.from_frame(cells[keys])
    table = table.reindex(index).fillna("--")
    table.loc[~index.isin(table.index.intersection(times.set_index(keys).index))] = r"\emph{failed}"
    table = table.reset_index().assign(Setup=setup_labels(cells.reset_index(drop=True)).to_numpy())
    columns = list(table.columns[len(keys):-1])
    studies = table["study"]
    table = blank_repeats(table[["study", "arch", "Setup", *columns]], ["study", "arch"]).drop(columns="study")
    return booktabs(table.rename(columns={"arch": "Architecture"}), caption, "tab:speed", "ll" + "r" * len(columns),
                    raw=tuple(columns), size=r"\scriptsize", groups=studies, note=noisy_note(times), colsep="2pt")


def accuracy(df: pd.DataFrame) -> str:
    caption = ("Accuracy after the last epoch, in percent: train and test accuracy and their gap "
               "(train minus test, percentage points); median over seeds, at each study's largest training fraction"
               " (the whole training split unless a column says otherwise).")
    metrics = {m: summarise(full_data(df), m) for m in ["train_accuracy", "test_accuracy", "gap"]}
    if metrics["test_accuracy"].empty:
        return placeholder(caption, "tab:accuracy", "This run has no training cells.")
    keys = ["study", "arch", "setup", "framework", "engine", "config", "train_fraction"]
    table = metrics["test_accuracy"][keys + ["seeds", "train_size"]].copy()
    for metric, name in [("train_accuracy", "Train"), ("test_accuracy", "Test"), ("gap", "Gap")]:
        table = table.merge(metrics[metric][keys + ["value"]].rename(columns={"value": name}), on=keys, how="left")
        table[name] = table[name].map(lambda v: percent(v) if pd.notna(v) else "--")
    table["Setup"] = setup_labels(table)
    columns = ["study", "arch", "Setup", "Train", "Test", "Gap"]
    if table["seeds"].max() > 1:
        columns.append("seeds")
    if table["train_size"].nunique() > 1:
        columns.append("train_size")
    if (table["train_fraction"] < 1).any():
        table["train_fraction"] = table["train_fraction"].map(lambda f: f"{100 * f:g}%")
        columns.append("train_fraction")
    studies = table["study"]
    table = blank_repeats(table[columns], ["study", "arch"]).drop(columns="study").rename(
        columns={"arch": "Architecture", "seeds": "Seeds", "train_size": "Train size", "train_fraction": "Fraction"})
    return booktabs(table, caption, "tab:accuracy", "ll" + "r" * (len(columns) - 3), groups=studies)


def recorded(value) -> bool:
    """A value some record holds: not missing, not empty (lists, such as per-rank figures, count too)."""
    if isinstance(value, (list, tuple, dict)):
        return len(value) > 0
    return pd.notna(value) and str(value) != ""


def environment(env: pd.DataFrame) -> str:
    """One column per framework; a row per environment field (whatever the records hold), distinct values joined."""
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
            f: "; ".join(sorted({str(v) for v in rows[f] if recorded(v)})) for f in fields}
    table = pd.DataFrame(table).replace("", "--")
    if "started" in table.index:  # the run's time span, not every cell's start
        starts = sorted(str(v) for v in env["started"].dropna())
        table.loc["started"] = f"{starts[0]} to {starts[-1]}" if starts else "--"
    table = table.loc[~(table == "--").all(axis=1)].reset_index().rename(columns={"index": "Field"})
    align = ragged(0.2) + ragged(0.72 / (len(table.columns) - 1)) * (len(table.columns) - 1)
    return booktabs(table, caption, "tab:environment", align, size=r"\scriptsize")  # a whole commit hash fits


def failed(df: pd.DataFrame) -> str:
    caption = "Failed cells and the last line of their error."
    cells = df.drop_duplicates("cell_id")
    bad = cells[cells["status"] == "failed"]
    if bad.empty:
        return f"All {len(cells)} cells succeeded.\n"
    table = pd.DataFrame({"Cell": [tt(c) for c in bad["cell_id"]],
                          "Error": [escape(e or "(no error text)") for e in bad["error"]]})
    return (f"{len(bad)} of {len(cells)} cells failed.\n"
            + booktabs(table, caption, "tab:failed", ragged(0.42) + ragged(0.5), raw=("Cell", "Error"),
                       size=r"\footnotesize"))


def write_tables(df: pd.DataFrame, env: pd.DataFrame, out_dir, more: dict[str, str] | None = None) -> list[Path]:
    """The tables of this module, plus more: {name: LaTeX} made by the study modules (engines, claim, layers)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {"architectures": architectures(df), "speed": speed(df), "accuracy": accuracy(df),
              "environment": environment(env), "failed": failed(df), **(more or {})}
    for name, tex in tables.items():
        (out / f"{name}.tex").write_text(tex)
    return [out / f"{name}.tex" for name in tables]
